"""Parzen-window log-likelihood: genbench's chunked torch estimator against two peers, same inputs.

Peers: scikit-learn's ``KernelDensity(kernel="gaussian").score_samples`` with its default tree and
with one leaf (exact summation), and a naive scipy route (full ``cdist`` matrix, then
``logsumexp``). Outputs are checked against the naive route, so a fast wrong answer fails instead
of winning; sklearn's default tree is the exception (recorded, not asserted: see ``RTOL``).

Run: ``.venv/bin/python -m pytest benchmarks/test_bench_parzen.py --benchmark-group-by=param:case``
(compare the three implementations of one case as a ratio).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from scipy.special import logsumexp

from genbench.metrics.likelihood import parzen_log_likelihood

SIGMA = 0.2
# (n_samples, n_test, dim): digits-sized, digits with the protocol's 10,000 samples, MNIST-sized
CASES = {
    "s2000-t300-d64": (2000, 300, 64),
    "s10000-t500-d64": (10000, 500, 64),
    "s2000-t200-d784": (2000, 200, 784),
}


@pytest.fixture(autouse=True)
def _threads():
    # the same thread budget for torch, BLAS (scipy) and sklearn's trees on this 2-core machine
    torch.set_num_threads(2)


def _data(n_samples: int, n_test: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    # blurry "images": 20 random prototypes plus noise, in [0, 1]; samples and test share prototypes
    rng = np.random.default_rng(0)
    protos = rng.random((20, dim))

    def draw(n: int) -> np.ndarray:
        return np.clip(protos[rng.integers(0, 20, n)] + 0.1 * rng.standard_normal((n, dim)), 0.0, 1.0)

    return draw(n_samples), draw(n_test)


def naive_scipy(samples: np.ndarray, test: np.ndarray, sigma: float) -> np.ndarray:
    """The definition, with the full (N_test, N_samples) matrix in memory."""
    d2 = cdist(test, samples, "sqeuclidean")
    return logsumexp(-d2 / (2 * sigma**2), axis=1) - math.log(len(samples)) - test.shape[1] * math.log(
        sigma * math.sqrt(2 * math.pi))


def sklearn_kde(samples: np.ndarray, test: np.ndarray, sigma: float) -> np.ndarray:
    """scikit-learn's defaults (kd-tree, leaf_size=40, atol=rtol=0): what a user would call."""
    from sklearn.neighbors import KernelDensity

    return KernelDensity(kernel="gaussian", bandwidth=sigma).fit(samples).score_samples(test)


def sklearn_kde_one_leaf(samples: np.ndarray, test: np.ndarray, sigma: float) -> np.ndarray:
    """scikit-learn with every sample in one leaf: no node pruning, so every kernel is summed."""
    from sklearn.neighbors import KernelDensity

    return KernelDensity(kernel="gaussian", bandwidth=sigma, leaf_size=len(samples)).fit(samples).score_samples(test)


def genbench_parzen(samples: np.ndarray, test: np.ndarray, sigma: float) -> np.ndarray:
    return parzen_log_likelihood(samples, test, sigma=sigma)


IMPLS = {"genbench": genbench_parzen, "sklearn-kde": sklearn_kde, "sklearn-kde-one-leaf": sklearn_kde_one_leaf,
         "scipy-naive": naive_scipy}
# Agreement with the naive definition each implementation must meet. sklearn's default tree is timed but
# not asserted: its node-bound pruning was measured here up to ~135 nats too high in 784-D (and ~2e-4 nats
# off in 3-D); see scikit-learn issues #7492 and #27186. Its error is recorded in extra_info instead.
RTOL = {"genbench": 1e-10, "sklearn-kde": None, "sklearn-kde-one-leaf": 1e-10, "scipy-naive": 0.0}


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("case", list(CASES))
def test_parzen_speed(benchmark, case, impl):
    n_samples, n_test, dim = CASES[case]
    samples, test = _data(n_samples, n_test, dim)
    benchmark.extra_info.update(case=case, impl=impl, n_samples=n_samples, n_test=n_test, dim=dim, sigma=SIGMA,
                                torch_threads=torch.get_num_threads())
    out = benchmark.pedantic(IMPLS[impl], args=(samples, test, SIGMA), rounds=3, iterations=1, warmup_rounds=0)
    ref = naive_scipy(samples, test, SIGMA)
    benchmark.extra_info["max_abs_err_nats"] = float(np.abs(out - ref).max())
    if RTOL[impl] is not None:
        np.testing.assert_allclose(out, ref, rtol=RTOL[impl])
