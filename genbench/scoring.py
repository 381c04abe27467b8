"""Score a user's samples or generator by the road the matrix cells take, and store it as a run.

``genbench score --samples npz:fake.npz --reference digits`` or ``genbench score --generator g.pt2
--reference digits`` land here. A generator (a torch.export program, TorchScript, an entry point, a
state dict with its factory, a genbench checkpoint or run folder: :func:`genbench.loading.load_generator`)
goes through :func:`genbench.evaluate.evaluate_model` with an :class:`~genbench.matrix.EvalConfig` built
from the options, exactly as a matrix cell; a sample set goes through
:func:`genbench.evaluate.evaluate_samples` (and the sample-based likelihood estimators). With a results
directory the score becomes a run (``kind = "score"``) in the results store, beside the matrix runs.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genbench.results import MetricResult

__all__ = ["ScoreRun", "default_extractor", "format_table", "load_stats", "score", "score_run", "write_stats"]

STATS_FORMAT = "genbench-stats"


def _is_prefixed(spec: str) -> bool:
    from genbench.data import DATASETS

    return DATASETS.entry(spec).name.endswith(":")


def _is_stats(spec: Any) -> bool:
    return isinstance(spec, str) and spec.startswith("stats:")


def default_extractor(reference: str) -> str:
    """``domain:<reference>`` for built-in labelled image datasets with train/test splits, else ``pixels``
    (for a statistics file: the extractor it was computed with)."""
    from genbench.data import DATASETS, load_dataset
    from genbench.evaluate import default_extractor as rule

    if _is_stats(reference):
        return str(load_stats(reference.removeprefix("stats:"))["meta"]["extractor"])
    if _is_prefixed(reference) or DATASETS.entry(reference).meta.get("kind") != "image":
        return "pixels"
    return rule(load_dataset(reference))


def _load_options(spec: str, resize: tuple[int, int] | None, grayscale: bool | None) -> dict[str, Any]:
    if spec.startswith("folder:"):
        return {k: v for k, v in (("resize", resize), ("grayscale", grayscale)) if v is not None}
    if resize is not None or grayscale is not None:
        raise ValueError(f"resize / grayscale apply to folder: image sets; {spec!r} is not one.")
    return {}


def _as_dataset(data: Any, role: str, *, resize: tuple[int, int] | None = None,
                grayscale: bool | None = None) -> Any:
    """A dataset spec string, or an in-memory array of images (N, C, H, W) in [0, 1] or points (N, D)."""
    from genbench._validation import as_numpy
    from genbench.data import load_dataset
    from genbench.data._base import make_dataset

    if isinstance(data, str):
        return load_dataset(data, **_load_options(data, resize, grayscale))
    a = as_numpy(data).astype(np.float32, copy=False)
    if a.ndim not in (2, 4) or len(a) == 0:
        raise ValueError(f"{role} must be a dataset name, npz:/folder: spec, or an array of images (N, C, H, W) or "
                         f"points (N, D) with N >= 1; got an array of shape {a.shape}.")
    images = a.ndim == 4
    return make_dataset(f"<{role} array>", "image" if images else "points", {"all": (a, None)},
                        value_range=(0.0, 1.0) if images else None, n_classes=None, split_rule="one split 'all'")


def _part(ds: Any, spec: Any, split: str, role: str) -> tuple[torch.Tensor, str]:
    use = split if isinstance(spec, str) and not _is_prefixed(spec) else "all"
    try:
        return ds.split(use).x, use
    except ValueError as e:
        raise ValueError(f"{role} {spec if isinstance(spec, str) else ds.name!r}: {e}") from e


# ---------------------------------------------------------------- statistics files

def write_stats(reference: str, out: str | os.PathLike, *, extractor: str = "domain", split: str = "test",
                device: Any = None, cache_dir: Any = None, weights: Any = None,
                resize: tuple[int, int] | None = None, grayscale: bool | None = None) -> Path:
    """Write a reference's features (and class probabilities) to a statistics file for later scores.

    The file holds ``features`` (N, d) float64, ``probs`` where the extractor has a classifier head,
    and ``meta`` (JSON: format, extractor name and id (its weights hash included), the reference spec,
    split, content hash, shape and kind). :func:`score` takes it as ``reference="stats:PATH"`` and refuses
    it for another extractor.
    """
    from genbench._io import atomic_save_npz
    from genbench.evaluate import default_extractor as rule
    from genbench.features import extract, feature_cache_key, get_extractor

    ds = _as_dataset(reference, "reference", resize=resize, grayscale=grayscale)
    x, used = _part(ds, reference, split, "reference")
    name = rule(ds, extractor)
    ext = get_extractor(name, device=device, cache_dir=cache_dir, weights=weights)
    f = extract(ext, x, device=device, cache_dir=cache_dir,
                cache_key=feature_cache_key(data_hash=ds.info.content_hash, split=used))
    meta = {"format": STATS_FORMAT, "version": 1, "extractor": name, "extractor_id": ext.id,
            "extractor_info": dict(ext.info), "reference": reference, "split": used,
            "content_hash": ds.info.content_hash, "shape": list(ds.info.shape), "kind": ds.info.kind, "n": len(x)}
    arrays = {"features": f["features"], "meta": np.array(json.dumps(meta, sort_keys=True, default=str))}
    if f.get("probs") is not None:
        arrays["probs"] = f["probs"]
    return atomic_save_npz(Path(out), **arrays)


def load_stats(path: str | os.PathLike) -> dict[str, Any]:
    """A statistics file from :func:`write_stats`: ``{"extractor_id", "features", "probs", "meta"}``."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            out = {"features": z["features"], "probs": z["probs"] if "probs" in z.files else None}
    except FileNotFoundError:
        raise
    except Exception as e:
        raise ValueError(f"{p}: not a genbench statistics file ({type(e).__name__}: {e}); write one with "
                         "`genbench stats REFERENCE -o FILE`.") from e
    if meta.get("format") != STATS_FORMAT:
        raise ValueError(f"{p}: not a genbench statistics file (no format {STATS_FORMAT!r}).")
    return {"extractor_id": meta["extractor_id"], **out, "meta": meta}


def _stats_reference(path: str) -> Any:
    """A :class:`~genbench.evaluate.Reference` carrying a statistics file's features instead of data."""
    from genbench.data import DATASETS, load_dataset
    from genbench.data._base import make_dataset
    from genbench.evaluate import Reference

    st = load_stats(path)
    meta = st["meta"]
    spec = str(meta["reference"])
    if not DATASETS.entry(spec).name.endswith(":"):
        ds = load_dataset(spec)  # a built-in dataset: its kind, classes and mixture modes
    else:  # a file that may be gone: describe its shape and kind only
        shape = tuple(meta["shape"])
        ds = make_dataset(spec, meta["kind"], {"all": (np.zeros((1, *shape), np.float32), None)},
                          value_range=(0.0, 1.0) if meta["kind"] == "image" else None, n_classes=None)
    return Reference(ds, str(meta["split"]), None, features=st), meta


# ---------------------------------------------------------------- references

def _is_builtin(reference: Any) -> bool:
    return isinstance(reference, str) and not _is_stats(reference) and not _is_prefixed(reference)


def _reference(reference: Any, split: str, *, resize: Any = None, grayscale: Any = None) -> tuple[Any, Any]:
    """The :class:`~genbench.evaluate.Reference` a spec names (a dataset's split, a user's images or array, or a
    statistics file's features), and the statistics file's meta (None otherwise)."""
    from genbench.evaluate import Reference
    from genbench.features import feature_cache_key

    if _is_stats(reference):
        return _stats_reference(reference.removeprefix("stats:"))
    ref_ds = _as_dataset(reference, "reference", resize=resize, grayscale=grayscale)
    ref_x, ref_split = _part(ref_ds, reference, split, "reference")
    return Reference(ref_ds, ref_split, ref_x,
                     cache_key=feature_cache_key(data_hash=ref_ds.info.content_hash, split=ref_split)), None


def _shape(ref: Any, stats_meta: dict[str, Any] | None) -> tuple[int, ...]:
    return tuple(stats_meta["shape"]) if stats_meta is not None else tuple(ref.x.shape[1:])


def _train_data(train: Any, reference: Any, ref_ds: Any, ref_split: str, ref_shape: tuple[int, ...], *,
                resize: Any = None, grayscale: Any = None) -> tuple[Any, Any, Any]:
    """Training data for the copy checks: ``train``, else a built-in reference's own train split; with its
    feature cache key and its record (all None when there is none)."""
    from genbench.features import feature_cache_key

    train_x, train_key, train_desc = None, None, None
    if train is not None:
        tr_ds = _as_dataset(train, "train", resize=resize, grayscale=grayscale)
        train_x, tsplit = _part(tr_ds, train, "train", "train")
        train_key = feature_cache_key(data_hash=tr_ds.info.content_hash, split=tsplit)
        train_desc = {"name": tr_ds.info.name, "content_hash": tr_ds.info.content_hash, "split": tsplit}
    elif _is_builtin(reference) and "train" in ref_ds.info.split_sizes and ref_split != "train":
        train_x = ref_ds.split("train").x
        train_key = feature_cache_key(data_hash=ref_ds.info.content_hash, split="train")
        train_desc = {"name": ref_ds.info.name, "content_hash": ref_ds.info.content_hash, "split": "train"}
    if train_x is not None and tuple(train_x.shape[1:]) != ref_shape:
        raise ValueError(f"train data have shape {tuple(train_x.shape[1:])} per example, the reference {ref_shape}.")
    return train_x, train_key, train_desc


def _reference_record(ref: Any, ref_shape: tuple[int, ...], stats_meta: dict[str, Any] | None) -> dict[str, Any]:
    """What a score records of its reference (with the statistics file's extractor id and source)."""
    info = ref.dataset.info
    out: dict[str, Any] = {"name": info.name, "content_hash": info.content_hash, "split": ref.split,
                           "shape": list(ref_shape)}
    if stats_meta is not None:
        out["statistics"] = {k: stats_meta[k] for k in ("extractor_id", "reference", "n")}
    return out


# ---------------------------------------------------------------- scoring

@dataclass
class ScoreRun:
    """What :func:`score_run` did: the rows, and the stored record and run folder (None when not stored)."""

    rows: list[MetricResult]
    record: dict[str, Any] | None = None
    path: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)


def score(samples: Any = None, reference: Any = None, **kwargs: Any) -> list[MetricResult]:
    """Score a sample set or a generator against a reference, by the road the matrix cells take.

    Parameters
    ----------
    samples : str, Tensor or array, optional
        A dataset spec for :func:`genbench.data.load_dataset` (``npz:fake.npz``, ``folder:dir``,
        or a built-in name, whose ``samples_split`` is used: a real-data baseline), or images in
        [0, 1] shaped (N, C, H, W) (points: (N, D)). Give either ``samples`` or ``generator``.
    reference : str, Tensor or array
        A dataset spec (built-in datasets use ``split``, ``npz:`` / ``folder:`` use ``all``), an array,
        or ``stats:PATH`` (a statistics file from :func:`write_stats`).
    generator : str, optional
        Anything :func:`genbench.loading.load_generator` takes (``.pt2``, TorchScript, ``module:factory``,
        a state dict with ``entry``, a genbench checkpoint or run folder), evaluated by
        :func:`genbench.evaluate.evaluate_model`. Against a built-in dataset it scores exactly as a matrix
        cell; against ``npz:``/``folder:`` images or ``stats:`` its samples must have the reference's shape,
        the quality family compares with the reference, the copy checks need ``train``, and families the
        reference cannot serve (likelihood on test data, overfitting without ``train``) are skipped with a
        note on every row.
    families : tuple of str, optional
        ``quality``, ``overfitting``, ``likelihood``, ``coverage``; default: every family the input allows.
    evaluation : EvalConfig, optional
        The evaluation settings of a generator (as a matrix block's); built from ``n_samples``,
        ``split``, ``extractor``, ``families``, ``iwae_k``, ``n_test``, ``gmm_components``, ``n_boot`` and
        ``device`` when not given.
    train : str or array, optional
        Training data for the copy checks (default: the reference dataset's train split).
    extractor : str or Extractor, optional
        Default :func:`default_extractor` (``domain:<reference>`` or ``pixels``).
    split, samples_split : str
        Reference split for built-in datasets (``test``); split used when ``samples`` names a built-in
        dataset (``train``).
    metrics : list of str, optional
        Restrict the quality family of a sample set to these outputs.
    seed, n_boot, n_samples, iwae_k : int
        The evaluation seed (sampling and every metric stream derived from it as in a matrix cell),
        bootstrap replicates, samples drawn from a generator, importance samples.
    results : path, optional
        Store the score as a run (``kind="score"``) in this results directory; ``name`` labels its row.
    cache_dir, device, weights, resize, grayscale, kid_subset_size, kid_subsets, z_dim, latent, entry,
    trust_checkpoint : optional
        Feature cache root, device, Inception weights file, folder: image options, KID settings, and
        the :func:`~genbench.loading.load_generator` options.

    Returns
    -------
    list of MetricResult
        Each with its protocol record (e.g. ``fid@domain-digits-<hash>/n=359v359/ref=test``).

    Examples
    --------
    >>> rows = score("npz:fake.npz", "digits")  # doctest: +SKIP
    >>> rows = score(generator="generator.pt2", reference="digits", n_samples=2000, results="results")  # doctest: +SKIP
    >>> print(format_table(rows))  # doctest: +SKIP
    """
    return score_run(samples, reference, **kwargs).rows


def _run_id(name: str, dataset: str, seed: int, config: dict[str, Any]) -> str:
    from genbench._io import hash_text
    from genbench.runs import safe_name

    def part(s: str) -> str:
        try:
            return safe_name(s)
        except ValueError:  # a label of symbols only: the label stays in the record, the folder gets a word
            return "x"

    h = hash_text(json.dumps(config, sort_keys=True, default=str))[:10]
    return f"score-{part(name)[:40]}-{part(dataset)[-24:]}-s{seed}-{h}"


def score_run(
    samples: Any = None,
    reference: Any = None,
    *,
    generator: str | os.PathLike | None = None,
    name: str | None = None,
    results: str | os.PathLike | None = None,
    families: tuple[str, ...] | list[str] | None = None,
    evaluation: Any = None,
    train: Any = None,
    extractor: Any = None,
    split: str = "test",
    samples_split: str = "train",
    metrics: list[str] | None = None,
    seed: int = 0,
    n_boot: int = 0,
    n_samples: int = 10000,
    iwae_k: int = 1000,
    n_test: int = 0,
    gmm_components: tuple[int, ...] = (),
    cache_dir: str | os.PathLike | None = None,
    device: str | None = None,
    weights: str | os.PathLike | None = None,
    resize: tuple[int, int] | None = None,
    grayscale: bool | None = None,
    kid_subset_size: int = 1000,
    kid_subsets: int = 100,
    n_eval: int = 0,
    repeats: int | None = None,
    z_dim: int | None = None,
    latent: str | None = None,
    entry: str | None = None,
    trust_checkpoint: bool = False,
    progress_bar: bool | None = None,
) -> ScoreRun:
    """:func:`score`, returning the stored record and run folder too (see :func:`score` for the parameters).

    Nothing is written before the input has been loaded, sampled and evaluated: the run folder is
    assembled in ``<results>/.staging/`` and moved into ``runs/`` with its ``result.json``, then indexed.
    """
    from genbench._progress import progress
    from genbench.matrix import EVAL_FAMILIES

    if reference is None:
        raise ValueError("score needs a reference: a dataset name (digits), npz:/folder: real images, or "
                         "stats:FILE from `genbench stats`.")
    if (samples is None) == (generator is None):
        raise ValueError("give either samples (a sample set) or generator (a model to sample), not "
                         f"{'both' if samples is not None else 'neither'}.")
    if families is not None:
        bad = [f for f in families if f not in EVAL_FAMILIES]
        if bad:
            raise ValueError(f"unknown families {bad}; choose from {', '.join(EVAL_FAMILIES)}.")
    bar = progress(total=3, desc="score", unit="stage", enabled=progress_bar)
    timings: dict[str, float] = {}
    staging: list[Path] = []  # a generator's run folder while it is assembled; removed unless it was moved
    t0 = time.perf_counter()
    try:
        bar.set_postfix_str("loading")
        if generator is not None:
            out = _score_generator(generator, reference, families=families, evaluation=evaluation, extractor=extractor,
                                   split=split, seed=seed, n_boot=n_boot, n_samples=n_samples, iwae_k=iwae_k,
                                   n_test=n_test, gmm_components=gmm_components, cache_dir=cache_dir, device=device,
                                   weights=weights, z_dim=z_dim, latent=latent, entry=entry,
                                   trust_checkpoint=trust_checkpoint, metrics=metrics, results=results, name=name,
                                   timings=timings, bar=bar, staging=staging, n_eval=n_eval, repeats=repeats,
                                   train=train, resize=resize, grayscale=grayscale)
        else:
            bar.update(1)
            bar.set_postfix_str("features and metrics")
            out = _score_samples(samples, reference, families=families, train=train, extractor=extractor, split=split,
                                 samples_split=samples_split, metrics=metrics, seed=seed, n_boot=n_boot,
                                 iwae_k=iwae_k, n_test=n_test, gmm_components=gmm_components, cache_dir=cache_dir,
                                 device=device, weights=weights, resize=resize, grayscale=grayscale,
                                 kid_subset_size=kid_subset_size, kid_subsets=kid_subsets, timings=timings,
                                 n_eval=n_eval, repeats=repeats)
        bar.update(1)
        bar.set_postfix_str("storing")
        if results is not None:
            timings["total_s"] = time.perf_counter() - t0
            _store(out, results=results, name=name, seed=seed, timings=timings)
        bar.update(1)
    finally:
        for p in staging:
            shutil.rmtree(p, ignore_errors=True)
            try:
                p.parent.rmdir()  # .staging/ itself, when nothing else is being assembled
            except OSError:
                pass
        bar.close()
    return out


def _score_samples(samples: Any, reference: Any, *, families: Any, train: Any, extractor: Any, split: str,
                   samples_split: str, metrics: Any, seed: int, n_boot: int, iwae_k: int, n_test: int,
                   gmm_components: tuple[int, ...], cache_dir: Any, device: Any, weights: Any, resize: Any,
                   grayscale: Any, kid_subset_size: int, kid_subsets: int, timings: dict[str, float],
                   n_eval: int = 0, repeats: int | None = None) -> ScoreRun:
    from genbench.evaluate import Reference, evaluate_samples
    from genbench.harness import derive_seed
    from genbench.matrix import EvalConfig

    ref, stats_meta = _reference(reference, split, resize=resize, grayscale=grayscale)
    ref_ds, ref_split, ref_shape = ref.dataset, ref.split, _shape(ref, stats_meta)
    if stats_meta is not None:
        extractor = extractor or stats_meta["extractor"]
    fake_ds = _as_dataset(samples, "samples", resize=resize, grayscale=grayscale)
    fake_x, fake_split = _part(fake_ds, samples, samples_split, "samples")
    if tuple(fake_x.shape[1:]) != ref_shape:
        raise ValueError(
            f"samples have shape {tuple(fake_x.shape[1:])} per example but the reference {ref_ds.name!r} has "
            f"{ref_shape}; generate samples shaped like the reference (channels first, same size)."
        )
    # copy checks need training data: --train, else the reference dataset's own train split
    builtin_ref = _is_builtin(reference)
    train_x, train_key, train_desc = _train_data(train, reference, ref_ds, ref_split, ref_shape, resize=resize,
                                                 grayscale=grayscale)
    can_likelihood = builtin_ref and {"train", "val", "test"} <= set(ref_ds.info.split_sizes)
    allowed = ["quality"] + (["likelihood"] if can_likelihood else []) + \
              (["overfitting"] if train_x is not None else []) + ["coverage"]
    fams = tuple(allowed if families is None else families)
    for f in fams:
        if f not in allowed:
            why = {"overfitting": "no training data (give train=... / --train)",
                   "likelihood": "the Parzen and GMM estimators need a built-in dataset's train/val/test splits"}
            raise ValueError(f"family {f!r} is not available for this sample set: {why.get(f, '')}.")
    if ref.x is None and "overfitting" in fams:
        raise ValueError("the copy checks compare with held-out real images, which a statistics file does not hold; "
                         "score against the dataset itself for the overfitting family.")
    ref = replace(ref, train=train_x, train_cache_key=train_key)
    if builtin_ref:  # a second real split for the real-vs-real rows, as in the matrix
        full = Reference.of(ref_ds, ref_split)
        ref = replace(ref, other=full.other, other_split=full.other_split, other_cache_key=full.other_cache_key)
    rows = evaluate_samples(fake_x, ref, families=tuple(f for f in fams if f != "likelihood"),
                            extractor=extractor or "domain", seed=seed, n_boot=n_boot, device=device,
                            cache_dir=cache_dir, weights=weights, metrics=metrics, timings=timings,
                            settings={"kid": {"subset_size": kid_subset_size, "subsets": kid_subsets}},
                            n_eval=n_eval, repeats=EvalConfig.quality_repeats if repeats is None else repeats)
    if "likelihood" in fams:
        from genbench.metrics.likelihood import evaluate_likelihood

        t = time.perf_counter()
        rows += evaluate_likelihood(dataset=ref_ds, samples=fake_x, model=None, k=iwae_k, n_test=n_test or None,
                                    seed=derive_seed(seed, "likelihood"), protocol_seed=seed,
                                    gmm_components=gmm_components or None, device=device)
        timings["likelihood_s"] = time.perf_counter() - t
    data = {"reference": _reference_record(ref, ref_shape, stats_meta),
            "samples": {"name": fake_ds.info.name, "content_hash": fake_ds.info.content_hash,
                        "split": fake_split, "shape": list(fake_x.shape[1:])}}
    if train_desc is not None:
        data["train"] = train_desc
    rows = [r.with_(params={**r.params, "data": data}) for r in rows]
    config = {"kind": "score", "input": "samples", "samples": samples if isinstance(samples, str) else "<array>",
              "samples_hash": fake_ds.info.content_hash, "samples_split": fake_split,
              "reference": reference if isinstance(reference, str) else "<array>", "data": data,
              "families": list(fams), "extractor": extractor if isinstance(extractor, str | None) else extractor.id,
              "metrics": metrics, "n_boot": n_boot, "iwae_k": iwae_k, "n_test": n_test,
              "gmm_components": list(gmm_components), "kid": [kid_subset_size, kid_subsets],
              "resize": resize, "grayscale": grayscale}
    label = samples if isinstance(samples, str) else "samples"
    return ScoreRun(rows, info={"config": config, "dataset": ref_ds.info.name, "label": _label(label),
                                "device": str(device or "cpu"), "fake": fake_x})


def _label(spec: str) -> str:
    s = spec.split(":", 1)[1] if ":" in spec and not Path(spec).exists() and spec.split(":", 1)[0] in (
        "npz", "folder") else spec
    p = Path(s)
    return p.stem if p.suffix or p.exists() else s


def _score_generator(spec: Any, reference: Any, *, families: Any, evaluation: Any, extractor: Any, split: str,
                     seed: int, n_boot: int, n_samples: int, iwae_k: int, n_test: int, gmm_components: Any,
                     cache_dir: Any, device: Any, weights: Any, z_dim: Any, latent: Any, entry: Any,
                     trust_checkpoint: bool, metrics: Any, results: Any, name: Any, timings: dict[str, float],
                     bar: Any, staging: list[Path], n_eval: int = 0, repeats: int | None = None, train: Any = None,
                     resize: Any = None, grayscale: Any = None) -> ScoreRun:
    from genbench._validation import check_finite, check_range
    from genbench.data import load_dataset
    from genbench.evaluate import Reference, evaluate_model, reference_skips
    from genbench.harness import derive_seed, resolve_device
    from genbench.loading import check_sample_output, load
    from genbench.matrix import EvalConfig
    from genbench.runs import RunFolder, results_dir

    if metrics:
        raise ValueError("metrics= restricts a sample set's quality rows; a generator is scored on whole "
                         "families (families=...), as in the matrix.")
    builtin = _is_builtin(reference)
    ref, stats_meta, ref_desc = None, None, None
    if builtin and train is None:  # the matrix's road: the dataset's split, its train split for copy checks
        ds = load_dataset(reference)
        ref_shape = tuple(ds.info.shape)
    else:  # a user's images, a statistics file, or a dataset with other training data: an explicit Reference
        ref, stats_meta = _reference(reference, split, resize=resize, grayscale=grayscale)
        ds, ref_shape = ref.dataset, _shape(ref, stats_meta)
        train_x, train_key, train_desc = _train_data(train, reference, ds, ref.split, ref_shape, resize=resize,
                                                     grayscale=grayscale)
        ref = replace(ref, train=train_x, train_cache_key=train_key)
        if builtin:  # the second real split for the real-vs-real rows, as in the matrix
            full = Reference.of(ds, ref.split)
            ref = replace(ref, other=full.other, other_split=full.other_split, other_cache_key=full.other_cache_key)
        if stats_meta is not None and extractor is None and evaluation is None:
            extractor = stats_meta["extractor"]
        ref_desc = {"reference": _reference_record(ref, ref_shape, stats_meta)}
        if train_desc is not None:
            ref_desc["train"] = train_desc
    if evaluation is None:
        fams = families if families is not None else tuple(
            f for f in ("quality", "likelihood", "overfitting", "coverage")
            if f != "overfitting" or "train" in ds.info.split_sizes or train is not None)
        evaluation = EvalConfig(n_samples=n_samples, reference=split, extractor=extractor or "domain",
                                families=tuple(fams), iwae_k=iwae_k, n_test=n_test,
                                gmm_components=tuple(gmm_components), n_boot=n_boot, device=device or "auto",
                                n_eval=n_eval, **({} if repeats is None else {"quality_repeats": repeats}))
    elif families is not None or extractor is not None:
        raise ValueError("give evaluation= or the separate options (families, extractor, ...), not both.")
    skipped: dict[str, str] = {}
    if ref is not None:
        skipped = reference_skips(ref, tuple(evaluation.families), evaluation.reference)
        if len(skipped) == len(evaluation.families):
            raise ValueError(f"nothing to evaluate against {reference!r}: " + "; ".join(
                f"{f}: {why}" for f, why in skipped.items()) + ". Ask for quality or coverage, or score against "
                "a built-in dataset.")
    dev = resolve_device(evaluation.device)
    t = time.perf_counter()
    loaded = load(spec, z_dim=z_dim, latent=latent, entry=entry, trust_checkpoint=trust_checkpoint, device=dev)
    gen = loaded.generator
    # validate a first small batch before anything is computed or written: shape, dtype, range, NaN
    m = min(evaluation.n_samples, 8)
    with torch.no_grad():
        try:
            x = gen.sample(m, seed=derive_seed(seed, "check"))
        except Exception as e:
            from genbench.loading import LoadError

            if isinstance(e, LoadError):
                raise
            raise ValueError(f"generator {spec!s}: sample({m}, seed=...) raised {type(e).__name__}: {e}") from e
        got = tuple(x.shape[1:]) if isinstance(x, torch.Tensor) and x.ndim >= 2 and len(x) == m else None
        if not builtin and got is not None and got != ref_shape:
            raise ValueError(
                f"generator {spec!s} gives samples of shape {got} per example but the reference {reference!r} "
                f"holds {ref_shape}: expected {ref_shape}, got {got}. Score it against real data of the "
                "generator's shape (for folder: images, --resize HxW and --grayscale), or write samples shaped "
                "like the reference (channels first).")
        check_sample_output(x, m, ref_shape, f"generator {spec!s}")
        a = x.detach().float().cpu().numpy()
        check_finite(a, f"samples of generator {spec!s}")
        if ds.info.value_range is not None:
            check_range(a, *ds.info.value_range, f"samples of generator {spec!s} (expected range of {ds.name})")
    timings["load_s"] = time.perf_counter() - t
    bar.update(1)
    bar.set_postfix_str(f"sampling {evaluation.n_samples}, features and metrics")
    folder = None
    if results is not None:
        folder = results_dir(results) / ".staging" / f"{os.getpid()}-{time.time_ns()}"
        staging.append(folder)
        folder.mkdir(parents=True)
    out = evaluate_model(gen, ds, evaluation, seed=seed, device=dev, run=RunFolder(folder) if folder else None,
                         timings=timings, cache_dir=cache_dir, weights=weights, reference=ref)
    from genbench.config import to_dict

    rows = out.metrics
    config = {"kind": "score", "input": "generator", "generator": str(spec), "source": loaded.info,
              "dataset": reference if isinstance(reference, str) else "<array>", "evaluation": to_dict(evaluation),
              "z_dim": z_dim, "latent": latent, "entry": entry, "trust_checkpoint": trust_checkpoint}
    if ref_desc is not None:  # a reference other than the matrix's: recorded as a sample set's is
        rows = [r.with_(params={**r.params, "data": ref_desc}) for r in rows]
        config.update(reference=config.pop("dataset"), data=ref_desc, skipped_families=skipped,
                      train=train if isinstance(train, str | None) else "<array>", resize=resize, grayscale=grayscale)
    dataset = reference if builtin else ds.info.name
    return ScoreRun(rows, info={"config": config, "dataset": dataset, "label": _label(str(spec)),
                                       "device": out.device, "artifacts": out.artifacts, "staging": folder})


def _store(out: ScoreRun, *, results: Any, name: str | None, seed: int, timings: dict[str, float]) -> None:
    """Write the run folder (config, result.json, artifacts) and index it: the same record fields as a matrix cell."""
    from genbench._io import atomic_save_npz, atomic_write_json
    from genbench.provenance import now_iso, provenance
    from genbench.results import SCHEMA_VERSION
    from genbench.runs import RunFolder, results_dir, safe_name
    from genbench.store import ResultsStore

    root = results_dir(results)
    info = out.info
    label = name or info["label"]
    config = {**info["config"], "name": label, "seed": int(seed)}
    source = config.get("source", {})
    run_id = _run_id(label, info["dataset"], seed, config)
    rf = RunFolder(Path(info.get("staging") or root / ".staging" / f"{os.getpid()}-{time.time_ns()}"))
    rf.path.mkdir(parents=True, exist_ok=True)
    artifacts = dict(info.get("artifacts") or {})
    if "fake" in info:  # a sample set: keep (the first 2,000 of) what was scored
        p = atomic_save_npz(rf.artifacts / "samples.npz", x=info["fake"][:2000].numpy())
        artifacts["samples"] = str(p.relative_to(rf.path))
        if info["fake"].ndim == 4:
            from genbench.reports.grids import write_sample_grid

            g = write_sample_grid(rf.artifacts / "samples.png", info["fake"][:64].numpy())
            artifacts["sample_grid"] = str(g.relative_to(rf.path))
    rf.write_config(config)
    record = {
        "schema": SCHEMA_VERSION, "run_id": run_id, "kind": "score", "matrix": None, "generator": label,
        "family": source.get("family") or source.get("format", "samples"), "dataset": info["dataset"],
        "seed": int(seed),
        "config": config, "status": "done", "error": None, "metrics": [m.to_dict() for m in out.rows],
        "artifacts": artifacts, "control": False, "timings": dict(timings),
        "provenance": provenance(seed=seed, device=info.get("device"), threads=torch.get_num_threads()),
        "finished": now_iso(),
    }
    atomic_write_json(rf.result_path, record)
    final = root / "runs" / safe_name(run_id)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():  # the same score again: the new folder replaces the old one
        shutil.rmtree(final)
    os.replace(rf.path, final)
    ResultsStore(root).put(record, path=final)
    out.record, out.path = record, final


def format_table(results: list[MetricResult]) -> str:
    """A plain-text table: metric, value ± std (and CI), protocol; warnings listed below.

    Examples
    --------
    >>> from genbench.results import MetricResult, Protocol
    >>> p = Protocol("fid", space="pixels", n={"real": 10, "fake": 10}, ref="test")
    >>> print(format_table([MetricResult("fid", 12.5, p)]))
    metric  value  protocol
    ------  -----  ---------------------------
    fid     12.5   fid@pixels/n=10v10/ref=test
    """
    header = ("metric", "value", "protocol")
    body = []
    notes: list[str] = []
    for r in results:
        v = f"{r.value:.5g}"
        if r.std is not None:
            v += f" ± {r.std:.2g}" + (f" ({r.std_kind})" if r.std_kind else "")
        if r.ci is not None:
            v += f" [{r.ci[0]:.4g}, {r.ci[1]:.4g}]"
        tag = ""
        for w in r.warnings:
            if w not in notes:
                notes.append(w)
            tag += f" [{notes.index(w) + 1}]"
        body.append((r.metric, v, str(r.protocol) + tag))
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(3)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    out = [line(header), line(tuple("-" * w for w in widths)), *(line(b) for b in body)]
    accuracies = {str(r.params["extractor"]["id"]): r.params["extractor"]["test_accuracy"] for r in results
                  if isinstance(r.params.get("extractor"), dict) and "test_accuracy" in r.params["extractor"]}
    for ext_id, acc in accuracies.items():
        out.append(f"extractor {ext_id}: test accuracy {acc:.4f}")
    out += [f"[{i + 1}] {w}" for i, w in enumerate(notes)]
    return "\n".join(out)
