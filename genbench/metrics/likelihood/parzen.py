"""Parzen-window estimate: a Gaussian KDE on generated samples, sigma chosen on validation, scored on data.

The protocol of Goodfellow et al. 2014 (``parzen_ll.py``): 10,000 samples, isotropic Gaussian
kernels, sigma from ``logspace(-1, 0, 10)`` by the mean log-likelihood of a validation split
disjoint from test, then the mean and standard error over the scored rows. An *estimate* of the
sample set's density, not of the model's likelihood (:data:`THEIS_CAVEAT`).

References
----------
Breuleux, Bengio & Vincent 2009; Goodfellow et al. 2014; Theis, van den Oord & Bethge 2016.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from genbench._validation import check_disjoint_rows, check_positive, check_same_width
from genbench.metrics import register_metric
from genbench.metrics._spec import Measurement
from genbench.metrics.likelihood._common import (
    _LOG_2PI,
    _check_batch,
    _flat,
    _grid_edge_warning,
    _mean_stderr,
    _resolve_device,
    evaluation_memo,
    loglik_measurement,
)
from genbench.results import MetricResult

#: Goodfellow et al.'s sigma grid, for real-valued data in [0, 1].
PARZEN_GRID = np.logspace(-1, 0, 10)
#: A wider grid for the 2-D synthetic mixtures, whose modes are much narrower than 0.1.
PARZEN_GRID_POINTS = np.logspace(-3, 0, 16)
#: Sample count of the published Parzen protocol.
PARZEN_N_SAMPLES = 10000

THEIS_CAVEAT = (
    "Parzen-window log-likelihoods are largely unrelated to sample quality and converge very slowly "
    "in high dimensions (Theis, van den Oord & Bethge 2016, 'A note on the evaluation of generative "
    "models'); read them as a property of the sample set, never as the model's likelihood."
)
SELECTION = "max mean validation log-likelihood"
#: the lowest log-kernel (relative to the nearest sample) a Parzen sum evaluates; see _parzen_core
_EXP_FLOOR = -700.0


def _parzen_core(samples: np.ndarray, test: np.ndarray, sigmas: np.ndarray, *, batch_size: int,
                 sample_batch_size: int, device: torch.device, distance_dtype: torch.dtype) -> np.ndarray:
    """Parzen log-likelihoods for several bandwidths at once: (S,) sigmas -> (S, N_test) float64.

    Each squared-distance block is computed once and every sigma's logsumexp is read from it.
    Memory is O((N_samples + batch_size) * D + batch_size * sample_batch_size * 2): the full
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
                # exp below -708 is float64's slow subnormal path (about 5x the time of a normal exp), and
                # every term under exp(-700) ~ 1e-304 vanishes in a sum that holds exp(0) = 1 from the nearest
                # sample: flooring the exponent there leaves each row's sum bit for bit as it was
                acc[j] += buf.clamp_min_(_EXP_FLOOR).exp_().sum(1)
            dmin = new
        ll = -a * dmin[None, :] + torch.log(acc) - log_norm[:, None]
        out[:, t0 : t0 + b] = ll.cpu().numpy()
    return out


def _parzen_inputs(samples: Any, test: Any, test_name: str) -> tuple[np.ndarray, np.ndarray]:
    s = _flat(samples, "samples", hint="check the generator's output")
    t = _flat(test, test_name, hint=f"check the {test_name} data")
    check_same_width(s, t, "samples", test_name)
    return s, t


def _blocks(batch_size: int | None, sample_batch_size: int | None, device: Any) -> dict[str, Any]:
    """The device and the distance block: given sizes, else 512 x 1024 on a CPU (4 MB of float64 per block,
    so that the passes after each product stay in cache: 1.2-1.7x faster than 1024 x 4096 here at 2, 64 and
    784 dimensions) and 1024 x 4096 elsewhere."""
    dev = _resolve_device(device)
    bs, sbs = (512, 1024) if dev.type == "cpu" else (1024, 4096)
    return {"device": dev, "batch_size": _check_batch(bs if batch_size is None else batch_size, "batch_size"),
            "sample_batch_size": _check_batch(sbs if sample_batch_size is None else sample_batch_size,
                                              "sample_batch_size")}


def _distance_dtype(name: str) -> torch.dtype:
    if name not in ("float64", "float32"):
        raise ValueError(f"distance_dtype must be 'float64' or 'float32'; got {name!r}.")
    return torch.float64 if name == "float64" else torch.float32


def _check_grid(grid: Sequence[float] | np.ndarray) -> np.ndarray:
    g = np.asarray(grid, dtype=np.float64).ravel()
    if g.size == 0:
        raise ValueError("grid is empty; pass candidate sigmas, e.g. np.logspace(-1, 0, 10).")
    for v in g:
        check_positive(v, "every sigma in grid", fix="use a grid of positive bandwidths")
    return g


def parzen_log_likelihood(samples: Any, test: Any, *, sigma: float, batch_size: int | None = None,
                          sample_batch_size: int | None = None, device: Any = None,
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
    batch_size, sample_batch_size : test rows and sample rows per distance block (default 512 x 1024 on a
        CPU, 1024 x 4096 on a GPU); memory is about ``16 * batch_size * sample_batch_size`` bytes per block
        plus the inputs. Results do not depend on them beyond float64 rounding.
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
    out = _parzen_core(s, t, np.array([sig]), **_blocks(batch_size, sample_batch_size, device),
                       distance_dtype=_distance_dtype(distance_dtype))
    return out[0]


def select_parzen_sigma(samples: Any, validation: Any, *, grid: Sequence[float] | np.ndarray = PARZEN_GRID,
                        batch_size: int | None = None, sample_batch_size: int | None = None, device: Any = None,
                        distance_dtype: str = "float64") -> tuple[float, list[dict[str, float]]]:
    """Choose the Parzen bandwidth maximising the mean validation log-likelihood.

    All bandwidths share one pass over the distance blocks (each block of squared distances is
    computed once), so a 10-value grid costs one distance computation plus ten exponentials per
    distance; the values equal separate :func:`parzen_log_likelihood` calls to rounding.

    Parameters
    ----------
    samples : (N_samples, ...) generated samples.
    validation : (N_val, ...) real examples **disjoint from the test set** (e.g. the dataset's
        ``val`` split; Goodfellow et al. used 1,000 held-out training images).
    grid : candidate sigmas, each > 0; default ``np.logspace(-1, 0, 10)`` for data in [0, 1].
    batch_size, sample_batch_size, device, distance_dtype : as in :func:`parzen_log_likelihood`.

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
    g = _check_grid(grid)
    s, v = _parzen_inputs(samples, validation, "validation")
    lls = _parzen_core(s, v, g, **_blocks(batch_size, sample_batch_size, device),
                       distance_dtype=_distance_dtype(distance_dtype))
    table = []
    for sig, ll in zip(g, lls):
        m, se = _mean_stderr(ll)
        table.append({"sigma": float(sig), "mean_ll": m, "stderr": se})
    best = int(np.argmax([row["mean_ll"] for row in table]))
    return float(g[best]), table


@register_metric(
    "parzen", family="likelihood", needs="density", direction="higher", kind="estimate", unit="nats", default=False,
    shared={"memo": evaluation_memo},
    description="Parzen-window (Gaussian KDE) log-likelihood of real data under generated samples, sigma chosen "
                "on validation, nats/example",
)
def parzen_measure(samples: Any, validation: Any, x: Any, *, grid: Sequence[float] | np.ndarray = PARZEN_GRID,
                   levels: int | None = None, batch_size: int | None = None, sample_batch_size: int | None = None,
                   device: Any = None, distance_dtype: str = "float64",
                   memo: dict[str, Any] | None = None) -> Measurement:
    """The Parzen protocol as a :class:`Measurement`: sigma chosen on ``validation``, ``x`` scored.

    Parameters
    ----------
    samples, validation, x : generated samples, validation rows (disjoint from ``x``), scored rows.
    grid : candidate sigmas (:func:`select_parzen_sigma`).
    levels : discrete levels per dimension of the data (bits/dim), None if continuous.
    batch_size, sample_batch_size, device, distance_dtype : as in :func:`parzen_log_likelihood`.
    memo : a dict kept for one evaluation (the evaluator passes one shared by the splits it scores),
        holding the sigma chosen on validation so that scoring train after test does not choose again.

    Returns
    -------
    Measurement : mean log-likelihood (nats/example) and its standard error, ``tuned={"sigma"}`` (3
        significant digits, as in the protocol name), ``params`` with the exact sigma, the grid table,
        bits/dim; per-example values in ``parts``; the Theis et al. caveat in ``warnings``.
    """
    s, v = _parzen_inputs(samples, validation, "validation")
    _, t = _parzen_inputs(s, x, "x")
    check_disjoint_rows(v, t, "validation", "x", fix="choose sigma on data disjoint from the scored rows")
    g = _check_grid(grid)
    opts = dict(batch_size=batch_size, sample_batch_size=sample_batch_size, device=device,
                distance_dtype=distance_dtype)
    memo = {} if memo is None else memo
    key = ("parzen", id(samples), id(validation), tuple(g), tuple(sorted((k, str(o)) for k, o in opts.items())))
    if key not in memo:
        memo[key] = select_parzen_sigma(s, v, grid=g, **opts)
    sigma, table = memo[key]
    ll = parzen_log_likelihood(s, t, sigma=sigma, **opts)
    warn = [THEIS_CAVEAT, *_grid_edge_warning("sigma", sigma, [r["sigma"] for r in table])]
    if len(s) != PARZEN_N_SAMPLES:
        warn.append(f"{len(s)} samples used; the published Parzen protocol uses {PARZEN_N_SAMPLES}, and the "
                    "estimate depends strongly on the sample count: compare only equal counts.")
    return loglik_measurement(
        ll, dim=t.shape[1], levels=levels, density=True, tuned={"sigma": float(f"{sigma:.3g}")}, warnings=warn,
        params={"sigma": sigma, "sigma_grid": table, "selection": SELECTION, "kernel": "isotropic Gaussian"})


def parzen_estimate(samples: Any, validation: Any, test: Any, *,
                    grid: Sequence[float] | np.ndarray = PARZEN_GRID, space: str = "pixels", ref: str = "test",
                    levels: int | None = None, batch_size: int | None = None, sample_batch_size: int | None = None,
                    device: Any = None, distance_dtype: str = "float64") -> MetricResult:
    """The Parzen protocol in one call: sigma chosen on ``validation``, scored on ``test``, as a result row.

    The row is made by the one evaluator from the registered ``parzen`` spec
    (:func:`parzen_measure`), as :func:`~genbench.metrics.likelihood.evaluate_likelihood` makes it.

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
        caveat in ``warnings``. Protocol: ``parzen@{space}/n=samples:{N},{ref}:{M}/ref={ref}/sigma={sigma:.3g}``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> r = parzen_estimate(rng.random((400, 2)), rng.random((50, 2)), rng.random((60, 2)))
    >>> r.kind, r.std_kind, str(r.protocol).startswith("parzen@pixels/n=samples:400,test:60/ref=test/sigma=")
    ('estimate', 'stderr', True)
    """
    from genbench.metrics._evaluator import MetricInputs, evaluate_metrics

    s, v = _parzen_inputs(samples, validation, "validation")
    _, t = _parzen_inputs(s, test, "test")
    check_disjoint_rows(v, t, "validation", ref,
                        fix="choose sigma on data disjoint from test (the dataset's val split, or held-out train rows)")
    settings = {"grid": grid, "levels": levels, "batch_size": batch_size, "sample_batch_size": sample_batch_size,
                "device": device, "distance_dtype": distance_dtype}
    (row,) = evaluate_metrics(MetricInputs(space, fake=s, val=v, x=t, ref=ref), metrics=["parzen"],
                              settings={"parzen": settings})
    return row
