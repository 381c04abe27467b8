"""Score a sample set against a reference dataset with the sample-quality metrics.

``genbench score --samples npz:fake.npz --reference digits`` lands here: load both sets, pick the
extractor (the domain classifier for built-in labelled image datasets, else pixels), extract
features (the reference's cached by content hash), and compute FID, KID, precision/recall,
density/coverage and IS as :class:`~genbench.results.MetricResult` rows with protocol names.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from genbench.results import MetricResult

__all__ = ["default_extractor", "format_table", "score"]


def _is_prefixed(spec: str) -> bool:
    from genbench.data import DATASETS

    return DATASETS.entry(spec).name.endswith(":")


def default_extractor(reference: str) -> str:
    """``domain:<reference>`` for built-in labelled image datasets with train/test splits, else ``pixels``."""
    from genbench.data import DATASETS, load_dataset
    from genbench.evaluate import default_extractor as rule

    if _is_prefixed(reference) or DATASETS.entry(reference).meta.get("kind") != "image":
        return "pixels"
    return rule(load_dataset(reference))


def _as_dataset(data: Any, role: str) -> Any:
    """A dataset spec string, or an in-memory array of images (N, C, H, W) in [0, 1] or points (N, D)."""
    from genbench._validation import as_numpy
    from genbench.data import load_dataset
    from genbench.data._base import make_dataset

    if isinstance(data, str):
        return load_dataset(data)
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


def score(
    samples: str | torch.Tensor | np.ndarray,
    reference: str | torch.Tensor | np.ndarray,
    *,
    extractor: Any = None,
    split: str = "test",
    metrics: list[str] | None = None,
    seed: int = 0,
    n_boot: int = 0,
    cache_dir: str | os.PathLike | None = None,
    samples_split: str = "train",
    device: str | None = None,
    weights: str | os.PathLike | None = None,
    kid_subset_size: int = 1000,
    kid_subsets: int = 100,
    n_eval: int = 0,
    repeats: int | None = None,
) -> list[MetricResult]:
    """Sample-quality metrics of ``samples`` against ``reference``, by the road the matrix cells take.

    Parameters
    ----------
    samples : str, Tensor or array
        A dataset spec for :func:`genbench.data.load_dataset` (``npz:fake.npz``, ``folder:dir``,
        or a built-in name, whose ``samples_split`` is used: a real-data baseline), or images in
        [0, 1] shaped (N, C, H, W) (points: (N, D)).
    reference : str, Tensor or array
        A dataset spec (built-in datasets use ``split``, ``npz:`` / ``folder:`` use ``all``), or an array.
    extractor : str or Extractor, optional
        Default :func:`default_extractor` (``domain:<reference>`` or ``pixels``).
    split : str
        Reference split for built-in datasets (``test`` by default).
    metrics : list of str, optional
        Quality outputs (``fid kid precision recall density coverage is vendi``; default: all that
        the extractor allows, IS with an ``is_real`` row where it has a classifier head).
    seed, n_boot : int
        The evaluation seed (IS splits, KID subsets, bootstrap: derived from it as in a matrix
        cell); bootstrap replicates (0: none).
    cache_dir : path, optional
        Cache root for trained extractor weights and reference features (default ``$GENBENCH_CACHE``).
    samples_split : str
        Split used when ``samples`` names a built-in dataset (``train``: disjoint from ``test``).
    device, weights : optional
        Passed to :func:`genbench.features.get_extractor` (``weights``: the Inception file).
    kid_subset_size, kid_subsets : int
        KID's m and number of subsets (m is lowered, explicitly and reported, when there are fewer samples).
    n_eval, repeats : equal-n comparison, as in the matrix (:class:`~genbench.matrix.EvalConfig`): both sets
        are subsampled to ``n_eval`` (0: the smaller set), ``repeats`` times (default the matrix's).

    Returns
    -------
    list of MetricResult
        Each with its protocol record (e.g. ``fid@domain-digits-<hash>/n=359v359/ref=test``), and
        params recording the extractor's facts (domain classifier test accuracy) and which data
        were compared.

    Examples
    --------
    >>> rows = score("npz:fake.npz", "digits")  # doctest: +SKIP
    >>> print(format_table(rows))  # doctest: +SKIP
    """
    from genbench.evaluate import Reference, evaluate_samples
    from genbench.features import feature_cache_key
    from genbench.matrix import EvalConfig

    ref_ds = _as_dataset(reference, "reference")
    ref_x, ref_split = _part(ref_ds, reference, split, "reference")
    fake_ds = _as_dataset(samples, "samples")
    fake_x, _ = _part(fake_ds, samples, samples_split, "samples")
    if tuple(fake_x.shape[1:]) != tuple(ref_x.shape[1:]):
        raise ValueError(
            f"samples have shape {tuple(fake_x.shape[1:])} per example but the reference {ref_ds.name!r} has "
            f"{tuple(ref_x.shape[1:])}; generate samples shaped like the reference (channels first, same size)."
        )
    ref = Reference(ref_ds, ref_split, ref_x,
                    cache_key=feature_cache_key(data_hash=ref_ds.info.content_hash, split=ref_split))
    rows = evaluate_samples(fake_x, ref, families=("quality",), extractor=extractor or "domain", seed=seed,
                            n_boot=n_boot, device=device, cache_dir=cache_dir, weights=weights, metrics=metrics,
                            settings={"kid": {"subset_size": kid_subset_size, "subsets": kid_subsets}},
                            n_eval=n_eval, repeats=EvalConfig.quality_repeats if repeats is None else repeats)
    data = {"reference": {"name": ref_ds.info.name, "content_hash": ref_ds.info.content_hash, "split": ref_split,
                          "shape": list(ref_ds.info.shape)},
            "samples": {"name": fake_ds.info.name, "content_hash": fake_ds.info.content_hash,
                        "shape": list(fake_x.shape[1:])}}
    return [r.with_(params={**r.params, "data": data}) for r in rows]


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
