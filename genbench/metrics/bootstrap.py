"""Seeded bootstrap over samples: replicate values and percentile confidence intervals.

Any metric of one or more sample sets can be bootstrapped: each replicate resamples every set
independently, with replacement, at its own size, and recomputes the metric. The interval says
how much the number would move with another draw of the same number of samples; it does not
remove a metric's bias in n (FID's, for one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from genbench._validation import as_numpy, check_positive_int

__all__ = ["BootstrapCI", "bootstrap_ci", "bootstrap_replicates", "summarize_replicates"]


class BootstrapCI(NamedTuple):
    """A percentile bootstrap interval: ``(low, high)`` at ``level``, the replicates' std and count."""

    low: float
    high: float
    std: float
    level: float
    n_boot: int


def bootstrap_replicates(metric_fn: Callable[..., Any], *arrays: Any, n_boot: int, seed: int) -> np.ndarray:
    """Metric values on ``n_boot`` seeded resamples of the given sample sets.

    Parameters
    ----------
    metric_fn : callable
        ``metric_fn(*resampled_arrays)`` returning a number or a tuple of numbers.
    *arrays : array (n_i, ...)
        Sample sets (e.g. ``real, fake``); each is resampled along axis 0 with replacement.
    n_boot : int
        Number of replicates (>= 1).
    seed : int
        Seed of a ``np.random.default_rng``; all index draws come from it, so the replicates are
        a function of the seed alone.

    Returns
    -------
    array (n_boot, n_outputs), float64
    """
    n_boot = check_positive_int(n_boot, "n_boot")
    if not arrays:
        raise ValueError("bootstrap needs at least one sample set to resample.")
    arrs = [as_numpy(a) for a in arrays]
    for i, a in enumerate(arrs):
        if a.ndim == 0 or len(a) == 0:
            raise ValueError(f"sample set {i} is empty or a scalar (shape {a.shape}); pass arrays of samples.")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_boot):
        idx = [rng.integers(0, len(a), size=len(a)) for a in arrs]
        v = metric_fn(*(a[i] for a, i in zip(arrs, idx)))
        out.append(np.atleast_1d(np.asarray(v, dtype=np.float64)))
    return np.stack(out)


def summarize_replicates(values: Any, *, level: float = 0.95) -> BootstrapCI:
    """Percentile interval and std (ddof=1) of 1-D replicate values."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1); got {level!r}.")
    if not np.isfinite(v).all():
        raise ValueError(f"{int((~np.isfinite(v)).sum())} of {len(v)} bootstrap replicates are not finite; "
                         "the metric fails on resampled data (duplicates); use more samples.")
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(v, [alpha, 1.0 - alpha])
    std = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    return BootstrapCI(float(lo), float(hi), std, float(level), len(v))


def bootstrap_ci(metric_fn: Callable[..., Any], *arrays: Any, n_boot: int, seed: int,
                 level: float = 0.95) -> BootstrapCI:
    """Seeded percentile bootstrap confidence interval of a scalar metric over samples.

    Parameters
    ----------
    metric_fn : callable
        ``metric_fn(*arrays)`` returning a number; for metrics that return a tuple (IS and KID
        give ``(mean, std)``, precision/recall a pair) the first element is used; wrap the
        function to choose another.
    *arrays : array (n_i, ...)
        Sample sets, e.g. ``real, fake``; each is resampled with replacement at its own size.
    n_boot : int
        Number of replicates.
    seed : int
        Seed of the resampling.
    level : float
        Two-sided coverage of the percentile interval.

    Returns
    -------
    BootstrapCI
        ``(low, high, std, level, n_boot)``.

    Notes
    -----
    Resamples contain duplicates, which shrink k-NN radii (precision/recall, density/coverage)
    and covariances; read intervals as the spread under resampling, not as unbiased errors.

    References
    ----------
    Efron & Tibshirani 1993, "An Introduction to the Bootstrap" (percentile interval).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=400)
    >>> ci = bootstrap_ci(lambda a: a.mean(), x, n_boot=200, seed=0)
    >>> bool(ci.low < x.mean() < ci.high)
    True
    """
    reps = bootstrap_replicates(metric_fn, *arrays, n_boot=n_boot, seed=seed)
    return summarize_replicates(reps[:, 0], level=level)
