"""Exact k-NN search: genbench against scikit-learn's brute force and faiss's flat index, same run, same data.

Sizes grow from digits (400 generated x 1,258 training images x 64 pixels) through feature and
MNIST-subset sizes to MNIST itself (10,000 x 60,000 x 784; minutes, so it runs only with
``GENBENCH_BENCH_LARGE=1``). Inputs are float32 (images / features as they arrive).

- ``genbench``: :func:`genbench.metrics.neighbours.nearest_neighbours` with ``backend="torch"``
  (its own float32 GEMM candidate stage), exact (equal to a float64 brute-force search, ties to
  the lower index);
- ``genbench-faiss``: the same search with ``backend="faiss"`` (faiss's exhaustive float32 search
  as the candidate stage, certified and re-ranked the same way; what ``backend="auto"``, the
  default, picks on a CPU with faiss installed), when ``faiss-cpu`` is installed; skipped otherwise;
- ``sklearn-brute``: ``NearestNeighbors(algorithm="brute")``, float32 GEMM expansion;
- ``faiss-flat-l2``: ``faiss.IndexFlatL2`` (exhaustive, float32), when ``faiss-cpu`` is installed
  (``pip install faiss-cpu``); skipped otherwise.

The peers compute in float32 without a certificate, so ours does strictly more work per pair.
Every timed answer is checked against a float64 brute force on the first 100 queries: ours (both
backends) and scikit-learn's must match the indices exactly; faiss's mismatches are recorded, not
asserted.

Run: ``.venv/bin/python -m pytest benchmarks/test_bench_nn.py -m "" --benchmark-only`` (``-m gpu``
for CUDA).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
import torch
from _bench import THREADS, large_only, run_timed
from sklearn.neighbors import NearestNeighbors

from genbench.metrics.neighbours import nearest_neighbours

# name, queries, references, dimension, k
CASES = [
    pytest.param(("digits", 400, 1258, 64, 1), id="digits"),
    pytest.param(("features", 2000, 10000, 256, 5), id="features"),
    pytest.param(("mnist-subset", 2000, 20000, 784, 5), id="mnist-subset"),
    pytest.param(("mnist", 10000, 60000, 784, 5), id="mnist", marks=large_only),
]


@lru_cache(maxsize=1)
def _data(n: int, m: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((n, d), dtype=np.float32), rng.random((m, d), dtype=np.float32)


def _ours(device: str | None, backend: str = "torch"):
    return lambda q, r, k: nearest_neighbours(q, r, k=k, device=device, backend=backend)


def _sklearn(q, r, k):
    return NearestNeighbors(n_neighbors=k, algorithm="brute").fit(r).kneighbors(q)


def _faiss(q, r, k):
    import faiss

    faiss.omp_set_num_threads(THREADS)
    index = faiss.IndexFlatL2(r.shape[1])
    index.add(r)
    d2, idx = index.search(q, k)
    return np.sqrt(np.maximum(d2, 0)), idx


def _has_faiss() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


_NO_FAISS = pytest.mark.skipif(not _has_faiss(), reason="faiss-cpu not installed (pip install faiss-cpu)")

IMPLS = [
    pytest.param(("genbench", _ours(None)), id="genbench"),
    pytest.param(("genbench-faiss", _ours(None, "faiss")), id="genbench-faiss", marks=_NO_FAISS),
    pytest.param(("sklearn-brute", _sklearn), id="sklearn-brute"),
    pytest.param(("faiss-flat-l2", _faiss), id="faiss-flat-l2", marks=_NO_FAISS),
    pytest.param(("genbench-cuda", _ours("cuda")), id="genbench-cuda", marks=[
        pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES)
def test_nn_search(benchmark, case, impl):
    name, n, m, d, k = case
    impl_name, fn = impl
    q, r = _data(n, m, d)
    rounds = 1 if n * m * d > 1e10 else 3 if n * m * d > 1e9 else 10
    dist, idx = run_timed(benchmark, fn, q, r, k, suite="knn", case=name, impl=impl_name, rounds=rounds,
                          warmup_rounds=int(rounds > 3), n_queries=n, n_references=m, dim=d, k=k, dtype="float32")
    # the timed answer is the right one: float64 brute force on the first 100 queries
    ref_d, ref_i = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(r.astype(np.float64)).kneighbors(
        q[:100].astype(np.float64))
    got_i = np.asarray(idx)[:100]
    benchmark.extra_info["index_mismatches_first_100"] = int((got_i != ref_i).sum())
    if impl_name == "faiss-flat-l2":
        return
    np.testing.assert_array_equal(got_i, ref_i)
    np.testing.assert_allclose(np.asarray(dist)[:100], ref_d, rtol=0, atol=1e-5)
