"""Exact NN search: scikit-learn's brute-force search and a float64 lexsort oracle are the references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors

import genbench.metrics.neighbours as nbmod
from genbench.metrics.neighbours import nearest_neighbours


def _oracle(q: np.ndarray, r: np.ndarray, k: int, exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Full float64 distance matrix from explicit differences; ties to the lower index (lexsort)."""
    d2 = ((q[:, None, :].astype(np.float64) - r[None, :, :].astype(np.float64)) ** 2).sum(-1)
    if exclude_self:
        np.fill_diagonal(d2, np.inf)
    idx = np.stack([np.lexsort((np.arange(len(r)), row))[:k] for row in d2])
    return np.sqrt(np.take_along_axis(d2, idx, 1)), idx


SHAPES = [(40, 150, 2), (300, 1000, 64), (120, 700, 784), (5, 9, 3)]


def _check_against_sklearn(n, m, d, k, batch_size, ref_batch_size, seed):
    rng = np.random.default_rng(seed)
    q, r = rng.random((n, d)), rng.random((m, d))
    dist, idx = nearest_neighbours(q, r, k=k, batch_size=batch_size, ref_batch_size=ref_batch_size)
    sk_d, sk_i = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(r).kneighbors(q)
    assert dist.dtype == np.float64 and idx.dtype == np.int64 and dist.shape == (n, k)
    np.testing.assert_array_equal(idx, sk_i)
    np.testing.assert_allclose(dist, sk_d, rtol=0, atol=1e-10)


@pytest.mark.parametrize("n,m,d", SHAPES)
@pytest.mark.parametrize("k", [1, 5, 9])
def test_agrees_with_sklearn_brute(n, m, d, k):
    if k > m:
        pytest.skip("k > m")
    _check_against_sklearn(n, m, d, k, 1024, 8192, seed=n + m + d + k)


# chunk sizes that do not divide the sizes, single rows/columns, and chunks larger than the data
# (kept to a moderate problem: thousands of tiny GEMMs are slow on a busy CPU)
@pytest.mark.parametrize("chunks", [(7, 13), (64, 1), (1, 64), (5000, 5000), (33, 100)])
@pytest.mark.parametrize("k", [1, 6])
def test_chunk_sizes_do_not_change_the_answer(chunks, k):
    _check_against_sklearn(90, 260, 24, k, *chunks, seed=k)


@pytest.mark.parametrize("k", [1, 4])
@pytest.mark.parametrize("chunks", [(1024, 8192), (11, 37)])
def test_exclude_self_agrees_with_sklearn_kneighbors_without_x(k, chunks):
    rng = np.random.default_rng(k)
    r = rng.normal(size=(250, 20))
    dist, idx = nearest_neighbours(r, r, k=k, exclude_self=True, batch_size=chunks[0], ref_batch_size=chunks[1])
    sk_d, sk_i = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(r).kneighbors()
    np.testing.assert_array_equal(idx, sk_i)
    np.testing.assert_allclose(dist, sk_d, rtol=0, atol=1e-10)
    assert (idx != np.arange(len(r))[:, None]).all()


@pytest.mark.parametrize("margin", [0, 16])
def test_ties_and_duplicates_go_to_the_lower_index(margin, monkeypatch):
    # integer points on a tiny grid: many exact ties and duplicated references crowd the candidate
    # margin, so the float32 certificate must fail and the exact float64 scan must take over
    calls = []
    real_scan = nbmod._exact_scan
    monkeypatch.setattr(nbmod, "_exact_scan", lambda *a, **kw: calls.append(1) or real_scan(*a, **kw))
    rng = np.random.default_rng(3)
    r = rng.integers(0, 3, (400, 4)).astype(np.float64)
    q = rng.integers(0, 3, (60, 4)).astype(np.float32)
    for k in (1, 4, 10):
        dist, idx = nearest_neighbours(q, r, k=k, margin=margin, batch_size=16, ref_batch_size=50)
        o_d, o_i = _oracle(q, r, k)
        np.testing.assert_array_equal(idx, o_i)
        np.testing.assert_array_equal(dist, o_d)
        dist, idx = nearest_neighbours(r, r, k=k, margin=margin, exclude_self=True, batch_size=33)
        o_d, o_i = _oracle(r, r, k, exclude_self=True)
        np.testing.assert_array_equal(idx, o_i)
        np.testing.assert_array_equal(dist, o_d)
    assert calls, "duplicates beyond the margin must trigger the exact fallback"


def test_large_offset_is_still_exact():
    # values near 1e4 with differences near 1: the float32 expansion alone would lose the order;
    # centring plus the certificate keep the answer exact
    rng = np.random.default_rng(5)
    r = 1e4 + rng.random((500, 16))
    q = 1e4 + rng.random((50, 16))
    dist, idx = nearest_neighbours(q, r, k=3)
    o_d, o_i = _oracle(q, r, 3)
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
