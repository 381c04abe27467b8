"""Likelihood estimators: Parzen window, Gaussian mixture, importance sampling (IWAE-k), ELBO, exact.

Every number is a log-likelihood in **nats per example** (higher is better) labelled with its
estimator kind (PROTOCOLS.md, "Likelihood estimators"):

- ``estimate``: Parzen window and GMM fitted to generated samples (densities of the *sample
  set*, not of the model), AIS-like estimators;
- ``lower-bound``: ELBO and IWAE-k (a stochastic lower bound: its expectation is <= log p(x));
- ``exact``: autoregressive models such as PixelCNN.

Bits per dimension follow the PixelCNN papers: ``bits/dim = (nll_nats + D * log L) / (D * ln 2)``
when the number is a *density* on data in [0, 1] that really has ``L`` discrete levels
(``DatasetInfo.levels``), i.e. [0, 1] is read as ``L`` bins of width ``1/L`` and a density
``p(y)`` becomes the probability mass ``p(y) / L**D`` of its bin. No noise is added to the data:
the density is evaluated at the stored values, and the ``(L-1)/L`` per-dim difference between
the stored ``k/(L-1)`` scale and the ``(k + 1/2)/L`` bin centres is ignored, as in the papers.
When the number is already a probability mass over the levels (a Bernoulli or categorical
decoder, PixelCNN's softmax), nothing is added: ``bits/dim = nll_nats / (D * ln 2)``. Which one
applied is written into ``MetricResult.params["dequantisation"]``.

Uncertainty: ``MetricResult.std`` is the standard error of the mean over evaluation examples,
``std / sqrt(N)`` with numpy's default ``ddof=0`` (as in Goodfellow et al.'s ``parzen_ll.py``),
``std_kind="stderr"``.

References
----------
Breuleux, Bengio & Vincent 2009 (Parzen estimate of sample sets); Goodfellow et al. 2014
(Parzen protocol: 10,000 samples, sigma from ``logspace(-1, 0, 10)`` on validation);
Theis, van den Oord & Bethge 2016 (why Parzen numbers mislead); Burda, Grosse & Salakhutdinov
2016 (IWAE bound); Rezende, Mohamed & Wierstra 2014 (importance-sampled marginal likelihood).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from genbench._validation import (
    as_numpy,
    check_disjoint_rows,
    check_finite,
    check_n,
    check_positive,
    check_same_width,
)
from genbench.metrics import register_metric
from genbench.protocols import LatentVariableModel, LikelihoodModel
from genbench.results import MetricResult, Protocol

__all__ = [
    "GMM_COMPONENTS",
    "PARZEN_GRID",
    "PARZEN_GRID_POINTS",
    "PARZEN_N_SAMPLES",
    "THEIS_CAVEAT",
    "GMMFit",
    "LikelihoodEstimate",
    "bits_per_dim",
    "elbo",
    "evaluate_likelihood",
    "exact_log_likelihood",
    "gmm_log_likelihood",
    "importance_sampled_log_likelihood",
    "parzen_estimate",
    "parzen_log_likelihood",
    "select_parzen_sigma",
]

#: Goodfellow et al.'s sigma grid, for real-valued data in [0, 1].
PARZEN_GRID = np.logspace(-1, 0, 10)
#: A wider grid for the 2-D synthetic mixtures, whose modes are much narrower than 0.1.
PARZEN_GRID_POINTS = np.logspace(-3, 0, 16)
#: Sample count of the published Parzen protocol.
PARZEN_N_SAMPLES = 10000
#: Component counts tried by the GMM estimate (the 2-D mixtures also get 25 and 50).
GMM_COMPONENTS = (1, 2, 5, 10, 20)
GMM_COMPONENTS_POINTS = (1, 2, 5, 8, 10, 20, 25, 50)

THEIS_CAVEAT = (
    "Parzen-window log-likelihoods are largely unrelated to sample quality and converge very slowly "
    "in high dimensions (Theis, van den Oord & Bethge 2016, 'A note on the evaluation of generative "
    "models'); read them as a property of the sample set, never as the model's likelihood."
)
GMM_CAVEAT = (
    "GMM log-likelihood of a mixture fitted to generated samples: a density estimate of the sample "
    "set, not the model's likelihood; it shares the Parzen caveats (Theis et al. 2016)."
)

_LN2 = math.log(2.0)
_LOG_2PI = math.log(2.0 * math.pi)
# importance-sampling noise is drawn in blocks of this many samples per example, from one
# generator per example, so the draws do not depend on batch_size, k_chunk or device
_NOISE_BLOCK = 128


# ----------------------------------------------------------------------------- shared helpers


def _flat(x: Any, name: str, *, hint: str) -> np.ndarray:
    """(N, ...) -> finite float64 (N, D); the boundary check shared by Parzen and GMM."""
    a = as_numpy(x)
    if a.ndim < 2:
        raise ValueError(
            f"{name} must have shape (N, ...) with one example per row; got shape {tuple(a.shape)}. "
            "Reshape a single example x to x[None]."
        )
    check_n(len(a), 1, name, fix=f"pass a non-empty {name} set")
    a = a.reshape(len(a), -1)
    if a.shape[1] == 0:
        raise ValueError(f"{name} has 0 values per example (shape {tuple(a.shape)}); pass real data.")
    check_finite(a, name, hint=hint)
    return np.ascontiguousarray(a, dtype=np.float64)


def _mean_stderr(ll: np.ndarray) -> tuple[float, float]:
    """Mean and standard error ``std / sqrt(N)`` (ddof=0, Goodfellow et al.'s convention)."""
    return float(ll.mean()), float(ll.std() / math.sqrt(len(ll)))


def _resolve_device(device: Any) -> torch.device:
    if device is None:
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(dev)!r} was asked for but CUDA is not available; use device='cpu'.")
    return dev


def _model_device(model: Any, device: Any) -> torch.device:
    if device is not None:
        return _resolve_device(device)
    if isinstance(model, torch.nn.Module):
        for p in model.parameters():
            return p.device
        for b in model.buffers():
            return b.device
    return torch.device("cpu")


def _check_batch(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    return int(value)


def bits_per_dim(log_likelihood_nats: float, dim: int, *, levels: int | None = None,
                 density: bool = True) -> float:
    """Convert a mean log-likelihood in nats per example to bits per dimension (lower is better).

    Parameters
    ----------
    log_likelihood_nats : mean log-likelihood per example, in nats (higher is better).
    dim : D, the number of dimensions per example.
    levels : L, discrete levels per dimension, or None for continuous data.
    density : True when the log-likelihood is a density on [0, 1]-scaled data; then, for discrete
        data, ``log L`` nats per dim are added to the NLL first (the PixelCNN convention, see the
        module docstring). False when it is already a probability mass over the levels.

    Returns
    -------
    float : ``(-ll + D * log L) / (D * ln 2)`` with ``log L = 0`` where it does not apply.

    Examples
    --------
    >>> round(bits_per_dim(-784 * math.log(2), 784, levels=None), 6)
    1.0
    >>> round(bits_per_dim(0.0, 3072, levels=256), 6)  # a unit density on [0, 1]^D is 8 bits/dim
    8.0
    """
    offset = math.log(levels) if (levels is not None and density) else 0.0
    return (-float(log_likelihood_nats) + dim * offset) / (dim * _LN2)


def _dequantisation_note(levels: int | None, density: bool) -> str:
    if levels is None:
        return "none: continuous data; bits/dim = nll / (D ln 2)"
    if density:
        return (f"uniform bins: a density on [0, 1] data with {levels} levels; bits/dim adds log({levels}) nats "
                "per dim before dividing by D ln 2 (bins of width 1/L, no noise added to the data)")
    return f"none: a probability mass over the {levels} levels; bits/dim = nll / (D ln 2)"


def _loglik_result(metric: str, protocol: Protocol, ll: np.ndarray, *, kind: str, dim: int, levels: int | None,
                   density: bool, n: dict[str, int], params: dict[str, Any],
                   warnings_: Sequence[str] = ()) -> MetricResult:
    """One row: mean log-likelihood (nats/example) +- stderr, with bits/dim and conventions in params."""
    mean, se = _mean_stderr(ll)
    p = dict(params)
    p.update(
        bits_per_dim=bits_per_dim(mean, dim, levels=levels, density=density),
        bits_per_dim_stderr=se / (dim * _LN2),
        dim=dim,
        levels=levels,
        dequantisation=_dequantisation_note(levels, density),
        value_unit="log-likelihood in nats per example (higher is better); bits/dim in params (lower is better)",
    )
    return MetricResult(metric=metric, value=mean, protocol=protocol, std=se, std_kind="stderr", n=dict(n),
                        kind=kind, unit="nats", higher_is_better=True, params=p, warnings=tuple(warnings_))


def _gap_result(metric: str, protocol: Protocol, train: MetricResult, test: MetricResult) -> MetricResult:
    """Train-minus-test gap of the same estimator: large positive values mean the train data is favoured."""
    assert train.std is not None and test.std is not None
    gap = train.value - test.value
    # the train subset and the test set are disjoint, so their standard errors add in quadrature
    se = math.sqrt(train.std**2 + test.std**2)
    params = {k: v for k, v in test.params.items() if not k.startswith("bits_per_dim")}
    params.update(train_value=train.value, test_value=test.value, train_protocol=str(train.protocol),
                  test_protocol=str(test.protocol), bits_per_dim_gap=test.params["bits_per_dim"]
                  - train.params["bits_per_dim"])
    return MetricResult(metric=metric, value=gap, protocol=protocol, std=se, std_kind="stderr",
                        n={**{f"train_{k}": v for k, v in train.n.items()}, **test.n}, kind="estimate",
                        unit="nats", higher_is_better=False, params=params, warnings=test.warnings)


# ----------------------------------------------------------------------------- Parzen window


def _parzen_core(samples: np.ndarray, test: np.ndarray, sigmas: np.ndarray, *, batch_size: int,
                 sample_batch_size: int, device: torch.device, distance_dtype: torch.dtype) -> np.ndarray:
    """Parzen log-likelihoods for several bandwidths at once: (S,) sigmas -> (S, N_test) float64.

    Memory is O((N_samples + batch_size) * D + batch_size * sample_batch_size * S): the full
    distance matrix is never formed. The logsumexp over samples runs across sample chunks with
    a running *minimum squared distance* (the running max of the log-kernel, shared by every
    sigma) and float64 partial sums.
    """
    n_s, dim = samples.shape
    # Centre both sets on the sample mean: distances are unchanged but ||x||^2 and ||s||^2 shrink,
    # which limits cancellation in the ||x||^2 + ||s||^2 - 2 x.s expansion.
    centre = samples.mean(axis=0)
    s = torch.from_numpy(samples - centre).to(device=device, dtype=distance_dtype)
    ss = (s * s).sum(1)
    f64 = torch.float64
    sig = torch.as_tensor(np.asarray(sigmas, dtype=np.float64), device=device)
    a = (0.5 / sig**2)[:, None]  # (S, 1): log-kernel = -a * d2
    log_norm = math.log(n_s) + dim * (torch.log(sig) + 0.5 * _LOG_2PI)  # log N + D log(sigma sqrt(2 pi))
    out = np.empty((len(sigmas), len(test)), dtype=np.float64)
    for t0 in range(0, len(test), batch_size):
        x = torch.from_numpy(test[t0 : t0 + batch_size] - centre).to(device=device, dtype=distance_dtype)
        xx = (x * x).sum(1)
        b = len(x)
        dmin = torch.full((b,), math.inf, dtype=f64, device=device)
        acc = torch.zeros((len(sigmas), b), dtype=f64, device=device)
        for s0 in range(0, n_s, sample_batch_size):
            sc = s[s0 : s0 + sample_batch_size]
            d2 = torch.addmm(xx[:, None] + ss[None, s0 : s0 + sample_batch_size], x, sc.T, alpha=-2.0)
            d2 = d2.clamp_min_(0.0).to(f64)  # rounding can make tiny distances negative
            new = torch.minimum(dmin, d2.amin(1))
            # rescale old sums to the new reference point (exp(-inf) = 0 on the first chunk), then add
            acc = acc * torch.exp(-a * (dmin - new)[None, :])
            d2 -= new[:, None]
            buf = torch.empty_like(d2)  # one (B, B_s) temporary for all sigmas; in place halves exp's cost
            for j in range(len(sigmas)):
                torch.mul(d2, -a[j], out=buf)
                acc[j] += buf.exp_().sum(1)
            dmin = new
        ll = -a * dmin[None, :] + torch.log(acc) - log_norm[:, None]
        out[:, t0 : t0 + b] = ll.cpu().numpy()
    return out


def _parzen_inputs(samples: Any, test: Any, test_name: str) -> tuple[np.ndarray, np.ndarray]:
    s = _flat(samples, "samples", hint="check the generator's output")
    t = _flat(test, test_name, hint=f"check the {test_name} data")
    check_same_width(s, t, "samples", test_name)
    return s, t


def _distance_dtype(name: str) -> torch.dtype:
    if name not in ("float64", "float32"):
        raise ValueError(f"distance_dtype must be 'float64' or 'float32'; got {name!r}.")
    return torch.float64 if name == "float64" else torch.float32


@register_metric(
    "parzen", family="likelihood", needs="density", direction="higher", kind="estimate", unit="nats", default=False,
    description="Parzen-window (Gaussian KDE) log-likelihood of real data under generated samples, nats/example",
)
def parzen_log_likelihood(samples: Any, test: Any, *, sigma: float, batch_size: int = 1024,
                          sample_batch_size: int = 4096, device: Any = None,
                          distance_dtype: str = "float64") -> np.ndarray:
    """Per-example Parzen-window log-likelihoods of ``test`` under a Gaussian KDE on ``samples``.

    ``ll(x) = logmeanexp_i(-||x - s_i||^2 / (2 sigma^2)) - D log(sigma sqrt(2 pi))``, in nats
    (higher is better). An *estimate* of the sample set's density, not the model's likelihood
    (see :data:`THEIS_CAVEAT`).

    Parameters
    ----------
    samples : (N_samples, ...) generated samples (flattened to D values each), e.g. 10,000.
    test : (N_test, ...) real examples of the same per-example shape.
    sigma : kernel bandwidth > 0, in data units; choose it with :func:`select_parzen_sigma` on a
        validation split disjoint from ``test``.
    batch_size, sample_batch_size : test rows and sample rows per distance block; memory is about
        ``8 * batch_size * sample_batch_size`` bytes per block plus the inputs. Results do not
        depend on them beyond float64 rounding.
    device : torch device for the distance blocks (``None`` = CPU), e.g. ``"cuda"``.
    distance_dtype : ``"float64"`` (default, exact to rounding) or ``"float32"`` (faster on GPUs;
        squared distances carry a relative error of ~1e-6 after centring); the logsumexp always
        accumulates in float64.

    Returns
    -------
    np.ndarray : (N_test,) float64 log-likelihoods in nats per example.

    References
    ----------
    Breuleux, Bengio & Vincent 2009; Goodfellow et al. 2014 (``parzen_ll.py``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ll = parzen_log_likelihood(rng.random((500, 4)), rng.random((20, 4)), sigma=0.2)
    >>> ll.shape
    (20,)
    """
    sig = check_positive(sigma, "sigma", fix="pick it with select_parzen_sigma on a validation split")
    s, t = _parzen_inputs(samples, test, "test")
    out = _parzen_core(s, t, np.array([sig]), batch_size=_check_batch(batch_size, "batch_size"),
                       sample_batch_size=_check_batch(sample_batch_size, "sample_batch_size"),
                       device=_resolve_device(device), distance_dtype=_distance_dtype(distance_dtype))
    return out[0]


def select_parzen_sigma(samples: Any, validation: Any, *, grid: Sequence[float] | np.ndarray = PARZEN_GRID,
                        batch_size: int = 1024, sample_batch_size: int = 4096, device: Any = None,
                        distance_dtype: str = "float64") -> tuple[float, list[dict[str, float]]]:
    """Choose the Parzen bandwidth maximising the mean validation log-likelihood.

    All bandwidths share one pass over the distance blocks, so a 10-value grid costs about one
    evaluation plus ten exponentials per distance.

    Parameters
    ----------
    samples : (N_samples, ...) generated samples.
    validation : (N_val, ...) real examples **disjoint from the test set** (e.g. the dataset's
        ``val`` split; Goodfellow et al. used 1,000 held-out training images).
    grid : candidate sigmas, each > 0; default ``np.logspace(-1, 0, 10)`` for data in [0, 1].

    Returns
    -------
    sigma : float, the best grid value (the first one on ties).
    table : list of ``{"sigma", "mean_ll", "stderr"}`` per grid value, in grid order.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> sigma, table = select_parzen_sigma(rng.random((300, 2)), rng.random((50, 2)))
    >>> sigma in [row["sigma"] for row in table]
    True
    """
    g = np.asarray(grid, dtype=np.float64).ravel()
    if g.size == 0:
        raise ValueError("grid is empty; pass candidate sigmas, e.g. np.logspace(-1, 0, 10).")
    for v in g:
        check_positive(v, "every sigma in grid", fix="use a grid of positive bandwidths")
    s, v = _parzen_inputs(samples, validation, "validation")
    lls = _parzen_core(s, v, g, batch_size=_check_batch(batch_size, "batch_size"),
                       sample_batch_size=_check_batch(sample_batch_size, "sample_batch_size"),
                       device=_resolve_device(device), distance_dtype=_distance_dtype(distance_dtype))
    table = []
    for sig, ll in zip(g, lls):
        m, se = _mean_stderr(ll)
        table.append({"sigma": float(sig), "mean_ll": m, "stderr": se})
    best = int(np.argmax([row["mean_ll"] for row in table]))
    return float(g[best]), table


def _grid_edge_warning(name: str, value: float, grid: Sequence[float]) -> list[str]:
    g = list(grid)
    if len(g) > 1 and value in (min(g), max(g)):
        return [f"{name}={value:.4g} is at the edge of the search grid [{min(g):.4g}, {max(g):.4g}]; "
                "the optimum may lie outside it: widen the grid."]
    return []


def parzen_estimate(samples: Any, validation: Any, test: Any, *,
                    grid: Sequence[float] | np.ndarray = PARZEN_GRID, space: str = "pixels", ref: str = "test",
                    levels: int | None = None, batch_size: int = 1024, sample_batch_size: int = 4096,
                    device: Any = None, distance_dtype: str = "float64") -> MetricResult:
    """The Parzen protocol in one call: sigma chosen on ``validation``, scored on ``test``.

    Parameters
    ----------
    samples : (N_samples, ...) generated samples (the protocol uses 10,000; other counts are
        reported with a warning).
    validation : (N_val, ...) real data used only to choose sigma. Must share no row with
        ``test``: identical rows in both raise a ValueError naming the count.
    test : (N_test, ...) real data scored with the chosen sigma.
    grid : candidate sigmas (default Goodfellow et al.'s ``logspace(-1, 0, 10)``).
    space : what the rows are, for the protocol name (``"pixels"``, ``"points"``, a feature id).
    ref : name of the scored split, for the protocol name.
    levels : discrete levels per dimension of the real data (for bits/dim), None if continuous.

    Returns
    -------
    MetricResult : ``value`` = mean test log-likelihood (nats/example, higher is better),
        ``std`` = its standard error, ``kind="estimate"``, ``params`` with ``sigma``, the grid
        ``table``, ``bits_per_dim`` and the ``dequantisation`` convention, and the Theis et al.
        caveat in ``warnings``. Protocol: ``parzen@{space}/n={N_samples}/sigma={sigma:.3g}/ref={ref}``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> r = parzen_estimate(rng.random((400, 2)), rng.random((50, 2)), rng.random((60, 2)))
    >>> r.kind, r.std_kind, r.protocol.startswith("parzen@pixels/n=400/sigma=")
    ('estimate', 'stderr', True)
    """
    s, v = _parzen_inputs(samples, validation, "validation")
    _, t = _parzen_inputs(s, test, "test")
    check_disjoint_rows(v, t, "validation", "test",
                        fix="choose sigma on data disjoint from test (the dataset's val split, or held-out train rows)")
    sigma, table = select_parzen_sigma(s, v, grid=grid, batch_size=batch_size, sample_batch_size=sample_batch_size,
                                       device=device, distance_dtype=distance_dtype)
    ll = parzen_log_likelihood(s, t, sigma=sigma, batch_size=batch_size, sample_batch_size=sample_batch_size,
                               device=device, distance_dtype=distance_dtype)
    warn = [THEIS_CAVEAT, *_grid_edge_warning("sigma", sigma, [r["sigma"] for r in table])]
    if len(s) != PARZEN_N_SAMPLES:
        warn.append(f"{len(s)} samples used; the published Parzen protocol uses {PARZEN_N_SAMPLES}, and the "
                    "estimate depends strongly on the sample count: compare only equal counts.")
    return _loglik_result(
        "parzen", Protocol("parzen", space=space, n={"samples": len(s), ref: len(t)}, ref=ref,
                           tuned={"sigma": float(f"{sigma:.3g}")}), ll, kind="estimate", dim=t.shape[1],
        levels=levels, density=True, n={"samples": len(s), "validation": len(v), ref: len(t)},
        params={"sigma": sigma, "sigma_grid": table, "selection": "max mean validation log-likelihood",
                "kernel": "isotropic Gaussian", "space": space},
        warnings_=warn,
    )


# ----------------------------------------------------------------------------- Gaussian mixture


@dataclass(frozen=True)
class GMMFit:
    """A Gaussian mixture fitted to samples, its component count chosen on validation data.

    Attributes
    ----------
    test_log_likelihood : (N_test,) float64 log-likelihoods of the test rows, nats per example.
    n_components, covariance_type, reg_covar : the chosen settings.
    table : per component count tried: ``{"n_components", "mean_ll" (validation), "stderr",
        "converged", "n_iter"}``.
    model : the fitted ``sklearn.mixture.GaussianMixture`` (score other sets with
        ``model.score_samples(X)`` on rows flattened to (N, D)).
    """

    test_log_likelihood: np.ndarray
    n_components: int
    covariance_type: str
    reg_covar: float
    table: tuple[dict[str, Any], ...]
    model: Any


@register_metric(
    "gmm", family="likelihood", needs="density", direction="higher", kind="estimate", unit="nats", default=False,
    description="Gaussian-mixture log-likelihood of real data under a GMM fitted to generated samples",
)
def gmm_log_likelihood(samples: Any, test: Any, *, validation: Any,
                       n_components_grid: Sequence[int] = GMM_COMPONENTS, covariance_type: str = "full",
                       reg_covar: float = 1e-6, seed: int = 0, max_iter: int = 100, n_init: int = 1) -> GMMFit:
    """Fit ``sklearn.mixture.GaussianMixture`` to ``samples``; choose the component count on validation.

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
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    s = _flat(samples, "samples", hint="check the generator's output")
    t = _flat(test, "test", hint="check the test data")
    v = _flat(validation, "validation", hint="check the validation data")
    check_same_width(s, t, "samples", "test")
    check_same_width(s, v, "samples", "validation")
    check_disjoint_rows(v, t, "validation", "test",
                        fix="choose the component count on data disjoint from test (the dataset's val split)")
    reg = float(reg_covar)
    if not math.isfinite(reg) or reg < 0:
        raise ValueError(f"reg_covar must be a finite number >= 0; got {reg_covar!r}.")
    grid = [int(c) for c in n_components_grid]
    if not grid or min(grid) < 1:
        raise ValueError(f"n_components_grid must list positive component counts; got {list(n_components_grid)!r}.")
    usable = [c for c in grid if c <= len(s)]
    if not usable:
        raise ValueError(f"samples has {len(s)} rows, fewer than every component count in {grid}; "
                         "draw more samples or use smaller component counts.")
    table: list[dict[str, Any]] = []
    best: tuple[float, Any] | None = None
    for c in usable:
        gm = GaussianMixture(n_components=c, covariance_type=covariance_type, reg_covar=reg, max_iter=max_iter,
                             n_init=n_init, random_state=seed)
        with warnings.catch_warnings():
            # non-convergence is recorded in the table instead of printed
            warnings.simplefilter("ignore", ConvergenceWarning)
            gm.fit(s)
        m, se = _mean_stderr(gm.score_samples(v))
        table.append({"n_components": c, "mean_ll": m, "stderr": se, "converged": bool(gm.converged_),
                      "n_iter": int(gm.n_iter_)})
        if best is None or m > best[0]:
            best = (m, gm)
    assert best is not None
    gm = best[1]
    ll = np.asarray(gm.score_samples(t), dtype=np.float64)
    return GMMFit(test_log_likelihood=ll, n_components=int(gm.n_components), covariance_type=covariance_type,
                  reg_covar=reg, table=tuple(table), model=gm)


# ----------------------------------------------------------------------------- importance sampling


@dataclass(frozen=True)
class LikelihoodEstimate:
    """Per-example Monte Carlo log-likelihood estimates with their own Monte Carlo errors.

    Attributes
    ----------
    log_likelihood : (N,) float64 estimates, nats per example.
    stderr : (N,) float64 Monte Carlo standard error of each estimate (``stderr_kind`` says how).
    k : samples per example.
    kind : ``"lower-bound"`` (IWAE-k, ELBO: lower bounds in expectation).
    stderr_kind : ``"delta-method"`` (IWAE) or ``"mc"`` (ELBO: std of the log-weights / sqrt(k)).
    ess : (N,) effective sample size ``(sum w)^2 / sum w^2`` of the importance weights, or None.
    seed : the seed the draws came from.
    """

    log_likelihood: np.ndarray
    stderr: np.ndarray
    k: int
    kind: str
    stderr_kind: str
    ess: np.ndarray | None
    seed: int


def _as_model_input(x: Any, name: str = "x") -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.ndim < 1 or len(t) == 0:
        raise ValueError(f"{name} has 0 examples (shape {tuple(t.shape)}); pass a non-empty (N, ...) batch.")
    if t.is_floating_point():
        check_finite(as_numpy(t), name, hint=f"check the {name} data")
    else:
        t = t.float()
    return t


def _example_generators(seed: int, i0: int, i1: int) -> list[torch.Generator]:
    """One CPU generator per example index, keyed by (seed, index): draws do not depend on batching."""
    gens = []
    for i in range(i0, i1):
        state = np.random.SeedSequence([int(seed), i]).generate_state(1, dtype=np.uint64)[0]
        gens.append(torch.Generator().manual_seed(int(state)))
    return gens


def _reparam(q: torch.distributions.Distribution) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """eps ~ N(0, I) of shape (k, B, Z) -> z ~ q, for the Gaussian proposals we can reparameterise."""
    D = torch.distributions
    if isinstance(q, D.Independent) and isinstance(q.base_dist, D.Normal) and q.reinterpreted_batch_ndims == 1:
        loc, scale = q.base_dist.loc, q.base_dist.scale
        return lambda eps: loc + scale * eps.to(loc)
    if isinstance(q, D.MultivariateNormal):
        loc, tril = q.loc, q.scale_tril
        return lambda eps: loc + (tril @ eps.to(loc).unsqueeze(-1)).squeeze(-1)
    return None


def _log_weight_batches(model: Any, x: torch.Tensor, k: int, *, batch_size: int, k_chunk: int, seed: int,
                        device: torch.device) -> Iterator[tuple[int, int, Iterator[torch.Tensor]]]:
    """Yield ``(i0, i1, chunks)`` per example batch; ``chunks`` yields float64 log-weights (kc, B).

    ``log w = log p(x|z) + log p(z) - log q(z|x)`` with ``z ~ q(z|x)``. For Gaussian proposals
    (``Independent(Normal, 1)``, ``MultivariateNormal``) the standard-normal noise of example ``i``
    comes from its own generator seeded by ``(seed, i)`` in blocks of ``_NOISE_BLOCK`` draws on the
    CPU, so the estimates do not depend on ``batch_size``, ``k_chunk`` or the device beyond
    float rounding. Other proposals are sampled through ``q.sample`` under a forked global RNG
    seeded per (batch, chunk): deterministic, but tied to the chunking.
    """
    kc = max(_NOISE_BLOCK, (k_chunk // _NOISE_BLOCK) * _NOISE_BLOCK)
    n = len(x)
    for i0 in range(0, n, batch_size):
        i1 = min(n, i0 + batch_size)
        xb = x[i0:i1].to(device)
        q = model.proposal(xb)
        b = i1 - i0
        if tuple(q.batch_shape) != (b,) or len(q.event_shape) != 1:
            raise ValueError(
                f"model.proposal(x) must have batch shape (N,) = ({b},) and event shape (Z,); got batch "
                f"{tuple(q.batch_shape)} and event {tuple(q.event_shape)}. Wrap a per-dimension Normal as "
                "torch.distributions.Independent(Normal(mu, sigma), 1)."
            )
        zdim = int(q.event_shape[0])
        reparam = _reparam(q)
        gens = _example_generators(seed, i0, i1) if reparam is not None else []

        def chunks(xb: torch.Tensor = xb, q: Any = q, reparam: Any = reparam, gens: list = gens, b: int = b,
                   zdim: int = zdim, i0: int = i0, i1: int = i1) -> Iterator[torch.Tensor]:
            for k0 in range(0, k, kc):
                m = min(kc, k - k0)
                if reparam is not None:
                    nb = -(-m // _NOISE_BLOCK)
                    eps = torch.stack([
                        torch.cat([torch.randn((_NOISE_BLOCK, zdim), generator=g) for _ in range(nb)])[:m]
                        for g in gens
                    ], dim=1)  # (m, B, Z)
                    z = reparam(eps.to(device))
                else:
                    devs = [device] if device.type == "cuda" else []
                    with torch.random.fork_rng(devices=devs):
                        torch.manual_seed(int(np.random.SeedSequence([int(seed), i0, k0]).generate_state(1)[0]))
                        z = q.sample((m,))
                parts = {
                    "model.log_likelihood(x, z)": model.log_likelihood(xb, z),
                    "model.prior_log_prob(z)": model.prior_log_prob(z),
                    "model.proposal(x).log_prob(z)": q.log_prob(z),
                }
                for what, val in parts.items():
                    if tuple(val.shape) != (m, b):
                        raise ValueError(f"{what} must return shape (K, N) = ({m}, {b}) for z of shape "
                                         f"{tuple(z.shape)}; got {tuple(val.shape)}. Sum over data/latent dims.")
                lw = (parts["model.log_likelihood(x, z)"].double() + parts["model.prior_log_prob(z)"].double()
                      - parts["model.proposal(x).log_prob(z)"].double())
                bad = torch.isnan(lw) | (lw == math.inf)
                if bad.any():
                    raise ValueError(
                        f"{int(bad.sum())} of {lw.numel()} log importance weights are NaN or +inf (examples "
                        f"{i0}..{i1 - 1}); check the model's log_likelihood / prior_log_prob / proposal."
                    )
                yield lw

        yield i0, i1, chunks()


class _EvalMode:
    """Run a torch module in eval mode and without gradients, restoring its mode afterwards."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.was_training: bool | None = None
        self.no_grad = torch.no_grad()

    def __enter__(self) -> None:
        if isinstance(self.model, torch.nn.Module):
            self.was_training = self.model.training
            self.model.eval()
        self.no_grad.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self.no_grad.__exit__(*exc)
        if self.was_training is not None:
            self.model.train(self.was_training)


def _check_latent_model(model: Any) -> None:
    if not isinstance(model, LatentVariableModel):
        missing = [m for m in ("prior_log_prob", "log_likelihood", "proposal") if not callable(getattr(model, m, None))]
        raise ValueError(
            f"{type(model).__name__} is not a LatentVariableModel (missing {', '.join(missing)}); importance "
            "sampling needs prior_log_prob(z), log_likelihood(x, z) and proposal(x) (genbench.protocols)."
        )


@register_metric(
    "iwae", family="likelihood", needs="model", direction="higher", kind="lower-bound", unit="nats", default=False,
    description="importance-sampled log-likelihood (IWAE-k bound) of a latent-variable model, nats/example",
)
def importance_sampled_log_likelihood(model: Any, x: Any, *, k: int = 5000, batch_size: int = 64,
                                      k_chunk: int = 512, seed: int = 0, device: Any = None) -> LikelihoodEstimate:
    """Importance-sampled log p(x) for a :class:`~genbench.protocols.LatentVariableModel`.

    ``log p(x) ~= logmeanexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)]``, ``z_k ~ q(z|x)``.
    The estimate is unbiased for p(x) but, through the log, a *lower bound in expectation*
    (the IWAE-k bound, which rises to log p(x) as k grows): its kind is ``"lower-bound"``.

    The logsumexp over k runs across chunks of ``k_chunk`` draws with a running maximum and
    float64 sums, so memory is O(batch_size * k_chunk * model cost), never O(k).

    Parameters
    ----------
    model : implements ``prior_log_prob``, ``log_likelihood`` and ``proposal`` (genbench.protocols).
    x : (N, ...) examples in the model's input format (e.g. (N, 1, 8, 8) in [0, 1]).
    k : importance samples per example, >= 2 (5000 is the published standard for final numbers;
        for k = 1 use :func:`elbo`).
    batch_size, k_chunk : examples and draws per model call (k_chunk is rounded to a multiple of 128).
    seed : seeds the draws; same seed, same numbers. With a Gaussian proposal the draws for
        example ``i`` depend only on ``(seed, i)``: not on batch_size, k_chunk or device.
    device : where the model runs (default: the device of its parameters, else CPU).

    Returns
    -------
    LikelihoodEstimate : per-example estimates (nats) and per-example standard errors by the
        **delta method on the log of the mean weight**: with weights ``w_k``, sample variance
        ``s_w^2`` (ddof=1) and mean ``w_bar``, ``se(log w_bar) ~= s_w / (sqrt(k) * w_bar)
        = sqrt((k * sum w^2 / (sum w)^2 - 1) / (k - 1))``. It is itself noisy when the weights are
        heavy-tailed (a poor proposal); the effective sample size ``ess`` shows when.

    References
    ----------
    Burda, Grosse & Salakhutdinov 2016 (IWAE); Rezende, Mohamed & Wierstra 2014.

    Examples
    --------
    >>> # see tests/test_likelihood.py for a linear-Gaussian model whose log p(x) is known
    """
    _check_latent_model(model)
    k = _check_batch(k, "k")
    if k < 2:
        raise ValueError(f"k must be >= 2 for an importance-sampled estimate with a standard error; got {k}. "
                         "For a single-sample bound use elbo().")
    xt = _as_model_input(x)
    dev = _model_device(model, device)
    n = len(xt)
    ll = np.empty(n)
    se = np.empty(n)
    ess = np.empty(n)
    with _EvalMode(model):
        for i0, i1, chunks in _log_weight_batches(model, xt, k, batch_size=_check_batch(batch_size, "batch_size"),
                                                  k_chunk=_check_batch(k_chunk, "k_chunk"), seed=seed, device=dev):
            m = torch.full((i1 - i0,), -math.inf, dtype=torch.float64, device=dev)
            s1 = torch.zeros_like(m)  # sum exp(lw - m)
            s2 = torch.zeros_like(m)  # sum exp(2 (lw - m)), for the weights' second moment
            for lw in chunks:
                new = torch.maximum(m, lw.amax(0))
                ref = torch.where(torch.isfinite(new), new, torch.zeros_like(new))  # all -inf so far: keep sums 0
                scale = torch.exp(m - ref)
                s1 = s1 * scale + torch.exp(lw - ref).sum(0)
                s2 = s2 * scale**2 + torch.exp(2 * (lw - ref)).sum(0)
                m = new
            if not torch.isfinite(m).all():
                bad = int((~torch.isfinite(m)).sum())
                raise ValueError(f"{bad} examples (in {i0}..{i1 - 1}) got zero weight from all {k} importance "
                                 "samples (log p(x|z) = -inf); the proposal misses the posterior.")
            ll[i0:i1] = (m + torch.log(s1) - math.log(k)).cpu().numpy()
            ratio = (k * s2 / s1**2).cpu().numpy()  # mean(w^2) / mean(w)^2 >= 1
            se[i0:i1] = np.sqrt(np.maximum(ratio - 1.0, 0.0) / (k - 1))
            ess[i0:i1] = (s1**2 / s2).cpu().numpy()
    return LikelihoodEstimate(log_likelihood=ll, stderr=se, k=k, kind="lower-bound", stderr_kind="delta-method",
                              ess=ess, seed=int(seed))


@register_metric(
    "elbo", family="likelihood", needs="model", direction="higher", kind="lower-bound", unit="nats", default=False,
    description="evidence lower bound of a latent-variable model (Monte Carlo mean of single-sample bounds)",
)
def elbo(model: Any, x: Any, *, n_samples: int = 16, batch_size: int = 64, seed: int = 0,
         device: Any = None) -> LikelihoodEstimate:
    """The ELBO ``E_q[log p(x|z) + log p(z) - log q(z|x)]``, estimated per example by Monte Carlo.

    This is the k=1 importance-weighted bound; its expectation is estimated as the mean of
    ``n_samples`` independent single-sample log-weights (not one draw), with the same noise
    streams :func:`importance_sampled_log_likelihood` uses for the same ``seed`` (so the two
    are compared on common random numbers).

    Parameters
    ----------
    model : a :class:`~genbench.protocols.LatentVariableModel`.
    x : (N, ...) examples.
    n_samples : single-sample bounds averaged per example (>= 2, for a standard error).
    batch_size, seed, device : as in :func:`importance_sampled_log_likelihood`.

    Returns
    -------
    LikelihoodEstimate : per-example ELBO estimates (nats, higher is better, kind "lower-bound")
        and their Monte Carlo standard errors, ``std(log w, ddof=1) / sqrt(n_samples)``.

    Examples
    --------
    >>> # see tests/test_likelihood.py: ELBO = log p(x) - KL(q || p(z|x)) for a linear-Gaussian model
    """
    _check_latent_model(model)
    n_mc = _check_batch(n_samples, "n_samples")
    if n_mc < 2:
        raise ValueError(f"n_samples must be >= 2 for a standard error; got {n_mc}.")
    xt = _as_model_input(x)
    dev = _model_device(model, device)
    n = len(xt)
    est = np.empty(n)
    se = np.empty(n)
    with _EvalMode(model):
        for i0, i1, chunks in _log_weight_batches(model, xt, n_mc, batch_size=_check_batch(batch_size, "batch_size"),
                                                  k_chunk=max(n_mc, _NOISE_BLOCK), seed=seed, device=dev):
            lw = torch.cat(list(chunks), 0)
            if not torch.isfinite(lw).all():
                raise ValueError(f"{int((~torch.isfinite(lw)).sum())} single-sample bounds are -inf (examples "
                                 f"{i0}..{i1 - 1}); the ELBO is -inf: check the model's likelihood.")
            est[i0:i1] = lw.mean(0).cpu().numpy()
            se[i0:i1] = (lw.std(0, correction=1) / math.sqrt(n_mc)).cpu().numpy()
    return LikelihoodEstimate(log_likelihood=est, stderr=se, k=n_mc, kind="lower-bound", stderr_kind="mc",
                              ess=None, seed=int(seed))


# ----------------------------------------------------------------------------- exact


def _model_log_prob(model: Any, x: Any, *, batch_size: int, device: Any) -> np.ndarray:
    xt = _as_model_input(x)
    dev = _model_device(model, device)
    bs = _check_batch(batch_size, "batch_size")
    out = np.empty(len(xt))
    with _EvalMode(model):
        for i0 in range(0, len(xt), bs):
            lp = model.log_prob(xt[i0 : i0 + bs].to(dev))
            b = min(bs, len(xt) - i0)
            if tuple(lp.shape) != (b,):
                raise ValueError(f"model.log_prob(x) must return shape (N,) = ({b},); got {tuple(lp.shape)}. "
                                 "Sum over data dimensions.")
            out[i0 : i0 + b] = lp.double().cpu().numpy()
    check_finite(out, "model.log_prob(x)", hint="check the model (a probability of 0 gives -inf)")
    return out


@register_metric(
    "exact-loglik", family="likelihood", needs="model", direction="higher", kind="exact", unit="nats", default=False,
    description="exact log-likelihood of a model with likelihood_kind == 'exact' (e.g. PixelCNN), nats/example",
)
def exact_log_likelihood(model: Any, x: Any, *, batch_size: int = 256, device: Any = None) -> np.ndarray:
    """Per-example exact log-likelihoods from a :class:`~genbench.protocols.LikelihoodModel`.

    Parameters
    ----------
    model : declares ``likelihood_kind == "exact"`` (e.g. PixelCNN, summed over pixels) and
        implements ``log_prob(x) -> (N,)``. A model of another kind is an error: its numbers are
        bounds and must be labelled so (use :func:`importance_sampled_log_likelihood`).
    x : (N, ...) examples in the model's input format.
    batch_size : examples per ``log_prob`` call (results do not depend on it).
    device : where the model runs (default: the device of its parameters, else CPU).

    Returns
    -------
    np.ndarray : (N,) float64 log-likelihoods in nats per example (higher is better).

    Examples
    --------
    >>> class Coin:
    ...     likelihood_kind = "exact"
    ...     def log_prob(self, x):
    ...         return (x * math.log(0.5) + (1 - x) * math.log(0.5)).flatten(1).sum(1)
    >>> exact_log_likelihood(Coin(), torch.ones(3, 4)).round(4).tolist()
    [-2.7726, -2.7726, -2.7726]
    """
    if not isinstance(model, LikelihoodModel):
        raise ValueError(f"{type(model).__name__} is not a LikelihoodModel: it needs likelihood_kind and "
                         "log_prob(x) (genbench.protocols).")
    if model.likelihood_kind != "exact":
        raise ValueError(
            f"{type(model).__name__} declares likelihood_kind={model.likelihood_kind!r}, not 'exact'; its log_prob "
            "is not an exact likelihood and must not be reported as one. Use importance_sampled_log_likelihood "
            "(or report log_prob labelled as a lower bound)."
        )
    return _model_log_prob(model, x, batch_size=batch_size, device=device)


# ----------------------------------------------------------------------------- the matrix entry point


def _first(x: torch.Tensor, n: int | None, name: str) -> torch.Tensor:
    if n is None:
        return x
    n = _check_batch(n, name)
    return x[:n]


def evaluate_likelihood(*, dataset: Any, samples: Any = None, model: Any = None, n_test: int | None = None,
                        k: int = 1000, parzen: bool = True, gmm: bool = True, seed: int = 0, device: Any = None,
                        train_subset: int | None = None, n_val: int | None = 1000,
                        parzen_grid: Sequence[float] | None = None, gmm_components: Sequence[int] | None = None,
                        gmm_covariance: str | None = None, elbo_samples: int = 16, batch_size: int = 64,
                        model_space: str | None = None) -> list[MetricResult]:
    """Every likelihood number that applies to a dataset, generated samples and (optionally) a model.

    For each estimator the same computation runs on the test split (``ref=test``), on a training
    subset (``ref=train``), and their difference is reported as ``<metric>-gap`` (train minus
    test, nats; large positive values point at overfitting or copying; ``higher_is_better=False``).

    Rows (value = mean log-likelihood in nats per example, higher is better, ``std`` = standard
    error over examples, bits/dim in ``params["bits_per_dim"]``):

    - ``parzen@{pixels|points}/n={N}/sigma={s}/ref=...`` (estimate; sigma chosen on ``val``);
    - ``gmm@{space}/n={N}/components={c}/cov={type}/ref=...`` (estimate; c chosen on ``val``);
    - ``true-loglik/ref=test`` for datasets with a known density (``dataset.log_density``, exact);
    - a :class:`LatentVariableModel`: ``iwae@k={k}/ref=...`` and ``elbo@mc={m}/ref=...`` (lower-bound);
    - a :class:`LikelihoodModel` with kind ``exact``: ``exact-loglik/ref=...`` (exact); with kind
      ``lower-bound`` and no latent protocol: ``bound-loglik/ref=...`` from its ``log_prob``.

    A model satisfying neither protocol (a GAN) adds no rows.

    Parameters
    ----------
    dataset : a :class:`genbench.data.Dataset` with ``train``/``val``/``test`` splits.
    samples : (N, ...) generated samples for Parzen and GMM (10,000 in the Parzen protocol).
    model : optional model, used through the protocols above.
    n_test : the first ``n_test`` test examples (None = the whole split).
    k : IWAE importance samples (default 1000 for the benchmark matrix; 5000 for final numbers;
        always in the protocol name).
    parzen, gmm : whether to run the sample-based estimators.
    seed : seeds the train subset, the GMM initialisation and the importance samples.
    device : torch device for Parzen distance blocks and model calls.
    train_subset : training examples for the ``ref=train`` rows (None = as many as test), drawn
        without replacement by ``seed``.
    n_val : validation examples used to tune sigma / components (Goodfellow et al. used 1,000).
    parzen_grid : sigma grid (default ``logspace(-1, 0, 10)`` for images, ``logspace(-3, 0, 16)``
        for points).
    gmm_components, gmm_covariance : GMM grid (default (1, 2, 5, 10, 20); points also 8, 25, 50)
        and covariance type (default ``"full"`` up to 100 dims, ``"diag"`` above). ``reg_covar`` is
        the quantisation-bin variance ``(1/(L-1))**2 / 12`` for discrete data, else 1e-6.
    elbo_samples : single-sample bounds averaged per example for the ELBO rows.
    batch_size : examples per model call.
    model_space : ``"mass"`` when the model's log-likelihood is a probability mass over the data's
        levels (Bernoulli / categorical decoders, PixelCNN softmax: bits/dim adds nothing) or
        ``"density"`` for a density on [0, 1] data (bits/dim adds log L per dim). Default: the
        model's ``likelihood_space`` attribute if it has one, else ``"mass"``.

    Returns
    -------
    list[MetricResult]

    Examples
    --------
    >>> from genbench.data import load_dataset
    >>> ds = load_dataset("mixture-ring")
    >>> rows = evaluate_likelihood(dataset=ds, samples=ds.sample(2000, seed=1), n_test=200, gmm=False)
    >>> sorted({r.metric for r in rows})
    ['parzen', 'parzen-gap', 'true-loglik']
    """
    info = dataset.info
    points = info.kind == "points"
    space = "points" if points else "pixels"
    dim, levels = int(info.dim), info.levels
    test_x = _first(dataset.test.x, n_test, "n_test")
    val_x = _first(dataset.val.x, n_val, "n_val")
    train_all = dataset.train.x
    m = len(test_x) if train_subset is None else _check_batch(train_subset, "train_subset")
    m = min(m, len(train_all))
    idx = np.sort(np.random.default_rng(seed).choice(len(train_all), size=m, replace=False))
    train_x = train_all[torch.from_numpy(idx)]
    refs = {"train": train_x, "test": test_x}
    out: list[MetricResult] = []

    def triple(metric: str, base: Protocol, make: Callable[[str, torch.Tensor], MetricResult]) -> None:
        rows = {ref: make(ref, x) for ref, x in refs.items()}
        # the gap's protocol names itself: "parzen-gap@pixels/...", never a bare "parzen@..."
        gap = base.with_(metric=f"{metric}-gap", n={"train": len(train_x), "test": len(test_x)}, ref="train-test")
        out.extend([rows["test"], rows["train"], _gap_result(f"{metric}-gap", gap, rows["train"], rows["test"])])

    if samples is not None and (parzen or gmm):
        s = _flat(samples, "samples", hint="check the generator's output")
        check_same_width(s, test_x.reshape(len(test_x), -1), "samples", "test")
        v = val_x.reshape(len(val_x), -1).double().numpy()
        for ref, x in refs.items():  # sigma / components must never be tuned on an evaluation set
            check_disjoint_rows(v, x.reshape(len(x), -1).double().numpy(), "validation", ref,
                                fix="tune sigma / components on data disjoint from the evaluation sets")
        if parzen:
            grid = parzen_grid if parzen_grid is not None else (PARZEN_GRID_POINTS if points else PARZEN_GRID)
            dev = _resolve_device(device)
            sigma, table = select_parzen_sigma(s, v, grid=grid, device=dev)
            warn = [THEIS_CAVEAT, *_grid_edge_warning("sigma", sigma, [r["sigma"] for r in table])]
            if len(s) != PARZEN_N_SAMPLES:
                warn.append(f"{len(s)} samples used; the published Parzen protocol uses {PARZEN_N_SAMPLES}; "
                            "compare only equal counts.")
            base = Protocol("parzen", space=space, tuned={"sigma": float(f"{sigma:.3g}")}, seed=seed)

            def parzen_row(ref: str, x: torch.Tensor) -> MetricResult:
                ll = parzen_log_likelihood(s, x, sigma=sigma, device=dev)
                return _loglik_result("parzen", base.with_(n={"samples": len(s), ref: len(x)}, ref=ref), ll,
                                      kind="estimate", dim=dim, levels=levels,
                                      density=True, n={"samples": len(s), "validation": len(v), ref: len(x)},
                                      params={"sigma": sigma, "sigma_grid": table, "space": space,
                                              "selection": "max mean validation log-likelihood"}, warnings_=warn)

            triple("parzen", base, parzen_row)
        if gmm:
            comps = gmm_components if gmm_components is not None else (GMM_COMPONENTS_POINTS if points
                                                                       else GMM_COMPONENTS)
            cov = gmm_covariance or ("full" if dim <= 100 else "diag")
            # a pixel is never more certain than its quantisation bin (see gmm_log_likelihood)
            reg = (1.0 / (levels - 1)) ** 2 / 12.0 if (levels is not None and levels > 1) else 1e-6
            fit = gmm_log_likelihood(s, test_x, validation=v, n_components_grid=comps, covariance_type=cov,
                                     reg_covar=reg, seed=seed)
            base = Protocol("gmm", space=space, fixed={"cov": cov}, tuned={"components": fit.n_components}, seed=seed)
            params = {"n_components": fit.n_components, "covariance_type": cov, "reg_covar": reg,
                      "components_grid": list(fit.table), "selection": "max mean validation log-likelihood",
                      "space": space, "seed": seed}
            gwarn = [GMM_CAVEAT, *_grid_edge_warning("n_components", fit.n_components,
                                                     [r["n_components"] for r in fit.table])]
            if not all(r["converged"] for r in fit.table):
                gwarn.append("some GMM fits did not converge within max_iter (see params['components_grid']).")

            def gmm_row(ref: str, x: torch.Tensor) -> MetricResult:
                ll = (fit.test_log_likelihood if ref == "test"
                      else fit.model.score_samples(x.reshape(len(x), -1).double().numpy()))
                return _loglik_result("gmm", base.with_(n={"samples": len(s), ref: len(x)}, ref=ref),
                                      np.asarray(ll, dtype=np.float64), kind="estimate",
                                      dim=dim, levels=levels, density=True,
                                      n={"samples": len(s), "validation": len(v), ref: len(x)}, params=params,
                                      warnings_=gwarn)

            triple("gmm", base, gmm_row)

    if callable(getattr(dataset, "log_density", None)):
        ll = np.asarray(dataset.log_density(test_x), dtype=np.float64)
        out.append(_loglik_result("true-loglik", Protocol("true-loglik", space=info.name, n={"test": len(test_x)},
                                                           ref="test"), ll, kind="exact", dim=dim, levels=levels,
                                  density=True, n={"test": len(test_x)},
                                  params={"source": "the dataset's known density"}))

    if model is not None:
        space_m = model_space or getattr(model, "likelihood_space", None) or "mass"
        if space_m not in ("mass", "density"):
            raise ValueError(f"model_space must be 'mass' or 'density'; got {space_m!r}.")
        density = space_m == "density"
        mparams = {"model_space": space_m}
        if isinstance(model, LatentVariableModel):
            def iwae_row(ref: str, x: torch.Tensor) -> MetricResult:
                est = importance_sampled_log_likelihood(model, x, k=k, batch_size=batch_size, seed=seed, device=device)
                return _loglik_result(
                    "iwae", Protocol("iwae", n={ref: len(x)}, ref=ref, fixed={"k": k}, seed=seed),
                    est.log_likelihood, kind="lower-bound", dim=dim, levels=levels,
                    density=density, n={ref: len(x)},
                    params={**mparams, "k": k, "seed": seed, "proposal": "model.proposal(x)",
                            "mc_stderr": float(np.sqrt((est.stderr**2).sum()) / len(x)),
                            "mc_stderr_kind": "delta-method per example, combined over examples",
                            "ess_median": float(np.median(est.ess)), "ess_min": float(est.ess.min())},
                    warnings_=[] if k >= 5000 else [f"k={k}; the published standard for final numbers is k=5000."],
                )

            triple("iwae", Protocol("iwae", fixed={"k": k}, seed=seed), iwae_row)

            def elbo_row(ref: str, x: torch.Tensor) -> MetricResult:
                est = elbo(model, x, n_samples=elbo_samples, batch_size=batch_size, seed=seed, device=device)
                return _loglik_result(
                    "elbo", Protocol("elbo", n={ref: len(x)}, ref=ref, fixed={"mc": elbo_samples}, seed=seed),
                    est.log_likelihood, kind="lower-bound", dim=dim,
                    levels=levels, density=density, n={ref: len(x)},
                    params={**mparams, "n_samples": elbo_samples, "seed": seed,
                            "estimator": "mean of n_samples single-sample bounds per example",
                            "mc_stderr": float(np.sqrt((est.stderr**2).sum()) / len(x))},
                )

            triple("elbo", Protocol("elbo", fixed={"mc": elbo_samples}, seed=seed), elbo_row)
        if isinstance(model, LikelihoodModel):
            exact = model.likelihood_kind == "exact"
            if exact or not isinstance(model, LatentVariableModel):
                metric = "exact-loglik" if exact else "bound-loglik"
                kind = "exact" if exact else "lower-bound"

                def lp_row(ref: str, x: torch.Tensor) -> MetricResult:
                    ll = (exact_log_likelihood(model, x, batch_size=batch_size, device=device) if exact
                          else _model_log_prob(model, x, batch_size=batch_size, device=device))
                    return _loglik_result(metric, Protocol(metric, n={ref: len(x)}, ref=ref), ll, kind=kind,
                                          dim=dim, levels=levels,
                                          density=density, n={ref: len(x)},
                                          params={**mparams, "likelihood_kind": model.likelihood_kind})

                triple(metric, Protocol(metric), lp_row)
    return out
