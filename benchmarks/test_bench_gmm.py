"""GMM EM at the default matrix's sizes: genbench's batched steps against scikit-learn's GaussianMixture.

The GMM estimate fits a full-covariance mixture to 10,000 generated samples for every component count
of its grid (digits: 64-D, 1 to 10 components; the 2-D mixtures: up to 50). Implementations, on the
same float64 inputs, seed and settings:

- ``genbench``: :class:`genbench.metrics.likelihood._em.GaussianMixture`, scikit-learn's EM with the
  full-covariance E- and M-steps batched over components (what the GMM estimate fits);
- ``sklearn``: ``sklearn.mixture.GaussianMixture`` itself.

Both run exactly ``ITERS`` EM iterations (``tol=0``), so the time compares the same work; both run
under the GMM estimate's settings (one BLAS thread, subnormals flushed to zero). The fits are checked
against each other: the same iteration count, and means and mean log-likelihoods equal to a relative
1e-8, so a fast wrong answer fails instead of winning.
"""

from __future__ import annotations

import warnings
from functools import cache

import numpy as np
import pytest
from _bench import run_timed

ITERS = 20
CASES = {"digits-like-d64-k2": (64, 2), "digits-like-d64-k5": (64, 5), "digits-like-d64-k10": (64, 10),
         "ring-d2-k50": (2, 50)}


@cache
def _data(dim: int) -> np.ndarray:
    """10,000 rows: digit-like (prototypes plus noise on a 17-level grid, constant border pixels) in 64-D,
    or a ring of 8 Gaussians in 2-D."""
    rng = np.random.default_rng(0)
    n = 10_000
    if dim == 2:
        angles = 2 * np.pi * rng.integers(0, 8, n) / 8
        return np.stack([np.cos(angles), np.sin(angles)], 1) * 2 + 0.05 * rng.standard_normal((n, 2))
    protos = rng.random((10, dim))
    x = np.clip(protos[rng.integers(0, 10, n)] + 0.15 * rng.standard_normal((n, dim)), 0, 1)
    x = np.round(x * 16) / 16
    x[:, :8] = 0.0
    return x


def _fit(cls, x: np.ndarray, k: int, reg: float):
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    from genbench._runtime import flush_denormals

    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"), flush_denormals():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = cls(n_components=k, covariance_type="full", reg_covar=reg, max_iter=ITERS, tol=0.0, random_state=0)
        gm.fit(x)
        return gm, float(gm.score(x))


def _impls():
    from sklearn.mixture import GaussianMixture as Peer

    from genbench.metrics.likelihood._em import GaussianMixture

    return {"genbench": GaussianMixture, "sklearn": Peer}


@cache
def _reference(case: str):
    dim, k = CASES[case]
    return _fit(_impls()["sklearn"], _data(dim), k, _reg(dim))


def _reg(dim: int) -> float:
    return (1 / 16) ** 2 / 12 if dim == 64 else 1e-6  # the GMM estimate's reg_covar on each kind of data


@pytest.mark.parametrize("impl", ["genbench", "sklearn"])
@pytest.mark.parametrize("case", list(CASES))
def test_gmm_speed(benchmark, case, impl):
    dim, k = CASES[case]
    x = _data(dim)
    gm, score = run_timed(benchmark, _fit, _impls()[impl], x, k, _reg(dim), suite="gmm", case=case, impl=impl,
                          rounds=3, warmup_rounds=0, n=len(x), dim=dim, components=k, em_iterations=ITERS)
    ref, ref_score = _reference(case)
    assert gm.n_iter_ == ref.n_iter_ == ITERS
    np.testing.assert_allclose(gm.means_, ref.means_, rtol=1e-8, atol=1e-12)
    assert score == pytest.approx(ref_score, rel=1e-8)
