"""The contract between the training harness and a trainable model family.

A family subclasses :class:`TrainableModel` and supplies its loss step; the harness owns
everything else: device, precision, data order, seeding, checkpoints, resume, validation and
checkpoint selection, curves and progress.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
from torch import nn


class StepContext:
    """Given to ``training_step``: the step number, the device, and precision helpers.

    ``step`` is the 1-based number of the step being taken (1 .. ``TrainConfig.steps``).

    ``autocast()`` is the mixed-precision context (bf16 autocast on CUDA when enabled, a no-op
    on CPU). ``generator`` is the harness-owned ``torch.Generator`` for any randomness the step
    needs (noise, reparameterisation), so that resumption is exact.
    """

    def __init__(self, step: int, device: torch.device, *, amp: bool, generator: torch.Generator) -> None:
        self.step = step
        self.device = device
        self.amp = amp
        self.generator = generator

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.amp and self.device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                yield
        else:
            yield


class TrainableModel(nn.Module):
    """Base class of every harness-trained family.

    Subclasses set ``family`` and implement ``configure_optimizers``, ``training_step`` and
    ``sample``, optionally ``validation_scores``. A model is rebuilt from
    ``(config, dataset info)`` alone, so ``__init__(config, info)`` must not need data.
    """

    family: ClassVar[str] = ""
    #: the key of validation_scores() used for checkpoint selection, and its direction
    select_metric: ClassVar[str | None] = None
    select_higher_is_better: ClassVar[bool] = True
    #: optional metadata of validation_scores() keys, used when the harness selects on them and
    #: records them as results, e.g.
    #: ``{"val_elbo": {"higher_is_better": True, "kind": "lower-bound", "unit": "nats"}}``
    #: (without it: *_elbo / *_iwae are lower bounds, *_nll uses ``likelihood_kind``, and the
    #: direction follows :func:`higher_is_better`)
    validation_info: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, config: Any, info: Any) -> None:
        super().__init__()
        self.config = config
        self.info = info

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Named optimisers (``{"model": ...}`` or ``{"g": ..., "d": ...}``); state is checkpointed."""
        raise NotImplementedError

    def training_step(self, x: torch.Tensor, ctx: StepContext,
                      optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, float]:
        """One optimisation step on batch ``x`` (already on the device); does its own
        zero_grad / backward / step (a GAN may take k discriminator steps) and returns
        scalar losses for the curves and progress bar, as Python floats."""
        raise NotImplementedError

    @torch.no_grad()
    def validation_scores(self, x: torch.Tensor) -> dict[str, float]:
        """Scores on validation data for checkpoint selection (e.g. ``{"val_elbo": ...}``).

        Called in eval mode under ``torch.no_grad`` on batches of ``TrainConfig.val_batch_size``
        with the global RNG seeded identically at every validation; return per-example *means*
        (the harness combines batches by a size-weighted mean)."""
        return {}

    def sample(self, n: int, *, seed: int) -> torch.Tensor:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


#: name endings that mean lower-better (ARCHITECTURE.md: ``*_distance`` / ``*_nll``; a loss and
#: bits per dimension are the same kind of quantity)
LOWER_BETTER_SUFFIXES = ("nll", "loss", "distance", "bpd")


def higher_is_better(model: Any, key: str) -> bool | None:
    """The direction of validation score ``key`` of ``model``; None when nothing says.

    The one rule the harness uses both to select checkpoints and to record validation scores
    as results, in this order:

    1. ``model.validation_info[key]["higher_is_better"]``, when the family declares it;
    2. ``model.select_higher_is_better``, when ``key`` is the family's ``select_metric``;
    3. the naming convention: ``*_nll``, ``*_loss``, ``*_distance``, ``*_bpd`` are lower-better;
       ``*_score`` and ELBO / IWAE bounds (``elbo`` or ``iwae`` in the name) are higher-better;
    4. otherwise None (unknown: a result records no direction; selection treats it as
       higher-better, the default of ``select_higher_is_better``).

    Examples
    --------
    >>> class M:
    ...     select_metric, select_higher_is_better = "val_x", False
    ...     validation_info = {"val_kl": {"higher_is_better": False}}
    >>> [higher_is_better(M(), k) for k in ("val_kl", "val_x", "val_nll", "val_elbo", "val_y")]
    [False, False, False, True, None]
    """
    meta = getattr(model, "validation_info", {}).get(key, {})
    if "higher_is_better" in meta:
        return bool(meta["higher_is_better"])
    if key == getattr(model, "select_metric", None):
        return bool(getattr(model, "select_higher_is_better", True))
    if key.endswith(LOWER_BETTER_SUFFIXES):
        return False
    if key.endswith("score") or "elbo" in key or "iwae" in key:
        return True
    return None
