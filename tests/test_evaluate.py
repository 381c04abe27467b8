"""The cell evaluation pipeline's own logic (the metrics themselves are tested against oracles elsewhere)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genbench.data import load_dataset
from genbench.evaluate import _Features, _quality, draw_samples
from genbench.matrix import EvalConfig


def _feats(fake: np.ndarray, real: np.ndarray) -> _Features:
    return _Features("pixels", real, fake, None, None, None, None)


def test_duplicate_samples_are_flagged_on_knn_rows_only():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(200, 4))
    uniq = rng.normal(size=(100, 4))
    dup = np.concatenate([uniq, uniq[:50]])
    ev = EvalConfig(n_samples=150)
    rows = _quality(ev, _feats(dup, real), torch.from_numpy(dup), seed=0)
    flagged = {r.metric for r in rows if any("exact duplicates" in w for w in r.warnings)}
    assert flagged == {"precision", "recall", "density", "coverage"}
    assert "50 of 150" in next(r for r in rows if r.metric == "recall").warnings[-1]
    clean = _quality(ev, _feats(uniq, real), torch.from_numpy(uniq), seed=0)
    assert not any("exact duplicates" in w for r in clean for w in r.warnings)


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
