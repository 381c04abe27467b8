"""Entry points the benchmark matrix and the CLI call: build a generator, or run a training
into a self-describing run folder indexed in the results store."""

from __future__ import annotations

import json
import os
from typing import Any

import torch

from genbench._io import hash_text
from genbench.config import to_dict
from genbench.generators import get_generator_spec
from genbench.harness.base import higher_is_better
from genbench.harness.checkpoint import load_model, read_checkpoint
from genbench.harness.loop import check_supports, resolve_configs, train
from genbench.harness.runtime import resolve_device
from genbench.results import MetricResult, Protocol


def build_generator(
    spec_name: str,
    dataset: Any,
    *,
    seed: int,
    run: Any = None,
    model_overrides: dict[str, Any] | None = None,
    train_overrides: dict[str, Any] | None = None,
    device: str | torch.device | None = None,
) -> tuple[Any, dict[str, Any]]:
    """A ready generator of family ``spec_name`` for ``dataset``, and a dict describing it.

    Controls (``spec.trained`` False) are built directly from the dataset. Trained families are
    trained with :func:`train` (in memory when ``run`` is None); when ``run`` already holds a
    finished training of the same configuration, its selected checkpoint is loaded instead.

    Returns
    -------
    (generator, info) : ``info`` has ``generator``, ``trained``, ``config`` and, for trained
        families, ``training`` (the :meth:`TrainResult.summary`), ``metrics`` (the training
        summary as :class:`genbench.results.MetricResult` records, e.g. ``val-elbo@digits/ref=val``)
        and ``artifacts`` (checkpoint and curve paths relative to ``run``).

    Examples
    --------
    >>> from genbench.data import load_dataset
    >>> gen, info = build_generator("copycat", load_dataset("digits"), seed=0)  # doctest: +SKIP
    >>> gen.sample(16, seed=1).shape                                            # doctest: +SKIP
    torch.Size([16, 1, 8, 8])
    """
    spec = get_generator_spec(spec_name)
    check_supports(spec, dataset.info)
    if not spec.trained:
        model_config, _ = resolve_configs(spec, dataset.info, model_overrides, None)
        gen = spec.build(model_config, dataset)
        return gen, {"generator": spec_name, "trained": False, "config": to_dict(model_config)}
    res = train(spec_name, dataset, seed=seed, run=run, model_overrides=model_overrides,
                train_overrides=train_overrides, device=device)
    return res.model, {"generator": spec_name, "trained": True, "config": res.model_config,
                       "training": res.summary(), "metrics": training_metrics(res, dataset),
                       "artifacts": training_artifacts(res, run)}


def training_artifacts(res: Any, run: Any) -> dict[str, str]:
    """Checkpoint and curve paths relative to the run folder (empty without a run folder)."""
    if run is None:
        return {}
    paths = {f"checkpoint_{k}": p for k, p in res.checkpoints.items()}
    paths.update({"curves": res.curves, "curves_png": res.curves_png})
    return {k: str(p.relative_to(run.path)) for k, p in paths.items() if p is not None}


def run_id_for(generator: str, dataset: Any, *, seed: int, model_overrides: dict[str, Any] | None = None,
               train_overrides: dict[str, Any] | None = None) -> str:
    """``train-<generator>-<dataset>-s<seed>-<hash8>``; the hash covers the dataset content and
    every config value that decides the weights, so equal ids mean equal trainings."""
    spec = get_generator_spec(generator)
    model_config, tc = resolve_configs(spec, dataset.info, model_overrides, train_overrides)
    key = json.dumps({"generator": generator, "dataset": dataset.info.content_hash, "seed": int(seed),
                      "model": to_dict(model_config), "train": tc.determining()}, sort_keys=True)
    return f"train-{generator}-{dataset.info.name}-s{seed}-{hash_text(key)[:8]}"


def _metric_meta(model: Any, key: str) -> dict[str, Any]:
    meta = dict(getattr(model, "validation_info", {}).get(key, {}))
    if "elbo" in key or "iwae" in key:
        meta.setdefault("kind", "lower-bound")
        meta.setdefault("unit", "nats")
    elif key.endswith("nll"):
        meta.setdefault("kind", getattr(model, "likelihood_kind", None))
        meta.setdefault("unit", "nats")
    # the same direction the loop selected on, so a table never ranks by the other one
    meta["higher_is_better"] = higher_is_better(model, key)
    return meta


def training_metrics(res: Any, dataset: Any) -> list[MetricResult]:
    """The training summary as result records: validation scores of the selected checkpoint
    (``val-elbo@digits/ref=val``) and final training losses (``train-loss@digits/last-window``).

    The training time is wall-clock, so it differs between two runs of the same cell; it is kept
    with the run's training facts (``training.train_seconds`` of a training run, ``timings.train_s``
    of a matrix cell), never as a metric row that tables would compare.
    """
    name = dataset.info.name
    n_val = min(dataset.info.split_sizes.get("val", 0), res.train_config.get("val_max") or 10**12)
    out: list[MetricResult] = []
    for k, v in res.selected_scores.items():
        if not isinstance(v, int | float) or v != v or v in (float("inf"), float("-inf")):
            continue
        meta = _metric_meta(res.model, k)
        out.append(MetricResult(
            metric=k, value=float(v), protocol=Protocol(k.replace('_', '-'), space=name, n={"val": n_val},
                                                        ref="val"), n={"val": n_val},
            kind=meta.get("kind"), unit=meta.get("unit"), higher_is_better=meta.get("higher_is_better"),
            params={"checkpoint": res.selected, "step": res.selected_step},
        ))
    window = res.train_config.get("log_every")
    for k, v in res.final_losses.items():
        if v == v and abs(v) != float("inf"):
            metric = f"train_{k}" if not k.startswith("train") else k
            out.append(MetricResult(metric=metric, value=float(v),
                                    protocol=Protocol(metric.replace('_', '-'), space=name,
                                                      fixed={"window": "last"}),
                                    higher_is_better=False, params={"window_steps": window, "step": res.steps}))
    return out


def train_run(
    generator: str,
    dataset_name: str,
    *,
    seed: int,
    results_dir: str | os.PathLike | None = None,
    model_overrides: dict[str, Any] | None = None,
    train_overrides: dict[str, Any] | None = None,
    device: str | torch.device | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Train ``generator`` on ``dataset_name`` into a run folder and index it; returns the record.

    The run folder ``<results>/runs/train-<generator>-<dataset>-s<seed>-<hash8>/`` gets
    ``config.json``, ``checkpoints/{last,best}.pt``, ``artifacts/curves.{csv,png}``, ``log.txt``
    and, last, ``result.json`` (status ``done`` with the training metrics and provenance, or
    ``failed`` with the error, which is then re-raised). An interrupted run resumes from its
    checkpoint when called again; a finished one returns its record without training. The
    returned record is ``result.json``'s content plus ``path`` (the run folder; kept out of the
    file so that results folders can be moved).

    Examples
    --------
    >>> rec = train_run("vae", "digits", seed=0, results_dir="results")  # doctest: +SKIP
    >>> rec["status"], [m["protocol"] for m in rec["metrics"]][:1]     # doctest: +SKIP
    ('done', ['val-elbo@digits/ref=val'])
    """
    from genbench.data import load_dataset
    from genbench.provenance import provenance
    from genbench.runs import RunFolder
    from genbench.runs import results_dir as resolve_results
    from genbench.store import ResultsStore

    spec = get_generator_spec(generator)
    if not spec.trained:
        raise ValueError(f"{generator!r} is a control generator and needs no training; score it directly.")
    dataset = load_dataset(dataset_name)
    check_supports(spec, dataset.info)
    root = resolve_results(results_dir)
    run = RunFolder.open(root, run_id_for(generator, dataset, seed=seed, model_overrides=model_overrides,
                                          train_overrides=train_overrides))
    store = ResultsStore(root)
    if run.is_done():
        record = run.read_result()
        assert record is not None
        store.put(record, path=run.path)
        return {**record, "path": str(run.path)}
    model_config, tc = resolve_configs(spec, dataset.info, model_overrides, train_overrides)
    config = {
        "kind": "train", "generator": generator, "dataset": dataset_name, "seed": int(seed),
        "model_config": to_dict(model_config), "train_config": tc.to_dict(),
        "model_overrides": dict(model_overrides or {}), "train_overrides": dict(train_overrides or {}),
        "dataset_info": dataset.info.to_dict(),
    }
    run.write_config(config)
    common = {"kind": "train", "generator": generator, "dataset": dataset_name, "seed": int(seed), "config": config}
    dev = resolve_device(device if device is not None else tc.device)
    store.put(run.write_result(status="running", provenance=provenance(seed=seed, device=dev), **common),
              path=run.path)
    try:
        res = train(generator, dataset, seed=seed, run=run, model_overrides=model_overrides,
                    train_overrides=train_overrides, device=dev, progress=progress)
    except BaseException as e:
        record = run.write_result(status="failed", error=f"{type(e).__name__}: {e}",
                                  provenance=provenance(seed=seed, device=dev), **common)
        store.put(record, path=run.path)
        raise
    record = run.write_result(
        status="done", metrics=training_metrics(res, dataset), provenance=provenance(seed=seed, device=res.device),
        artifacts=training_artifacts(res, run),
        training={k: v for k, v in res.summary().items() if k not in ("checkpoints", "curves", "curves_png")},
        **common,
    )
    store.put(record, path=run.path)
    return {**record, "path": str(run.path)}


def load_trained(run_dir: str | os.PathLike, *, which: str = "selected", device: str | torch.device = "cpu") -> Any:
    """The model of a finished training run folder: ``which`` is ``"selected"`` (best.pt when
    the run selected on validation, else last.pt), ``"best"`` or ``"last"``."""
    from pathlib import Path

    ck_dir = Path(run_dir) / "checkpoints"
    if which == "selected":
        which = "best" if (ck_dir / "best.pt").is_file() else "last"
    path = ck_dir / f"{which}.pt"
    if which == "last" and not read_checkpoint(path).get("finished"):
        raise ValueError(f"{path}: training did not finish; call train_run again to resume it.")
    return load_model(path, device=resolve_device(device))


__all__ = ["build_generator", "load_trained", "run_id_for", "train_run", "training_artifacts", "training_metrics"]
