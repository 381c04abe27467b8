"""Evaluating one cell: the one road every number in a table travels.

generator -> samples -> (features -> quality metrics) + likelihood estimators + overfitting
checks + coverage + representation (a model's codes) + conditional (requested classes) ->
MetricResult records and artifacts in the run folder. Every family's rows come out of the one
metric evaluator, :func:`genbench.metrics.evaluate_metrics`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from genbench._io import atomic_save_npz
from genbench._validation import check_finite, check_range
from genbench.data import Dataset, load_dataset
from genbench.harness import derive_seed, resolve_device
from genbench.matrix import Cell, EvalConfig
from genbench.results import MetricResult
from genbench.runs import RunFolder


@dataclass
class CellOutput:
    metrics: list[MetricResult]
    artifacts: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"
    control: bool = False


def draw_samples(generator: Any, n: int, *, seed: int, dataset: Dataset, batch: int = 2000) -> torch.Tensor:
    """Draw ``n`` samples in batches (seeded per batch) and check shape, range and finiteness.

    A generator with ``max_samples`` (a control replaying a data split without replacement) gives at
    most that many, in one call so that no example repeats; :func:`sample_cap_note` says so on the rows.
    """
    cap = getattr(generator, "max_samples", None)
    if cap is not None:
        n = batch = min(n, int(cap))
    out = []
    for i, start in enumerate(range(0, n, batch)):
        m = min(batch, n - start)
        x = generator.sample(m, seed=derive_seed(seed, "sample", i))
        out.append(x.detach().float().cpu())
    x = torch.cat(out)
    expected = (n, *dataset.info.shape)
    if tuple(x.shape) != expected:
        raise ValueError(f"generator returned samples of shape {tuple(x.shape)}, expected {expected} for "
                         f"{dataset.name}; sample(n, seed=) must return (n, *data_shape).")
    a = x.numpy()
    check_finite(a, "generated samples")
    if dataset.info.value_range is not None:
        check_range(a, *dataset.info.value_range, "generated samples")
    return x


def default_extractor(dataset: Dataset, requested: str = "domain") -> str:
    """The one rule for which extractor a name means: ``domain`` is the dataset's domain classifier for
    labelled image data with train and test splits, else ``pixels`` (2-D points, unlabelled images)."""
    if requested != "domain":
        return requested
    info = dataset.info
    if info.kind == "image" and info.n_classes and {"train", "test"} <= set(info.split_sizes):
        return f"domain:{dataset.name}"
    return "pixels"


@dataclass
class Reference:
    """The real data a sample set is scored against.

    Attributes
    ----------
    dataset : the dataset (for its kind, mixture modes and domain classifier).
    split : the reference split's name (``test``), or ``all`` for a user's file.
    x : the reference images or points.
    train : the training data for copy checks (None: no overfitting family).
    cache_key, train_cache_key : stable keys of ``x`` and ``train`` for the feature cache.
    features : precomputed reference features (a statistics file): ``{"extractor_id", "features",
        "probs"}``; used instead of extracting ``x`` when the extractor's id matches.
    other, other_split, other_cache_key : a second real sample disjoint from ``x`` (built-in datasets:
        their train split), compared with ``x`` at the models' n for the real-vs-real rows (``fid_real``...),
        the value a perfect generator would reach under the same protocol.
    """

    dataset: Dataset
    split: str
    x: torch.Tensor | None
    train: torch.Tensor | None = None
    cache_key: str | None = None
    train_cache_key: str | None = None
    features: dict[str, Any] | None = None
    other: torch.Tensor | None = None
    other_split: str | None = None
    other_cache_key: str | None = None

    @classmethod
    def of(cls, dataset: Dataset, split: str = "test", *, train: bool = True) -> Reference:
        """A dataset's split, with its train split for copy checks when it has one."""
        from genbench.features import feature_cache_key

        sizes = dataset.info.split_sizes
        has_train = train and "train" in sizes and split != "train"
        other = next((s for s in ("train", "val", "test") if s in sizes and s != split), None)
        h = dataset.info.content_hash
        key = {s: feature_cache_key(data_hash=h, split=s) for s in sizes}
        return cls(dataset, split, dataset.split(split).x, dataset.split("train").x if has_train else None,
                   key[split], key.get("train"), other=None if other is None else dataset.split(other).x,
                   other_split=other, other_cache_key=key.get(other))


def _flat(a: torch.Tensor) -> np.ndarray:
    return a.reshape(len(a), -1).numpy()


def evaluate_samples(fake: torch.Tensor, ref: Reference, *, families: tuple[str, ...] = ("quality",),
                     extractor: Any = "domain", seed: int = 0, n_boot: int = 0, device: Any = None,
                     cache_dir: Any = None, weights: Any = None, metrics: list[str] | None = None,
                     settings: dict[str, dict[str, Any]] | None = None, n_eval: int = 0, repeats: int = 1,
                     real_vs_real: bool = True, timings: dict[str, float] | None = None) -> list[MetricResult]:
    """Every sample-based number: the one road of the matrix cells and of ``genbench score``.

    Features are extracted once (the reference's and the training split's cached by content), then
    each family's metric specs run through :func:`genbench.metrics.evaluate_metrics`: quality on
    features; copy checks against ``ref.train`` in pixel space and in feature space; coverage of
    the mixture's modes (2-D points) or of the classifier's classes (images).

    Parameters
    ----------
    fake : (N, *data_shape) samples in the data's value range.
    ref : the :class:`Reference` (real split, and training data for copy checks).
    families : which families to compute (``quality``, ``overfitting``, ``coverage``).
    extractor : a name (``domain`` = :func:`default_extractor`, ``pixels``, ``inception-v3-compat``,
        ``domain:<dataset>``) or an extractor object.
    seed, n_boot, device : the evaluation seed, bootstrap replicates and device.
    cache_dir, weights : the extractor's cache root (default ``$GENBENCH_CACHE``) and weights file.
    metrics : restrict the quality family to these outputs.
    settings : per metric spec keyword settings (``{"kid": {"subset_size": 500}}``).
    n_eval, repeats : the quality family compares equal-sized sets, since FID and the k-NN metrics are
        biased by n: both sets are subsampled without replacement to ``n_eval`` (0: the smaller of the
        two sets), ``repeats`` times, and each row reports the mean and std over subsamples
        (``std_kind="subsamples"``; one repeat keeps the metric's own uncertainty).
    real_vs_real : also compare a second real sample (``ref.other``) with the reference at the same n
        and repeats: rows ``fid_real``, ``precision_real``... are the ceiling of this protocol.
    timings : filled with seconds per stage (``features_s``, ``quality_s``, ``overfitting_s``).

    Returns
    -------
    list of MetricResult
    """
    from genbench.features import Extractor, extract, get_extractor
    from genbench.metrics import MetricInputs, evaluate_metrics

    timings = {} if timings is None else timings
    ds = ref.dataset
    images = ds.info.kind == "image"
    copy_checks = "overfitting" in families and ref.train is not None
    rows: list[MetricResult] = []
    f: dict[str, Any] = {}
    if "quality" in families or ("coverage" in families and images) or (copy_checks and images):
        t = time.perf_counter()
        ext = extractor if isinstance(extractor, Extractor) else get_extractor(
            default_extractor(ds, extractor), device=device, cache_dir=cache_dir, weights=weights)
        real = _reference_features(ref, ext, device=device, cache_dir=cache_dir)
        fk = extract(ext, fake, device=device)
        tr = (extract(ext, ref.train, device=device, cache_dir=cache_dir, cache_key=ref.train_cache_key)
              if copy_checks and images else None)
        info = dict(ext.info)
        f = {"space": ext.id, "real": real["features"], "fake": fk["features"], "real_probs": real.get("probs"),
             "fake_probs": fk.get("probs"), "train": None if tr is None else tr["features"], "info": info,
             "weights": info.get("weights_hash")}
        timings["features_s"] = time.perf_counter() - t
    if "quality" in families:
        t = time.perf_counter()
        _check_probs_available(metrics, f, ext, fake)
        n_eq = min(len(f["real"]), len(f["fake"]), n_eval or 10**12)
        if len(f["real"]) == len(f["fake"]) == n_eq:
            repeats = 1  # nothing to subsample: every repeat would compare the same two sets
        kw = dict(metrics=metrics, settings=_settings(settings, "quality"), seed=seed, n_boot=n_boot, device=device,
                  n_eq=n_eq, repeats=repeats)
        q = _equal_n_quality(f, f["fake"], f["fake_probs"], ref.split, **kw)
        rows += _moment_blind_note(_duplicate_note(q, fake), ds)
        if real_vs_real and ref.other is not None and len(ref.other) >= n_eq:
            # the same for every generator on this reference and protocol: computed once per process
            memo = (ext.id, ref.cache_key, ref.other_cache_key, ref.split, ref.other_split, n_eq, repeats, seed,
                    n_boot, tuple(metrics or ()), repr(sorted(kw["settings"].items())), str(device))
            if None in memo[1:3] or memo not in _REAL_VS_REAL:
                other = extract(ext, ref.other, device=device, cache_dir=cache_dir, cache_key=ref.other_cache_key)
                rr = _equal_n_quality(f, other["features"], None, ref.split, real_vs_real=ref.other_split, **kw)
                if None not in memo[1:3]:
                    _REAL_VS_REAL[memo] = rr
            else:
                rr = _REAL_VS_REAL[memo]
            rows += _moment_blind_note(rr, ds)
        timings["quality_s"] = time.perf_counter() - t
    if copy_checks:
        t = time.perf_counter()
        spaces = [("pixels", _flat(fake), _flat(ref.train), _flat(ref.x), None)]
        if f.get("train") is not None and f["space"] != "pixels":
            spaces.append((f["space"], f["fake"], f["train"], f["real"], f["weights"]))
        for space, fx, tx, hx, w in spaces:
            inputs = MetricInputs(space, fake=fx, train=tx, heldout=hx, ref="train", heldout_split=ref.split,
                                  device=device, weights=w)
            rows += evaluate_metrics(inputs, family="overfitting", seed=derive_seed(seed, "overfitting"),
                                     protocol_seed=seed, device=device, settings=_settings(settings, "overfitting"))
            if space == "pixels" and images:
                # copies shifted, flipped or re-lit escape Euclidean NN checks (Theis et al. 2016): search
                # the training set under small transformations too, in pixel space where they are defined
                tset = _settings(settings, "overfitting").get("transform-copy-rate", {})
                rows += evaluate_metrics(inputs, metrics=["transform-copy-rate"], seed=derive_seed(seed, "copies"),
                                         protocol_seed=seed, device=device, settings={
                                             "transform-copy-rate": {"shape": tuple(ds.info.shape), **tset}})
        timings["overfitting_s"] = time.perf_counter() - t
    if "coverage" in families:
        if getattr(ds, "centres", None) is not None:
            inputs = MetricInputs(ds.name, fake=_flat(fake).astype(np.float64), centres=ds.centres, std=ds.std)
            rows += evaluate_metrics(inputs, family="coverage", settings=_settings(settings, "coverage"))
        elif f.get("fake_probs") is not None:
            inputs = MetricInputs(f["space"], fake_probs=f["fake_probs"], weights=f["weights"])
            rows += evaluate_metrics(inputs, family="coverage", settings=_settings(settings, "coverage"))
    return rows


#: real-vs-real rows by (extractor, reference and second split by content, protocol): every cell of a
#: dataset shares them, so a process (a worker running several cells) computes them once
_REAL_VS_REAL: dict[tuple[Any, ...], list[MetricResult]] = {}


def _check_probs_available(metrics: list[str] | None, f: dict[str, Any], ext: Any, fake: torch.Tensor) -> None:
    """A metric asked for by name that needs class probabilities (IS) fails here, with the extractor's
    own reason (an Inception file without logits says which file has them)."""
    from genbench.metrics import spec_for_output

    asked = [m for m in metrics or [] if spec_for_output(m).needs == "probs"]
    if not asked or f["fake_probs"] is not None:
        return
    reason = "it has no classifier head"
    try:
        ext.probs(fake[:1].float())
    except Exception as e:  # the extractor explains why it has no probabilities
        reason = str(e)
    raise ValueError(f"{', '.join(asked).upper()} needs fake_probs (class probabilities), which extractor "
                     f"{ext.id!r} does not give: {reason} "
                     "Use an extractor with a classifier head (domain:<dataset>, or "
                     "inception-v3-compat with torch-fidelity's weights file), or leave IS out.")


def _equal_n_quality(f: dict[str, Any], fake: np.ndarray, fake_probs: np.ndarray | None, ref_split: str, *,
                     metrics: list[str] | None, settings: dict[str, dict[str, Any]], seed: int, n_boot: int,
                     device: Any, n_eq: int, repeats: int, real_vs_real: str | None = None) -> list[MetricResult]:
    """Quality rows at equal n: ``repeats`` subsamples of size ``n_eq`` of both sets (without replacement),
    mean and std over subsamples. ``real_vs_real`` names the second real split when ``fake`` is real data:
    its rows are named ``<metric>_real`` and one-sample metrics (IS, Vendi) are left out (their ``_real``
    rows come with the model's)."""
    from genbench.metrics import MetricInputs, evaluate_metrics, spec_for_output

    real, real_probs = f["real"], f["real_probs"]
    if real_vs_real:
        fake_probs = None
        metrics = [o for s in _two_sample_quality() for o in s.outputs if metrics is None or o in metrics]
        if not metrics:
            return []
    rng = np.random.default_rng(derive_seed(seed, "subsample", real_vs_real or "model"))
    reps: list[list[MetricResult]] = []
    for r in range(repeats):
        i_r = np.sort(rng.choice(len(real), n_eq, replace=False)) if len(real) > n_eq else slice(None)
        i_f = np.sort(rng.choice(len(fake), n_eq, replace=False)) if len(fake) > n_eq else slice(None)
        inputs = MetricInputs(f["space"], real=real[i_r], fake=fake[i_f],
                              real_probs=None if real_probs is None or real_vs_real else real_probs[i_r],
                              fake_probs=None if fake_probs is None else fake_probs[i_f], ref=ref_split,
                              info=f["info"], weights=f["weights"], device=device)
        reps.append(evaluate_metrics(inputs, metrics=metrics, family="quality", settings=settings,
                                     seed=derive_seed(seed, "quality", *(() if r == 0 else (r,))),
                                     protocol_seed=seed, n_boot=n_boot if repeats == 1 else 0, device=device))
    rows = reps[0] if repeats == 1 else [_over_subsamples([rep[j] for rep in reps]) for j in range(len(reps[0]))]
    if real_vs_real:
        note = (f"real vs real: the {real_vs_real} split compared with the {ref_split} split under the same protocol "
                "(equal n, same subsamples count): the value a perfect generator would reach.")
        rows = [r.with_(metric=r.metric + "_real", protocol=r.protocol.with_(metric=r.metric + "_real"),
                        params={**r.params, "real_vs_real": real_vs_real}, warnings=(*r.warnings, note))
                for r in rows if spec_for_output(r.metric).needs == "features"]
    return rows


def _two_sample_quality() -> list[Any]:
    from genbench.metrics import specs

    return [s for s in specs("quality") if s.needs == "features" and s.default]


def _over_subsamples(rows: list[MetricResult]) -> MetricResult:
    """One row from the same metric on several equal-n subsamples: mean, and std over subsamples."""
    vals = np.array([r.value for r in rows])
    first = rows[0]
    own = [r.std for r in rows if r.std is not None]
    params = {**first.params, "subsample_values": vals.tolist(), "subsamples": len(rows)}
    if own:
        params.update(own_std_mean=float(np.mean(own)), own_std_kind=first.std_kind)
    warn = tuple(dict.fromkeys(w for r in rows for w in r.warnings))
    return first.with_(value=float(vals.mean()), std=float(vals.std(ddof=1)), std_kind="subsamples", ci=None,
                       ci_level=None, params=params, warnings=warn,
                       protocol=first.protocol.with_(fixed=(*first.protocol.fixed, ("subsamples", len(rows)))))


def _moment_blind_note(rows: list[MetricResult], ds: Dataset) -> list[MetricResult]:
    """FID sees two moments and KID's cubic kernel three: on the symmetric 2-D mixtures a moment-matched
    Gaussian beats a mixture missing modes. Say so beside those columns."""
    if getattr(ds, "centres", None) is None:
        return rows
    note = ("FID and KID on raw 2-D mixture points see only the first moments and cannot see multimodality (a "
            "moment-matched Gaussian scores better than a mixture missing modes): rank these models by the mode "
            "metrics (modes-captured, hq-share) and precision/density/coverage.")
    return [r.with_(warnings=(*r.warnings, note)) if r.metric.removesuffix("_real") in ("fid", "kid") else r
            for r in rows]


def _reference_features(ref: Reference, ext: Any, *, device: Any, cache_dir: Any) -> dict[str, Any]:
    from genbench.features import extract

    if ref.features is not None:
        if ref.features.get("extractor_id") != ext.id:
            made = ref.features.get("extractor_id")
            raise ValueError(f"the reference statistics were computed with extractor {made!r} but this evaluation "
                             f"uses {ext.id!r}; use the same extractor (and weights), or "
                             "recompute the statistics with `genbench stats`.")
        return ref.features
    if ref.x is None:
        raise ValueError("the reference has neither data nor precomputed features; give a dataset split or a "
                         "statistics file.")
    return extract(ext, ref.x, device=device, cache_dir=cache_dir, cache_key=ref.cache_key)


def _settings(settings: dict[str, dict[str, Any]] | None, family: str) -> dict[str, dict[str, Any]]:
    """The settings of one family's specs (extractors give probabilities, never logits, to IS)."""
    from genbench.metrics import METRICS

    out: dict[str, dict[str, Any]] = {"is": {"kind": "probs"}} if family == "quality" else {}
    for name, kw in (settings or {}).items():
        if METRICS.get(name).family == family:
            out[name] = {**out.get(name, {}), **kw}
    return out


def _duplicate_note(rows: list[MetricResult], fake: torch.Tensor) -> list[MetricResult]:
    """Say on the k-NN rows when samples repeat exactly: repeated points have k-NN radius 0, so the
    generated manifold shrinks and recall and coverage read low."""
    from genbench.metrics import spec_for_output

    n_dup = len(fake) - len(np.unique(_flat(fake), axis=0))
    if not n_dup:
        return rows
    note = (f"{n_dup} of {len(fake)} generated samples are exact duplicates; duplicates have k-NN radius 0, which "
            "shrinks the generated manifold and lowers recall and coverage.")
    return [r.with_(warnings=(*r.warnings, note)) if spec_for_output(r.metric.removesuffix("_real")).bootstrap
            == "parts" else r for r in rows]


def _nn_gallery(ev: EvalConfig, ds: Dataset, fake: torch.Tensor, rf: RunFolder, device: torch.device,
                train: torch.Tensor | None = None, rows: list[MetricResult] | None = None) -> dict[str, str]:
    """The gallery of the samples closest to the training data (``train``, default ``ds``'s train split),
    beside their neighbours (pixel space); with the transform-copy-rate row among ``rows``, the samples it
    flagged first, each shown sample beside its best transformed training image and the transformation."""
    from genbench.metrics.neighbours import nearest_neighbours
    from genbench.reports.gallery import write_nn_gallery

    train_x = ds.split("train").x if train is None else train
    k = 3
    nn = nearest_neighbours(_flat(fake), _flat(train_x), k=k, device=device)
    matches = _transform_matches(rows or [], fake, train_x, ds, nn[0][:, 0], ev.gallery_n, device)
    g = write_nn_gallery(rf.artifacts / "nn_gallery.png", fake.numpy(), train_x.numpy(), n=ev.gallery_n, k=k, nn=nn,
                         matches=matches)
    return {"nn_gallery": str(g.relative_to(rf.path)),
            "nn_gallery_pairs": str(g.with_suffix(".json").relative_to(rf.path))}


def _transform_matches(rows: list[MetricResult], fake: torch.Tensor, train: torch.Tensor, ds: Dataset,
                       nn_first: Any, n: int, device: Any) -> dict[int, dict[str, Any]] | None:
    """Best transformed training image of every sample the gallery can show (the copy check's flagged examples
    and the ``n`` nearest), searched with the check's own family and flagged by its threshold (None: no check)."""
    from genbench.metrics.copies import match_transforms
    from genbench.reports.gallery import gallery_rows

    tc = next((r for r in rows if r.metric == "transform-copy-rate" and r.protocol.space == "pixels"), None)
    if tc is None:
        return None
    fam = tc.params["family"]
    flagged = [int(e["sample"]) for e in tc.params.get("examples", [])]
    cand = sorted(set(flagged) | set(gallery_rows(nn_first, n)))
    found = match_transforms(_flat(fake[cand]), _flat(train), shape=tuple(ds.info.shape), max_shift=fam["max_shift"],
                             flips=fam["flips"], brightness=fam["brightness"], contrasts=fam["contrasts"],
                             fill=fam["fill"], threshold=tc.params["threshold"], device=device)
    return {i: m for i, m in zip(cand, found)}


def evaluate_cell(cell: Cell, rf: RunFolder) -> CellOutput:
    """Train or load the cell's generator, sample, evaluate every requested family, write artifacts."""
    from genbench.generators import get_generator_spec
    from genbench.harness import build_generator

    ev = cell.evaluation
    device = resolve_device(ev.device)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    ds = load_dataset(cell.dataset)
    spec = get_generator_spec(cell.generator.name)
    if ds.info.kind not in spec.dataset_kinds:
        raise ValueError(f"generator {cell.generator.name!r} supports {', '.join(spec.dataset_kinds)} datasets, "
                         f"but {cell.dataset!r} is {ds.info.kind}; remove this cell from the matrix.")
    gen, train_info = build_generator(
        cell.generator.name, ds, seed=cell.seed, run=rf, model_overrides=cell.generator.model,
        train_overrides=cell.generator.train, device=device,
    )
    timings["train_s"] = time.perf_counter() - t
    metrics: list[MetricResult] = list(train_info.get("metrics", []))
    artifacts: dict[str, str] = dict(train_info.get("artifacts", {}))

    out = evaluate_model(gen, ds, ev, seed=cell.seed, device=device, run=rf, timings=timings)
    return CellOutput(metrics=metrics + out.metrics, artifacts={**artifacts, **out.artifacts}, timings=timings,
                      device=str(device), control=not spec.trained)


def reference_skips(ref: Reference, families: tuple[str, ...], split: str = "test") -> dict[str, str]:
    """The families a model cannot be evaluated on against ``ref``, each with the reason (for the rows' notes).

    A built-in dataset's split has everything; a user's images (``npz:``/``folder:``) or a statistics file
    lack held-out or training data: copy checks need ``ref.train`` (``--train``) and the reference images,
    likelihoods a dataset with train/val/test splits, representation and conditional checks labelled
    train/test splits.
    """
    info = ref.dataset.info
    sizes = set(info.split_sizes)
    out: dict[str, str] = {}
    if "overfitting" in families:
        if ref.train is None:
            out["overfitting"] = "no training data to check copies against (give --train / train=)"
        elif ref.x is None:
            out["overfitting"] = ("the copy checks calibrate on held-out real images, which a statistics file does "
                                  "not hold")
    if "likelihood" in families and not ({"train", "val", "test"} <= sizes and split in sizes):
        out["likelihood"] = "test-data likelihoods need a built-in dataset's train/val/test splits"
    for fam in ("representation", "conditional"):
        if fam in families and not (info.n_classes and {"train", "test"} <= sizes):
            out[fam] = "needs a labelled dataset with train and test splits"
    return out


def evaluate_model(gen: Any, ds: Dataset, ev: EvalConfig, *, seed: int, device: Any = None,
                   run: RunFolder | None = None,
                   timings: dict[str, float] | None = None, cache_dir: Any = None, weights: Any = None,
                   reference: Reference | None = None) -> CellOutput:
    """Sample a generator and evaluate every requested family: the one road for models, trained here or brought.

    ``gen`` is used through the protocols alone (:class:`~genbench.protocols.Generator`, and the likelihood
    protocols where it has them). Samples are drawn with seeds derived from ``seed``, so the same seed gives
    the same samples and numbers whichever command asked. With ``run``, the samples, the sample grid and the
    nearest-neighbour gallery are written into its ``artifacts/``.

    ``reference`` (default: ``ds``'s ``ev.reference`` split, as in a matrix cell) is what the sample-based
    families compare with: a user's images or a statistics file (:class:`Reference`, with ``train`` for the
    copy checks). ``ds`` is then the dataset describing it (``reference.dataset``: its shape, range and kind).
    Families the reference cannot serve (:func:`reference_skips`) are left out and every row says so.
    """
    timings = {} if timings is None else timings
    artifacts: dict[str, str] = {}
    families = tuple(ev.families)
    skipped: dict[str, str] = {}
    if reference is not None:
        skipped = reference_skips(reference, families, ev.reference)
        families = tuple(f for f in families if f not in skipped)
    t = time.perf_counter()
    with torch.no_grad():
        fake = draw_samples(gen, ev.n_samples, seed=derive_seed(seed, "eval"), dataset=ds)
    timings["sample_s"] = time.perf_counter() - t
    if run is not None:
        artifacts.update(_sample_artifacts(run, ds, fake, None if reference is None else _some_real(reference)))
    ref = Reference.of(ds, ev.reference, train="overfitting" in families) if reference is None else reference
    metrics = evaluate_samples(fake, ref,
                               families=tuple(f for f in families if f != "likelihood"), extractor=ev.extractor,
                               seed=seed, n_boot=ev.n_boot, device=device, timings=timings, cache_dir=cache_dir,
                               weights=weights, n_eval=ev.n_eval, repeats=ev.quality_repeats,
                               settings=dict(ev.settings) or None)
    if len(fake) < ev.n_samples:
        note = (f"{len(fake)} samples instead of the {ev.n_samples} asked for: this generator replays a data split "
                "without replacement and has no more.")
        metrics = [m.with_(warnings=(*m.warnings, note)) for m in metrics]
    if "likelihood" in families:
        from genbench.metrics.likelihood import evaluate_likelihood

        t = time.perf_counter()
        metrics += evaluate_likelihood(dataset=ds, samples=fake, model=gen, k=ev.iwae_k,
                                       n_test=ev.n_test or None, seed=derive_seed(seed, "likelihood"),
                                       protocol_seed=seed, gmm_components=ev.gmm_components or None, device=device)
        if ev.ais_steps and _ais_applies(gen):
            from genbench.metrics.likelihood import evaluate_ais

            metrics += evaluate_ais(gen, ds.split(ev.reference).x[: ev.ais_n_test], ds.split("val").x,
                                    ref=ev.reference, n_steps=ev.ais_steps, n_chains=ev.ais_chains,
                                    levels=ds.info.levels, seed=derive_seed(seed, "ais"), protocol_seed=seed,
                                    device=device)
        timings["likelihood_s"] = time.perf_counter() - t
    if "representation" in families and hasattr(gen, "encode"):
        from genbench.metrics.representation import evaluate_representation

        t = time.perf_counter()
        metrics += evaluate_representation(gen, ds, seed=derive_seed(seed, "representation"), device=device)
        timings["representation_s"] = time.perf_counter() - t
    if "conditional" in families:
        from genbench.metrics.conditional import evaluate_conditional, is_conditional

        if is_conditional(gen):
            from genbench.features import extract, get_extractor

            t = time.perf_counter()
            ext = get_extractor(default_extractor(ds, ev.extractor), device=device, cache_dir=cache_dir,
                                weights=weights)
            metrics += evaluate_conditional(gen, ds, n=ev.n_samples, seed=derive_seed(seed, "conditional"),
                                            class_probs=lambda x: extract(ext, x, device=device).get("probs"),
                                            features=lambda x: extract(ext, x, device=device)["features"],
                                            space=ext.id)
            timings["conditional_s"] = time.perf_counter() - t
    if run is not None and "overfitting" in families and ds.info.kind == "image":
        artifacts.update(_nn_gallery(ev, ds, fake, run, device, train=None if reference is None else ref.train,
                                     rows=metrics))
    if skipped:
        note = "not evaluated against this reference: " + "; ".join(f"{f} ({why})" for f, why in skipped.items())
        metrics = [m.with_(warnings=(*m.warnings, note)) for m in metrics]
    return CellOutput(metrics=metrics, artifacts=artifacts, timings=timings, device=str(device))


def _ais_applies(gen: Any) -> bool:
    """A prior and a decoder likelihood (VAE, AAE), or a generator with a latent (a GAN, scored through a
    Gaussian observation model): the models AIS applies to."""
    latent = all(callable(getattr(gen, m, None)) for m in ("prior_log_prob", "log_likelihood", "sample_prior"))
    return latent or (callable(getattr(gen, "generate", None)) and getattr(gen, "z_dim", None) is not None)


def _some_real(ref: Reference) -> torch.Tensor | None:
    """Real points to draw the samples over: the reference's, else its training data (None: a statistics file)."""
    return ref.x if ref.x is not None else ref.train


def _sample_artifacts(rf: RunFolder, ds: Dataset, fake: torch.Tensor,
                      real: torch.Tensor | None = None) -> dict[str, str]:
    """The first 2,000 samples (npz) and a picture of them: a grid of images, or a scatter over the data
    (``real``, default ``ds``'s train split; a scatter of the samples alone when neither is there)."""
    samples_path = rf.artifacts / "samples.npz"
    atomic_save_npz(samples_path, x=fake[: min(len(fake), 2000)].numpy())
    out = {"samples": str(samples_path.relative_to(rf.path))}
    if ds.info.kind == "image":
        from genbench.reports.grids import write_sample_grid

        p = write_sample_grid(rf.artifacts / "samples.png", fake[:64].numpy())
        out["sample_grid"] = str(p.relative_to(rf.path))
    else:
        from genbench.reports.grids import write_scatter

        if real is None and "train" in ds.info.split_sizes:
            real = ds.split("train").x
        p = write_scatter(rf.artifacts / "samples.png", fake[:5000].numpy(),
                          None if real is None else real[:5000].numpy())
        out["sample_scatter"] = str(p.relative_to(rf.path))
    return out
