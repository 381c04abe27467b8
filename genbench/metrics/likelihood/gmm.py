"""GMM estimate: a Gaussian mixture fitted to generated samples, component count chosen on validation.

Like the Parzen estimate, a density of the *sample set*, not the model's likelihood
(:data:`GMM_CAVEAT`). Each component count of the grid is fitted once; the chosen fit scores
every split (test, train) of one evaluation.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from genbench._validation import check_disjoint_rows, check_same_width
from genbench.metrics import register_metric
from genbench.metrics._spec import Measurement
from genbench.metrics.likelihood._common import (
    _flat,
    _grid_edge_warning,
    _mean_stderr,
    evaluation_memo,
    loglik_measurement,
)

#: Component counts tried by the GMM estimate (the 2-D mixtures also get 8, 25 and 50).
GMM_COMPONENTS = (1, 2, 5, 10, 20)
GMM_COMPONENTS_POINTS = (1, 2, 5, 8, 10, 20, 25, 50)
GMM_CAVEAT = (
    "GMM log-likelihood of a mixture fitted to generated samples: a density estimate of the sample "
    "set, not the model's likelihood; it shares the Parzen caveats (Theis et al. 2016)."
)


@dataclass(frozen=True)
class GMMFit:
    """A Gaussian mixture fitted to samples, its component count chosen on validation data.

    Attributes
    ----------
    test_log_likelihood : (N_test,) float64 log-likelihoods of the test rows, nats per example.
    n_components, covariance_type, reg_covar : the chosen settings.
    table : per component count tried: ``{"n_components", "mean_ll" (validation), "stderr",
        "converged", "n_iter"}``.
    model : the fitted ``sklearn.mixture.GaussianMixture`` (the subclass with batched steps, see
        :func:`_fit_grid`; score other sets with ``model.score_samples(X)`` on rows flattened to (N, D)).
    """

    test_log_likelihood: np.ndarray
    n_components: int
    covariance_type: str
    reg_covar: float
    table: tuple[dict[str, Any], ...]
    model: Any


def _check_settings(n_samples: int, n_components_grid: Sequence[int], reg_covar: float) -> tuple[list[int], float]:
    reg = float(reg_covar)
    if not math.isfinite(reg) or reg < 0:
        raise ValueError(f"reg_covar must be a finite number >= 0; got {reg_covar!r}.")
    grid = [int(c) for c in n_components_grid]
    if not grid or min(grid) < 1:
        raise ValueError(f"n_components_grid must list positive component counts; got {list(n_components_grid)!r}.")
    usable = [c for c in grid if c <= n_samples]
    if not usable:
        raise ValueError(f"samples has {n_samples} rows, fewer than every component count in {grid}; "
                         "draw more samples or use smaller component counts.")
    return usable, reg


def _fit_grid(s: np.ndarray, v: np.ndarray, grid: Sequence[int], *, covariance_type: str, reg: float, seed: int,
              max_iter: int, n_init: int) -> tuple[Any, tuple[dict[str, Any], ...]]:
    """Fit each component count once; return the fit with the best mean validation log-likelihood and the table.

    The EM is scikit-learn's with its full-covariance steps batched over components
    (:class:`genbench.metrics.likelihood._em.GaussianMixture`: same iterations, values equal to about
    1e-12 relative, 1.5x to 2x faster). It runs with BLAS limited to one thread, where BLAS threads cost
    more than they give on these small products (measured with scikit-learn's own steps on the digits
    matrix inputs: 10 components, 64 dims, 10,000 samples, ~12x less CPU time). Subnormal floats are
    flushed to zero meanwhile (:func:`genbench._runtime.flush_denormals`): the responsibilities of
    well-separated components underflow into them, and flushing them gave scikit-learn's steps the same
    fits about 1.4x faster (digits matrix inputs: 12.5 s to 8.7 s for the grid, equal to the bit).
    """
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    from genbench._runtime import flush_denormals
    from genbench.metrics.likelihood._em import GaussianMixture

    table: list[dict[str, Any]] = []
    best: tuple[float, Any] | None = None
    for c in grid:
        gm = GaussianMixture(n_components=c, covariance_type=covariance_type, reg_covar=reg, max_iter=max_iter,
                             n_init=n_init, random_state=seed)
        with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"), flush_denormals():
            # non-convergence is recorded in the table instead of printed
            warnings.simplefilter("ignore", ConvergenceWarning)
            gm.fit(s)
            m, se = _mean_stderr(gm.score_samples(v))
        table.append({"n_components": c, "mean_ll": m, "stderr": se, "converged": bool(gm.converged_),
                      "n_iter": int(gm.n_iter_)})
        if best is None or m > best[0]:
            best = (m, gm)
    assert best is not None
    return best[1], tuple(table)


def _score(gm: Any, x: np.ndarray) -> np.ndarray:
    from threadpoolctl import threadpool_limits

    from genbench._runtime import flush_denormals

    with threadpool_limits(limits=1, user_api="blas"), flush_denormals():
        return np.asarray(gm.score_samples(x), dtype=np.float64)


def gmm_log_likelihood(samples: Any, test: Any, *, validation: Any,
                       n_components_grid: Sequence[int] = GMM_COMPONENTS, covariance_type: str = "full",
                       reg_covar: float = 1e-6, seed: int = 0, max_iter: int = 100, n_init: int = 1) -> GMMFit:
    """Fit scikit-learn's ``GaussianMixture`` EM to ``samples``; choose the component count on validation.

    Parameters
    ----------
    samples : (N_samples, ...) generated samples (flattened to D values each).
    test : (N_test, ...) real data to score.
    validation : (N_val, ...) real data, disjoint from ``test``, used only to choose the
        component count (highest mean validation log-likelihood; first on ties).
    n_components_grid : component counts to try; counts above N_samples are skipped.
    covariance_type : ``"full"`` or ``"diag"`` (also ``"tied"``/``"spherical"``, passed to sklearn).
    reg_covar : variance added to every covariance diagonal. Pixels that are constant in the
        samples (image borders) otherwise get a variance of ~0, so their density is a spike that
        inflates the likelihood of test rows with exactly that value and destroys rows without it.
        For discrete data in [0, 1] with ``L`` levels a principled floor is the variance of one
        quantisation bin, ``(1 / (L - 1))**2 / 12`` (:func:`evaluate_likelihood` uses it); for
        continuous data keep sklearn's ``1e-6`` (in squared data units).
    seed : ``random_state`` of the k-means initialisation (deterministic).
    max_iter, n_init : EM settings passed to sklearn.

    Returns
    -------
    GMMFit : per-example test log-likelihoods (nats, higher is better, kind "estimate") and the
        chosen settings.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> fit = gmm_log_likelihood(rng.normal(size=(500, 2)), rng.normal(size=(50, 2)),
    ...                          validation=rng.normal(size=(50, 2)), n_components_grid=(1, 2))
    >>> fit.test_log_likelihood.shape, fit.n_components in (1, 2)
    ((50,), True)
    """
    s = _flat(samples, "samples", hint="check the generator's output")
    t = _flat(test, "test", hint="check the test data")
    v = _flat(validation, "validation", hint="check the validation data")
    check_same_width(s, t, "samples", "test")
    check_same_width(s, v, "samples", "validation")
    check_disjoint_rows(v, t, "validation", "test",
                        fix="choose the component count on data disjoint from test (the dataset's val split)")
    grid, reg = _check_settings(len(s), n_components_grid, reg_covar)
    gm, table = _fit_grid(s, v, grid, covariance_type=covariance_type, reg=reg, seed=seed, max_iter=max_iter,
                          n_init=n_init)
    return GMMFit(test_log_likelihood=_score(gm, t), n_components=int(gm.n_components),
                  covariance_type=covariance_type, reg_covar=reg, table=table, model=gm)


@register_metric(
    "gmm", family="likelihood", needs="density", direction="higher", kind="estimate", unit="nats", default=False,
    protocol_params={"covariance_type": "cov"}, shared={"memo": evaluation_memo},
    description="Gaussian-mixture log-likelihood of real data under a GMM fitted to generated samples, "
                "component count chosen on validation, nats/example",
)
def gmm_measure(samples: Any, validation: Any, x: Any, *, n_components_grid: Sequence[int] = GMM_COMPONENTS,
                covariance_type: str = "full", reg_covar: float = 1e-6, seed: int = 0, max_iter: int = 100,
                n_init: int = 1, levels: int | None = None, memo: dict[str, Any] | None = None) -> Measurement:
    """The GMM estimate as a :class:`Measurement`: components chosen on ``validation``, ``x`` scored.

    Parameters
    ----------
    samples, validation, x : generated samples, validation rows (disjoint from ``x``), scored rows.
    n_components_grid, covariance_type, reg_covar, seed, max_iter, n_init : as in :func:`gmm_log_likelihood`.
    levels : discrete levels per dimension of the data (bits/dim), None if continuous.
    memo : a dict kept for one evaluation (the evaluator passes one shared by the splits it scores),
        holding the chosen fit so that scoring train after test fits nothing again.

    Returns
    -------
    Measurement : mean log-likelihood (nats/example) and standard error, ``tuned={"components"}``,
        ``params`` with the grid table and bits/dim, per-example values in ``parts``.
    """
    s = _flat(samples, "samples", hint="check the generator's output")
    v = _flat(validation, "validation", hint="check the validation data")
    t = _flat(x, "x", hint="check the scored data")
    check_same_width(s, v, "samples", "validation")
    check_same_width(s, t, "samples", "x")
    check_disjoint_rows(v, t, "validation", "x", fix="choose the component count on data disjoint from the scored rows")
    grid, reg = _check_settings(len(s), n_components_grid, reg_covar)
    memo = {} if memo is None else memo
    key = ("gmm", id(samples), id(validation), tuple(grid), covariance_type, reg, seed, max_iter, n_init)
    if key not in memo:
        memo[key] = _fit_grid(s, v, grid, covariance_type=covariance_type, reg=reg, seed=seed, max_iter=max_iter,
                              n_init=n_init)
    gm, table = memo[key]
    c = int(gm.n_components)
    warn = [GMM_CAVEAT, *_grid_edge_warning("n_components", c, [r["n_components"] for r in table])]
    if not all(r["converged"] for r in table):
        warn.append("some GMM fits did not converge within max_iter (see params['components_grid']).")
    return loglik_measurement(
        _score(gm, t), dim=t.shape[1], levels=levels, density=True, tuned={"components": c}, warnings=warn,
        params={"n_components": c, "covariance_type": covariance_type, "reg_covar": reg,
                "components_grid": list(table), "selection": "max mean validation log-likelihood"})
