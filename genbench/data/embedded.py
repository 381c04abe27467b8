"""Embedded image data that needs no download: scikit-learn's ``load_digits``."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from genbench.data._base import Dataset, make_dataset, register_dataset, seeded_split

SPLIT_SEED = 0
FRACTIONS = (0.1, 0.2)  # 10% validation, 20% test, 70% train: 1258 / 180 / 359
BINARISE_SEED = 1234


def _digits_table() -> np.ndarray:
    """scikit-learn's digits as its ``load_digits`` reads them: (1797, 65) floats, 64 pixels then the label.

    The CSV is read from scikit-learn's package folder, found without importing scikit-learn (2 s here,
    paid by every ``genbench`` command that only needs the dataset); ``load_digits`` itself when the
    file is not where it was.
    """
    import gzip
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("sklearn")
    for root in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, "rt") as fh:
                return np.loadtxt(fh, delimiter=",")
    from sklearn.datasets import load_digits

    d = load_digits()
    return np.column_stack([d.data, d.target])


@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    table = _digits_table()
    # 0..16 integer grey levels -> [0, 1]; 17 levels
    x = (table[:, :-1].reshape(-1, 8, 8).astype(np.float32) / 16.0)[:, None, :, :]
    return x, table[:, -1].astype(np.int64)


def _split(x: np.ndarray, y: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    idx = seeded_split(len(x), SPLIT_SEED, FRACTIONS)
    return {k: (x[i], y[i]) for k, i in idx.items()}


RULE = f"seeded permutation (seed {SPLIT_SEED}) of load_digits' 1797 images: 10% val, 20% test, rest train"


@register_dataset(
    "digits",
    description="scikit-learn's 1797 8x8 digits, 17 grey levels scaled to [0, 1] (embedded default)",
    kind="image",
)
def load_digits(root: Any = None) -> Dataset:
    x, y = _digits_arrays()
    return make_dataset(
        "digits", "image", _split(x, y), value_range=(0.0, 1.0), n_classes=10,
        split_seed=SPLIT_SEED, split_rule=RULE, levels=17, source="sklearn.datasets.load_digits",
    )


@register_dataset(
    "digits-binary",
    description="digits statically binarised: pixel ~ Bernoulli(grey level), fixed seed",
    kind="image",
)
def load_digits_binary(root: Any = None) -> Dataset:
    x, y = _digits_arrays()
    # static binarisation (Salakhutdinov & Murray 2008 style): one fixed Bernoulli draw per pixel
    xb = (np.random.default_rng(BINARISE_SEED).random(x.shape) < x).astype(np.float32)
    return make_dataset(
        "digits-binary", "image", _split(xb, y), value_range=(0.0, 1.0), n_classes=10,
        split_seed=SPLIT_SEED, split_rule=RULE + f"; static binarisation with seed {BINARISE_SEED}",
        levels=2, source="sklearn.datasets.load_digits",
    )
