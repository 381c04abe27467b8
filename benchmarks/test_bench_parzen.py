"""Parzen-window log-likelihood at the protocol's size: genbench against scikit-learn and the bare GEMMs.

The protocol (Goodfellow et al. 2014): 10,000 generated samples, 784-D (MNIST), scored on the
10,000 test images. Cases grow the test set (1,000 / 3,000 / 10,000) at that sample count and
dimension, so the time's growth with n shows. Implementations, on the same float64 inputs:

- ``genbench``: :func:`genbench.metrics.likelihood.parzen_log_likelihood`, float64 distances
  (the default) and, as ``genbench-float32``, its ``distance_dtype="float32"`` option;
- ``sklearn-kde``: ``KernelDensity(kernel="gaussian").score_samples`` with its defaults (what a
  user calls). Far too slow for the full test set, it is **timed on the first 50 test points and
  its time scaled by n_test / 50** (``extra_info["scale"]``; summarize.py applies it): its cost
  is linear in the test points;
- ``bare-gemm-float64`` / ``bare-gemm-float32``: only the matrix products any exact method needs,
  ``test @ samples.T`` in chunks (no norms, no exp, no logsumexp): the machine's limit.

Outputs are checked against the definition (scipy ``cdist`` + ``logsumexp``) on the first 200
test points, so a fast wrong answer fails instead of winning; scikit-learn's tree is recorded,
not asserted (its node-bound pruning was measured here up to ~135 nats off in 784-D; scikit-learn
issues #7492 and #27186).
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest
import torch
from _bench import run_timed
from scipy.spatial.distance import cdist
from scipy.special import logsumexp

from genbench.metrics.likelihood import parzen_log_likelihood

SIGMA = 0.2
N_SAMPLES, DIM = 10_000, 784
CASES = {f"t{t}-s10000-d784": t for t in (1000, 3000, 10_000)}
SKLEARN_SUBSET = 50
CHECK_ROWS = 200


@cache
def _data(n_test: int) -> tuple[np.ndarray, np.ndarray]:
    # blurry "images": 20 random prototypes plus noise, in [0, 1]; samples and test share prototypes
    rng = np.random.default_rng(0)
    protos = rng.random((20, DIM))

    def draw(n: int) -> np.ndarray:
        return np.clip(protos[rng.integers(0, 20, n)] + 0.1 * rng.standard_normal((n, DIM)), 0.0, 1.0)

    return draw(N_SAMPLES), draw(n_test)


def naive_scipy(samples: np.ndarray, test: np.ndarray, sigma: float) -> np.ndarray:
    """The definition, with the full (N_test, N_samples) matrix in memory."""
    d2 = cdist(test, samples, "sqeuclidean")
    return logsumexp(-d2 / (2 * sigma**2), axis=1) - math.log(len(samples)) - test.shape[1] * math.log(
        sigma * math.sqrt(2 * math.pi))


@cache
def _reference(n_test: int) -> np.ndarray:
    samples, test = _data(n_test)
    return naive_scipy(samples, test[:CHECK_ROWS], SIGMA)


def genbench_parzen(samples, test):
    return parzen_log_likelihood(samples, test, sigma=SIGMA)


def genbench_parzen_f32(samples, test):
    return parzen_log_likelihood(samples, test, sigma=SIGMA, distance_dtype="float32")


def sklearn_kde(samples, test):
    from sklearn.neighbors import KernelDensity

    return KernelDensity(kernel="gaussian", bandwidth=SIGMA).fit(samples).score_samples(test[:SKLEARN_SUBSET])


def _bare_gemm(dtype: torch.dtype):
    def run(samples, test):
        s = torch.from_numpy(samples).to(dtype)
        t = torch.from_numpy(test).to(dtype)
        out = torch.empty(1024, len(s), dtype=dtype)
        for i in range(0, len(t), 1024):
            tb = t[i:i + 1024]
            torch.mm(tb, s.T, out=out[:len(tb)])
        return None

    return run


IMPLS = {"genbench": genbench_parzen, "genbench-float32": genbench_parzen_f32, "sklearn-kde": sklearn_kde,
         "bare-gemm-float64": _bare_gemm(torch.float64), "bare-gemm-float32": _bare_gemm(torch.float32)}
# agreement with the definition on the checked rows; None: recorded only
RTOL = {"genbench": 1e-10, "genbench-float32": 1e-4, "sklearn-kde": None}


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("case", list(CASES))
def test_parzen_speed(benchmark, case, impl):
    n_test = CASES[case]
    samples, test = _data(n_test)
    scale = n_test / SKLEARN_SUBSET if impl == "sklearn-kde" else 1.0
    timed_rows = SKLEARN_SUBSET if impl == "sklearn-kde" else n_test
    out = run_timed(benchmark, IMPLS[impl], samples, test, suite="parzen", case=case, impl=impl,
                    rounds=1 if n_test * N_SAMPLES >= 3e7 or impl == "sklearn-kde" else 3,
                    n_samples=N_SAMPLES, n_test=n_test, dim=DIM, sigma=SIGMA, scale=scale, timed_test_rows=timed_rows)
    if impl.startswith("bare-gemm"):
        return
    rows = min(CHECK_ROWS, len(out))
    ref = _reference(n_test)[:rows]
    benchmark.extra_info["max_abs_err_nats"] = float(np.abs(out[:rows] - ref).max())
    if RTOL[impl] is not None:
        np.testing.assert_allclose(out[:rows], ref, rtol=RTOL[impl])
