"""The training harness's config: one frozen dataclass shared by every family."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from genbench.config import ConfigError, from_dict, override, to_dict

#: fields that change neither the weights nor the curves; a checkpoint written under other
#: values of these still resumes (e.g. a run started on CPU and finished on CUDA)
NON_DETERMINING = ("device", "progress", "plot", "checkpoint_every")


@dataclass(frozen=True)
class TrainConfig:
    """How the harness trains a model.

    Attributes
    ----------
    steps : optimisation steps (one batch each; a family may take several optimiser steps per
        batch, e.g. a GAN's discriminator steps).
    batch_size : examples per step (clamped to the training-set size). Batches are drawn
        without replacement from a seeded per-epoch permutation; the last partial batch of an
        epoch is dropped.
    checkpoint_every : write ``last.pt`` every this many steps (0: only at the end).
    val_every : score the validation split every this many steps (0: only at the end); the
        final step is always validated.
    log_every : one row of ``curves.csv`` per this many steps (losses averaged over them).
    device : ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"``.
    amp : bf16 autocast on CUDA (``StepContext.autocast``); ignored on CPU.
    select_on : the validation score used to select ``best.pt``: ``"auto"`` (the model's
        ``select_metric``), a key of its ``validation_scores``, or None (no selection: the final
        weights are used).
    val_batch_size : validation batch size; batch scores are combined by a size-weighted mean
        (``validation_scores`` returns per-example means).
    val_max : use at most this many validation examples (the first ones; None: all).
    progress : tqdm bar (None: on when stderr is a TTY, unless CI=true or GENBENCH_PROGRESS=0).
    plot : also write ``curves.png`` at the end.
    deterministic : on CUDA, cuDNN deterministic kernels and no autotuning (CPU is
        deterministic already).
    threads : torch intra-op CPU threads during training (restored afterwards); None leaves
        torch's setting. Small models take 1: their ops are too small to split, and on shared
        cores a second thread was measured ~10x *slower* (2 cores, several processes).
    """

    steps: int = 1000
    batch_size: int = 64
    checkpoint_every: int = 500
    val_every: int = 250
    log_every: int = 10
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True
    select_on: str | None = "auto"
    val_batch_size: int = 1024
    val_max: int | None = None
    progress: bool | None = None
    plot: bool = True
    deterministic: bool = True
    threads: int | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every", "val_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"TrainConfig.{name} must be >= 1; got {getattr(self, name)}")
        for name in ("checkpoint_every", "val_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"TrainConfig.{name} must be >= 0 (0: only at the end); got {getattr(self, name)}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"TrainConfig.threads must be >= 1 or None; got {self.threads}")
        if self.val_max is not None and self.val_max < 1:
            raise ConfigError(f"TrainConfig.val_max must be >= 1 or None; got {self.val_max}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return from_dict(cls, d)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def with_(self, overrides: dict[str, Any]) -> TrainConfig:
        return override(self, overrides)

    def determining(self) -> dict[str, Any]:
        """The fields that decide the trained weights (used to match a checkpoint for resume)."""
        return {k: v for k, v in self.to_dict().items() if k not in NON_DETERMINING}
