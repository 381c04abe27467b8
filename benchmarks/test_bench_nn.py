"""Exact k-NN search: genbench's chunked search against scikit-learn's brute force, same run, same data.

Run: ``.venv/bin/python -m pytest benchmarks/test_bench_nn.py --benchmark-only`` (add ``-m "slow or
not slow"`` for the MNIST-sized case, ``-m gpu`` for CUDA). Compare the two rows of a case: the
result is a ratio. Inputs are float32 (images / features as they arrive); scikit-learn then
computes in float32 while ours is exact in float64, so ours does strictly more work per pair.
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors

from genbench.metrics.neighbours import nearest_neighbours

# name, queries, references, dimension, k
CASES = [
    pytest.param(("digits-like", 400, 1258, 64, 1), id="digits-like"),
    pytest.param(("features", 2000, 10000, 256, 5), id="features"),
    pytest.param(("mnist-subset", 2000, 20000, 784, 5), id="mnist-subset"),
    pytest.param(("mnist", 10000, 60000, 784, 5), id="mnist", marks=pytest.mark.slow),
]


@lru_cache(maxsize=2)
def _data(n: int, m: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((n, d), dtype=np.float32), rng.random((m, d), dtype=np.float32)


def _ours(device: str | None):
    return lambda q, r, k: nearest_neighbours(q, r, k=k, device=device)


def _sklearn(q, r, k):
    return NearestNeighbors(n_neighbors=k, algorithm="brute").fit(r).kneighbors(q)


IMPLS = [
    pytest.param(("genbench", _ours(None)), id="genbench"),
    pytest.param(("sklearn-brute", _sklearn), id="sklearn-brute"),
    pytest.param(("genbench-cuda", _ours("cuda")), id="genbench-cuda", marks=[
        pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES)
def test_nn_search(benchmark, case, impl):
    name, n, m, d, k = case
    impl_name, fn = impl
    q, r = _data(n, m, d)
    benchmark.extra_info.update({
        "case": name, "n_queries": n, "n_references": m, "dim": d, "k": k, "dtype": "float32",
        "impl": impl_name, "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
    })
    rounds = 1 if n * m * d > 1e10 else 3
    dist, idx = benchmark.pedantic(fn, args=(q, r, k), rounds=rounds, iterations=1, warmup_rounds=0)
    # the timed answer is the right one: float64 brute force on the first 100 queries
    ref_d, ref_i = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(r.astype(np.float64)).kneighbors(
        q[:100].astype(np.float64))
    np.testing.assert_array_equal(np.asarray(idx)[:100], ref_i)
    np.testing.assert_allclose(np.asarray(dist)[:100], ref_d, rtol=0, atol=1e-5)
