"""Exact NN search: scikit-learn's brute-force search and a float64 lexsort oracle are the references.

The search-level tests run once per candidate backend: torch always, faiss where ``faiss-cpu`` is
installed (skipped otherwise)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors

import genbench.metrics.neighbours as nbmod
from genbench.metrics.neighbours import nearest_neighbours


def _oracle(q: np.ndarray, r: np.ndarray, k: int, exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Full float64 distance matrix from explicit differences; ties to the lower index (lexsort)."""
    r = r.astype(np.float64)
    d2 = np.stack([((r - row) ** 2).sum(-1) for row in q.astype(np.float64)])
    if exclude_self:
        np.fill_diagonal(d2, np.inf)
    idx = np.stack([np.lexsort((np.arange(len(r)), row))[:k] for row in d2])
    return np.sqrt(np.take_along_axis(d2, idx, 1)), idx


SHAPES = [(40, 150, 2), (300, 1000, 64), (120, 700, 784), (5, 9, 3)]
BACKENDS = ["torch", "faiss"]


def _backend(name: str) -> str:
    """The backend to pass; skips the test when it is faiss and faiss is not installed."""
    if name == "faiss":
        pytest.importorskip("faiss")
    return name


def _check_against_sklearn(n, m, d, k, batch_size, ref_batch_size, seed, backend):
    rng = np.random.default_rng(seed)
    q, r = rng.random((n, d)), rng.random((m, d))
    dist, idx = nearest_neighbours(q, r, k=k, batch_size=batch_size, ref_batch_size=ref_batch_size,
                                   backend=_backend(backend))
    sk_d, sk_i = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(r).kneighbors(q)
    assert dist.dtype == np.float64 and idx.dtype == np.int64 and dist.shape == (n, k)
    np.testing.assert_array_equal(idx, sk_i)
    np.testing.assert_allclose(dist, sk_d, rtol=0, atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n,m,d", SHAPES)
@pytest.mark.parametrize("k", [1, 5, 9])
def test_agrees_with_sklearn_brute(n, m, d, k, backend):
    if k > m:
        pytest.skip("k > m")
    _check_against_sklearn(n, m, d, k, 1024, 8192, seed=n + m + d + k, backend=backend)


# chunk sizes that do not divide the sizes, single rows/columns, and chunks larger than the data
# (kept to a moderate problem: thousands of tiny GEMMs are slow on a busy CPU)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("chunks", [(7, 13), (64, 1), (1, 64), (5000, 5000), (33, 100)])
@pytest.mark.parametrize("k", [1, 6])
def test_chunk_sizes_do_not_change_the_answer(chunks, k, backend):
    _check_against_sklearn(90, 260, 24, k, *chunks, seed=k, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k", [1, 4])
@pytest.mark.parametrize("chunks", [(1024, 8192), (11, 37)])
def test_exclude_self_agrees_with_sklearn_kneighbors_without_x(k, chunks, backend):
    rng = np.random.default_rng(k)
    r = rng.normal(size=(250, 20))
    dist, idx = nearest_neighbours(r, r, k=k, exclude_self=True, batch_size=chunks[0], ref_batch_size=chunks[1],
                                   backend=_backend(backend))
    sk_d, sk_i = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(r).kneighbors()
    np.testing.assert_array_equal(idx, sk_i)
    np.testing.assert_allclose(dist, sk_d, rtol=0, atol=1e-10)
    assert (idx != np.arange(len(r))[:, None]).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("margin", [0, 16])
def test_ties_and_duplicates_go_to_the_lower_index(margin, backend, monkeypatch):
    backend = _backend(backend)
    # integer points on a tiny grid: many exact ties and duplicated references crowd the candidate
    # margin, so the float32 certificate must fail and the exact float64 scan must take over
    calls = []
    real_scan = nbmod._exact_scan
    monkeypatch.setattr(nbmod, "_exact_scan", lambda *a, **kw: calls.append(1) or real_scan(*a, **kw))
    rng = np.random.default_rng(3)
    r = rng.integers(0, 3, (400, 4)).astype(np.float64)
    q = rng.integers(0, 3, (60, 4)).astype(np.float32)
    for k in (1, 4, 10):
        dist, idx = nearest_neighbours(q, r, k=k, margin=margin, batch_size=16, ref_batch_size=50, backend=backend)
        o_d, o_i = _oracle(q, r, k)
        np.testing.assert_array_equal(idx, o_i)
        np.testing.assert_array_equal(dist, o_d)
        dist, idx = nearest_neighbours(r, r, k=k, margin=margin, exclude_self=True, batch_size=33, backend=backend)
        o_d, o_i = _oracle(r, r, k, exclude_self=True)
        np.testing.assert_array_equal(idx, o_i)
        np.testing.assert_array_equal(dist, o_d)
    assert calls, "duplicates beyond the margin must trigger the exact fallback"


@pytest.mark.parametrize("backend", BACKENDS)
def test_large_offset_is_still_exact(backend):
    # values near 1e4 with differences near 1: the float32 expansion alone would lose the order;
    # centring plus the certificate keep the answer exact
    rng = np.random.default_rng(5)
    r = 1e4 + rng.random((500, 16))
    q = 1e4 + rng.random((50, 16))
    dist, idx = nearest_neighbours(q, r, k=3, backend=_backend(backend))
    o_d, o_i = _oracle(q, r, 3)
    np.testing.assert_array_equal(idx, o_i)
    np.testing.assert_allclose(dist, o_d, rtol=1e-12, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_spread_beyond_float32_range_falls_back_to_the_exact_scan(backend):
    # centred values past float32's range make the float32 stage meaningless (inf - inf); the
    # affected queries must still get the float64 answer, never a padding index
    r = np.array([[0.0, 0.0], [1e39, 0.0], [1.0, 0.0], [-1e39, 1.0]])
    q = np.array([[0.5, 0.0], [9e38, 0.0], [-2e39, 0.0]])
    dist, idx = nearest_neighbours(q, r, k=2, backend=_backend(backend))
    o_d, o_i = _oracle(q, r, 2)
    np.testing.assert_array_equal(idx, o_i)
    np.testing.assert_allclose(dist, o_d, rtol=1e-12, atol=0)


def test_images_tensors_and_arrays_give_the_same_answer():
    rng = np.random.default_rng(7)
    imgs = rng.random((30, 1, 8, 8)).astype(np.float32)
    ref = rng.random((80, 1, 8, 8)).astype(np.float32)
    a = nearest_neighbours(imgs, ref, k=2)
    b = nearest_neighbours(torch.from_numpy(imgs), torch.from_numpy(ref.reshape(80, -1)), k=2)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], _oracle(imgs.reshape(30, -1), ref.reshape(80, -1), 2)[1])


def test_boundary_errors_say_what_is_wrong():
    r = np.zeros((5, 3))
    with pytest.raises(ValueError, match="k must be an integer in \\[1, 5\\]"):
        nearest_neighbours(r, r, k=6)
    with pytest.raises(ValueError, match="k must be an integer in \\[1, 4\\]"):
        nearest_neighbours(r, r, k=5, exclude_self=True)
    with pytest.raises(ValueError, match="values per sample"):
        nearest_neighbours(np.zeros((2, 4)), r, k=1)
    with pytest.raises(ValueError, match="exclude_self"):
        nearest_neighbours(np.zeros((2, 3)), r, k=1, exclude_self=True)
    bad = np.zeros((4, 3))
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="queries has 1 NaN"):
        nearest_neighbours(bad, r, k=1)
    with pytest.raises(ValueError, match="backend must be 'auto', 'torch' or 'faiss'; got 'sklearn'"):
        nearest_neighbours(r, r, k=1, backend="sklearn")
    # checked before any device work, so this needs neither faiss nor CUDA
    with pytest.raises(ValueError, match="backend='faiss' searches on the CPU.*device='cpu'"):
        nearest_neighbours(r, r, k=1, backend="faiss", device="cuda")


@pytest.mark.slow
def test_mnist_sized_search_matches_sklearn():
    # the scale: 10,000 queries against 60,000 x 784 references, in bounded memory
    rng = np.random.default_rng(0)
    r = rng.random((60000, 784), dtype=np.float32)
    q = rng.random((10000, 784), dtype=np.float32)
    dist, idx = nearest_neighbours(q, r, k=5)
    sk_d, sk_i = NearestNeighbors(n_neighbors=5, algorithm="brute").fit(r.astype(np.float64)).kneighbors(
        q.astype(np.float64))
    np.testing.assert_array_equal(idx, sk_i)
    np.testing.assert_allclose(dist, sk_d, rtol=0, atol=1e-10)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_equals_cpu():
    rng = np.random.default_rng(11)
    r = rng.random((5000, 784), dtype=np.float32)
    q = rng.random((700, 784), dtype=np.float32)
    cpu = nearest_neighbours(q, r, k=7)
    gpu = nearest_neighbours(q, r, k=7, device="cuda", batch_size=512, ref_batch_size=2048)
    np.testing.assert_array_equal(cpu[1], gpu[1])
    np.testing.assert_allclose(cpu[0], gpu[0], rtol=0, atol=1e-12)


def test_runs_at_ieee_precision_and_restores_the_setting():
    # bf16/TF32 GEMMs would void the float32 error bound; the caller's setting must survive
    prev = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        rng = np.random.default_rng(9)
        q, r = rng.random((60, 32)), rng.random((300, 32))
        _, idx = nearest_neighbours(q, r, k=3)
        assert torch.get_float32_matmul_precision() == "medium"
    finally:
        torch.set_float32_matmul_precision(prev)
    np.testing.assert_array_equal(idx, _oracle(q, r, 3)[1])


# ---- the faiss backend: same bits as the torch backend, the float64 oracle's answer ----


def _grid(d: int) -> np.ndarray:
    """All points with coordinates in {-1, 0, 1}: distances from integer points are exact in
    float32 and float64 alike, so equidistant references are exact ties for both stages."""
    axes = np.meshgrid(*([np.array([-1.0, 0.0, 1.0])] * d), indexing="ij")
    return np.stack([a.ravel() for a in axes], 1)


def _same_everywhere(q, r, k, exclude_self=False, **kw):
    """faiss and torch backends: bit for bit equal, and equal to the float64 oracle (indices
    exactly, distances to 1e-12 relative)."""
    f_d, f_i = nearest_neighbours(q, r, k=k, exclude_self=exclude_self, backend="faiss", **kw)
    t_d, t_i = nearest_neighbours(q, r, k=k, exclude_self=exclude_self, backend="torch", **kw)
    np.testing.assert_array_equal(f_i, t_i)
    np.testing.assert_array_equal(f_d, t_d)
    o_d, o_i = _oracle(np.asarray(q).reshape(len(q), -1), np.asarray(r).reshape(len(r), -1), k, exclude_self)
    np.testing.assert_array_equal(f_i, o_i)
    np.testing.assert_allclose(f_d, o_d, rtol=1e-12, atol=0)
    if exclude_self:
        assert (f_i != np.arange(len(r))[:, None]).all()
    return f_d, f_i


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 7])
@pytest.mark.parametrize("exclude_self", [False, True])
def test_faiss_backend_equals_torch_and_brute_force(dtype, k, exclude_self):
    pytest.importorskip("faiss")
    rng = np.random.default_rng(k + 10 * exclude_self)
    r = rng.normal(size=(700, 48)).astype(dtype)
    q = r if exclude_self else rng.normal(size=(150, 48)).astype(dtype)
    # several query batches: the query's own index must be dropped at every offset
    _same_everywhere(q, r, k, exclude_self, batch_size=64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("exclude_self", [False, True])
def test_faiss_backend_ties_and_duplicates(dtype, exclude_self, monkeypatch):
    # integer grid points plus duplicated rows: exact ties in both precisions, resolved to the
    # lower index; 12 references at distance 1 from the origin outrun faiss's first k + 3
    # (second pass), 72 within distance sqrt(2) outrun k + margin (exact fallback)
    faiss = pytest.importorskip("faiss")
    widths, scans = [], []
    real_knn, real_scan = faiss.knn, nbmod._exact_scan
    monkeypatch.setattr(faiss, "knn", lambda x, y, w, *a: widths.append(w) or real_knn(x, y, w, *a))
    monkeypatch.setattr(nbmod, "_exact_scan", lambda *a, **kw: scans.append(1) or real_scan(*a, **kw))
    g = _grid(6)
    rng = np.random.default_rng(1)
    r = np.concatenate([g, g[rng.integers(0, len(g), 40)]]).astype(dtype)
    q = r if exclude_self else np.concatenate([np.zeros((1, 6)), g[rng.integers(0, len(g), 30)]]).astype(dtype)
    for k in (1, 4, 13):
        _same_everywhere(q, r, k, exclude_self, batch_size=20)
    assert any(w > k + 3 + exclude_self for w in widths), "ties past k + 3 must reach the second faiss pass"
    assert scans, "ties past k + margin must reach the exact fallback"


def test_faiss_backend_certifies_random_data_without_fallback(monkeypatch):
    # the certificate must not be so loose that ordinary data falls back to the float64 scan
    pytest.importorskip("faiss")
    scans = []
    real_scan = nbmod._exact_scan
    monkeypatch.setattr(nbmod, "_exact_scan", lambda *a, **kw: scans.append(1) or real_scan(*a, **kw))
    rng = np.random.default_rng(4)
    r = rng.random((2000, 784), dtype=np.float32)
    q = rng.random((60, 784), dtype=np.float32)
    _same_everywhere(q, r, 5)
    assert not scans


def test_faiss_backend_threads_and_settings_are_the_callers(monkeypatch):
    # faiss runs on torch's thread count (a matrix cell's budget) and every faiss setting touched
    # is restored, errors included. (Where torch was imported first, faiss and torch share one
    # OpenMP runtime and the two counts move together; where faiss came first they are apart.)
    faiss = pytest.importorskip("faiss")
    seen = []
    real_knn = faiss.knn
    monkeypatch.setattr(faiss, "knn", lambda *a: seen.append(faiss.omp_get_max_threads()) or real_knn(*a))
    prev = faiss.omp_get_max_threads(), faiss.cvar.distance_compute_blas_threshold, torch.get_num_threads()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(3)
    want, before = torch.get_num_threads(), faiss.omp_get_max_threads()
    try:
        rng = np.random.default_rng(2)
        q, r = rng.random((30, 8)), rng.random((90, 8))
        _same_everywhere(q, r, 2)
        assert seen and set(seen) == {want}
        assert faiss.omp_get_max_threads() == before and torch.get_num_threads() == want
        assert faiss.cvar.distance_compute_blas_threshold == prev[1]
        monkeypatch.setattr(nbmod, "_exact_candidates", lambda *a: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            nearest_neighbours(q, r, k=2, backend="faiss")
        assert faiss.omp_get_max_threads() == before and torch.get_num_threads() == want
        assert faiss.cvar.distance_compute_blas_threshold == prev[1]
    finally:
        faiss.omp_set_num_threads(prev[0])
        torch.set_num_threads(prev[2])


def test_auto_uses_faiss_when_installed(monkeypatch):
    faiss = pytest.importorskip("faiss")
    calls = []
    real_knn = faiss.knn
    monkeypatch.setattr(faiss, "knn", lambda *a: calls.append(1) or real_knn(*a))
    rng = np.random.default_rng(3)
    q, r = rng.random((20, 5)), rng.random((60, 5))
    np.testing.assert_array_equal(nearest_neighbours(q, r, k=3)[1], _oracle(q, r, 3)[1])
    assert calls
    calls.clear()
    nearest_neighbours(q, r, k=3, backend="torch")
    assert not calls


def test_without_faiss_auto_uses_torch_and_faiss_says_what_to_install(monkeypatch):
    # a None entry in sys.modules makes `import faiss` raise ImportError, as if not installed
    monkeypatch.setitem(sys.modules, "faiss", None)
    rng = np.random.default_rng(6)
    q, r = rng.random((20, 5)), rng.random((60, 5))
    np.testing.assert_array_equal(nearest_neighbours(q, r, k=3)[1], _oracle(q, r, 3)[1])
    with pytest.raises(ImportError, match="backend='faiss' needs the faiss package.*pip install faiss-cpu"):
        nearest_neighbours(q, r, k=3, backend="faiss")
