"""Exact Euclidean k-nearest-neighbour search, chunked, on CPU or GPU.

The overfitting checks (copy rate, authenticity, the C_T test, galleries) all rest on
nearest-neighbour distances between generated samples and training data, in pixel or feature
space. This module gives one search that is *exact* in the sense that it returns what a
brute-force float64 computation returns, including the order of ties, while never building the
full (n_queries, n_references) distance matrix.

How it stays exact and fast (two stages, then a check):

1. **Candidate search** in float32 with the expansion ``|x-y|^2 = |x|^2 + |y|^2 - 2 x.y`` (one
   GEMM per chunk pair, the fast path on CPU and GPU; ``|x|^2`` is left out of the GEMM because
   it does not change a query's ranking). Both sets are first centred on the references' float64
   mean, which shrinks the norms and so the cancellation error. A rounding bound for the float32
   expansion, ``B = 2 (d + 8) u (|x| + max|y|)^2`` with ``u = 2^-24`` (the worst case of a
   length-d dot product plus the float32 rounding of the centred inputs), gives a threshold
   ``T = (v_k + 2B)(1 + 4 (d + 2) u64)``, where ``v_k`` is the running k-th smallest approximate
   distance: every reference whose approximate distance exceeds ``T`` is provably farther, in
   float64 brute force, than k others, so the candidates are exactly the references at or below
   ``T`` (typically k of them, more with ties or near-duplicates). Selecting them costs a top-k
   and a comparison per chunk instead of a top-(k + margin).
2. **Exact re-ranking** of those candidates: squared distances from explicit differences in
   float64, sorted by (distance, index), so ties go to the lower reference index.
3. **Fallback.** A query with more than ``k + margin`` candidates (ties or near-duplicates
   crowding the threshold) is recomputed by an exact float64 scan over all references.

So the answer always equals brute-force float64 search, the float64 work is O(n (k + margin) d)
plus rare fallbacks, and memory is bounded by the chunk sizes.

**faiss backend.** On a CPU, with ``faiss`` installed (``pip install faiss-cpu``), stage 1 can run
on faiss's exhaustive search (the kernel of ``faiss.IndexFlatL2``) over the same centred float32
references instead (``backend="faiss"``, or ``"auto"``): it returns each query's ``k + 3`` (then,
for the few it could not certify, ``k + margin + 1``) smallest float32 squared distances, which it
computes as ``|x|^2 + |y|^2 - 2 x.y`` (sgemm) or from explicit differences. Its float32 norms and
their sum add ``(d + 2) u (|x|^2 + max|y|^2)`` to ``B``; ``T`` follows from the k-th returned
distance as above, and the query is certified when the last returned distance exceeds ``T``
(every reference faiss did not return is then farther still): its candidates are the returned
ones at or below ``T``. Otherwise it goes to the fallback. Stages 2 and 3 are shared and compute
each pair's float64 distance the same way in any layout, so both backends return the same bits.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from genbench._validation import check_n, check_rows

# float32 unit roundoff: the candidate stage's precision
_U32 = 2.0**-24
# float64 unit roundoff: slack for the exact stage's own rounding when certifying
_U64 = 2.0**-53


def _as_rows(x: Any, name: str) -> torch.Tensor:
    """(n, d) or (N, C, H, W) array/tensor -> finite float CPU tensor (n, d), no copy when possible."""
    if isinstance(x, torch.Tensor) and x.dtype in (torch.bfloat16, torch.float16):
        x = x.float()
    return torch.from_numpy(np.ascontiguousarray(check_rows(x, name)))


def nearest_neighbours(
    queries: Any,
    references: Any,
    *,
    k: int,
    batch_size: int = 1024,
    ref_batch_size: int = 8192,
    device: str | torch.device | None = None,
    exclude_self: bool = False,
    margin: int = 16,
    backend: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Exact Euclidean k nearest references of every query, smallest first, ties to the lower index.

    Parameters
    ----------
    queries : array or tensor, shape (n, d) or (n, C, H, W)
        Points to find neighbours for; images are flattened.
    references : array or tensor, shape (m, d) or (m, C, H, W)
        Points to search among (e.g. the training set, in pixels or features).
    k : int
        Neighbours per query, ``1 <= k <= m`` (``m - 1`` with ``exclude_self``).
    batch_size, ref_batch_size : int
        Queries and references per chunk: peak extra memory is about
        ``batch_size * (ref_batch_size + (k + margin) * d)`` floats, never n x m.
    device : str or torch.device, optional
        Where the search runs (``"cpu"``, ``"cuda"``); default CPU. Results do not depend on it.
    exclude_self : bool
        Queries *are* the references (same order): skip reference ``i`` for query ``i`` (by index,
        so an exact duplicate elsewhere still counts at distance 0), as scikit-learn's
        ``kneighbors()`` without ``X`` does.
    margin : int
        Extra float32 candidates per query re-ranked exactly; larger means fewer exact fallbacks.
    backend : {"auto", "torch", "faiss"}
        The float32 candidate stage: ``"torch"`` (chunked GEMMs, any device), ``"faiss"``
        (faiss's exhaustive search, the kernel of ``faiss.IndexFlatL2``; CPU only, needs
        ``pip install faiss-cpu``) or ``"auto"`` (faiss when it is installed and the search runs
        on the CPU, else torch). The answer is the same bit for bit; faiss is faster on a CPU.
        faiss runs with ``torch.get_num_threads()`` OpenMP threads, in query blocks of
        ``batch_size`` (its own working block: ``batch_size`` x 1,024 floats).

    Returns
    -------
    distances : ndarray, float64, shape (n, k)
        Euclidean distances, ascending along each row (lower is closer).
    indices : ndarray, int64, shape (n, k)
        Row indices into ``references``.

    Notes
    -----
    Exact means equal to a brute-force float64 search over explicit differences: the result is
    certified per query (see the module docstring) and recomputed by a full float64 scan where
    the certificate fails. It agrees with ``sklearn.neighbors.NearestNeighbors(algorithm="brute")``
    on the indices, and on the distances to float64 rounding (scikit-learn's own GEMM expansion
    in float64 is the looser of the two).

    Examples
    --------
    >>> import numpy as np
    >>> ref = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    >>> d, i = nearest_neighbours(np.array([[0.9, 0.0]]), ref, k=2)
    >>> i.tolist(), np.round(d, 6).tolist()
    ([[1, 0]], [[0.1, 0.9]])
    """
    q = _as_rows(queries, "queries")
    r = _as_rows(references, "references")
    check_n(len(q), 1, "queries")
    check_n(len(r), 1, "references")
    if q.shape[1] != r.shape[1]:
        raise ValueError(
            f"queries and references have {q.shape[1]} and {r.shape[1]} values per sample; "
            "compute both in the same space (same image shape or feature extractor)."
        )
    if exclude_self and len(q) != len(r):
        raise ValueError(
            f"exclude_self=True needs queries to be the references themselves; got {len(q)} queries "
            f"and {len(r)} references."
        )
    m_eff = len(r) - 1 if exclude_self else len(r)
    if not isinstance(k, int | np.integer) or not 1 <= k <= m_eff:
        raise ValueError(f"k must be an integer in [1, {m_eff}] for {len(r)} references; got {k!r}.")
    if batch_size < 1 or ref_batch_size < 1 or margin < 0:
        raise ValueError("batch_size and ref_batch_size must be >= 1 and margin >= 0.")
    k = int(k)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    faiss = _faiss_for(backend, dev)

    # The certificate assumes IEEE float32 GEMMs: TF32 / bf16 matmuls ("high" / "medium"
    # precision) round far more, so run at "highest" and restore the caller's setting.
    prev = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    # faiss's OpenMP pool (and its OpenMP OpenBLAS) to the caller's torch thread count, so a
    # matrix cell's thread budget holds; and faiss's sgemm route for every query block: by default
    # it takes it only from 128,000 query values (n d) and below that subtracts pair by pair, 2x
    # slower at 400 x 1,258 x 64 and 10x for a few hundred queries at d = 784 (the bound covers
    # both routes). Both restored afterwards.
    if faiss is not None:
        prev_faiss = faiss.omp_get_max_threads(), faiss.cvar.distance_compute_blas_threshold
        faiss.omp_set_num_threads(torch.get_num_threads())
        faiss.cvar.distance_compute_blas_threshold = 0
    try:
        return _search(q, r, k, batch_size, ref_batch_size, dev, exclude_self, min(k + margin, m_eff), m_eff, faiss)
    finally:
        torch.set_float32_matmul_precision(prev)
        if faiss is not None:
            faiss.omp_set_num_threads(prev_faiss[0])
            faiss.cvar.distance_compute_blas_threshold = prev_faiss[1]


def _faiss_for(backend: str, dev: torch.device) -> Any:
    """The ``faiss`` module when the candidate stage runs on faiss, else None (see ``backend``)."""
    if backend not in ("auto", "torch", "faiss"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'faiss'; got {backend!r}.")
    if backend == "torch" or (backend == "auto" and dev.type != "cpu"):
        return None
    if dev.type != "cpu":
        raise ValueError(
            f"backend='faiss' searches on the CPU (faiss-cpu), but device={str(dev)!r}; pass device='cpu', "
            f"or backend='torch' (or 'auto') to search on {dev.type}."
        )
    try:
        import faiss
    except ImportError as e:
        if backend == "auto":
            return None
        raise ImportError(
            "backend='faiss' needs the faiss package, which is not installed: pip install faiss-cpu "
            "(or genbench[bench]); or pass backend='torch' (or 'auto') for the built-in search, which "
            "returns the same answer."
        ) from e
    return faiss


def _search(
    q: torch.Tensor, r: torch.Tensor, k: int, batch_size: int, ref_batch_size: int, dev: torch.device,
    exclude_self: bool, kp: int, m_eff: int, faiss: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate search (torch, or faiss when ``faiss`` is the module), exact re-ranking and
    fallback (see the module docstring)."""
    n, d = q.shape
    # References on the device once: originals (for exact float64 work) and the centred float32
    # copy with its squared norms (for the GEMM). Centring on the mean cuts cancellation error.
    r_dev = r.to(dev)
    # The centre need not be accurate (any common shift leaves distances unchanged): sums in the
    # input's dtype, chunked, avoid a float64 copy of the references (a quarter of the run time).
    mu = torch.zeros(d, dtype=torch.float64, device=dev)
    for rs in range(0, len(r_dev), ref_batch_size):
        mu += r_dev[rs : rs + ref_batch_size].sum(0).double()
    mu /= len(r_dev)
    # (in blocks of _block_values(dev) values, written in place: full-size temporaries would be
    # more copies of the references, page-faulted in on every call)
    r32 = torch.empty(r_dev.shape, dtype=torch.float32, device=dev)
    r32_sq = torch.empty(len(r_dev), dtype=torch.float32, device=dev)
    step = max(1, _block_values(dev) // d)
    for rs in range(0, len(r_dev), step):
        c = _centre32(r_dev[rs : rs + step], mu, out=r32[rs : rs + step])
        r32_sq[rs : rs + step] = (c * c).sum(1)
    r_norm_max = float(r32_sq.max().sqrt())

    out_d = np.empty((n, k), dtype=np.float64)
    out_i = np.empty((n, k), dtype=np.int64)
    for qs in range(0, n, batch_size):
        qe = min(qs + batch_size, n)
        x = q[qs:qe].to(dev)
        x32 = _centre32(x, mu)
        x32_sq = (x32 * x32).sum(1).double()
        bound = 2.0 * (d + 8) * _U32 * (x32_sq.sqrt() + r_norm_max) ** 2
        if faiss is None:
            cand_i, overflow = _candidates(x32, x32_sq, bound, r32, r32_sq, k, kp, d, ref_batch_size,
                                           qs if exclude_self else None)
        else:
            # faiss's float32 norms: see _candidates_faiss
            bound += (d + 2) * _U32 * (x32_sq + r_norm_max**2)
            cand_i, overflow = _candidates_faiss(faiss, r32.numpy(), x32, bound, k, kp, d,
                                                 qs if exclude_self else None)
        # a spread beyond float32's range makes a centred norm, and so the bound, infinite: the
        # float32 stage then knows nothing (inf - inf is NaN), and the exact scan answers
        overflow |= ~torch.isfinite(bound).to(overflow.device)

        # exact float64 re-ranking of the candidates (padding: index -1, distance inf), ties
        # broken by lower index
        xd = x.double()
        pad = cand_i < 0
        exact = _exact_candidates(xd, r_dev, cand_i)
        exact_s, idx_s = _sort_by_value_then_index(exact, cand_i.masked_fill(pad, len(r_dev)))
        res_d, res_i = exact_s[:, :k].clone(), idx_s[:, :k].clone()
        for row in torch.nonzero(overflow).flatten().tolist():
            res_d[row], res_i[row] = _exact_scan(xd[row], r_dev, k, ref_batch_size, qs + row if exclude_self else None)
        # numpy's square root, which is correctly rounded: torch's CPU kernel is not everywhere (with
        # AVX-512, 0.7% of float64 roots come out an ulp low, sqrt(8) among them)
        out_d[qs:qe] = np.sqrt(res_d.cpu().numpy())
        out_i[qs:qe] = res_i.cpu().numpy()
    return out_d, out_i


def _threshold(vk: Any, bound: Any, d: int) -> Any:
    """T = (v_k + 2B)(1 + 4 (d + 2) u64), in float64 squared-distance units (tensors or arrays): every
    reference whose approximate distance exceeds it is provably farther than k others (module docstring)."""
    return (vk + 2.0 * bound) * (1.0 + 4.0 * (d + 2) * _U64)


def _centre32(a: torch.Tensor, mu: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``a - mu`` rounded to float32 (into ``out`` when given). Any common shift leaves distances
    unchanged; what the error bound needs is that each centred value carries at most one float32
    rounding, relative to the centred value. float32 input: subtract the float32-rounded mean in
    float32 (one rounding). float64 input: subtract in float64, then round once."""
    if a.dtype == torch.float32:
        return torch.sub(a, mu.float(), out=out)
    if out is None:
        return (a.double() - mu).float()
    return out.copy_(a.double() - mu)


def _block_values(dev: torch.device) -> int:
    """Values per block of the elementwise passes: about 2^17 on a CPU, where a block stays in
    cache and the allocator reuses it (a fresh block of tens of MB page-faults its way in at a
    cost like the arithmetic's), and 2^24 elsewhere, where fewer, larger kernels win."""
    return 2**17 if dev.type == "cpu" else 2**24


def _candidates(
    x32: torch.Tensor, x32_sq: torch.Tensor, bound: torch.Tensor, r32: torch.Tensor, r32_sq: torch.Tensor, k: int,
    kp: int, d: int, ref_batch_size: int, self_offset: int | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every reference within the threshold T of each query, over reference chunks.

    Returns ``(indices, overflow)``: indices (b, w) of the candidates, padded with -1, and a
    (b,) mask of the queries that had more than ``kp`` candidates (their lists are cut, so
    they must be recomputed exactly). Distances here are ``|y|^2 - 2 x.y`` (the query's own
    ``|x|^2``, in float64 ``x32_sq``, is added only to the threshold arithmetic).
    """
    b = len(x32)
    dev = x32.device
    inf = torch.tensor(math.inf, dtype=torch.float32, device=dev)
    topk_v = torch.empty((b, 0), dtype=torch.float32, device=dev)  # running k smallest approximations
    cand_v = torch.empty((b, 0), dtype=torch.float32, device=dev)
    cand_i = torch.empty((b, 0), dtype=torch.int64, device=dev)
    overflow = torch.zeros(b, dtype=torch.bool, device=dev)
    rows = torch.arange(b, device=dev)
    # one output buffer for every chunk: a fresh (b, chunk) tensor per GEMM page-faults its way
    # in, which cost as much as the GEMM itself on CPU
    buf = torch.empty(b * min(ref_batch_size, len(r32)), dtype=torch.float32, device=dev)
    for rs in range(0, len(r32), ref_batch_size):
        re_ = min(rs + ref_batch_size, len(r32))
        a = buf[: b * (re_ - rs)].view(b, re_ - rs)
        torch.addmm(r32_sq[None, rs:re_].expand(b, re_ - rs), x32, r32[rs:re_].T, alpha=-2.0, out=a)
        if self_offset is not None:
            # query i is reference self_offset + i: push it out of reach
            cols = rows + self_offset - rs
            inside = (cols >= 0) & (cols < re_ - rs)
            a[rows[inside], cols[inside]] = math.inf
        kk = min(k, re_ - rs)
        # the kk + 1 smallest: the first kk update the running k-th distance, the last one says
        # whether any query has more than kk references within T in this chunk
        kx = min(kk + 1, re_ - rs)
        if kx <= 2:
            # k = 1 (copy detection, authenticity): two row minima are several times cheaper than
            # a top-2 on CPU; the first minimum is hidden while the second is taken
            v_all, i_all = a.min(1, keepdim=True)
            if kx == 2:
                a.scatter_(1, i_all, math.inf)
                v2, i2 = a.min(1, keepdim=True)
                a.scatter_(1, i_all, v_all)
                v_all, i_all = torch.cat([v_all, v2], 1), torch.cat([i_all, i2], 1)
        else:
            v_all, i_all = torch.topk(a, kx, dim=1, largest=False, sorted=True)
        topk_v = torch.cat([topk_v, v_all[:, :kk]], 1)
        if topk_v.shape[1] > k:
            topk_v = torch.topk(topk_v, k, dim=1, largest=False, sorted=False).values
        if topk_v.shape[1] < k:  # fewer than k references seen: no threshold yet
            thr = torch.full((b,), math.inf, dtype=torch.float32, device=dev)
        else:
            # T in float64, back in |y|^2 - 2 x.y units, rounded up to float32 (a superset is safe)
            vk = topk_v.amax(1).double() + x32_sq
            thr = torch.nextafter((_threshold(vk, bound, d) - x32_sq).float(), inf)
        # usually at most kk of the chunk's references are within T, and then they are among the
        # kk smallest just found; only ties and near-ties need a wider selection
        need = (v_all[:, kk] <= thr) if kx > kk else None
        v, i = v_all[:, :kk], i_all[:, :kk] + rs
        if need is not None and bool(need.any()):
            # the few queries with more than kk references within T: select those rows wider
            wide = torch.nonzero(need).flatten()
            sub = a[wide]
            c = min(int(torch.count_nonzero(sub <= thr[wide, None], dim=1).max()), kp + 1, re_ - rs)
            sv, si = torch.topk(sub, c, dim=1, largest=False, sorted=False)
            v = torch.cat([v, v.new_full((b, c - kk), math.inf)], 1)
            i = torch.cat([i, i.new_full((b, c - kk), -1)], 1)
            v[wide], i[wide] = sv, si + rs
        if bool((v <= thr[:, None]).any()):
            cand_v = torch.cat([cand_v, v], 1)
            cand_i = torch.cat([cand_i, i], 1)
        # drop earlier candidates the tighter threshold now excludes; keep at most kp + 1 per row
        keep = cand_v <= thr[:, None]
        count = torch.count_nonzero(keep, dim=1)
        overflow |= count > kp
        w = min(int(count.max()), kp + 1)
        cand_v = cand_v.masked_fill(~keep, math.inf)
        cand_i = cand_i.masked_fill(~keep, -1)
        if w < cand_v.shape[1]:
            cand_v, j = torch.topk(cand_v, w, dim=1, largest=False, sorted=False)
            cand_i = torch.gather(cand_i, 1, j)
    return cand_i, overflow


def _candidates_faiss(
    faiss: Any, r32: np.ndarray, x32: torch.Tensor, bound: torch.Tensor, k: int, kp: int, d: int,
    self_offset: int | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_candidates` with faiss's exhaustive float32 search (``faiss.knn``, the kernel of
    ``IndexFlatL2.search``, run on the centred references ``r32`` without an index's copy of them)
    as the float32 stage; same returns: candidate indices (b, w) padded with -1, and the overflow
    mask.

    faiss returns, per query, the ``width`` smallest of its float32 squared distances (one more
    with ``exclude_self``, where the query's own index is dropped): exactly the smallest of the
    values it computed, so every reference it did not return has a value at or above the last
    one returned. Those values come from one of two formulas (faiss picks by the query block's
    size; :func:`nearest_neighbours` asks for the first throughout, for speed), and ``bound`` (the
    caller's ``B`` plus ``(d + 2) u (|x|^2 + max|y|^2)``) covers the rounding of either:

    - sgemm route: ``fl(fl(|x|^2) + fl(|y|^2)) - 2 fl(x.y)``, norms and dot product by
      float32 sums (sgemm), negative results set to 0 (which only moves them toward the true,
      non-negative value). The dot product (``2 gamma_d |x||y|``), ``|y|^2`` (``gamma_d |y|^2``)
      and the last subtraction (``u (|x| + |y|)^2``) err as in the torch GEMM, whose worst case,
      centring included, is ``(d + 4) u (|x| + |y|)^2`` to first order and which ``B`` covers
      twice over. faiss adds two terms torch does not have, as torch leaves ``|x|^2`` out of the
      float32 work: its float32 ``|x|^2`` (``gamma_d |x|^2``) and the addition ``|x|^2 + |y|^2``
      (``u (1 + gamma_d)(|x|^2 + |y|^2)``). The added ``(d + 2) u (|x|^2 + max|y|^2)`` covers
      both to first order (``gamma_d = d u + O(d^2 u^2)``); their second-order remainder, like
      ``B``'s own, sits in ``B``'s factor-2 margin;
    - pair by pair: ``sum (x_i - y_i)^2`` in float32, which errs by at most
      ``gamma_(d+2) |x - y|^2 <= gamma_(d+2) (|x| + |y|)^2``, inside ``B`` alone.

    With ``v_k`` the k-th smallest returned value (the query itself left out), every reference
    above ``T = (v_k + 2 bound)(1 + 4 (d + 2) u64)`` is farther in float64 than k others (module
    docstring; here ``T`` stays in float64, where comparing the float32 values loses nothing).
    So a query is certified when the last returned value exceeds ``T``, and its candidates are
    the returned ones at or below ``T``; or when faiss returned every reference, and then they
    all are.

    Two widths: ``k + 3`` first, then ``kp + 1`` for the queries the first could not certify
    (uniform data at 2,000 x 20,000 x 784: 20% of the queries have one reference beyond the
    k-th within ``T``, 3% two, 0.35% three or more; faiss's shorter heap is the cheaper). Any
    query the second cannot certify either (or with a non-finite value, from float32 overflow)
    is flagged for the exact fallback.
    """
    b = len(x32)
    m = len(r32)
    x32 = x32.numpy()
    bound = bound.numpy()
    own = self_offset + np.arange(b) if self_offset is not None else None
    cand = np.full((b, 0), -1, dtype=np.int64)
    todo = np.arange(b)
    widths = sorted({min(k + 3, kp + 1), kp + 1})
    for width in widths:
        width = min(width + (own is not None), m)
        approx, idx = faiss.knn(x32 if len(todo) == b else x32[todo], r32, width)
        approx = approx.astype(np.float64)
        usable = idx >= 0
        if own is not None:
            usable &= idx != own[todo, None]
        vk = np.partition(np.where(usable, approx, np.inf), k - 1, axis=1)[:, k - 1]
        thr = _threshold(vk, bound[todo], d)
        # NaN-safe: a comparison with NaN is False, so such a query is not certified
        certified = np.isfinite(approx).all(1) & (idx >= 0).all(1) & ((width == m) | (approx.max(1) > thr))
        keep = usable & ((width == m) | (approx <= thr[:, None])) & certified[:, None]
        # the columns up to the last one holding a candidate (faiss sorts its answer, so these
        # are the first few), the others padded with -1
        w = int(np.flatnonzero(keep.any(0))[-1]) + 1 if keep.any() else 0
        if w > cand.shape[1]:
            cand = np.concatenate([cand, np.full((b, w - cand.shape[1]), -1, dtype=np.int64)], 1)
        cand[todo, :w] = np.where(keep[:, :w], idx[:, :w], -1)
        todo = todo[~certified]
        if not len(todo):
            break
    overflow = np.zeros(b, dtype=bool)
    overflow[todo] = True
    # at least k columns: the caller takes the first k after sorting (overflowing rows are
    # replaced by the fallback's answer)
    if cand.shape[1] < k:
        cand = np.concatenate([cand, np.full((b, k - cand.shape[1]), -1, dtype=np.int64)], 1)
    return torch.from_numpy(cand), torch.from_numpy(overflow)


def _exact_candidates(xd: torch.Tensor, r: torch.Tensor, cand_i: torch.Tensor) -> torch.Tensor:
    """Float64 squared distances from each query (rows of ``xd``) to its candidates ``cand_i``
    (b, w), inf where the index is -1 (padding).

    Only the real (query, candidate) pairs are computed (padding would be a third of the work
    where a few rows of a batch have k + 2 candidates), in blocks of ``_block_values`` values.
    """
    out = torch.full(cand_i.shape, math.inf, dtype=torch.float64, device=r.device)
    rows, cols = torch.nonzero(cand_i >= 0, as_tuple=True)
    ref = cand_i[rows, cols]
    step = max(1, _block_values(r.device) // r.shape[1])
    for s in range(0, len(ref), step):
        diff = r.index_select(0, ref[s : s + step]).double().sub_(xd.index_select(0, rows[s : s + step]))
        out[rows[s : s + step], cols[s : s + step]] = _sum_of_squares(diff)
    return out


def _sum_of_squares(diff: torch.Tensor) -> torch.Tensor:
    """Squared norms of the rows of ``diff`` (float64, ``(..., d)``, overwritten), each rounded the
    same way wherever the row sits.

    The exact stage must give a pair the same float64 distance in every layout: in a re-ranking
    batch of any shape or width, or in the full scan of the fallback. Otherwise two searches that
    certify different candidate lists (torch and faiss backends, other chunk sizes) could differ in
    the last bit of a distance, or order a near-tie differently. A sum over a contiguous last axis
    reduces each row on its own, in an order fixed by ``d``; ``einsum`` (the former re-ranking)
    goes through batched-GEMM kernels whose order follows the batch shape (1-ulp differences at
    d = 784), and differed from the scan's sum besides. The one exception is a reduction with a
    single output, which torch splits across threads once it holds 32,768 values: a lone row is
    reduced beside a copy of itself.
    """
    sq = diff.square_()
    if sq.numel() == sq.shape[-1]:
        return sq.reshape(1, -1).expand(2, -1).contiguous().sum(1)[:1].reshape(sq.shape[:-1])
    return sq.sum(-1)


def _sort_by_value_then_index(values: torch.Tensor, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort each row by value, ties by index (two stable sorts: index first, then value)."""
    order = torch.argsort(indices, dim=1, stable=True)
    values, indices = torch.gather(values, 1, order), torch.gather(indices, 1, order)
    order = torch.argsort(values, dim=1, stable=True)
    return torch.gather(values, 1, order), torch.gather(indices, 1, order)


def _exact_scan(
    x: torch.Tensor, r: torch.Tensor, k: int, ref_batch_size: int, self_index: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 squared distances from one query to every reference; k smallest, ties to lower index."""
    d2 = torch.empty(len(r), dtype=torch.float64, device=r.device)
    for rs in range(0, len(r), ref_batch_size):
        d2[rs : rs + ref_batch_size] = _sum_of_squares(r[rs : rs + ref_batch_size].double() - x)
    if self_index is not None:
        d2[self_index] = math.inf
    # a stable sort of values stored in index order keeps ties in index order
    v, i = torch.sort(d2, stable=True)
    return v[:k], i[:k]
