"""Boundary checks with uniform messages: shapes, ranges, NaN/Inf, sample counts.

Validate once at a public boundary and say what to do; internal helpers trust their inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def as_numpy(x: Any, *, dtype: Any = None) -> np.ndarray:
    """Tensor or array-like -> numpy array (no copy where possible)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    return a.astype(dtype, copy=False) if dtype is not None else a


def check_finite(a: np.ndarray, name: str, *, hint: str = "check the generator's output") -> None:
    if a.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(a)
    if bad.any():
        n_bad_rows = int(bad.reshape(len(a), -1).any(axis=1).sum()) if a.ndim else 1
        first = int(np.argmax(bad.reshape(len(a), -1).any(axis=1))) if a.ndim else 0
        n_nan = int(np.isnan(a).sum())
        n_inf = int(np.isinf(a).sum())
        raise ValueError(
            f"{name} has {n_nan} NaN and {n_inf} Inf values in {n_bad_rows} of {len(a)} samples "
            f"(first at index {first}); {hint}."
        )


def check_features(a: Any, name: str, *, min_n: int = 1, dtype: Any = np.float64) -> np.ndarray:
    """A 2-D (n, d) finite feature array with at least ``min_n`` rows."""
    a = as_numpy(a)
    if a.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_samples, n_features); got shape {tuple(a.shape)}. "
            "Flatten images or extract features first."
        )
    check_n(len(a), min_n, name)
    check_finite(a, name)
    return a.astype(dtype, copy=False)


def check_n(n: int, min_n: int, name: str, *, why: str = "", fix: str = "") -> None:
    if n < min_n:
        why = f" {why}" if why else ""
        fix = fix or f"provide at least {min_n} samples"
        raise ValueError(f"{name} has {n} samples but at least {min_n} are needed{why}; {fix}.")


def check_same_width(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(
            f"{name_a} and {name_b} have mismatched shapes {tuple(a.shape[1:])} and {tuple(b.shape[1:])} "
            "per sample; compute both with the same feature extractor / dataset shape."
        )


def check_range(a: np.ndarray, lo: float, hi: float, name: str, *, tol: float = 1e-6) -> None:
    if a.size == 0:
        return
    amin, amax = float(a.min()), float(a.max())
    if amin < lo - tol or amax > hi + tol:
        n_out = int(((a < lo - tol) | (a > hi + tol)).sum())
        raise ValueError(
            f"{name} has {n_out} values outside the declared range [{lo}, {hi}] "
            f"(min {amin:.4g}, max {amax:.4g}); rescale to [{lo}, {hi}] (e.g. uint8 images / 255)."
        )


def check_images(x: Any, name: str, *, value_range: tuple[float, float] | None = (0.0, 1.0)) -> np.ndarray:
    """An (N, C, H, W) finite float array within ``value_range``."""
    a = as_numpy(x)
    if a.ndim != 4:
        raise ValueError(
            f"{name} must have shape (N, C, H, W); got {tuple(a.shape)}. Add a channel axis for grey images."
        )
    check_finite(a, name)
    if value_range is not None:
        check_range(a, *value_range, name)
    return a
