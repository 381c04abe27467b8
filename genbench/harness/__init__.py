"""The training harness: one loop for every trainable family, checkpoints, resume and runs.

Public API
----------
:func:`train`
    Train a registered family on a dataset (into a run folder, or in memory).
:class:`Trainer`
    What :func:`train` runs: the loop as named steps (``next_batch``, ``train_step``,
    ``validate``, ``select``, ``save``, ``finish``), for callers that drive or test one step.
:func:`build_generator`
    A ready generator: controls built from the dataset, trained families trained or loaded.
:func:`train_run`
    Train into a self-describing run folder, write ``result.json`` and index it in the store.
:func:`load_model`
    Rebuild a model from a checkpoint alone (``torch.load(weights_only=True)``).
:class:`TrainConfig`, :class:`TrainResult`, :class:`NonFiniteLossError`
    The harness's config, its result and its error for NaN / Inf losses.
:class:`TrainableModel`, :class:`StepContext`
    The contract a family implements (see :mod:`genbench.harness.base`).
"""

from genbench.harness.base import StepContext, TrainableModel
from genbench.harness.checkpoint import CheckpointError, load_model, read_checkpoint
from genbench.harness.config import TrainConfig
from genbench.harness.loop import NonFiniteLossError, Trainer, TrainResult, resolve_configs, train
from genbench.harness.runner import build_generator, load_trained, run_id_for, train_run
from genbench.harness.runtime import resolve_device
from genbench.harness.seeding import derive_seed

__all__ = [
    "CheckpointError", "NonFiniteLossError", "StepContext", "TrainConfig", "TrainResult", "TrainableModel", "Trainer",
    "build_generator", "derive_seed", "load_model", "load_trained", "read_checkpoint", "resolve_configs",
    "resolve_device", "run_id_for", "train", "train_run",
]
