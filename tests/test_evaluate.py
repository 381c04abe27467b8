"""The cell evaluation pipeline's own logic (the metrics themselves are tested against oracles elsewhere)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genbench.data import load_dataset
from genbench.data._base import make_dataset
from genbench.evaluate import Reference, draw_samples, evaluate_samples


def _reference(real: np.ndarray) -> Reference:
    ds = make_dataset("toy-points", "points", {"test": (real.astype(np.float32), None)}, value_range=None,
                      n_classes=None)
    return Reference(ds, "test", ds.split("test").x)


def test_duplicate_samples_are_flagged_on_knn_rows_only():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(200, 4))
    uniq = rng.normal(size=(100, 4)).astype(np.float32)
    dup = np.concatenate([uniq, uniq[:50]])
    rows = evaluate_samples(torch.from_numpy(dup), _reference(real), extractor="pixels", seed=0)
    flagged = {r.metric for r in rows if any("exact duplicates" in w for w in r.warnings)}
    assert flagged == {"precision", "recall", "density", "coverage"}
    assert "50 of 150" in next(r for r in rows if r.metric == "recall").warnings[-1]
    clean = evaluate_samples(torch.from_numpy(uniq), _reference(real), extractor="pixels", seed=0)
    assert not any("exact duplicates" in w for r in clean for w in r.warnings)


def test_equal_n_subsamples_and_real_vs_real_rows():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(300, 3)).astype(np.float32)
    other = rng.normal(size=(500, 3)).astype(np.float32)
    fake = rng.normal(size=(1000, 3)).astype(np.float32) + 0.3
    ref = Reference(_reference(real).dataset, "test", torch.from_numpy(real), other=torch.from_numpy(other),
                    other_split="train")
    rows = {r.metric: r for r in evaluate_samples(torch.from_numpy(fake), ref, extractor="pixels", seed=0,
                                                  n_eval=100, repeats=4, metrics=["fid", "recall"])}
    fid, rr = rows["fid"], rows["fid_real"]
    # both sets at n=100, four subsamples: mean and std over them, named in the protocol
    assert fid.n == {"real": 100, "fake": 100} and fid.protocol.fixed == (("subsamples", 4),)
    assert fid.std_kind == "subsamples" and len(fid.params["subsample_values"]) == 4
    assert fid.value == np.mean(fid.params["subsample_values"])
    assert fid.std == np.std(fid.params["subsample_values"], ddof=1)
    # the real-vs-real row compares two real samples under the same protocol: the ceiling
    assert str(rr.protocol) == "fid_real@pixels/n=100v100/ref=test/subsamples=4"
    assert rr.value < fid.value and rows["recall_real"].params["real_vs_real"] == "train"


def test_real_vs_real_rows_are_computed_once_per_reference_and_protocol(monkeypatch):
    import genbench.evaluate as ev

    ds = load_dataset("mixture-ring")
    ref = Reference.of(ds, "test", train=False)
    fake = ds.split("val").x
    calls = []
    real_eq = ev._equal_n_quality
    monkeypatch.setattr(ev, "_equal_n_quality", lambda *a, **k: calls.append(k.get("real_vs_real")) or real_eq(*a, **k))
    monkeypatch.setattr(ev, "_REAL_VS_REAL", {})
    kw = dict(extractor="pixels", n_eval=200, repeats=2, metrics=["fid", "recall"])
    first = [r for r in evaluate_samples(fake, ref, seed=0, **kw) if r.metric.endswith("_real")]
    second = [r for r in evaluate_samples(fake[:500], ref, seed=0, **kw) if r.metric.endswith("_real")]
    assert calls == [None, "train", None] and first == second  # another model, the same real-vs-real rows
    other_seed = [r for r in evaluate_samples(fake, ref, seed=1, **kw) if r.metric.endswith("_real")]
    assert calls[-1] == "train" and [r.value for r in other_seed] != [r.value for r in first]
    # computed afresh, the cached rows are the same numbers
    monkeypatch.setattr(ev, "_REAL_VS_REAL", {})
    fresh = [r for r in evaluate_samples(fake, ref, seed=0, **kw) if r.metric.endswith("_real")]
    assert fresh == first


class _Bad:
    def __init__(self, out):
        self.out = out

    def sample(self, n, *, seed):
        return self.out[:n]


def test_draw_samples_checks_shape_range_and_finiteness():
    ds = load_dataset("digits")
    with pytest.raises(ValueError, match=r"shape \(5, 64\), expected \(5, 1, 8, 8\)"):
        draw_samples(_Bad(torch.zeros(5, 64)), 5, seed=0, dataset=ds)
    with pytest.raises(ValueError, match="outside the declared range"):
        draw_samples(_Bad(torch.full((5, 1, 8, 8), 2.0)), 5, seed=0, dataset=ds)
    x = torch.zeros(5, 1, 8, 8)
    x[2, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        draw_samples(_Bad(x), 5, seed=0, dataset=ds)
