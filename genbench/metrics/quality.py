"""Sample-quality metrics on features: FID, Inception Score, KID, precision/recall, density/coverage.

All functions are pure functions of arrays (numpy or torch, shapes ``(n, d)``), computed in
float64, and follow the conventions in PROTOCOLS.md so that they agree with torch-fidelity on
identical inputs. :func:`evaluate_quality` turns them into :class:`~genbench.results.MetricResult`
rows with protocol names, sample counts, uncertainty and warnings.

Conditions a reader must know about (too few samples for the feature width, a reduced KID subset
size) are raised as :class:`QualityWarning` by the pure functions and recorded in the results by
:func:`evaluate_quality`, never dropped.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import xlogy

from genbench._validation import (
    as_numpy,
    check_feature_pair,
    check_finite,
    check_n,
    check_positive_int,
    check_probabilities,
)
from genbench.metrics import register_metric
from genbench.metrics._spec import Measurement, MetricWarning
from genbench.results import MetricResult, Protocol

__all__ = [
    "QualityWarning", "density_coverage", "evaluate_quality", "feature_statistics", "fid_inf_sizes", "fid_infinity",
    "frechet_distance", "frechet_distance_from_stats", "inception_score", "kernel_inception_distance",
    "precision_recall", "quality_protocol",
]


class QualityWarning(MetricWarning):
    """A condition that changes how a quality number must be read (recorded in results)."""


# --------------------------------------------------------------------------------------------
# FID
# --------------------------------------------------------------------------------------------


def feature_statistics(x: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and covariance (d, d) of features (n, d) in float64, ``np.cov(rowvar=False)``, ddof=1."""
    a = as_numpy(x).astype(np.float64, copy=False)
    return a.mean(axis=0), np.atleast_2d(np.cov(a, rowvar=False))


def _low_rank_factor(s: np.ndarray) -> np.ndarray | None:
    """Q (d, r) with S = Q Q^T for a rank-deficient PSD S (a covariance of n <= d samples has rank n - 1),
    by Cholesky with complete pivoting (LAPACK dpstrf, O(d^2 r) instead of eigh's O(d^3)); None when S is
    numerically of full rank or not PSD (then the symmetric root is used).

    The factorisation stops where the largest remaining diagonal falls below dpstrf's tolerance,
    d * eps * max(diag S): what it leaves out is rounding noise of the covariance, whose eigenvalues the
    symmetric-root route keeps as tiny positive values (each adding a rounding-level square root).
    """
    from scipy.linalg import lapack

    d = s.shape[0]
    if not np.any(np.diag(s) > 0):  # every feature constant: S = 0 (rank 0)
        return np.zeros((d, 0))
    c, piv, rank, info = lapack.dpstrf(s, lower=1)
    if info < 0 or rank >= d or rank < 1:
        return None
    q = np.zeros((d, rank))
    q[piv - 1] = np.tril(c)[:, :rank]
    return q


def _sym_sqrt_psd(s: np.ndarray) -> np.ndarray:
    """Symmetric PSD square root via eigh, negative rounding-level eigenvalues clipped to 0."""
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


_BLAS_CONTROLLER: Any = None
# below this width one BLAS thread is faster: a threaded 64x64 eigvalsh was measured here at
# 0.14 ms best but 15 ms median on two busy cores (threads waiting for each other), 0.14 ms single
_SINGLE_THREAD_MAX_D = 256


def _blas_threads_for(d: int) -> Any:
    """A context limiting BLAS to one thread for small matrices (no-op without threadpoolctl)."""
    global _BLAS_CONTROLLER
    if d > _SINGLE_THREAD_MAX_D:
        return contextlib.nullcontext()
    try:
        if _BLAS_CONTROLLER is None:
            from threadpoolctl import ThreadpoolController  # scikit-learn's dependency

            _BLAS_CONTROLLER = ThreadpoolController()  # built once: inspecting the libraries costs ~1 ms
        return _BLAS_CONTROLLER.limit(limits=1, user_api="blas")
    except Exception:  # threadpoolctl missing or unable to inspect: keep the default threading
        return contextlib.nullcontext()


def _trace_sqrt_product(s_r: np.ndarray, s_f: np.ndarray, method: str) -> float:
    with _blas_threads_for(s_r.shape[0]):
        return _trace_sqrt_product_impl(s_r, s_f, method)


def _cholesky(s: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of S; raises ``numpy.linalg.LinAlgError`` where S is not numerically PD.

    Wide matrices go through torch (LAPACK dpotrf from the BLAS torch ships, MKL on x86), about 1.4x
    faster than numpy's at d = 2048 on one thread; narrow ones stay in numpy (see _SINGLE_THREAD_MAX_D).
    """
    if s.shape[0] <= _SINGLE_THREAD_MAX_D:
        return np.linalg.cholesky(s)
    import torch

    factor, info = torch.linalg.cholesky_ex(_as_torch(s))
    if int(info) != 0:
        raise np.linalg.LinAlgError(f"leading minor {int(info)} is not positive definite")
    return factor.numpy()


def _eigvalsh(m: np.ndarray) -> np.ndarray:
    """Eigenvalues of a symmetric matrix (its lower triangle is read).

    Narrow matrices: scipy's LAPACK dsyev (implicit QL/QR of the tridiagonal form, the fastest driver
    there). Wide ones: torch's eigvalsh, whose LAPACK (MKL on x86) reduces to tridiagonal form about
    twice as fast as scipy's at d = 2048 on one thread (0.33 s against 0.66 s here).
    """
    if m.shape[0] <= _SINGLE_THREAD_MAX_D:
        from scipy.linalg import eigh

        return eigh(m, eigvals_only=True, driver="ev", overwrite_a=True, check_finite=False)
    import torch

    return torch.linalg.eigvalsh(_as_torch(m)).numpy()


def _as_torch(a: np.ndarray) -> Any:
    """A float64 CPU tensor sharing ``a``'s memory where it can (a copy for read-only or strided arrays)."""
    import torch

    a = np.ascontiguousarray(a, dtype=np.float64)
    return torch.from_numpy(a) if a.flags.writeable else torch.tensor(a)


def _trace_sqrt_product_impl(s_r: np.ndarray, s_f: np.ndarray, method: str) -> float:
    """Tr (S_r S_f)^1/2 from a symmetric matrix with the same eigenvalues as S_r S_f.

    With S_r = L L^T, S_r S_f = L (L^T S_f L) L^-1 is similar to the symmetric PSD matrix
    L^T S_f L, so its eigenvalues are real and non-negative up to rounding: no complex numbers,
    no NaN (PROTOCOLS.md). A singular S_r has no Cholesky factor: a pivoted one, S_r = Q Q^T with Q
    (d, rank), gives Q^T S_f Q, whose eigenvalues are the nonzero ones of S_r S_f; where that does
    not apply (``"eigh"``, or S_r numerically of full rank), its symmetric root R gives R S_f R, whose
    eigenvalues equal those of S_r S_f as well (R^2 S_f ~ R S_f R).
    """
    from scipy.linalg import lapack

    root = None
    if method in ("auto", "cholesky"):  # "low-rank": S_r is known to be rank-deficient (n <= d)
        try:
            root = _cholesky(s_r)
        except np.linalg.LinAlgError:
            if method == "cholesky":
                raise
    if root is None:
        q = _low_rank_factor(s_r) if method in ("auto", "low-rank") else None
        if q is not None and q.shape[1] == 0:
            return 0.0
        if q is not None:  # S_r = Q Q^T with Q (d, r): the nonzero eigenvalues are those of Q^T S_f Q (r, r)
            m = q.T @ (s_f @ q)
        else:
            r = _sym_sqrt_psd(s_r)
            m = r.T @ s_f @ r
        m = 0.5 * (m + m.T)  # exact symmetry for the symmetric solver; removes rounding asymmetry only
    else:
        # L^T S_f L by LAPACK's reduction of a symmetric-definite pencil to standard form (dsygst, itype 2):
        # it uses the symmetry of S_f, d^3 flops instead of the 2 d^3 of two triangular products, and
        # fills the lower triangle, which is all the symmetric solver reads
        m, info = lapack.dsygst(s_f, root, itype=2, lower=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"LAPACK dsygst failed (info={info}) on a {s_f.shape[0]}-wide covariance")
    ev = _eigvalsh(m)  # eigenvalues only, from the lower triangle: no eigenvectors
    return float(np.sqrt(np.clip(ev, 0.0, None)).sum())


def frechet_distance_from_stats(mu1: Any, cov1: Any, mu2: Any, cov2: Any, *, method: str = "auto") -> float:
    """Fréchet distance between two Gaussians given their statistics (lower is better).

    ``||mu1 - mu2||^2 + Tr S1 + Tr S2 - 2 Tr (S1^1/2 S2 S1^1/2)^1/2``, in float64.

    Parameters
    ----------
    mu1, mu2 : array (d,)
        Means (real first by convention; the value is symmetric up to rounding).
    cov1, cov2 : array (d, d)
        Covariances.
    method : {"auto", "cholesky", "low-rank", "eigh"}
        How S1 is factored for the trace term: ``"cholesky"`` (full-rank S1), ``"low-rank"`` (a
        singular S1, e.g. n <= d: Cholesky with complete pivoting, S1 = Q Q^T with Q (d, rank),
        O(d^2 rank); the symmetric root if S1 turns out of full rank), ``"eigh"`` (its symmetric
        root by a full eigendecomposition, O(d^3)), ``"auto"``: Cholesky, falling back to
        ``"low-rank"`` where S1 is not numerically positive definite.

    Returns
    -------
    float

    References
    ----------
    Heusel et al. 2017, "GANs trained by a two time-scale update rule converge to a local Nash
    equilibrium" (FID); Dowson & Landau 1982 (the Fréchet distance between Gaussians).

    Examples
    --------
    >>> import numpy as np
    >>> round(frechet_distance_from_stats(np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2)), 6)
    4.0
    """
    mu1 = np.asarray(mu1, dtype=np.float64).reshape(-1)
    mu2 = np.asarray(mu2, dtype=np.float64).reshape(-1)
    cov1 = np.atleast_2d(np.asarray(cov1, dtype=np.float64))
    cov2 = np.atleast_2d(np.asarray(cov2, dtype=np.float64))
    d = mu1.shape[0]
    for name, c in (("cov1", cov1), ("cov2", cov2)):
        if c.shape != (d, d):
            raise ValueError(f"{name} has shape {c.shape} but the means have length {d}; expected ({d}, {d}).")
    if mu2.shape != (d,):
        raise ValueError(f"mu1 has length {d} but mu2 has length {mu2.shape[0]}; use the same feature extractor.")
    for name, a in (("mu1", mu1), ("cov1", cov1), ("mu2", mu2), ("cov2", cov2)):
        check_finite(a, name, hint="recompute the statistics from finite features")
    if method not in ("auto", "cholesky", "eigh", "low-rank"):
        raise ValueError(f"method must be 'auto', 'cholesky', 'low-rank' or 'eigh'; got {method!r}.")
    diff = mu1 - mu2
    tr = _trace_sqrt_product(cov1, cov2, method)
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * tr)


@register_metric("fid", family="quality", needs="features", direction="lower", bootstrap="sets",
                 description="Fréchet distance between Gaussian fits of real and fake features (Heusel 2017)")
def frechet_distance(real: Any, fake: Any, *, eps: float = 0.0) -> float:
    """Fréchet (Inception) Distance between real and fake features (lower is better).

    Parameters
    ----------
    real, fake : array (n_real, d), (n_fake, d)
        Features from the same extractor. Each set needs at least 2 samples.
    eps : float
        Added to both covariance diagonals (0 by default: the standard FID has no offset).

    Returns
    -------
    float
        FID in squared feature units. It is biased upwards in n: always report n. When
        ``n < d`` for either set, a :class:`QualityWarning` says so (the covariance is singular
        and the trace term uses its eigh square root).

    Notes
    -----
    Statistics in float64 with ``np.cov(rowvar=False)`` (ddof=1); the trace term from the
    symmetric eigen form (see :func:`frechet_distance_from_stats`), which agrees with
    ``scipy.linalg.sqrtm`` and torch-fidelity's ``eigvals`` route to ~1e-12 at full rank and
    is several times faster at d=2048.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(500, 4))
    >>> abs(frechet_distance(x, x)) < 1e-9
    True
    """
    real, fake = check_feature_pair(real, fake, min_n=2, metric="FID",
                                    fix="the covariance needs at least 2 samples per set")
    n_r, d = real.shape
    n_f = fake.shape[0]
    if min(n_r, n_f) < d:
        warnings.warn(
            f"FID with n={n_r} real / {n_f} fake samples < d={d} feature dimensions: the covariance is singular "
            "and FID is strongly biased; compare only numbers with the same n (use n >= d where possible).",
            QualityWarning, stacklevel=2,
        )
    with _blas_threads_for(d):
        mu_r, s_r = feature_statistics(real)
        mu_f, s_f = feature_statistics(fake)
        if eps:
            s_r = s_r + eps * np.eye(d)
            s_f = s_f + eps * np.eye(d)
        # a rank-deficient S_r (n <= d) has no Cholesky factor: go straight to its pivoted one
        method = "low-rank" if n_r <= d else "auto"
        return frechet_distance_from_stats(mu_r, s_r, mu_f, s_f, method=method)


def fid_inf_sizes(n: int, sizes: int = 10, min_fraction: float = 0.25) -> np.ndarray:
    """The set sizes FID∞ is fitted over: ``sizes`` evenly spaced integers from ``ceil(min_fraction * n)``
    (at least 2) to ``n``, repeats dropped.

    Examples
    --------
    >>> fid_inf_sizes(180).tolist()
    [45, 60, 75, 90, 105, 120, 135, 150, 165, 180]
    """
    if not 0.0 < float(min_fraction) < 1.0:
        raise ValueError(f"min_fraction must be in (0, 1); got {min_fraction!r}.")
    sizes = check_positive_int(sizes, "sizes", minimum=3)
    lo = max(2, math.ceil(float(min_fraction) * n))
    return np.unique(np.round(np.linspace(lo, n, sizes)).astype(np.int64))


@register_metric("fid-inf", family="quality", needs="features", direction="lower", uncertainty="fit",
                 protocol_params={"sizes": "sizes", "min_fraction": "min_frac"},
                 description="FID extrapolated to infinitely many samples: the intercept of FID(n) = FID∞ + k/n "
                 "fitted over subsets of several sizes (Chong and Forsyth 2020)")
def fid_infinity(real: Any, fake: Any, *, sizes: int = 10, min_fraction: float = 0.25, seed: int = 0) -> Measurement:
    """FID∞: FID extrapolated to n → ∞ by a straight-line fit over 1/n (lower is better).

    FID is biased upwards by roughly k/n, with k depending on the generator (Chong and Forsyth
    2020), so FIDs at one finite n can rank models differently than their limits would. FID∞
    computes FID on subsets of both sets at several sizes ``n_i`` (:func:`fid_inf_sizes`: ``sizes``
    sizes from ``ceil(min_fraction * n)`` to ``n = min(n_real, n_fake)``), fits
    ``FID(n_i) = FID∞ + k / n_i`` by least squares and reports the intercept.

    Parameters
    ----------
    real, fake : array (n_real, d), (n_fake, d)
        Features from the same extractor.
    sizes : int
        How many set sizes the line is fitted over (at least 3: the fit's standard error needs a
        residual degree of freedom).
    min_fraction : float in (0, 1)
        The smallest size as a fraction of n.
    seed : int
        Subsets are drawn without replacement from ``np.random.default_rng(seed)``: at each size one
        random order of ``range(max(n_real, n_fake))``, read as the first ``n_i`` indices below each
        set's length. Both sets are exchangeable, so this is as random as separate draws, and a set
        compared with itself scores exactly 0 at every size (separate draws would fit a small
        positive intercept).

    Returns
    -------
    Measurement
        ``value`` = FID∞; ``std`` = the standard error of the fitted intercept (``std_kind="fit"``:
        the scatter of the per-size FIDs about the line, not the sampling of the two sets
        themselves, which equal-n subsample repeats measure); ``params``: ``sizes``, ``fid_at_sizes``
        (per size), ``slope`` (k) and ``fid_at_n`` (FID at the largest size, both sets at n).

    Notes
    -----
    Cheap: ``sizes`` FIDs at no more than n samples each. The 1/n model is asymptotic; sizes at or
    below the feature width d (singular covariances) bend the curve, and a :class:`QualityWarning`
    says so. FID∞ can be slightly negative for near-identical distributions (the fit's noise);
    read it with its std.

    References
    ----------
    Chong and Forsyth 2020, "Effectively Unbiased FID and Inception Score and where to find them", CVPR.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> m = fid_infinity(rng.normal(size=(400, 4)), rng.normal(size=(400, 4)) + [1.0, 0, 0, 0], seed=0)
    >>> abs(m.value - 1.0) < 3 * m.std + 0.1, m.params["sizes"][-1]
    (True, 400)
    """
    real, fake = check_feature_pair(real, fake, min_n=4, metric="FID∞",
                                    fix="the fit needs at least 3 set sizes of at least 2 samples each")
    n_r, d = real.shape
    n_f = fake.shape[0]
    n = min(n_r, n_f)
    ns = fid_inf_sizes(n, sizes, min_fraction)
    if len(ns) < 3:
        raise ValueError(f"FID∞ needs at least 3 distinct set sizes; n={n} with min_fraction={min_fraction} gives "
                         f"{ns.tolist()}. Provide more samples or lower min_fraction.")
    rng = np.random.default_rng(seed)
    vals = np.empty(len(ns))
    with _blas_threads_for(d):
        for i, m in enumerate(ns):
            order = rng.permutation(max(n_r, n_f))
            ir, jf = order[order < n_r][:m], order[order < n_f][:m]
            mu_r, s_r = feature_statistics(real[ir])
            mu_f, s_f = feature_statistics(fake[jf])
            vals[i] = frechet_distance_from_stats(mu_r, s_r, mu_f, s_f, method="low-rank" if m <= d else "auto")
    x = 1.0 / ns.astype(np.float64)
    design = np.c_[np.ones_like(x), x]
    (intercept, slope), *_ = np.linalg.lstsq(design, vals, rcond=None)
    resid = vals - design @ np.array([intercept, slope])
    dof = len(ns) - 2
    s2 = float(resid @ resid) / dof
    sxx = float(((x - x.mean()) ** 2).sum())
    se = math.sqrt(max(s2 * (1.0 / len(ns) + x.mean() ** 2 / sxx), 0.0))
    if ns[0] <= d:
        warnings.warn(
            f"FID∞ fits set sizes from {int(ns[0])} to {int(ns[-1])}, some at or below the feature width d={d}: "
            "there the covariances are singular and FID's bias is not linear in 1/n, so the extrapolation is "
            "rougher than its fit error says (more samples, or a larger min_fraction, help).",
            QualityWarning, stacklevel=2,
        )
    return Measurement(float(intercept), std=se, std_kind="fit",
                       params={"sizes": ns.tolist(), "fid_at_sizes": vals.tolist(), "slope": float(slope),
                               "fid_at_n": float(vals[-1])})


# --------------------------------------------------------------------------------------------
# Inception Score
# --------------------------------------------------------------------------------------------


def _as_probs(a: np.ndarray, kind: str) -> np.ndarray:
    if kind == "auto":
        rows_sum_to_one = bool(np.all(np.abs(a.sum(axis=1) - 1.0) <= 1e-4))
        kind = "probs" if (a.min() >= 0.0 and a.max() <= 1.0 and rows_sum_to_one) else "logits"
    if kind == "probs":
        p = check_probabilities(a, "probs")
        p = np.clip(p, 0.0, None)
        return p / p.sum(axis=1, keepdims=True)
    if kind == "logits":
        from scipy.special import softmax

        return softmax(a.astype(np.float64), axis=1)
    raise ValueError(f"kind must be 'auto', 'probs' or 'logits'; got {kind!r}.")


@register_metric("is", family="quality", needs="probs", direction="higher", uncertainty="splits",
                 protocol_params={"splits": "splits"}, bootstrap="sets", reference_row=True,
                 description="Inception Score exp(E KL(p(y|x) || p(y))) over splits (Salimans 2016)")
def inception_score(probs_or_logits: Any, *, splits: int = 10, seed: int = 0,
                    kind: str = "auto") -> tuple[float, float]:
    """Inception Score of generated samples (higher is better): mean and std over splits.

    Parameters
    ----------
    probs_or_logits : array (n, classes)
        Class probabilities p(y|x) or logits of the fake samples.
    splits : int
        Number of splits; split i is rows ``[i*N//splits, (i+1)*N//splits)`` after the shuffle.
    seed : int
        Seed of the shuffle, ``np.random.RandomState(seed).permutation(N)`` (torch-fidelity's
        choice, so equal seeds give equal splits there and here).
    kind : {"auto", "probs", "logits"}
        How to read the input. ``"probs"``: rows must be non-negative and sum to 1 (within
        1e-4; they are renormalised in float64). ``"logits"``: softmax in float64 over all
        columns. ``"auto"`` (default) reads the input as probabilities when every value lies in
        [0, 1] and every row sums to 1 within 1e-4, else as logits; pass ``kind`` explicitly
        when in doubt.

    Returns
    -------
    (mean, std) : tuple of float
        Mean and *population* std (ddof=0) of ``exp(mean_x KL(p(y|x) || p(y)))`` over splits,
        torch-fidelity's convention (torchmetrics' Bessel std reads ~5% higher at 10 splits).

    References
    ----------
    Salimans et al. 2016, "Improved techniques for training GANs".

    Examples
    --------
    >>> import numpy as np
    >>> mean, std = inception_score(np.eye(4)[[0, 1, 2, 3] * 5], splits=1)
    >>> round(mean, 12), std
    (4.0, 0.0)
    """
    a = as_numpy(probs_or_logits)
    if a.ndim != 2:
        raise ValueError(f"probs_or_logits must be 2-D (n_samples, n_classes); got shape {tuple(a.shape)}.")
    splits = check_positive_int(splits, "splits")
    check_n(len(a), splits, "fake", why=f"for the Inception Score with splits={splits} (one per split at least)",
            fix="provide more samples or lower splits")
    check_finite(a, "probs_or_logits", hint="check the classifier's output")
    p = _as_probs(a.astype(np.float64, copy=False), kind)
    n = len(p)
    p = p[np.random.RandomState(seed).permutation(n)]
    scores = []
    for i in range(splits):
        pc = p[i * n // splits:(i + 1) * n // splits]
        q_y = pc.mean(axis=0, keepdims=True)
        # KL(p(y|x) || p(y)) with 0 log 0 = 0 (xlogy), so zero probabilities give no NaN
        kl = (xlogy(pc, pc) - xlogy(pc, q_y)).sum(axis=1)
        scores.append(math.exp(float(kl.mean())))
    return float(np.mean(scores)), float(np.std(scores))


# --------------------------------------------------------------------------------------------
# KID
# --------------------------------------------------------------------------------------------


def _mmd2_unbiased_poly(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b/d + 1)^3 for equal-size subsets x, y (m, d)."""
    m, d = x.shape

    def cube(t: np.ndarray) -> np.ndarray:
        # t * t * t, not t ** 3: numpy's power calls pow() per element, 10x slower at m = 1000
        return t * t * t

    k_xx = cube(x @ x.T / d + 1.0)
    k_yy = cube(y @ y.T / d + 1.0)
    k_xy = cube(x @ y.T / d + 1.0)
    sum_xx = k_xx.sum() - np.trace(k_xx)
    sum_yy = k_yy.sum() - np.trace(k_yy)
    return float((sum_xx + sum_yy) / (m * (m - 1)) - 2.0 * k_xy.sum() / (m * m))


def _poly_features(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Explicit features of the cubic kernel, for low dimension: k(a, b) = (a.b/d + 1)^3 =
    sum_p C(3, p) (a.b)^p / d^p, and (a.b)^p = <a^(x)p, b^(x)p> (tensor powers). Returns (phi, diag):
    rows phi(a) = [1, sqrt(3/d) a, sqrt(3)/d a(x)a, d^(-3/2) a(x)a(x)a] with phi(a).phi(b) = k(a, b),
    and diag = k(a, a) computed directly."""
    n, d = x.shape
    x2 = (x[:, :, None] * x[:, None, :]).reshape(n, d * d)
    x3 = (x2[:, :, None] * x[:, None, :]).reshape(n, d * d * d)
    phi = np.concatenate([np.ones((n, 1)), x * math.sqrt(3.0 / d), x2 * (math.sqrt(3.0) / d), x3 * d**-1.5], axis=1)
    t = np.einsum("ij,ij->i", x, x) / d + 1.0
    return phi, t * t * t


def _mmd2_unbiased_features(px: np.ndarray, dx: np.ndarray, py: np.ndarray, dy: np.ndarray) -> float:
    """The same unbiased MMD^2 as :func:`_mmd2_unbiased_poly`, from explicit features: the kernel sums
    are inner products of feature sums, O(m d^3) instead of O(m^2 d)."""
    m = len(px)
    sx, sy = px.sum(axis=0), py.sum(axis=0)
    sum_xx = sx @ sx - dx.sum()
    sum_yy = sy @ sy - dy.sum()
    return float((sum_xx + sum_yy) / (m * (m - 1)) - 2.0 * (sx @ sy) / (m * m))


def _kid_subset_size(kw: dict[str, Any], inputs: Any) -> tuple[dict[str, Any], tuple[str, ...]]:
    """KID's m lowered explicitly, and said, when either set has fewer than m samples (PROTOCOLS.md)."""
    requested = int(kw.get("subset_size", 1000))
    n_r, n_f = len(inputs.real), len(inputs.fake)
    if min(n_r, n_f) >= requested:
        return kw, ()
    m = min(n_r, n_f)
    note = (f"KID subset size reduced from {requested} to m={m} = min(n_real, n_fake) because there are fewer "
            f"samples than {requested}; numbers with different m are not comparable")
    if n_r == n_f == m:
        # every subset would be the whole of both sets: one subset is the same number, computed once
        return {**kw, "subset_size": m, "subsets": 1}, (note + " and with m equal to both set sizes every subset is "
                                                       "the whole set, so one subset is computed (no subset std).",)
    return {**kw, "subset_size": m}, (note + ".",)


@register_metric("kid", family="quality", needs="features", direction="lower", uncertainty="subsets",
                 unit="MMD^2", protocol_params={"subset_size": "m", "subsets": "subsets"}, bootstrap="sets",
                 prepare=_kid_subset_size,
                 description="Kernel Inception Distance: unbiased MMD^2 (raw, not x1000), cubic polynomial kernel, "
                 "mean and spread of single-subset estimates (Binkowski 2018); not comparable across feature spaces")
def kernel_inception_distance(real: Any, fake: Any, *, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance (lower is better): mean and std of unbiased MMD^2 over subsets.

    Parameters
    ----------
    real, fake : array (n_real, d), (n_fake, d)
        Features from the same extractor; each needs at least ``subset_size`` rows.
    subsets : int
        Number of subset pairs.
    subset_size : int
        m, the size of each subset. ``m > min(n_real, n_fake)`` is an error: choose a smaller m
        explicitly and report it (:func:`evaluate_quality` does this and records it).
    seed : int
        Subsets are drawn without replacement from ``np.random.RandomState(seed)``, for each
        subset first the real then the fake indices (torch-fidelity's order), so that equal
        seeds give equal subsets there and here.

    Returns
    -------
    (mean, std) : tuple of float
        Mean and population std (ddof=0) over subsets. Slightly negative values are valid and
        mean the two distributions are very close.

    Notes
    -----
    Kernel k(x, y) = (x.y / d + 1)^3; per subset the unbiased estimate
    ``sum_{i!=j} k(x_i,x_j)/(m(m-1)) + sum_{i!=j} k(y_i,y_j)/(m(m-1)) - 2 sum_{i,j} k(x_i,y_j)/m^2``.
    Cost: 3 (m x d x m) products per subset, in float64; when d + d^2 + d^3 < m/4 (2-D points) the
    kernel's explicit features are summed instead, O(m d^3) per subset, the same estimate.

    References
    ----------
    Bińkowski et al. 2018, "Demystifying MMD GANs".

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> mean, std = kernel_inception_distance(rng.normal(size=(200, 8)), rng.normal(size=(200, 8)) + 1,
    ...                                       subsets=10, subset_size=100)
    >>> mean > 0.1
    True
    """
    subsets = check_positive_int(subsets, "subsets")
    subset_size = check_positive_int(subset_size, "subset_size", minimum=2)
    real, fake = check_feature_pair(real, fake, min_n=subset_size, metric="KID",
                                    why=f"for KID subsets of size subset_size={subset_size}",
                                    fix="pass a smaller subset_size (and report it) or provide more samples")
    rng = np.random.RandomState(seed)
    mmds = np.empty(subsets)
    d = real.shape[1]
    # in low dimension (2-D mixtures) the kernel has few explicit features: per subset O(m d^3), not O(m^2 d)
    explicit = d + d * d + d**3 < subset_size // 4
    if explicit:
        (pr, dr), (pf, df) = _poly_features(real), _poly_features(fake)
    with _blas_threads_for(d):
        for i in range(subsets):
            ir = rng.choice(len(real), subset_size, replace=False)
            jf = rng.choice(len(fake), subset_size, replace=False)
            mmds[i] = (_mmd2_unbiased_features(pr[ir], dr[ir], pf[jf], df[jf]) if explicit
                       else _mmd2_unbiased_poly(real[ir], fake[jf]))
    return float(mmds.mean()), float(mmds.std())


# --------------------------------------------------------------------------------------------
# Precision / recall and density / coverage (k-NN balls)
# --------------------------------------------------------------------------------------------

# elements per distance block: 2^23 float64 = 64 MiB, so memory stays bounded for any n
_BLOCK_ELEMS = 1 << 23
# float64 unit roundoff, for the certified bound on the GEMM expansion's error
_U64 = 2.0**-53
# pairs per exact re-check batch: bounds the (pairs, d) difference array
_EXACT_PAIRS = 1 << 16


def _sq_dists(a: np.ndarray, b: np.ndarray, a2: np.ndarray, b2: np.ndarray) -> np.ndarray:
    # |a-b|^2 = |a|^2 + |b|^2 - 2 a.b: one GEMM per block; inputs are centred by the caller
    # (smaller norms, less cancellation); the clamp removes rounding-level negatives. The result
    # is only approximate: _ball_test re-checks, from explicit differences, every pair the
    # rounding could put on the wrong side of a radius.
    d = a @ b.T
    d *= -2.0
    d += a2[:, None]
    d += b2[None, :]
    return np.maximum(d, 0.0, out=d)


def _blocks(n_rows: int, n_cols: int, chunk_size: int | None) -> list[tuple[int, int]]:
    """(lo, hi) row ranges such that a block of n_cols columns stays within the memory bound."""
    step = chunk_size or max(1, _BLOCK_ELEMS // max(1, n_cols))
    return [(lo, min(n_rows, lo + step)) for lo in range(0, n_rows, step)]


def _exact_sq(a: np.ndarray, b: np.ndarray, ia: np.ndarray | None = None,
              ib: np.ndarray | None = None) -> np.ndarray:
    """Squared distances of row pairs ``(a[ia[p]], b[ib[p]])`` (all rows in order when the index is
    None) from explicit float64 differences: the reference arithmetic. Gathered in batches, so
    memory stays bounded however many pairs are asked for."""
    n = len(a) if ia is None else len(ia)
    out = np.empty(n)
    for lo in range(0, n, _EXACT_PAIRS):
        hi = min(n, lo + _EXACT_PAIRS)
        diff = (a[lo:hi] if ia is None else a[ia[lo:hi]]) - (b[lo:hi] if ib is None else b[ib[lo:hi]])
        out[lo:hi] = np.einsum("ij,ij->i", diff, diff)
    return out


def _kth_nn_sq_radius(x: np.ndarray, k: int) -> np.ndarray:
    """Squared distance from each row of x to its k-th nearest neighbour in x, itself excluded.

    One k-NN search for the whole package (issue 10): :func:`~genbench.metrics.neighbours.nearest_neighbours`
    with ``exclude_self`` (by index, so a duplicate elsewhere counts at distance 0) is exact, ties
    included. The squared radius is recomputed from the explicit difference to the k-th neighbour,
    the same float64 arithmetic as every exact re-check in :func:`_ball_test`, so a point at
    exactly the radius compares equal to it.

    Repeated rows (a mode-collapsed generator, replayed data) are searched once: a row with c
    copies has c - 1 neighbours at distance 0, and its k-th neighbour is otherwise the first
    distinct neighbour at which the copies counted so far reach k. This keeps the search's exact
    fallback (taken where ties crowd its candidate margin) from running once per copy: 10,000
    samples made of 20 images took 29 s without it, against 3.5 s for the old rounding-prone rule.
    """
    from genbench.metrics.neighbours import nearest_neighbours  # torch: imported only when needed

    u, inverse, mult = np.unique(x, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    if len(u) == len(x):
        _, idx = nearest_neighbours(x, x, k=k, exclude_self=True)
        return _exact_sq(x, x, ib=idx[:, k - 1])
    need = k - (mult - 1)  # copies of a row fill its first mult - 1 neighbours at distance 0
    rad_u = np.zeros(len(u))
    open_ = np.flatnonzero(need > 0)
    if len(open_):
        kk = min(k, len(u) - 1)  # need <= k distinct neighbours, each with >= 1 copy
        _, idx = nearest_neighbours(u, u, k=kk, exclude_self=True)
        cum = np.cumsum(mult[idx[open_]], axis=1)
        pos = np.argmax(cum >= need[open_, None], axis=1)  # first distinct neighbour reaching k
        rad_u[open_] = _exact_sq(u, u, open_, idx[open_, pos])
    return rad_u[inverse]


def _ball_test(q: np.ndarray, ref: np.ndarray, qc: np.ndarray, rc: np.ndarray, q2: np.ndarray,
               r2: np.ndarray, rad: np.ndarray, chunk_size: int | None, *, per_query: bool) -> np.ndarray:
    """Exact ``|q_i - ref_j|^2 <= rad`` for all pairs, reduced per query: counts of balls (n_q,).

    ``rad`` is per reference (``per_query=False``: ref_j's ball, shape (n_ref,)) or per query
    (``per_query=True``: q_i's own radius, shape (n_q,); the count is then of refs inside it).

    The GEMM expansion on centred rows (``qc``, ``rc`` with squared norms ``q2``, ``r2``) decides
    every pair farther than a certified rounding bound from the radius (per query row, with the
    largest reference norm and radius); the rest (in practice
    exact ties: duplicates, lattice-valued features, pixels) are decided from explicit float64
    differences of the original rows ``q``, ``ref``, so the answer equals a brute-force float64
    computation. The bound, as in :mod:`genbench.metrics.neighbours`: a length-d float64 dot
    product and norms err by at most ``(d + 2) u |a||b|``-type terms and centring adds one
    rounding per value, so ``|approx - exact| <= 2 (d + 8) u (|a| + max|b|)^2`` (u = 2^-53); the
    explicit-difference value itself may sit ``(d + 2) u`` relative from the true distance
    (``4 (d + 2) u`` times the radius is added for it).
    """
    d = q.shape[1]
    c = 2.0 * (d + 8) * _U64
    slack = 4.0 * (d + 2) * _U64  # relative, for the exact value's own rounding
    # one bound per query row (its norm with the largest reference norm, and the largest radius it
    # is compared with): looser than per pair by a constant factor, but a vector, not a matrix, so
    # the decision costs two comparisons per pair
    band = c * (np.sqrt(q2) + math.sqrt(float(r2.max()))) ** 2 + slack * (rad if per_query else rad.max())
    counts = np.zeros(len(q), dtype=np.int64)
    for lo, hi in _blocks(len(q), len(ref), chunk_size):
        diff = _sq_dists(qc[lo:hi], rc, q2[lo:hi], r2)
        diff -= rad[lo:hi, None] if per_query else rad[None, :]
        b = band[lo:hi, None]
        sure = diff <= -b
        unsure = diff <= b
        unsure &= ~sure
        counts[lo:hi] = np.count_nonzero(sure, axis=1)
        ii, jj = np.nonzero(unsure)
        if len(ii):
            radii = rad[lo + ii] if per_query else rad[jj]
            inside = _exact_sq(q, ref, lo + ii, jj) <= radii
            counts[lo:hi] += np.bincount(ii[inside], minlength=hi - lo)
    return counts


def _prep_pair(real: np.ndarray, fake: np.ndarray) -> tuple[np.ndarray, ...]:
    centre = real.mean(axis=0, keepdims=True)
    r, f = real - centre, fake - centre
    return r, f, np.einsum("ij,ij->i", r, r), np.einsum("ij,ij->i", f, f)


def _check_k(real: Any, fake: Any, k: Any, metric: str, *, fake_needs_k: bool) -> tuple[np.ndarray, np.ndarray, int]:
    k = check_positive_int(k, "k")
    why = f"for {metric} with k={k} (the k-th nearest neighbour within the set, itself excluded)"
    fix = "provide more samples or lower k"
    real, fake = check_feature_pair(real, fake, min_n=1, metric=metric)
    check_n(len(real), k + 1, "real", why=why, fix=fix)
    if fake_needs_k:
        check_n(len(fake), k + 1, "fake", why=why, fix=fix)
    return real, fake, k


@register_metric("precision-recall", family="quality", needs="features", direction="higher",
                 outputs=("precision", "recall"), protocol_params={"k": "k"}, bootstrap="parts",
                 description="Improved precision and recall of k-NN manifolds (Kynkaanniemi 2019)")
def precision_recall_parts(real: Any, fake: Any, *, k: int = 3,
                           chunk_size: int | None = None) -> tuple[Measurement, Measurement]:
    """:func:`precision_recall` with its per-point memberships (for a bootstrap over query points)."""
    real, fake, k = _check_k(real, fake, k, "precision/recall", fake_needs_k=True)
    inside_fake, inside_real = _pr_indicators(real, fake, k, chunk_size)
    return (Measurement(float(inside_fake.mean()), parts=inside_fake),
            Measurement(float(inside_real.mean()), parts=inside_real))


def precision_recall(real: Any, fake: Any, *, k: int = 3, chunk_size: int | None = None) -> tuple[float, float]:
    """Improved precision and recall (both higher is better, in [0, 1]).

    Each set's manifold is the union of balls around its points with radius the distance to the
    point's k-th nearest neighbour within the same set (itself excluded); a point is inside a
    ball when its distance is <= the radius; ties at the radius (pixels, lattice-valued features)
    are decided from exact float64 distances, not from the rounding of a GEMM expansion.

    Parameters
    ----------
    real, fake : array (n_real, d), (n_fake, d)
        Features; each set needs at least k + 1 samples.
    k : int
        Neighbourhood size (3 in the paper and torch-fidelity).
    chunk_size : int, optional
        Rows per distance block (default: blocks of about 64 MiB), so memory is bounded for any n.

    Returns
    -------
    (precision, recall) : tuple of float
        precision = share of fake points inside the real manifold (fidelity);
        recall = share of real points inside the fake manifold (diversity). A mode-collapsed
        fake set scores high precision and low recall.

    References
    ----------
    Kynkäänniemi et al. 2019, "Improved precision and recall metric for assessing generative models".

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> real = rng.normal(size=(300, 2))
    >>> p, r = precision_recall(real, 0.05 * rng.normal(size=(300, 2)))
    >>> p > 0.9 and r < 0.3
    True
    """
    p, r = precision_recall_parts(real, fake, k=k, chunk_size=chunk_size)
    return p.value, r.value


def _pr_indicators(real: np.ndarray, fake: np.ndarray, k: int,
                   chunk_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample membership: fake_j in the real manifold (n_fake,), real_i in the fake manifold (n_real,).

    Exact: radii from the exact k-NN search, memberships from :func:`_ball_test` (ties at the
    radius are decided from explicit differences, as the ``<=`` rule of the paper intends).
    """
    with _blas_threads_for(real.shape[1]):
        rad_r = _kth_nn_sq_radius(real, k)
        rad_f = _kth_nn_sq_radius(fake, k)
        r, f, r2, f2 = _prep_pair(real, fake)
        inside_fake = _ball_test(fake, real, f, r, f2, r2, rad_r, chunk_size, per_query=False) > 0
        inside_real = _ball_test(real, fake, r, f, r2, f2, rad_f, chunk_size, per_query=False) > 0
    return inside_fake.astype(np.float64), inside_real.astype(np.float64)


@register_metric("density-coverage", family="quality", needs="features",
                 # density's ideal is about 1 (a mode-collapsed set scores above 1): a target, not "higher"
                 direction={"density": 1.0, "coverage": "higher"}, outputs=("density", "coverage"),
                 protocol_params={"k": "k"}, bootstrap="parts",
                 description="Density and coverage of real k-NN balls by fake samples (Naeem 2020)")
def density_coverage_parts(real: Any, fake: Any, *, k: int = 5,
                           chunk_size: int | None = None) -> tuple[Measurement, Measurement]:
    """:func:`density_coverage` with its per-point parts (for a bootstrap over query points).

    Directions: density targets 1.0 (above 1 is mode collapse onto dense regions, not better),
    coverage is higher-better.
    """
    real, fake, k = _check_k(real, fake, k, "density/coverage", fake_needs_k=False)
    counts, covered = _dc_parts(real, fake, k, chunk_size)
    return (Measurement(float(counts.sum() / (k * len(counts))), parts=counts, scale=1.0 / k),
            Measurement(float(covered.mean()), parts=covered))


def density_coverage(real: Any, fake: Any, *, k: int = 5, chunk_size: int | None = None) -> tuple[float, float]:
    """Density and coverage: density is target-valued (ideal about 1), coverage is higher-better in [0, 1].

    Density is *not* higher-is-better: it may exceed 1, and a mode-collapsed fake set that piles
    into the densest real balls scores above 1. Its registered direction is the target value 1.0
    (``MetricSpec.target("density") == 1.0``), so tables rank it by closeness to 1.

    Parameters
    ----------
    real, fake : array (n_real, d), (n_fake, d)
        Features; ``real`` needs at least k + 1 samples.
    k : int
        Neighbourhood size of the real balls (5 in the paper).
    chunk_size : int, optional
        Rows per distance block (default: blocks of about 64 MiB).

    Returns
    -------
    (density, coverage) : tuple of float
        density = (1 / (k M)) sum_j #{i : fake_j in B(real_i, r_i)};
        coverage = (1 / N) #{i : some fake_j in B(real_i, r_i)}, with r_i the distance from
        real_i to its k-th nearest real neighbour (itself excluded), inside meaning <= r_i (the
        paper's code uses <; ties have probability zero for continuous features). When fake and
        real are drawn from the same distribution, E[density] = 1 (the target) and
        E[coverage] = 1 - prod_{i=1..k} (N - i) / (N + M - i). Ties at a radius are decided
        from exact float64 distances (pixels and lattice-valued features have many).

    References
    ----------
    Naeem et al. 2020, "Reliable fidelity and diversity metrics for generative models".

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> dens, cov = density_coverage(rng.normal(size=(500, 2)), rng.normal(size=(500, 2)))
    >>> 0.8 < dens < 1.2 and cov > 0.9
    True
    """
    d, c = density_coverage_parts(real, fake, k=k, chunk_size=chunk_size)
    return d.value, c.value


def _dc_parts(real: np.ndarray, fake: np.ndarray, k: int,
              chunk_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample parts: real balls holding fake_j (n_fake,), real_i covered by some fake (n_real,).

    Exact, ties included (see :func:`_ball_test`).
    """
    with _blas_threads_for(real.shape[1]):
        rad_r = _kth_nn_sq_radius(real, k)
        r, f, r2, f2 = _prep_pair(real, fake)
        counts = _ball_test(fake, real, f, r, f2, r2, rad_r, chunk_size, per_query=False).astype(np.float64)
        covered = (_ball_test(real, fake, r, f, r2, f2, rad_r, chunk_size, per_query=True) > 0).astype(np.float64)
    return counts, covered


# --------------------------------------------------------------------------------------------
# High-level: MetricResult rows with protocol names
# --------------------------------------------------------------------------------------------

def quality_protocol(metric: str, extractor_id: str, n_real: int | None, n_fake: int, ref_split: str | None,
                     **hyper: Any) -> Protocol:
    """Protocol record, named e.g. ``fid@domain-digits-1a2b3c4d/n=359v359/ref=test`` or ``.../k=3``."""
    n = {"real": n_real, "fake": n_fake} if n_real is not None else {"fake": n_fake}
    return Protocol(metric, space=extractor_id, n=n, ref=ref_split, fixed=hyper)


def evaluate_quality(
    real_feats: Any,
    fake_feats: Any,
    *,
    fake_probs: Any = None,
    real_probs: Any = None,
    extractor_id: str,
    ref_split: str,
    seed: int = 0,
    n_boot: int = 0,
    metrics: Sequence[str] | None = None,
    kid_subset_size: int = 1000,
    kid_subsets: int = 100,
    pr_k: int = 3,
    dc_k: int = 5,
    is_splits: int = 10,
    ci_level: float = 0.95,
    extractor_info: dict[str, Any] | None = None,
) -> list[MetricResult]:
    """All requested sample-quality metrics as result rows with protocol names.

    Parameters
    ----------
    real_feats, fake_feats : array (n_real, d), (n_fake, d)
        Features of the reference split and of the generated samples, same extractor.
    fake_probs : array (n_fake, classes), optional
        Class probabilities of the fake samples (for IS); IS is computed when given (or asked).
    real_probs : array (n_real, classes), optional
        Class probabilities of the reference samples: adds an ``is_real`` row, the IS of real
        data under the same protocol, the ceiling to read a model's IS against.
    extractor_id : str
        The extractor's id including its weights hash (e.g. ``domain-digits-1a2b3c4d``).
    ref_split : str
        The reference split (``test``, ``train``, ``all``), part of every two-sample protocol.
    seed : int
        Seed for the IS shuffle, the KID subsets and the bootstrap.
    n_boot : int
        Bootstrap replicates over samples (0: none); every row then gets a percentile ``ci`` at
        ``ci_level`` (``params["ci_method"]`` says how), and FID, precision/recall and
        density/coverage get ``std`` = the replicates' std (``std_kind="bootstrap"``); IS and KID
        keep their split/subset std. FID, KID and IS resample both sample sets with replacement
        (FID's interval can then sit above the value: duplicates shift it, and a warning says so).
        The k-NN metrics resample their per-point memberships with both manifolds fixed, because
        duplicated points collapse k-NN radii and would bias every replicate.
    metrics : list of str, optional
        Output names (``fid kid precision recall density coverage is``) or registered names
        (``precision-recall``, ``density-coverage``); default: all, IS when ``fake_probs`` given.
    kid_subset_size, kid_subsets : int
        KID's m and number of subsets. Where ``min(n_real, n_fake) < kid_subset_size``, m is
        set to ``min(n_real, n_fake)`` explicitly and recorded in params, protocol and warnings.
    pr_k, dc_k, is_splits : int
        k for precision/recall (3) and density/coverage (5); IS splits (10).
    extractor_info : dict, optional
        Facts about the extractor recorded in every row's ``params["extractor"]`` (e.g. the
        domain classifier's test accuracy).

    Returns
    -------
    list of MetricResult
        In the order fid, kid, precision, recall, density, coverage, is, is_real.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> rows = evaluate_quality(rng.normal(size=(100, 4)), rng.normal(size=(100, 4)), extractor_id="pixels",
    ...                         ref_split="test", metrics=["fid"])
    >>> str(rows[0].protocol)
    'fid@pixels/n=100v100/ref=test'
    """
    from genbench.metrics._evaluator import MetricInputs, evaluate_metrics

    inputs = MetricInputs(extractor_id, real=real_feats, fake=fake_feats, real_probs=real_probs,
                          fake_probs=fake_probs, ref=ref_split, info=extractor_info,
                          weights=(extractor_info or {}).get("weights_hash"))
    settings = {"kid": {"subset_size": kid_subset_size, "subsets": kid_subsets}, "precision-recall": {"k": pr_k},
                "density-coverage": {"k": dc_k}, "is": {"splits": is_splits, "kind": "probs"}}
    return evaluate_metrics(inputs, metrics=metrics, family="quality", settings=settings, seed=seed, n_boot=n_boot,
                            ci_level=ci_level)
