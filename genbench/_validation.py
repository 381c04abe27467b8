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


# --- sample-quality metrics (features, probabilities, sample counts) ---------------------------


def check_feature_pair(real: Any, fake: Any, *, min_n: int = 1, metric: str = "", why: str = "",
                       fix: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Validate two feature sets for a two-sample metric; returns float64 (n, d) arrays.

    Checks 2-D shape, at least ``min_n`` rows in each, finite values and equal widths, with
    messages that name the metric, the count and the fix.
    """
    what = f" for {metric}" if metric else ""
    out = []
    for a, name in ((real, "real"), (fake, "fake")):
        a = as_numpy(a)
        if a.ndim != 2:
            raise ValueError(
                f"{name} features{what} must be a 2-D array of shape (n_samples, n_features); got shape "
                f"{tuple(a.shape)}. Flatten images or extract features first."
            )
        if a.dtype.kind not in "fiub":
            raise ValueError(f"{name} features{what} must be numeric; got dtype {a.dtype}.")
        check_n(len(a), min_n, name, why=why or what.strip(), fix=fix)
        check_finite(a, name, hint="check the generator's output and the feature extractor")
        out.append(a.astype(np.float64, copy=False))
    if out[0].shape[1] != out[1].shape[1]:
        raise ValueError(
            f"real and fake features{what} have different widths ({out[0].shape[1]} vs {out[1].shape[1]}); "
            "extract both with the same feature extractor."
        )
    return out[0], out[1]


def check_probabilities(p: Any, name: str, *, atol: float = 1e-4) -> np.ndarray:
    """Validate class probabilities (n, classes): finite, in [0, 1], rows summing to 1; float64."""
    a = as_numpy(p)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_samples, n_classes); got shape {tuple(a.shape)}.")
    check_finite(a, name, hint="check the classifier's output")
    a = a.astype(np.float64, copy=False)
    sums = a.sum(axis=1)
    bad = (a.min(axis=1) < -atol) | (np.abs(sums - 1.0) > atol)
    if bad.any():
        first = int(np.argmax(bad))
        raise ValueError(
            f"{name} has {int(bad.sum())} of {len(a)} rows that are not probability vectors (row {first} sums to "
            f"{sums[first]:.6g}, min {a[first].min():.4g}); pass softmax outputs, or pass logits with kind='logits'."
        )
    return a


def check_positive_int(v: Any, name: str, *, minimum: int = 1) -> int:
    """An integer >= ``minimum`` (bools rejected)."""
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or int(v) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {v!r}.")
    return int(v)


def check_rows(x: Any, name: str, *, min_n: int = 1, dtype: Any = None) -> np.ndarray:
    """Samples as a finite 2-D (n, d) array: (n, d) is kept, (N, C, H, W) or any (N, ...) is flattened.

    ``dtype=None`` keeps float32 / float64 (so large float32 sets are not doubled) and turns
    anything else (integers, bool, float16) into float64.
    """
    a = as_numpy(x)
    if a.ndim < 2:
        raise ValueError(
            f"{name} must have one row per sample, shape (n, d) or (N, C, H, W); got shape {tuple(a.shape)}."
        )
    a = a.reshape(len(a), -1)
    if a.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be numeric; got dtype {a.dtype}.")
    check_n(len(a), min_n, name)
    if dtype is not None:
        a = a.astype(dtype, copy=False)
    elif a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    check_finite(a, name)
    return a


def check_positive(value: Any, name: str, *, fix: str = "") -> float:
    """A finite, strictly positive scalar (a bandwidth, a scale, a count used as a float)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number; got {value!r}.") from None
    if not np.isfinite(v) or v <= 0:
        fix = f"; {fix}" if fix else ""
        raise ValueError(f"{name} must be a finite number > 0; got {v!r}{fix}.")
    return v


def check_disjoint_rows(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str, *, fix: str) -> None:
    """Raise when any row of ``b`` also occurs, bit for bit, as a row of ``a``.

    Rows are compared on their float64 bytes after flattening (``-0.0`` counts as ``0.0``), so
    the check finds copies, not near-duplicates. Used where a hyper-parameter is tuned on ``a``
    and scored on ``b`` (Parzen sigma on validation, scored on test).
    """
    # + 0.0 turns -0.0 into 0.0, whose bytes differ but whose value does not
    fa = np.ascontiguousarray(np.asarray(a, dtype=np.float64).reshape(len(a), -1) + 0.0)
    fb = np.ascontiguousarray(np.asarray(b, dtype=np.float64).reshape(len(b), -1) + 0.0)
    seen = {row.tobytes() for row in fa}
    shared = [i for i, row in enumerate(fb) if row.tobytes() in seen]
    if shared:
        raise ValueError(
            f"{name_a} and {name_b} share {len(shared)} identical rows ({len(shared)} of {len(fb)} {name_b} rows, "
            f"first at {name_b} index {shared[0]}; {len(fa)} {name_a} rows); {fix}."
        )
