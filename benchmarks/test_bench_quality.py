"""FID's trace term: genbench's symmetric eigen route against scipy ``sqrtm`` and torch-fidelity, same inputs.

All three start from the same float64 statistics (mean, covariance) and return FID:

- ``genbench``: Cholesky of S_r, ``eigvalsh(L^T S_f L)`` (PROTOCOLS.md);
- ``scipy-sqrtm``: ``scipy.linalg.sqrtm(S_r S_f)``, the pytorch-fid / clean-fid route;
- ``torch-fidelity``: ``eigvals(S_r S_f)`` cast to complex128 (``fid_statistics_to_metric``).

Outputs are checked against scipy's at full rank (n > d), so a fast wrong answer fails instead of
winning. Also the whole of ``frechet_distance`` (covariances included) at each size, for scale.

Run: ``.venv/bin/python -m pytest benchmarks/test_bench_quality.py -m "" --benchmark-only``; the
ratio table comes from ``benchmarks/summarize.py`` (see benchmarks/README.md).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from _bench import run_timed

# imported here, not in the timed call: its first import (torchvision) would count as time and memory
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

from genbench.metrics.quality import feature_statistics, frechet_distance, frechet_distance_from_stats

# (n per set, d): the domain classifier's width at digits' test size, a mid-sized feature space,
# Inception's pool3 with n > d (full-rank covariances, so all three routes are well defined)
CASES = {"n1000-d64": (1000, 64), "n2000-d512": (2000, 512), "n4096-d2048": (4096, 2048)}


@cache
def _features(n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    # correlated, post-ReLU-like features with different spectra, like two generators' pool3 outputs
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    real = np.maximum(rng.normal(size=(n, d)) @ mix, 0.0)
    fake = np.maximum(rng.normal(size=(n, d)) @ (mix + 0.1 * rng.normal(size=(d, d)) / np.sqrt(d)) + 0.05, 0.0)
    return real, fake


@cache
def _reference(n: int, d: int) -> float:
    """scipy's value, computed once per case (sqrtm takes ~15 s at d=2048)."""
    return scipy_sqrtm(*_stats(n, d))


@cache
def _stats(n: int, d: int) -> tuple[np.ndarray, ...]:
    real, fake = _features(n, d)
    return (*feature_statistics(real), *feature_statistics(fake))


def genbench_route(mu1, s1, mu2, s2) -> float:
    return frechet_distance_from_stats(mu1, s1, mu2, s2)


def scipy_sqrtm(mu1, s1, mu2, s2) -> float:
    from scipy import linalg

    covmean = linalg.sqrtm(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))


def torch_fidelity_route(mu1, s1, mu2, s2) -> float:
    out = fid_statistics_to_metric({"mu": mu1, "sigma": s1}, {"mu": mu2, "sigma": s2}, verbose=False)
    return float(out[KEY_METRIC_FID])


IMPLS = {"genbench": genbench_route, "scipy-sqrtm": scipy_sqrtm, "torch-fidelity": torch_fidelity_route}


def _rounds(d: int, impl: str = "") -> tuple[int, int]:
    # sqrtm at d=2048 takes ~15 s a call here: one round of it for the large case. The others get a
    # warm-up call at every size (the first LAPACK call of a process at a size pays for its workspace
    # and thread start-up) and 3 rounds at d=2048 (a few seconds each)
    if d > 1024:
        return (1, 0) if impl == "scipy-sqrtm" else (3, 1)
    return (3, 1) if d > 256 else (10, 1)


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("case", list(CASES))
def test_fid_trace_term_speed(benchmark, case, impl):
    n, d = CASES[case]
    stats = _stats(n, d)
    rounds, warmup = _rounds(d, impl)
    value = run_timed(benchmark, IMPLS[impl], *stats, suite="fid-from-statistics", case=case, impl=impl,
                      rounds=rounds, warmup_rounds=warmup, n=n, d=d)
    ref = _reference(n, d)
    benchmark.extra_info.update(fid=value, rel_diff_to_sqrtm=abs(value / ref - 1))
    assert value == pytest.approx(ref, rel=1e-8)


@pytest.mark.parametrize("case", list(CASES))
def test_fid_from_features_speed(benchmark, case):
    """The whole metric as users call it: float64 covariances of both sets, then the trace term."""
    n, d = CASES[case]
    real, fake = _features(n, d)
    rounds, warmup = _rounds(d)
    value = run_timed(benchmark, frechet_distance, real, fake, suite="fid-from-features", case=case,
                      impl="genbench-frechet_distance", rounds=rounds, warmup_rounds=warmup, n=n, d=d)
    benchmark.extra_info["fid"] = value
    assert value == pytest.approx(_reference(n, d), rel=1e-8)
