"""Streaming feature statistics for FID: mean and covariance accumulated in float64 across batches."""

from __future__ import annotations

from typing import Any

import numpy as np

from genbench._validation import as_numpy, check_finite


class RunningStats:
    """Mean and covariance of features seen batch by batch, equal to ``np.cov`` on the concatenation.

    Batches are merged with the pairwise update of Chan, Golub & LeVeque (1979): each batch's
    own centred scatter matrix plus a correction for the shift of the mean, all in float64. That
    avoids the cancellation of the textbook ``E[x x^T] - mu mu^T`` for features with a large mean
    (post-ReLU activations), and memory stays O(d^2) for any number of samples.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(1000, 5))
    >>> rs = RunningStats()
    >>> for b in np.array_split(x, 7):
    ...     _ = rs.update(b)
    >>> bool(np.allclose(rs.cov, np.cov(x, rowvar=False), rtol=1e-12, atol=1e-14))
    True
    """

    def __init__(self, dim: int | None = None) -> None:
        self.n = 0
        self.dim = dim
        self._mean: np.ndarray | None = None
        self._scatter: np.ndarray | None = None  # sum of (x - mean)(x - mean)^T

    def update(self, x: Any) -> RunningStats:
        """Add a batch of features (b, d)."""
        a = as_numpy(x)
        if a.ndim != 2:
            raise ValueError(f"RunningStats.update takes features (batch, d); got shape {tuple(a.shape)}.")
        check_finite(a, "features")
        a = a.astype(np.float64, copy=False)
        if self.dim is None:
            self.dim = a.shape[1]
        elif a.shape[1] != self.dim:
            raise ValueError(f"batch has {a.shape[1]} features but earlier batches had {self.dim}; "
                             "use one extractor per RunningStats.")
        if len(a) == 0:
            return self
        mean_b = a.mean(axis=0)
        c = a - mean_b
        self._merge(len(a), mean_b, c.T @ c)
        return self

    def _merge(self, n_b: int, mean_b: np.ndarray, scatter_b: np.ndarray) -> None:
        if self.n == 0:
            self.n, self._mean, self._scatter = n_b, mean_b.copy(), scatter_b.copy()
            return
        assert self._mean is not None and self._scatter is not None
        n = self.n + n_b
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (n_b / n)
        self._scatter = self._scatter + scatter_b + np.outer(delta, delta) * (self.n * n_b / n)
        self.n = n

    def merge(self, other: RunningStats) -> RunningStats:
        """Fold another accumulator's samples into this one (e.g. from parallel workers)."""
        if other.n:
            if self.dim is not None and other.dim != self.dim:
                raise ValueError(f"cannot merge statistics of width {other.dim} into width {self.dim}.")
            self.dim = other.dim
            assert other._mean is not None and other._scatter is not None
            self._merge(other.n, other._mean, other._scatter)
        return self

    @property
    def mean(self) -> np.ndarray:
        """Mean (d,), float64."""
        if self._mean is None:
            raise ValueError("RunningStats has seen no samples yet.")
        return self._mean.copy()

    @property
    def cov(self) -> np.ndarray:
        """Covariance (d, d), float64, ddof=1 as ``np.cov(..., rowvar=False)``."""
        if self.n < 2 or self._scatter is None:
            raise ValueError(f"a covariance needs at least 2 samples; RunningStats has seen {self.n}.")
        return self._scatter / (self.n - 1)
