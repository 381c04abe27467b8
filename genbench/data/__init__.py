"""Datasets: a registry of embedded, synthetic and local-file datasets with fixed splits.

Every dataset yields float32 tensors (N, C, H, W) in [0, 1] for images (or (N, D) points for
the synthetic mixtures), integer labels where the data has them, fixed documented splits and
a :class:`DatasetInfo` with name, shape, value range, number of classes and content hash.
"""

from genbench.data._base import (
    DATASETS,
    Dataset,
    DatasetInfo,
    Split,
    data_root,
    load_dataset,
    register_dataset,
)
from genbench.data.files import DataFileError, read_idx
from genbench.data.mixtures import MixtureDataset

__all__ = [
    "DATASETS", "DataFileError", "Dataset", "DatasetInfo", "MixtureDataset", "Split", "data_root",
    "load_dataset", "read_idx", "register_dataset",
]
