"""Shared helpers for the per-family quality tests on `digits`.

The judge is a classifier trained on real digits, independent of genbench's own feature
extractors, so that a model's quality test does not lean on code under test elsewhere.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from genbench.data import load_dataset

CONFIDENT = 0.9


@lru_cache(maxsize=1)
def digits_judge():
    """Logistic regression on the digits train split (about 96% test accuracy)."""
    from sklearn.linear_model import LogisticRegression

    ds = load_dataset("digits")
    clf = LogisticRegression(max_iter=2000, C=0.5)
    clf.fit(ds.train.x.reshape(len(ds.train.x), -1).numpy(), ds.train.y.numpy())
    return clf


def recognition_rate(samples) -> float:
    """Share of samples (N, 1, 8, 8) in [0, 1] that the judge assigns a class with prob >= 0.9."""
    x = samples.detach().cpu().numpy() if hasattr(samples, "detach") else np.asarray(samples)
    p = digits_judge().predict_proba(x.reshape(len(x), -1))
    return float((p.max(axis=1) >= CONFIDENT).mean())
