"""The one training loop every trainable family goes through.

The family supplies ``training_step`` (its loss and optimiser steps); the loop owns the device,
precision, data order, seeding, validation and checkpoint selection, checkpoints and exact
resume, loss curves, the progress bar and the non-finite-loss guard. :class:`Trainer` holds
the loop as named steps; :func:`train` builds one and runs it.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from genbench._progress import progress_enabled
from genbench.config import override, to_dict
from genbench.generators import GeneratorSpec, get_generator_spec
from genbench.harness.base import StepContext, TrainableModel, higher_is_better
from genbench.harness.checkpoint import read_checkpoint, save_checkpoint
from genbench.harness.config import TrainConfig
from genbench.harness.curves import write_curves_csv, write_curves_png
from genbench.harness.optim import flat_optimizers
from genbench.harness.runtime import format_losses, progress_bar, resolve_device
from genbench.harness.seeding import (
    capture_rng,
    derive_seed,
    fork_rng,
    make_generator,
    restore_rng,
    seed_everything,
)


class NonFiniteLossError(RuntimeError):
    """A loss was NaN or infinite; training stopped at ``step`` and the last good checkpoint is kept.

    Attributes
    ----------
    step : the (1-based) step whose loss was not finite.
    losses : the losses that step returned.
    checkpoint : the last good ``last.pt`` (None if none was written yet).
    checkpoint_step : the step that checkpoint holds.
    """

    def __init__(self, step: int, losses: dict[str, float], checkpoint: Path | None,
                 checkpoint_step: int | None) -> None:
        self.step, self.losses = step, losses
        self.checkpoint, self.checkpoint_step = checkpoint, checkpoint_step
        bad = ", ".join(f"{k}={v}" for k, v in losses.items() if not math.isfinite(v))
        kept = (f"the last good checkpoint is kept at {checkpoint} (step {checkpoint_step})" if checkpoint
                else "no checkpoint had been written yet")
        super().__init__(
            f"non-finite loss at step {step} ({bad}); training stopped and {kept}. "
            "Lower the learning rate, or check the data range and the model's numerics."
        )


@dataclass
class TrainResult:
    """What :func:`train` (:meth:`Trainer.fit`) returns.

    ``model`` is in eval mode with the *selected* weights: those of ``best.pt`` when selection
    is on (``selected == "best"``), else the final ones (``selected == "last"``).
    """

    model: TrainableModel
    family: str
    seed: int
    finished: bool
    steps: int
    selected: str
    selected_step: int
    select_metric: str | None
    selected_scores: dict[str, float]
    final_scores: dict[str, float]
    final_losses: dict[str, float]
    train_seconds: float
    device: str
    resumed_from: int | None
    model_config: dict[str, Any]
    train_config: dict[str, Any]
    checkpoints: dict[str, Path] = field(default_factory=dict)
    curves: Path | None = None
    curves_png: Path | None = None

    def summary(self) -> dict[str, Any]:
        """Everything but the model, as plain JSON-able data."""
        return {
            "family": self.family, "seed": self.seed, "finished": self.finished, "steps": self.steps,
            "selected": self.selected, "selected_step": self.selected_step, "select_metric": self.select_metric,
            "selected_scores": self.selected_scores, "final_scores": self.final_scores,
            "final_losses": self.final_losses, "train_seconds": self.train_seconds, "device": self.device,
            "resumed_from": self.resumed_from, "model_config": self.model_config, "train_config": self.train_config,
            "checkpoints": {k: str(v) for k, v in self.checkpoints.items()},
            "curves": str(self.curves) if self.curves else None,
            "curves_png": str(self.curves_png) if self.curves_png else None,
        }


def resolve_configs(spec: GeneratorSpec, info: Any, model_overrides: dict[str, Any] | None = None,
                    train_overrides: dict[str, Any] | None = None) -> tuple[Any, TrainConfig]:
    """The family's model config and the TrainConfig for a dataset, with overrides applied.

    Train settings stack as: TrainConfig defaults < the family's ``default_train(info)`` <
    ``train_overrides``. Unknown keys raise :class:`genbench.config.ConfigError` with suggestions.
    """
    model_config = spec.config_for(info)
    if model_overrides:
        model_config = override(model_config, model_overrides, where=f"{spec.name} config")
    base = dict(spec.default_train(info)) if spec.default_train is not None else {}
    tc = override(TrainConfig(), {**base, **(train_overrides or {})})
    return model_config, tc


def check_supports(spec: GeneratorSpec, info: Any) -> None:
    if info.kind not in spec.dataset_kinds:
        raise ValueError(
            f"generator {spec.name!r} supports {', '.join(spec.dataset_kinds)} data; dataset {info.name!r} is "
            f"{info.kind!r}."
        )


@dataclass
class _Progress:
    """The loop's bookkeeping, checkpointed with ``last.pt`` so that resume is exact."""

    step: int = 0
    epoch: int = 0
    pos: int = 0
    rows: list[dict[str, float]] = field(default_factory=list)
    val_rows: list[dict[str, float]] = field(default_factory=list)
    window: dict[str, float] = field(default_factory=dict)
    window_count: int = 0
    best_step: int | None = None
    best_score: float | None = None
    select_key: str | None = None
    final_scores: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> _Progress:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


@contextlib.contextmanager
def _cudnn_deterministic(device: torch.device, on: bool) -> Iterator[None]:
    if device.type != "cuda" or not on:
        yield
        return
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved


def _every(step: int, n: int) -> bool:
    """Whether a period of ``n`` steps ends at ``step`` (``n == 0``: never)."""
    return bool(n) and step % n == 0


class Trainer:
    """One training of a registered family, as named steps around a short loop.

    Shaped after nanoGPT's ``train.py`` and pythae's ``BaseTrainer``: the constructor sets
    everything up (configs, device, model and optimisers, resume state, data), :meth:`fit` is
    the loop, and each step it takes is a method that can be called (and tested) on its own.
    :func:`train` is ``Trainer(...).fit()``; the parameters are those of :func:`train`.

    Building a trainer seeds (or, on resume, restores) torch's, numpy's and python's global
    RNGs, which are process-wide: drive one trainer at a time.

    Steps
    -----
    :meth:`next_batch`
        the next batch of a seeded per-epoch permutation of the training split.
    :meth:`train_step`
        the family's optimisation step, the non-finite-loss guard and the loss curve.
    :meth:`validate`
        size-weighted mean validation scores of the current weights.
    :meth:`select`
        record those scores and keep the weights (``best.pt``) when they are the best so far.
    :meth:`save`
        ``last.pt`` with everything exact resume needs, and ``curves.csv``.
    :meth:`finish`
        the selected weights into the model, the curves, the :class:`TrainResult`.

    Attributes
    ----------
    model, optimizers : the family's model (on ``device``) and its named optimisers.
    tc : the resolved :class:`TrainConfig`.
    st : the bookkeeping checkpointed for resume (``st.step`` steps done so far).
    resumed_from : the step ``last.pt`` held when the trainer was built (None: a fresh start).
    select_on, higher : the selection score (None: no selection) and its direction.

    Examples
    --------
    >>> from genbench.data import load_dataset
    >>> t = Trainer("vae", load_dataset("digits"), seed=0, train_overrides={"steps": 3})  # doctest: +SKIP
    >>> sorted(t.train_step(t.next_batch()))    # step 1 by hand                           # doctest: +SKIP
    ['kl', 'loss', 'neg_elbo']
    >>> t.fit().steps                           # the loop goes on from step 1             # doctest: +SKIP
    3
    """

    def __init__(
        self,
        spec_name: str,
        dataset: Any,
        *,
        seed: int,
        run: Any = None,
        model_overrides: dict[str, Any] | None = None,
        train_overrides: dict[str, Any] | None = None,
        device: str | torch.device | None = None,
        progress: bool | None = None,
        stop_at: int | None = None,
        on_step: Callable[[int, dict[str, float]], None] | None = None,
    ) -> None:
        spec = get_generator_spec(spec_name)
        if not spec.trained:
            raise ValueError(f"{spec_name!r} is a control generator and is not trained; use build_generator().")
        check_supports(spec, dataset.info)
        self.spec_name, self.dataset, self.info, self.seed = spec_name, dataset, dataset.info, int(seed)
        self.run, self.stop_at, self.on_step = run, stop_at, on_step
        self.model_config, self.tc = resolve_configs(spec, self.info, model_overrides, train_overrides)
        self.device = resolve_device(device if device is not None else self.tc.device)
        self.amp = self.tc.amp and self.device.type == "cuda"
        self.show_progress = progress_enabled(progress if progress is not None else self.tc.progress)
        self.meta = {"family": spec_name, "model_config": to_dict(self.model_config),
                     "train_config": self.tc.to_dict(), "dataset_info": self.info.to_dict(), "seed": self.seed}
        self.fingerprint = {"family": spec_name, "model_config": to_dict(self.model_config),
                            "train_config": self.tc.determining(), "dataset": self.info.content_hash,
                            "seed": self.seed}
        self.last_path = run.checkpoints / "last.pt" if run is not None else None
        self.best_path = run.checkpoints / "best.pt" if run is not None else None
        # read (and check) the checkpoint before building anything: a mismatch fails fast
        resume = self._read_resume()
        self._build(spec)
        self.st, self.resumed_from = _Progress(), None
        self.resumed_finished = bool(resume is not None and resume.get("finished"))
        if resume is not None:
            self._restore(resume)
        else:
            self._log(f"train {spec_name} on {self.info.name} seed {self.seed}: start ({self.tc.steps} steps on "
                      f"{self.device})")
        self._prepare_data()
        self.select_on = self.model.select_metric if self.tc.select_on == "auto" else self.tc.select_on
        # a score nothing describes counts as higher-better, the default of select_higher_is_better
        self.higher = not self.select_on or higher_is_better(self.model, self.select_on) is not False
        self.best_mem: dict[str, torch.Tensor] | None = None
        self._t0, self._elapsed0 = time.perf_counter(), self.st.elapsed

    # --- setup ----------------------------------------------------------------------------------

    def _read_resume(self) -> dict[str, Any] | None:
        if self.last_path is None or not self.last_path.is_file():
            return None
        resume = read_checkpoint(self.last_path)
        if resume.get("fingerprint") != self.fingerprint:
            raise ValueError(_mismatch_message(self.last_path, resume.get("fingerprint") or {}, self.fingerprint))
        return resume

    def _build(self, spec: GeneratorSpec) -> None:
        # model initialisation has its own stream, so the same seed gives the same initial weights
        # whatever ran before in this process
        torch.manual_seed(derive_seed(self.seed, "init"))
        model = spec.build(self.model_config, self.dataset)
        if not isinstance(model, TrainableModel):
            raise TypeError(f"{self.spec_name}: build() must return a TrainableModel, got {type(model).__name__}")
        model.to(self.device)
        model.train()
        self.model = model
        # plain Adam becomes FlatAdam: the same update to the bit, a few calls per step instead of six per tensor
        self.optimizers = flat_optimizers(model.configure_optimizers())
        self.step_gen = make_generator(derive_seed(self.seed, "step"), self.device)
        # the global streams (dropout, a family's own torch.rand) start here; a resume then
        # replaces them with the checkpointed states
        seed_everything(derive_seed(self.seed, "global"))

    def _restore(self, resume: dict[str, Any]) -> None:
        self.model.load_state_dict(resume["model"])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(resume["optimizers"][name])
        restore_rng(resume["rng"], self.step_gen, self.device)
        self.st = _Progress.from_dict(resume["progress"])
        self.resumed_from = self.st.step
        self._log(f"train {self.spec_name} on {self.info.name} seed {self.seed}: resuming from step "
                  f"{self.st.step}" + (" (finished)" if self.resumed_finished else ""))

    def _prepare_data(self) -> None:
        self.x_train = self.dataset.train.x
        self.batch_size = min(self.tc.batch_size, len(self.x_train))
        self.per_epoch = len(self.x_train) // self.batch_size
        x_val = self.dataset.splits["val"].x if "val" in self.dataset.splits else None
        if x_val is not None and self.tc.val_max is not None:
            x_val = x_val[: self.tc.val_max]
        self.x_val = x_val if x_val is not None and len(x_val) > 0 else None
        self._perm: tuple[int, torch.Tensor] | None = None  # (epoch, its permutation)

    def _log(self, message: str) -> None:
        if self.run is not None:
            self.run.log(message)

    # --- the loop -------------------------------------------------------------------------------

    def fit(self) -> TrainResult:
        """Train from where the run stands to ``tc.steps`` (or ``stop_at``), then :meth:`finish`.

        A run whose ``last.pt`` says finished is not trained again. Raises what :func:`train`
        raises.
        """
        tc, st = self.tc, self.st
        finished = self.resumed_finished
        with _cudnn_deterministic(self.device, tc.deterministic), _threads(tc.threads):
            bar = progress_bar(total=tc.steps, initial=st.step, desc=f"{self.spec_name}/{self.info.name}",
                               enabled=self.show_progress)
            try:
                while not finished and st.step < tc.steps and not self.stopping():
                    losses = self.train_step(self.next_batch())
                    finished = st.step == tc.steps
                    if _every(st.step, tc.val_every) or finished:
                        self.select(self.validate())
                    if _every(st.step, tc.checkpoint_every) or finished or self.stopping():
                        self.save(finished)
                    bar.update(1)
                    bar.set_postfix(format_losses(losses), refresh=False)
                    if self.on_step is not None:
                        self.on_step(st.step, losses)
            finally:
                bar.close()
        return self.finish(finished)

    def stopping(self) -> bool:
        """Whether ``stop_at`` steps are done (the loop then saves ``last.pt`` and stops)."""
        return self.stop_at is not None and self.st.step >= self.stop_at

    def elapsed(self) -> float:
        """Training seconds: those recorded before a resume plus those since this trainer was built."""
        return self._elapsed0 + time.perf_counter() - self._t0

    # --- the steps ------------------------------------------------------------------------------

    def next_batch(self) -> torch.Tensor:
        """The next training batch, on the device.

        Batches are consecutive slices of a permutation of the training split seeded by
        ``(seed, epoch)``, so the data order depends on ``(st.epoch, st.pos)`` alone, which
        ``last.pt`` records. The last partial batch of an epoch is dropped.
        """
        st, bs = self.st, self.batch_size
        if st.pos >= self.per_epoch:
            st.epoch, st.pos = st.epoch + 1, 0
        if self._perm is None or self._perm[0] != st.epoch:
            g = torch.Generator().manual_seed(derive_seed(self.seed, "data", st.epoch))
            self._perm = (st.epoch, torch.randperm(len(self.x_train), generator=g))
        idx = self._perm[1][st.pos * bs:(st.pos + 1) * bs]
        st.pos += 1
        return self.x_train[idx].to(self.device, non_blocking=True)

    def train_step(self, x: torch.Tensor) -> dict[str, float]:
        """Take step ``st.step + 1`` on batch ``x``; returns its losses as floats.

        Runs the family's ``training_step``, then adds the losses to the current ``log_every``
        window of the curves (a row per window: the window's mean).

        Raises
        ------
        NonFiniteLossError
            When a loss is NaN or infinite. The step is not counted and nothing is written, so
            ``last.pt`` stays the last good checkpoint; the error is also written to the run log.
        """
        st, step = self.st, self.st.step + 1
        ctx = StepContext(step, self.device, amp=self.amp, generator=self.step_gen)
        losses = {k: float(v) for k, v in self.model.training_step(x, ctx, self.optimizers).items()}
        if not all(math.isfinite(v) for v in losses.values()):
            kept = self._checkpoint_step()
            err = NonFiniteLossError(step, losses, self.last_path if kept is not None else None, kept)
            self._log(str(err))
            raise err
        st.step = step
        for k, v in losses.items():
            st.window[k] = st.window.get(k, 0.0) + v
        st.window_count += 1
        if step % self.tc.log_every == 0 or step == self.tc.steps:
            st.rows.append({"step": step, **{k: v / st.window_count for k, v in st.window.items()}})
            st.window, st.window_count = {}, 0
        return losses

    def _checkpoint_step(self) -> int | None:
        # the file, not our bookkeeping: the error reports what is on disk
        if self.last_path is None or not self.last_path.is_file():
            return None
        return int(read_checkpoint(self.last_path)["step"])

    def validate(self) -> dict[str, float]:
        """Validation scores of the current weights (``{}`` without a val split).

        Size-weighted means of ``model.validation_scores`` over batches of ``val_batch_size``,
        in eval mode, under a global RNG seeded the same way at every validation (and forked, so
        the training streams are untouched): scores differ only through the weights, and
        validating never changes what training does next. The model is left in train mode.
        """
        if self.x_val is None:
            return {}
        x_val, bs = self.x_val, self.tc.val_batch_size
        self.model.eval()
        totals: dict[str, float] = {}
        with torch.no_grad(), fork_rng(self.device):
            torch.manual_seed(derive_seed(self.seed, "val"))
            for i in range(0, len(x_val), bs):
                xb = x_val[i:i + bs].to(self.device)
                for k, v in self.model.validation_scores(xb).items():
                    totals[k] = totals.get(k, 0.0) + float(v) * len(xb)
        self.model.train()
        return {k: v / len(x_val) for k, v in totals.items()}

    def select(self, scores: dict[str, float]) -> bool:
        """Record ``scores`` as step ``st.step``'s validation; keep the weights if they are the best.

        Best: a finite ``scores[select_on]`` above every earlier one (below, for a lower-better
        score; see :func:`genbench.harness.base.higher_is_better`); a tie keeps the earlier step.
        The weights go to ``best.pt``, or to memory without a run folder. Returns whether this
        step became the best.

        Raises
        ------
        ValueError
            When ``select_on`` is not one of the scores.
        """
        st, step, key = self.st, self.st.step, self.select_on
        st.final_scores = scores
        if scores:
            st.val_rows.append({"step": step, **scores})
            self._log(f"step {step}: " + ", ".join(f"{k}={v:.6g}" for k, v in scores.items()))
        if not (key and scores):
            return False
        if key not in scores:
            raise ValueError(
                f"select_on {key!r} is not a validation score of {self.spec_name}; it reports: "
                f"{', '.join(scores)}. Set train_overrides select_on to one of those or None."
            )
        s, best = scores[key], st.best_score
        if not math.isfinite(s) or (best is not None and not (s > best if self.higher else s < best)):
            return False
        st.best_step, st.best_score, st.select_key = step, s, key
        if self.best_path is not None:
            save_checkpoint(self.best_path, {"kind": "best", **self.meta, "model": self.model.state_dict(),
                                             "step": step, "scores": scores})
        else:
            self.best_mem = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return True

    def save(self, finished: bool) -> None:
        """Write ``last.pt`` (weights, optimisers, every RNG state, data position, bookkeeping)
        and ``curves.csv``; without a run folder only the elapsed time is kept."""
        st = self.st
        st.elapsed = self.elapsed()
        if self.last_path is None:
            return
        save_checkpoint(self.last_path, {
            "kind": "last", **self.meta, "fingerprint": self.fingerprint, "model": self.model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()}, "step": st.step,
            "finished": finished, "scores": st.final_scores, "rng": capture_rng(self.step_gen, self.device),
            "data_order": {"epoch": st.epoch, "pos": st.pos}, "progress": st.to_dict(),
        })
        write_curves_csv(self.run.artifacts / "curves.csv", st.rows, st.val_rows)

    # --- the end --------------------------------------------------------------------------------

    def finish(self, finished: bool) -> TrainResult:
        """Put the selected weights in the model (left in eval mode), write the curves, log the
        outcome and return the :class:`TrainResult`."""
        st = self.st
        if not self.resumed_finished:  # a finished run keeps its recorded time
            st.elapsed = self.elapsed()
        selected, selected_step, selected_scores = self.selected_weights(finished)
        self.model.eval()
        curves, png = self._write_curves(finished)
        self._log(f"{'finished' if finished else 'stopped'} at step {st.step} after {st.elapsed:.1f} s; "
                  f"selected {selected} (step {selected_step})")
        final_losses = {k: v for k, v in (st.rows[-1] if st.rows else {}).items() if k != "step"}
        checkpoints = {k: p for k, p in (("last", self.last_path), ("best", self.best_path))
                       if p is not None and p.is_file()}
        return TrainResult(
            model=self.model, family=self.spec_name, seed=self.seed, finished=finished, steps=st.step,
            selected=selected, selected_step=selected_step, select_metric=self.select_on,
            selected_scores=selected_scores, final_scores=dict(st.final_scores), final_losses=final_losses,
            train_seconds=float(st.elapsed), device=str(self.device), resumed_from=self.resumed_from,
            model_config=to_dict(self.model_config), train_config=self.tc.to_dict(), checkpoints=checkpoints,
            curves=curves, curves_png=png,
        )

    def selected_weights(self, finished: bool) -> tuple[str, int, dict[str, float]]:
        """Load the best weights into the model when training finished with a best step.

        Returns ``(selected, step, scores)``: ``("best", best step, its scores)``, or
        ``("last", st.step, latest scores)`` when unfinished, not selecting, or ``best.pt`` is gone.
        """
        st = self.st
        last = ("last", st.step, dict(st.final_scores))
        if not finished or st.best_step is None:
            return last
        if self.best_mem is not None:
            state = self.best_mem
            row = next((r for r in st.val_rows if r["step"] == st.best_step), {})
            scores = {k: v for k, v in row.items() if k != "step"}
        elif self.best_path is not None and self.best_path.is_file():
            ck = read_checkpoint(self.best_path)
            state, scores = ck["model"], dict(ck.get("scores") or {})
        else:
            self._log(f"best.pt (step {st.best_step}) is missing; using the final weights")
            return last
        self.model.load_state_dict(state)
        return "best", int(st.best_step), scores

    def _write_curves(self, finished: bool) -> tuple[Path | None, Path | None]:
        if self.run is None:
            return None, None
        st, curves, png = self.st, self.run.artifacts / "curves.csv", None
        # save() wrote the csv; a finished run whose csv was deleted gets it back
        if finished and not curves.is_file():
            write_curves_csv(curves, st.rows, st.val_rows)
        if finished and self.tc.plot:
            png = self.run.artifacts / "curves.png"
            if not png.is_file():
                png = write_curves_png(png, st.rows, st.val_rows,
                                       title=f"{self.spec_name} on {self.info.name}, seed {self.seed}")
        return curves, png


def train(
    spec_name: str,
    dataset: Any,
    *,
    seed: int,
    run: Any = None,
    model_overrides: dict[str, Any] | None = None,
    train_overrides: dict[str, Any] | None = None,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    stop_at: int | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train family ``spec_name`` on ``dataset``'s train split, selecting on its val split.

    Parameters
    ----------
    spec_name : a trained family in :data:`genbench.generators.GENERATORS` (``"vae"``, ...).
    dataset : a :class:`genbench.data.Dataset` with ``train`` (and usually ``val``) splits.
    seed : the one seed every random stream derives from; same seed, same weights (on CPU
        bit-for-bit).
    run : a :class:`genbench.runs.RunFolder` for checkpoints and curves, or None to train in
        memory (nothing written, no resume). When ``run.checkpoints/last.pt`` exists for the
        same family, configs, dataset and seed, training resumes from it (or, if it finished,
        the finished model is loaded without training); a checkpoint of a different
        configuration is an error, never silently overwritten.
    model_overrides, train_overrides : dicts applied over the family's defaults for this
        dataset (``train_overrides`` keys are :class:`TrainConfig` fields).
    device : overrides ``TrainConfig.device``.
    progress : overrides ``TrainConfig.progress``.
    stop_at : stop (with ``last.pt`` written) once this many steps are done, leaving the run
        unfinished; a later call resumes it. For time-sliced executors and tests.
    on_step : called as ``on_step(step, losses)`` after each step (and its checkpoint).

    Returns
    -------
    TrainResult

    Raises
    ------
    NonFiniteLossError
        When a step returns a NaN or infinite loss; the last good checkpoint is kept.

    Examples
    --------
    >>> from genbench.data import load_dataset
    >>> from genbench.runs import RunFolder
    >>> res = train("vae", load_dataset("digits"), seed=0, run=RunFolder.open("results", "demo"))  # doctest: +SKIP
    >>> res.selected, res.selected_scores["val_elbo"]                                          # doctest: +SKIP
    """
    return Trainer(spec_name, dataset, seed=seed, run=run, model_overrides=model_overrides,
                   train_overrides=train_overrides, device=device, progress=progress, stop_at=stop_at,
                   on_step=on_step).fit()


def _mismatch_message(path: Path, old: dict[str, Any], new: dict[str, Any]) -> str:
    diffs = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += [f"{k}.{kk}: {a.get(kk)!r} -> {b.get(kk)!r}"
                      for kk in sorted(set(a) | set(b)) if a.get(kk) != b.get(kk)]
        elif a != b:
            diffs.append(f"{k}: {a!r} -> {b!r}")
    return (f"{path} holds a checkpoint of a different training configuration ({'; '.join(diffs)}); "
            "use another run folder, or delete the checkpoints to start over.")
