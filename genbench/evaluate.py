"""Evaluating one cell: the one road every number in a table travels.

generator -> samples -> (features -> quality metrics) + likelihood estimators + overfitting
checks + coverage -> MetricResult records and artifacts in the run folder.
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
    """Draw ``n`` samples in batches (seeded per batch) and check shape, range and finiteness."""
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
    """

    dataset: Dataset
    split: str
    x: torch.Tensor | None
    train: torch.Tensor | None = None
    cache_key: str | None = None
    train_cache_key: str | None = None
    features: dict[str, Any] | None = None

    @classmethod
    def of(cls, dataset: Dataset, split: str = "test", *, train: bool = True) -> Reference:
        """A dataset's split, with its train split for copy checks when it has one."""
        from genbench.features import feature_cache_key

        has_train = train and "train" in dataset.info.split_sizes and split != "train"
        h = dataset.info.content_hash
        return cls(dataset, split, dataset.split(split).x, dataset.split("train").x if has_train else None,
                   feature_cache_key(data_hash=h, split=split), feature_cache_key(data_hash=h, split="train"))


def _flat(a: torch.Tensor) -> np.ndarray:
    return a.reshape(len(a), -1).numpy()


def evaluate_samples(fake: torch.Tensor, ref: Reference, *, families: tuple[str, ...] = ("quality",),
                     extractor: Any = "domain", seed: int = 0, n_boot: int = 0, device: Any = None,
                     cache_dir: Any = None, weights: Any = None, metrics: list[str] | None = None,
                     settings: dict[str, dict[str, Any]] | None = None,
                     timings: dict[str, float] | None = None) -> list[MetricResult]:
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
        inputs = MetricInputs(f["space"], real=f["real"], fake=f["fake"], real_probs=f["real_probs"],
                              fake_probs=f["fake_probs"], ref=ref.split, info=f["info"], weights=f["weights"],
                              device=device)
        q = evaluate_metrics(inputs, metrics=metrics, family="quality", settings=_settings(settings, "quality"),
                             seed=derive_seed(seed, "quality"), protocol_seed=seed, n_boot=n_boot, device=device)
        rows += _duplicate_note(q, fake)
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
        timings["overfitting_s"] = time.perf_counter() - t
    if "coverage" in families:
        if getattr(ds, "centres", None) is not None:
            inputs = MetricInputs(ds.name, fake=_flat(fake).astype(np.float64), centres=ds.centres, std=ds.std)
            rows += evaluate_metrics(inputs, family="coverage", settings=_settings(settings, "coverage"))
        elif f.get("fake_probs") is not None:
            inputs = MetricInputs(f["space"], fake_probs=f["fake_probs"], weights=f["weights"])
            rows += evaluate_metrics(inputs, family="coverage", settings=_settings(settings, "coverage"))
    return rows


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


def _nn_gallery(ev: EvalConfig, ds: Dataset, fake: torch.Tensor, rf: RunFolder, device: torch.device) -> dict[str, str]:
    """The gallery of the samples closest to the training data, beside their neighbours (pixel space)."""
    from genbench.metrics.neighbours import nearest_neighbours
    from genbench.reports.gallery import write_nn_gallery

    train_x = ds.split("train").x
    k = 3
    nn = nearest_neighbours(_flat(fake), _flat(train_x), k=k, device=device)
    g = write_nn_gallery(rf.artifacts / "nn_gallery.png", fake.numpy(), train_x.numpy(), n=ev.gallery_n, k=k, nn=nn)
    return {"nn_gallery": str(g.relative_to(rf.path)),
            "nn_gallery_pairs": str(g.with_suffix(".json").relative_to(rf.path))}


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


def evaluate_model(gen: Any, ds: Dataset, ev: EvalConfig, *, seed: int, device: Any = None,
                   run: RunFolder | None = None,
                   timings: dict[str, float] | None = None, cache_dir: Any = None, weights: Any = None) -> CellOutput:
    """Sample a generator and evaluate every requested family: the one road for models, trained here or brought.

    ``gen`` is used through the protocols alone (:class:`~genbench.protocols.Generator`, and the likelihood
    protocols where it has them). Samples are drawn with seeds derived from ``seed``, so the same seed gives
    the same samples and numbers whichever command asked. With ``run``, the samples, the sample grid and the
    nearest-neighbour gallery are written into its ``artifacts/``.
    """
    timings = {} if timings is None else timings
    artifacts: dict[str, str] = {}
    t = time.perf_counter()
    with torch.no_grad():
        fake = draw_samples(gen, ev.n_samples, seed=derive_seed(seed, "eval"), dataset=ds)
    timings["sample_s"] = time.perf_counter() - t
    if run is not None:
        artifacts.update(_sample_artifacts(run, ds, fake))
    metrics = evaluate_samples(fake, Reference.of(ds, ev.reference, train="overfitting" in ev.families),
                               families=tuple(f for f in ev.families if f != "likelihood"), extractor=ev.extractor,
                               seed=seed, n_boot=ev.n_boot, device=device, timings=timings, cache_dir=cache_dir,
                               weights=weights)
    if "likelihood" in ev.families:
        from genbench.metrics.likelihood import evaluate_likelihood

        t = time.perf_counter()
        metrics += evaluate_likelihood(dataset=ds, samples=fake, model=gen, k=ev.iwae_k,
                                       n_test=ev.n_test or None, seed=derive_seed(seed, "likelihood"),
                                       gmm_components=ev.gmm_components or None, device=device)
        timings["likelihood_s"] = time.perf_counter() - t
    if run is not None and "overfitting" in ev.families and ds.info.kind == "image":
        artifacts.update(_nn_gallery(ev, ds, fake, run, device))
    return CellOutput(metrics=metrics, artifacts=artifacts, timings=timings, device=str(device))


def _sample_artifacts(rf: RunFolder, ds: Dataset, fake: torch.Tensor) -> dict[str, str]:
    """The first 2,000 samples (npz) and a picture of them: a grid of images, or a scatter over the data."""
    samples_path = rf.artifacts / "samples.npz"
    atomic_save_npz(samples_path, x=fake[: min(len(fake), 2000)].numpy())
    out = {"samples": str(samples_path.relative_to(rf.path))}
    if ds.info.kind == "image":
        from genbench.reports.grids import write_sample_grid

        p = write_sample_grid(rf.artifacts / "samples.png", fake[:64].numpy())
        out["sample_grid"] = str(p.relative_to(rf.path))
    else:
        from genbench.reports.grids import write_scatter

        p = write_scatter(rf.artifacts / "samples.png", fake[:5000].numpy(), ds.split("train").x[:5000].numpy())
        out["sample_scatter"] = str(p.relative_to(rf.path))
    return out
