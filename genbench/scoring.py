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

    if _is_prefixed(reference) or DATASETS.entry(reference).meta.get("kind") != "image":
        return "pixels"
    info = load_dataset(reference).info
    if info.kind == "image" and info.n_classes and {"train", "test"} <= set(info.split_sizes):
        return f"domain:{reference}"
    return "pixels"


def _load_set(spec: str, split: str, role: str) -> tuple[torch.Tensor, dict[str, Any], str]:
    from genbench.data import load_dataset

    ds = load_dataset(spec)
    use = "all" if _is_prefixed(spec) else split
    try:
        part = ds.split(use)
    except ValueError as e:
        raise ValueError(f"{role} {spec!r}: {e}") from e
    return part.x, {"name": ds.info.name, "content_hash": ds.info.content_hash, "split": use,
                    "shape": list(ds.info.shape)}, use


def score(
    samples: str | torch.Tensor | np.ndarray,
    reference: str,
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
    batch_size: int = 256,
    kid_subset_size: int = 1000,
    kid_subsets: int = 100,
) -> list[MetricResult]:
    """Sample-quality metrics of ``samples`` against ``reference``.

    Parameters
    ----------
    samples : str or Tensor (N, C, H, W)
        A dataset spec for :func:`genbench.data.load_dataset` (``npz:fake.npz``, ``folder:dir``,
        or a built-in name, whose ``samples_split`` is used: a real-data baseline), or images in
        [0, 1].
    reference : str
        A dataset spec; built-in datasets use ``split``, ``npz:`` / ``folder:`` use ``all``.
    extractor : str or Extractor, optional
        Default :func:`default_extractor` (``domain:<reference>`` or ``pixels``).
    split : str
        Reference split for built-in datasets (``test`` by default).
    metrics : list of str, optional
        Subset of ``fid kid precision recall density coverage is`` (default: all; IS where the
        extractor has a classifier head, with an ``is_real`` row for the reference).
    seed, n_boot : int
        Seed of IS splits, KID subsets and the bootstrap; bootstrap replicates (0: none).
    cache_dir : path, optional
        Cache root for trained extractor weights and reference features.
    samples_split : str
        Split used when ``samples`` names a built-in dataset (``train``: disjoint from ``test``).
    device, weights : optional
        Passed to :func:`genbench.features.get_extractor` (``weights``: the Inception file).
    batch_size, kid_subset_size, kid_subsets : int
        Extraction batch size; KID's m and number of subsets (m is lowered, explicitly and
        reported, when there are fewer samples).

    Returns
    -------
    list of MetricResult
        Each with its protocol name (e.g. ``fid@domain-digits-<hash>/n=359v359/ref=test``), and
        params recording the extractor's facts (domain classifier test accuracy) and which data
        were compared.

    Examples
    --------
    >>> rows = score("npz:fake.npz", "digits")  # doctest: +SKIP
    >>> print(format_table(rows))  # doctest: +SKIP
    """
    from genbench.features import extract, feature_cache_key, get_extractor
    from genbench.metrics.quality import evaluate_quality

    ref_x, ref_meta, ref_split = _load_set(reference, split, "reference")
    if isinstance(samples, str):
        fake_x, fake_meta, _ = _load_set(samples, samples_split, "samples")
    else:
        fake_x = samples.detach() if isinstance(samples, torch.Tensor) else torch.as_tensor(np.asarray(samples))
        fake_meta = {"name": "<tensor>", "shape": list(fake_x.shape[1:])}
    if tuple(fake_x.shape[1:]) != tuple(ref_x.shape[1:]):
        raise ValueError(
            f"samples have shape {tuple(fake_x.shape[1:])} per example but the reference {reference!r} has "
            f"{tuple(ref_x.shape[1:])}; generate samples shaped like the reference (channels first, same size)."
        )
    ext = extractor
    if ext is None or isinstance(ext, str):
        ext = get_extractor(ext or default_extractor(reference), device=device, cache_dir=cache_dir, weights=weights)
    ref_out = extract(ext, ref_x, batch_size=batch_size, cache_dir=cache_dir,
                      cache_key=feature_cache_key(data_hash=ref_meta["content_hash"], split=ref_split))
    fake_out = extract(ext, fake_x, batch_size=batch_size)
    want_is = metrics is None or any(m in ("is", "inception_score") for m in metrics)
    probs_ok = ext.has_probs and want_is
    rows = evaluate_quality(
        ref_out["features"], fake_out["features"],
        fake_probs=fake_out.get("probs") if probs_ok else None,
        real_probs=ref_out.get("probs") if probs_ok else None,
        extractor_id=ext.id, ref_split=ref_split, seed=seed, n_boot=n_boot, metrics=metrics,
        kid_subset_size=kid_subset_size, kid_subsets=kid_subsets, extractor_info=ext.info,
    )
    data = {"reference": ref_meta, "samples": fake_meta}
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
