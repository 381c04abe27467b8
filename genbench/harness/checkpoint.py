"""Checkpoints: weights plus everything needed to rebuild the model and to resume its training.

A checkpoint is a plain dict of tensors and primitives, written atomically with ``torch.save``
and read with ``torch.load(weights_only=True)``: no pickled classes, so loading a file cannot
run code. Its keys:

``format``, ``version``
    ``"genbench-checkpoint"``, :data:`VERSION`.
``kind``
    ``"last"`` (resumable: optimiser, RNG and data-order state included) or ``"best"``
    (weights of the selected step only).
``family``, ``model_config``, ``train_config``, ``dataset_info``, ``seed``
    enough to rebuild the model from the file alone (:func:`load_model`).
``model``
    the model's ``state_dict``.
``step``, ``finished``, ``scores``
    steps completed, whether training ended, validation scores at that step.
``optimizers``, ``rng``, ``data_order``, ``progress`` (``last`` only)
    resume state: optimiser state dicts, all RNG states, (epoch, position) in the data order,
    and the run's bookkeeping (curves, validation history, best so far, elapsed seconds).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from genbench._io import atomic_torch_save
from genbench.config import from_dict

FORMAT = "genbench-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a readable genbench checkpoint (the message says which and why)."""


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (tensors and primitives only) atomically to ``path``."""
    return atomic_torch_save(path, {"format": FORMAT, "version": VERSION, **payload})


def read_checkpoint(path: str | os.PathLike, *, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``; clear errors for foreign files."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint not found.")
    try:
        ck = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError... for foreign files
        raise CheckpointError(
            f"{p}: cannot be read as a genbench checkpoint with torch.load(weights_only=True) ({e})."
        ) from e
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise CheckpointError(f"{p}: not a genbench checkpoint (no format {FORMAT!r} marker).")
    if ck.get("version", 0) > VERSION:
        raise CheckpointError(f"{p}: checkpoint version {ck['version']} is newer than this genbench ({VERSION}).")
    return ck


def build_untrained(family: str, model_config: dict[str, Any], dataset_info: dict[str, Any]) -> Any:
    """The family's model for ``(config, dataset info)``, freshly initialised (no data needed).

    Trained families' ``build(config, dataset)`` may only read ``dataset.info``: the model must
    be rebuildable from a checkpoint alone.
    """
    from genbench.data import Dataset, DatasetInfo
    from genbench.generators import get_generator_spec

    spec = get_generator_spec(family)
    config = from_dict(spec.config_cls, model_config)
    info = DatasetInfo.from_dict(dataset_info)
    return spec.build(config, Dataset(info=info))


def load_model(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> Any:
    """Rebuild a trained model from its checkpoint alone, in eval mode.

    Parameters
    ----------
    path : a ``best.pt`` or ``last.pt`` written by :func:`genbench.harness.train`.
    device : where to put the model.

    Returns
    -------
    The family's model (a :class:`genbench.harness.TrainableModel`) with the checkpoint's
    weights. ``model.checkpoint`` holds the file's metadata (step, scores, configs, seed).

    Examples
    --------
    >>> model = load_model("results/runs/train-vae-digits-s0-1a2b3c4d/checkpoints/best.pt")  # doctest: +SKIP
    >>> model.sample(16, seed=0).shape                                                     # doctest: +SKIP
    torch.Size([16, 1, 8, 8])
    """
    ck = read_checkpoint(path)
    # building initialises random weights; keep the caller's global RNG untouched
    with torch.random.fork_rng(devices=[]):
        model = build_untrained(ck["family"], ck["model_config"], ck["dataset_info"])
    model.load_state_dict(ck["model"])
    model.to(torch.device(device))
    model.eval()
    model.checkpoint = {k: ck[k] for k in ("family", "kind", "step", "finished", "scores", "seed", "model_config",
                                           "train_config", "dataset_info") if k in ck}
    return model
