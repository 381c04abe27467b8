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
from genbench.data import Dataset, MixtureDataset, load_dataset
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


@dataclass
class _Features:
    extractor_id: str
    real: np.ndarray
    fake: np.ndarray
    fake_probs: np.ndarray | None
    real_probs: np.ndarray | None
    train: np.ndarray | None  # training-split features, for memorisation checks in feature space
    info: dict[str, Any] | None  # the extractor's description (weights hash, held-out accuracy)


def _features(ev: EvalConfig, ds: Dataset, fake: torch.Tensor, rf: RunFolder, device: torch.device) -> _Features:
    """Features of the reference split, the training split (images) and the samples, with caches."""
    from genbench.features import extract, get_extractor

    name = ev.extractor
    if name == "domain":
        name = f"domain:{ds.name}" if ds.info.kind == "image" and ds.info.n_classes else "pixels"
    cache = rf.path.parent.parent / "cache"  # shared by all cells of a results directory
    extractor = get_extractor(name, device=device, seed=0, cache_dir=cache)

    def real(split: str) -> dict[str, Any]:
        return extract(extractor, ds.split(split).x, device=device, cache_dir=cache,
                       cache_key=f"{ds.info.content_hash}/{split}")

    ref = real(ev.reference)
    fk = extract(extractor, fake, device=device)
    train = real("train")["features"] if ds.info.kind == "image" and "overfitting" in ev.families else None
    def probs(d: dict[str, Any]) -> np.ndarray | None:
        return None if d.get("probs") is None else np.asarray(d["probs"])

    return _Features(extractor.id, np.asarray(ref["features"]), np.asarray(fk["features"]), probs(fk), probs(ref),
                     train, getattr(extractor, "info", None))


KNN_METRICS = ("precision", "recall", "density", "coverage")


def _quality(ev: EvalConfig, feats: _Features, fake: torch.Tensor, seed: int) -> list[MetricResult]:
    from genbench.metrics.quality import evaluate_quality

    res = evaluate_quality(
        feats.real, feats.fake, fake_probs=feats.fake_probs, real_probs=feats.real_probs,
        extractor_id=feats.extractor_id, ref_split=ev.reference, seed=derive_seed(seed, "quality"), n_boot=ev.n_boot,
        extractor_info=feats.info,  # every row records the weights hash and the classifier's held-out accuracy
    )
    # Replaying controls drawn with replacement repeat samples exactly; repeated points have k-NN
    # radius 0, so the fake manifold shrinks and recall / coverage read low. Say so on those rows.
    n_dup = len(fake) - len(np.unique(fake.reshape(len(fake), -1).numpy(), axis=0))
    if n_dup:
        note = (f"{n_dup} of {len(fake)} generated samples are exact duplicates (e.g. a control replaying a "
                "split with replacement); duplicates have k-NN radius 0, which shrinks the generated manifold "
                "and lowers recall and coverage.")
        res = [r.with_(warnings=(*r.warnings, note)) if r.metric in KNN_METRICS else r for r in res]
    return res


def _overfitting(ev: EvalConfig, ds: Dataset, fake: torch.Tensor, feats: _Features | None, rf: RunFolder,
                 seed: int, device: torch.device) -> tuple[list[MetricResult], dict[str, str]]:
    """Memorisation checks in pixel space and, when features exist, in feature space; NN gallery."""
    from genbench.metrics.neighbours import nearest_neighbours
    from genbench.metrics.overfitting import evaluate_overfitting
    from genbench.reports.gallery import write_nn_gallery

    def flat(a: torch.Tensor) -> np.ndarray:
        return a.reshape(len(a), -1).numpy()

    train_x = ds.split("train").x
    held = ds.split(ev.reference).x
    res = evaluate_overfitting(flat(fake), flat(train_x), flat(held), space_name="pixels",
                               seed=derive_seed(seed, "overfitting"), device=device)
    if feats is not None and feats.train is not None and feats.extractor_id != "pixels":
        res += evaluate_overfitting(feats.fake, feats.train, feats.real, space_name=feats.extractor_id,
                                    seed=derive_seed(seed, "overfitting"), device=device)
    k = 3
    nn = nearest_neighbours(flat(fake), flat(train_x), k=k, device=device)
    g = write_nn_gallery(rf.artifacts / "nn_gallery.png", fake.numpy(), train_x.numpy(), n=ev.gallery_n, k=k, nn=nn)
    return res, {"nn_gallery": str(g.relative_to(rf.path)),
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

    t = time.perf_counter()
    with torch.no_grad():
        fake = draw_samples(gen, ev.n_samples, seed=derive_seed(cell.seed, "eval"), dataset=ds)
    timings["sample_s"] = time.perf_counter() - t
    samples_path = rf.artifacts / "samples.npz"
    atomic_save_npz(samples_path, x=fake[: min(len(fake), 2000)].numpy())
    artifacts["samples"] = str(samples_path.relative_to(rf.path))
    if ds.info.kind == "image":
        from genbench.reports.grids import write_sample_grid

        p = write_sample_grid(rf.artifacts / "samples.png", fake[:64].numpy())
        artifacts["sample_grid"] = str(p.relative_to(rf.path))
    else:
        from genbench.reports.grids import write_scatter

        p = write_scatter(rf.artifacts / "samples.png", fake[:5000].numpy(), ds.split("train").x[:5000].numpy())
        artifacts["sample_scatter"] = str(p.relative_to(rf.path))

    feats = None
    if "quality" in ev.families or ("coverage" in ev.families and ds.info.kind == "image"):
        t = time.perf_counter()
        feats = _features(ev, ds, fake, rf, device)
        timings["features_s"] = time.perf_counter() - t
    if "quality" in ev.families:
        t = time.perf_counter()
        metrics += _quality(ev, feats, fake, cell.seed)
        timings["quality_s"] = time.perf_counter() - t
    if "likelihood" in ev.families:
        from genbench.metrics.likelihood import evaluate_likelihood

        t = time.perf_counter()
        metrics += evaluate_likelihood(dataset=ds, samples=fake, model=gen, k=ev.iwae_k,
                                       n_test=ev.n_test or None, seed=derive_seed(cell.seed, "likelihood"),
                                       gmm_components=ev.gmm_components or None, device=device)
        timings["likelihood_s"] = time.perf_counter() - t
    if "overfitting" in ev.families and ds.info.kind == "image":
        t = time.perf_counter()
        res, arts = _overfitting(ev, ds, fake, feats, rf, cell.seed, device)
        metrics += res
        artifacts.update(arts)
        timings["overfitting_s"] = time.perf_counter() - t
    if "coverage" in ev.families:
        from genbench.metrics import coverage

        if isinstance(ds, MixtureDataset):
            metrics += coverage.evaluate_mode_coverage(fake.numpy(), ds)
        elif feats is not None and feats.fake_probs is not None:
            metrics += coverage.class_coverage(feats.fake_probs)
    return CellOutput(metrics=metrics, artifacts=artifacts, timings=timings, device=str(device),
                      control=not spec.trained)
