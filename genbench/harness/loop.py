"""The one training loop every trainable family goes through.

The family supplies ``training_step`` (its loss and optimiser steps); the loop owns the device,
precision, data order, seeding, validation and checkpoint selection, checkpoints and exact
resume, loss curves, the progress bar and the non-finite-loss guard.
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
from genbench.harness.base import StepContext, TrainableModel
from genbench.harness.checkpoint import read_checkpoint, save_checkpoint
from genbench.harness.config import TrainConfig
from genbench.harness.curves import write_curves_csv, write_curves_png
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
    """What :func:`train` returns.

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


def _higher_is_better(model: TrainableModel, key: str) -> bool:
    if key == model.select_metric:
        return model.select_higher_is_better
    meta = getattr(model, "validation_info", {}).get(key, {})
    if "higher_is_better" in meta:
        return bool(meta["higher_is_better"])
    # naming convention (ARCHITECTURE.md): *_nll / *_loss / *_distance are lower-better
    return not any(key.endswith(s) for s in ("nll", "loss", "distance", "bpd"))


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
    spec = get_generator_spec(spec_name)
    info = dataset.info
    if not spec.trained:
        raise ValueError(f"{spec_name!r} is a control generator and is not trained; use build_generator().")
    check_supports(spec, info)
    model_config, tc = resolve_configs(spec, info, model_overrides, train_overrides)
    dev = resolve_device(device if device is not None else tc.device)
    amp = tc.amp and dev.type == "cuda"
    meta = {"family": spec_name, "model_config": to_dict(model_config), "train_config": tc.to_dict(),
            "dataset_info": info.to_dict(), "seed": int(seed)}
    fingerprint = {"family": spec_name, "model_config": to_dict(model_config), "train_config": tc.determining(),
                   "dataset": info.content_hash, "seed": int(seed)}

    last_path = run.checkpoints / "last.pt" if run is not None else None
    best_path = run.checkpoints / "best.pt" if run is not None else None
    resume = None
    if last_path is not None and last_path.is_file():
        resume = read_checkpoint(last_path)
        if resume.get("fingerprint") != fingerprint:
            raise ValueError(_mismatch_message(last_path, resume.get("fingerprint") or {}, fingerprint))

    # model initialisation has its own stream, so the same seed gives the same initial weights
    # whatever ran before in this process
    torch.manual_seed(derive_seed(seed, "init"))
    model = spec.build(model_config, dataset)
    if not isinstance(model, TrainableModel):
        raise TypeError(f"{spec_name}: build() must return a TrainableModel, got {type(model).__name__}")
    model.to(dev)
    model.train()
    optimizers = model.configure_optimizers()
    step_gen = make_generator(derive_seed(seed, "step"), dev)
    seed_everything(derive_seed(seed, "global"))
    st = _Progress()
    resumed_from = None
    if resume is not None:
        model.load_state_dict(resume["model"])
        for name, opt in optimizers.items():
            opt.load_state_dict(resume["optimizers"][name])
        restore_rng(resume["rng"], step_gen, dev)
        st = _Progress.from_dict(resume["progress"])
        resumed_from = st.step
        if run is not None:
            run.log(f"train {spec_name} on {info.name} seed {seed}: resuming from step {st.step}"
                    + (" (finished)" if resume.get("finished") else ""))
    elif run is not None:
        run.log(f"train {spec_name} on {info.name} seed {seed}: start ({tc.steps} steps on {dev})")

    x_train = dataset.train.x
    n_train = len(x_train)
    bs = min(tc.batch_size, n_train)
    per_epoch = n_train // bs
    x_val = dataset.splits["val"].x if "val" in dataset.splits else None
    if x_val is not None and tc.val_max is not None:
        x_val = x_val[: tc.val_max]
    if x_val is not None and len(x_val) == 0:
        x_val = None
    perm_cache: dict[int, torch.Tensor] = {}

    def next_batch() -> torch.Tensor:
        if st.pos >= per_epoch:
            st.epoch, st.pos = st.epoch + 1, 0
        if st.epoch not in perm_cache:
            perm_cache.clear()
            g = torch.Generator().manual_seed(derive_seed(seed, "data", st.epoch))
            perm_cache[st.epoch] = torch.randperm(n_train, generator=g)
        idx = perm_cache[st.epoch][st.pos * bs:(st.pos + 1) * bs]
        st.pos += 1
        return x_train[idx].to(dev, non_blocking=True)

    def validate() -> dict[str, float]:
        if x_val is None:
            return {}
        model.eval()
        totals: dict[str, float] = {}
        # the same validation noise at every validation: scores differ only through the weights
        with torch.no_grad(), fork_rng(dev):
            torch.manual_seed(derive_seed(seed, "val"))
            for i in range(0, len(x_val), tc.val_batch_size):
                xb = x_val[i:i + tc.val_batch_size].to(dev)
                for k, v in model.validation_scores(xb).items():
                    totals[k] = totals.get(k, 0.0) + float(v) * len(xb)
        model.train()
        return {k: v / len(x_val) for k, v in totals.items()}

    select_on = model.select_metric if tc.select_on == "auto" else tc.select_on
    higher = _higher_is_better(model, select_on) if select_on else True
    best_mem: dict[str, torch.Tensor] | None = None
    t0 = time.perf_counter()
    elapsed0 = st.elapsed

    def elapsed() -> float:
        return elapsed0 + time.perf_counter() - t0

    def save_last(finished: bool) -> None:
        st.elapsed = elapsed()
        if last_path is None:
            return
        save_checkpoint(last_path, {
            "kind": "last", **meta, "fingerprint": fingerprint, "model": model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in optimizers.items()}, "step": st.step,
            "finished": finished, "scores": st.final_scores, "rng": capture_rng(step_gen, dev),
            "data_order": {"epoch": st.epoch, "pos": st.pos}, "progress": st.to_dict(),
        })
        write_curves_csv(run.artifacts / "curves.csv", st.rows, st.val_rows)

    def checkpoint_step() -> int | None:
        if last_path is None or not last_path.is_file():
            return None
        return int(read_checkpoint(last_path)["step"])

    finished = bool(resume is not None and resume.get("finished"))
    enabled = progress_enabled(progress if progress is not None else tc.progress)
    with _cudnn_deterministic(dev, tc.deterministic), _threads(tc.threads):
        bar = progress_bar(total=tc.steps, initial=st.step, desc=f"{spec_name}/{info.name}", enabled=enabled)
        try:
            while not finished and st.step < tc.steps:
                if stop_at is not None and st.step >= stop_at:
                    break
                xb = next_batch()
                step = st.step + 1
                ctx = StepContext(step, dev, amp=amp, generator=step_gen)
                losses = {k: float(v) for k, v in model.training_step(xb, ctx, optimizers).items()}
                if not all(math.isfinite(v) for v in losses.values()):
                    bar.close()
                    err = NonFiniteLossError(step, losses, last_path if checkpoint_step() is not None else None,
                                             checkpoint_step())
                    if run is not None:
                        run.log(str(err))
                    raise err
                st.step = step
                for k, v in losses.items():
                    st.window[k] = st.window.get(k, 0.0) + v
                st.window_count += 1
                if step % tc.log_every == 0 or step == tc.steps:
                    st.rows.append({"step": step, **{k: v / st.window_count for k, v in st.window.items()}})
                    st.window, st.window_count = {}, 0
                if (tc.val_every and step % tc.val_every == 0) or step == tc.steps:
                    scores = validate()
                    st.final_scores = scores
                    if scores:
                        st.val_rows.append({"step": step, **scores})
                        if run is not None:
                            run.log(f"step {step}: " + ", ".join(f"{k}={v:.6g}" for k, v in scores.items()))
                    if select_on and scores:
                        if select_on not in scores:
                            raise ValueError(
                                f"select_on {select_on!r} is not a validation score of {spec_name}; it reports: "
                                f"{', '.join(scores) or 'nothing'}. Set train_overrides select_on to one of "
                                "those or None."
                            )
                        s = scores[select_on]
                        if math.isfinite(s) and (st.best_score is None
                                                 or (s > st.best_score if higher else s < st.best_score)):
                            st.best_step, st.best_score, st.select_key = step, s, select_on
                            if best_path is not None:
                                save_checkpoint(best_path, {"kind": "best", **meta, "model": model.state_dict(),
                                                            "step": step, "scores": scores})
                            else:
                                best_mem = {k: v.detach().clone() for k, v in model.state_dict().items()}
                finished = step == tc.steps
                if ((tc.checkpoint_every and step % tc.checkpoint_every == 0) or finished
                        or (stop_at is not None and step >= stop_at)):
                    save_last(finished)
                bar.update(1)
                bar.set_postfix(format_losses(losses), refresh=False)
                if on_step is not None:
                    on_step(step, losses)
        finally:
            bar.close()
    if not (resume is not None and resume.get("finished")):  # a finished run keeps its recorded time
        st.elapsed = elapsed()

    # selection: put the best weights in the returned model
    selected, selected_step, selected_scores = "last", st.step, dict(st.final_scores)
    if finished and st.best_step is not None:
        best_state = None
        if best_mem is not None:
            best_state = best_mem
        elif best_path is not None and best_path.is_file():
            ck = read_checkpoint(best_path)
            best_state, selected_scores = ck["model"], dict(ck.get("scores") or {})
        if best_state is not None:
            model.load_state_dict(best_state)
            selected, selected_step = "best", int(st.best_step)
            if best_mem is not None:
                selected_scores = next((dict(r) for r in st.val_rows if r["step"] == st.best_step), {})
                selected_scores.pop("step", None)
        elif run is not None:
            run.log(f"best.pt (step {st.best_step}) is missing; using the final weights")
    model.eval()

    curves = png = None
    if run is not None:
        curves = run.artifacts / "curves.csv"
        if finished and not curves.is_file():
            write_curves_csv(curves, st.rows, st.val_rows)
        if finished and tc.plot:
            png = run.artifacts / "curves.png"
            if not png.is_file():
                png = write_curves_png(png, st.rows, st.val_rows, title=f"{spec_name} on {info.name}, seed {seed}")
        run.log(f"{'finished' if finished else 'stopped'} at step {st.step} after {st.elapsed:.1f} s; selected "
                f"{selected} (step {selected_step})")
    final_losses = {k: v for k, v in (st.rows[-1] if st.rows else {}).items() if k != "step"}
    checkpoints = {}
    if last_path is not None and last_path.is_file():
        checkpoints["last"] = last_path
    if best_path is not None and best_path.is_file():
        checkpoints["best"] = best_path
    return TrainResult(
        model=model, family=spec_name, seed=int(seed), finished=finished, steps=st.step, selected=selected,
        selected_step=selected_step, select_metric=select_on, selected_scores=selected_scores,
        final_scores=dict(st.final_scores), final_losses=final_losses, train_seconds=float(st.elapsed),
        device=str(dev), resumed_from=resumed_from, model_config=to_dict(model_config),
        train_config=tc.to_dict(), checkpoints=checkpoints, curves=curves, curves_png=png,
    )


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
