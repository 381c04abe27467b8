"""Annealed importance sampling (AIS) of log p(x) for decoder-based models, checked by BDMC.

AIS (Neal 2001) moves chains from a tractable initial distribution p_0(z) (the prior, or the
model's encoder q(z|x)) to the posterior p(z|x) through the geometric path

    f_t(z) = p_0(z)^(1 - beta_t) * (p(z) p(x|z))^beta_t,   0 = beta_0 < beta_1 < ... < beta_T = 1,

with one Hamiltonian Monte Carlo (HMC) transition leaving each f_t invariant. The log-weight of a
chain, ``sum_t (beta_t - beta_{t-1}) * [log p(z) + log p(x|z) - log p_0(z)]`` evaluated along the
chain, has ``E[w] = p(x)``; ``logmeanexp`` over chains is therefore a *stochastic lower bound* in
expectation (Jensen), which tightens as the schedule grows (Wu et al. 2017 used this for VAEs,
GANs and GMMNs with a Gaussian observation model).

Bidirectional Monte Carlo (BDMC, Grosse, Ghahramani & Adams 2015) brackets log p(x) on data
*simulated from the model*: for (z, x) ~ p(z) p(x|z), z is an exact posterior sample of x, so
AIS run in reverse (beta from 1 to 0) from z gives an unbiased estimate of 1/p(x) and hence a
stochastic *upper* bound. The gap between the reverse and forward estimates bounds the error of
the forward estimate on simulated data; it says whether the schedule is long enough.

Protocol a model needs (checked structurally, no base class; see :class:`AISModel`):

- ``prior_log_prob(z)``: (C, N, Z) -> (C, N), log p(z) summed over latent dims;
- ``log_likelihood(x, z)``: z (C, N, Z) against x (N, ...) -> (C, N), log p(x|z) summed over
  data dims; **differentiable in z** (HMC needs its gradient);
- ``sample_prior(n, *, generator)``: (n, Z) draws from p(z) made with ``generator`` (a
  ``torch.Generator`` on the device the model runs on) and returned on that device;
- only for ``initial="encoder"``: ``proposal(x)``, a reparameterisable Gaussian over z with batch
  shape (N,) and event shape (Z,) (as in :class:`genbench.protocols.LatentVariableModel`);
- only for :func:`bdmc`: ``sample_observation(z, *, generator)``, x ~ p(x|z) for z (N, Z).

Step sizes are adapted during the run, per example from the acceptance of its chains (Wu et al.
adapted per chain), so a transition depends on the chains' past: standard practice for AIS with
HMC, and on the probabilistic-PCA oracle of ``tests/test_ais.py`` the forward estimates still
converge from below and BDMC still brackets the exact log p(x). Pass a ``step_size`` near the
posterior's scale for short schedules: the x1.02 / x0.98 rule needs ~100 transitions to grow 0.01
to 0.07.

A GAN has no p(x|z); :class:`GaussianObservationModel` gives its generator the observation model
N(G(z), sigma^2 I) of Wu et al., with sigma chosen on validation data by
:func:`select_gan_sigma`. Numbers depend on the observation model: never compare AIS numbers
across observation models (a categorical decoder's probability mass vs a Gaussian density).

References
----------
Neal 2001, "Annealed importance sampling", Statistics and Computing 11.
Wu, Burda, Salakhutdinov & Grosse 2017, "On the quantitative analysis of decoder-based
generative models", ICLR (10 leapfrog steps, acceptance target 0.65, 16 chains, sigmoid
schedule; step size adapted per chain by x1.02 / x0.98).
Grosse, Ghahramani & Adams 2015, "Sandwiching the marginal likelihood using bidirectional
Monte Carlo", arXiv:1511.02543.
Grosse, Maddison & Salakhutdinov 2013, "Annealing between distributions by averaging moments"
(the sigmoid schedule).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from genbench._runtime import eval_mode, example_generators
from genbench._validation import as_numpy, check_finite, check_positive
from genbench.metrics import register_metric
from genbench.metrics._spec import Measurement
from genbench.metrics.likelihood._common import _model_device, loglik_measurement
from genbench.results import MetricResult

__all__ = [
    "GAN_SIGMA_GRID",
    "AISEstimate",
    "AISModel",
    "BDMCResult",
    "GaussianObservationModel",
    "ais_log_likelihood",
    "ais_schedule",
    "bdmc",
    "evaluate_ais",
    "select_gan_sigma",
]

#: Observation std grid tried for a GAN's Gaussian observation model (data in [0, 1]).
GAN_SIGMA_GRID = (0.02, 0.05, 0.1, 0.2, 0.5)

_LOG_2PI = math.log(2.0 * math.pi)
# HMC noise is drawn per example in blocks of this many AIS steps, from one generator per example,
# so the stream of example i at step t depends only on (seed, i, t): not on batch_size.
_NOISE_BLOCK = 64
# step-size adaptation (the deeplearning.net HMC tutorial Wu et al. built on): multiply by 1.02 when
# the smoothed acceptance rate is above target, by 0.98 below, within [1e-4, 0.5]
_EPS_INC, _EPS_DEC, _EPS_MIN, _EPS_MAX, _ACC_SLOWNESS = 1.02, 0.98, 1e-4, 0.5, 0.9


@runtime_checkable
class AISModel(Protocol):
    """What :func:`ais_log_likelihood` needs from a model (see the module docstring for shapes).

    ``proposal(x)`` (only for ``initial="encoder"``) and ``sample_observation(z, *, generator)``
    (only for :func:`bdmc`) are optional and checked where used.
    """

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor: ...

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor: ...

    def sample_prior(self, n: int, *, generator: torch.Generator) -> torch.Tensor: ...


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class AISEstimate:
    """Per-example AIS estimates of log p(x), with their Monte Carlo errors and diagnostics.

    Field names follow :class:`genbench.metrics.likelihood.LikelihoodEstimate`, so code reading
    those reads these.

    Attributes
    ----------
    log_likelihood : (N,) float64, nats per example: ``logmeanexp`` of the chains' log-weights
        (forward: a stochastic lower bound on log p(x)); for a reverse run, ``-logmeanexp`` of the
        reverse log-weights (a stochastic upper bound).
    stderr : (N,) float64 delta-method Monte Carlo standard error of each estimate over its
        chains, ``sqrt((C * sum w^2 / (sum w)^2 - 1) / (C - 1))`` (NaN for one chain).
    log_weights : (N, C) float64 log-weights of every chain (reverse: the reverse log-weights).
    k : chains per example (``n_chains``).
    kind : ``"lower-bound"`` (forward) or ``"upper-bound"`` (reverse, BDMC).
    stderr_kind : ``"delta-method"``.
    ess : (N,) effective sample size of the chain weights, ``(sum w)^2 / sum w^2``.
    acceptance : (N,) mean HMC acceptance rate over chains and steps.
    step_size : (N,) final adapted leapfrog step size.
    betas : (T + 1,) float64 annealing schedule, from 0 to 1.
    seed : the seed the draws came from.
    settings : leapfrog, target_accept, initial, schedule name, direction.
    """

    log_likelihood: np.ndarray
    stderr: np.ndarray
    log_weights: np.ndarray
    k: int
    kind: str
    stderr_kind: str
    ess: np.ndarray
    acceptance: np.ndarray
    step_size: np.ndarray
    betas: np.ndarray
    seed: int
    settings: dict[str, Any]

    @property
    def n_steps(self) -> int:
        return len(self.betas) - 1

    @property
    def mean(self) -> float:
        """Mean estimate over examples, nats."""
        return float(self.log_likelihood.mean())

    @property
    def mean_stderr(self) -> float:
        """Standard error of :attr:`mean` over examples, ``std / sqrt(N)`` (ddof=0, as likelihood.py)."""
        return float(self.log_likelihood.std() / math.sqrt(len(self.log_likelihood)))


@dataclass(frozen=True)
class BDMCResult:
    """Forward and reverse AIS on data simulated from the model (Grosse et al. 2015).

    Attributes
    ----------
    lower : forward AIS from ``initial`` (stochastic lower bound of log p(x)).
    upper : reverse AIS from the exact posterior sample (stochastic upper bound of log p(x)).
    x : (N, ...) simulated data, z : (N, Z) the latents it was simulated from (CPU tensors).
    """

    lower: AISEstimate
    upper: AISEstimate
    x: torch.Tensor
    z: torch.Tensor

    @property
    def gap(self) -> np.ndarray:
        """(N,) upper minus lower, nats; near 0 when the schedule is long enough."""
        return self.upper.log_likelihood - self.lower.log_likelihood

    @property
    def mean_gap(self) -> float:
        return float(self.gap.mean())

    @property
    def gap_stderr(self) -> float:
        return float(self.gap.std() / math.sqrt(len(self.gap)))


# ----------------------------------------------------------------------------- schedule


def ais_schedule(n_steps: int, kind: str = "sigmoid", *, radius: float = 4.0) -> np.ndarray:
    """The annealing schedule beta_0 = 0 < ... < beta_T = 1 with ``T = n_steps``.

    Parameters
    ----------
    n_steps : T >= 1, the number of annealing steps (intermediate distributions plus the target).
    kind : ``"sigmoid"`` (Grosse et al. 2013, used by Wu et al.: ``sigmoid(linspace(-r, r))``
        rescaled to [0, 1], denser at both ends) or ``"linear"``.
    radius : r of the sigmoid schedule.

    Returns
    -------
    np.ndarray : (T + 1,) float64, strictly increasing, from exactly 0 to exactly 1.

    Examples
    --------
    >>> b = ais_schedule(4)
    >>> float(b[0]), float(b[-1]), bool(np.all(np.diff(b) > 0))
    (0.0, 1.0, True)
    """
    t = _positive_int(n_steps, "n_steps")
    if kind == "linear":
        b = np.linspace(0.0, 1.0, t + 1)
    elif kind == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-np.linspace(-radius, radius, t + 1)))
        b = (s - s[0]) / (s[-1] - s[0])
    else:
        raise ValueError(f"schedule must be 'sigmoid', 'linear' or an array of betas; got {kind!r}.")
    b[0], b[-1] = 0.0, 1.0
    return b


def _betas(schedule: Any, n_steps: int) -> tuple[np.ndarray, str]:
    if isinstance(schedule, str):
        return ais_schedule(n_steps, schedule), schedule
    b = np.asarray(schedule, dtype=np.float64).ravel()
    if b.size < 2 or b[0] != 0.0 or b[-1] != 1.0 or not np.all(np.diff(b) > 0):
        raise ValueError(f"an explicit schedule must increase strictly from 0.0 to 1.0; got {b.size} values from "
                         f"{b[0] if b.size else None} to {b[-1] if b.size else None}.")
    return b, "custom"


# ----------------------------------------------------------------------------- validation helpers


def _positive_int(v: Any, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or int(v) < 1:
        raise ValueError(f"{name} must be a positive integer; got {v!r}.")
    return int(v)


def _check_model(model: Any, *, encoder: bool = False, simulate: bool = False) -> None:
    need = ["prior_log_prob", "log_likelihood", "sample_prior"]
    if encoder:
        need.append("proposal")
    if simulate:
        need.append("sample_observation")
    missing = [m for m in need if not callable(getattr(model, m, None))]
    if missing:
        extra = ""
        if callable(getattr(model, "generate", None)):
            extra = " For a GAN generator wrap it: GaussianObservationModel(gan, sigma)."
        raise ValueError(
            f"{type(model).__name__} lacks {', '.join(missing)}; AIS needs prior_log_prob(z), log_likelihood(x, z) "
            "and sample_prior(n, *, generator)" + (", proposal(x) for initial='encoder'" if encoder else "")
            + (", sample_observation(z, *, generator) for BDMC" if simulate else "")
            + " (genbench.metrics.likelihood.ais.AISModel)." + extra
        )


def _as_input(x: Any, name: str = "x") -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.ndim < 2 or len(t) == 0:
        raise ValueError(f"{name} must have shape (N, ...) with N >= 1 examples, one per row; got shape "
                         f"{tuple(t.shape)}. Reshape a single example x to x[None].")
    if t.is_floating_point():
        check_finite(as_numpy(t), name, hint=f"check the {name} data")
    else:
        t = t.float()
    return t


# ----------------------------------------------------------------------------- the sampler


class _Target:
    """log f_beta(z) = log f_0(z) + beta * delta(z), with its pieces and their gradients in z.

    ``initial="prior"``: f_0 = p(z), delta = log p(x|z) (no cancellation between prior terms).
    ``initial="encoder"``: f_0 = q(z|x), delta = log p(z) + log p(x|z) - log q(z|x).
    """

    def __init__(self, model: Any, x: torch.Tensor, q: Any) -> None:
        self.model, self.x, self.q = model, x, q

    def __call__(self, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """z (C, B, Z) -> (log f_0, delta) each (C, B), and their gradients (C, B, Z)."""
        z = z.detach().requires_grad_(True)
        c, b = z.shape[0], z.shape[1]
        with torch.enable_grad():
            ll = self.model.log_likelihood(self.x, z)
            lp = self.model.prior_log_prob(z)
            for what, val in (("model.log_likelihood(x, z)", ll), ("model.prior_log_prob(z)", lp)):
                if tuple(val.shape) != (c, b):
                    raise ValueError(f"{what} must return shape (C, N) = ({c}, {b}) for z of shape {tuple(z.shape)}; "
                                     f"got {tuple(val.shape)}. Sum over data / latent dims.")
            if self.q is None:
                f0, delta = lp, ll
            else:
                f0 = self.q.log_prob(z)
                delta = lp + ll - f0
            if not (f0.requires_grad and delta.requires_grad):
                raise ValueError("model.log_likelihood(x, z) / prior_log_prob(z) are not differentiable in z (no "
                                 "autograd graph); HMC needs their gradients: do not detach z or run under no_grad.")
            g0 = torch.autograd.grad(f0.sum(), z, retain_graph=True)[0]
            gd = torch.autograd.grad(delta.sum(), z)[0]
        return f0.detach(), delta.detach(), g0, gd


def _noise_blocks(gens: list[torch.Generator], n_chains: int, zdim: int, dtype: torch.dtype,
                  device: torch.device, n_transitions: int):
    """Yield (momentum (C, B, Z), log-uniform (C, B)) per transition, per-example streams in blocks."""
    for t0 in range(0, n_transitions, _NOISE_BLOCK):
        v = torch.stack([torch.randn((_NOISE_BLOCK, n_chains, zdim), generator=g, device=device, dtype=dtype)
                         for g in gens], dim=2)  # (S, C, B, Z)
        u = torch.stack([torch.rand((_NOISE_BLOCK, n_chains), generator=g, device=device, dtype=torch.float64)
                         for g in gens], dim=2)  # (S, C, B)
        for s in range(min(_NOISE_BLOCK, n_transitions - t0)):
            yield v[s], u[s]


def _anneal(target: _Target, z: torch.Tensor, betas: np.ndarray, gens: list[torch.Generator], *, leapfrog: int,
            target_accept: float, step_size: float, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Run AIS along ``betas`` (forward 0 -> 1 or reverse 1 -> 0) from z (C, B, Z).

    Returns (log-weights (C, B) float64, acceptance rate (B,), final step size (B,)).
    Per AIS step k: log w += (b_k - b_{k-1}) * delta(z); then, except after the last step (the
    weights never see it), one HMC transition (``leapfrog`` steps) leaving f_{b_k} invariant.
    """
    c, b, zdim = z.shape
    f0, d, g0, gd = target(z)
    logw = torch.zeros((c, b), dtype=torch.float64, device=device)
    eps = torch.full((b,), float(step_size), dtype=z.dtype, device=device)
    avg_acc = torch.full((b,), float(target_accept), dtype=torch.float64, device=device)
    n_acc = torch.zeros((b,), dtype=torch.float64, device=device)
    n_trans = len(betas) - 2
    noise = _noise_blocks(gens, c, zdim, z.dtype, device, n_trans)
    for k in range(1, len(betas)):
        logw += float(betas[k] - betas[k - 1]) * d.double()
        if k == len(betas) - 1:
            break
        beta = float(betas[k])
        v0, logu = next(noise)
        e = eps.view(1, b, 1)
        # leapfrog on U = -(log f_0 + beta * delta), kinetic energy |v|^2 / 2
        zn = z
        v = v0 + 0.5 * e * (g0 + beta * gd)
        for step in range(leapfrog):
            zn = zn + e * v
            f0n, dn, g0n, gdn = target(zn)
            v = v + (e if step < leapfrog - 1 else 0.5 * e) * (g0n + beta * gdn)
        h_cur = -(f0 + beta * d).double() + 0.5 * (v0.double() ** 2).sum(-1)
        h_new = -(f0n + beta * dn).double() + 0.5 * (v.double() ** 2).sum(-1)
        log_ratio = h_cur - h_new
        # a NaN or -inf proposal (e.g. an overflowing decoder far out) is rejected, never accepted
        log_ratio = torch.where(torch.isnan(log_ratio), torch.full_like(log_ratio, -math.inf), log_ratio)
        accept = torch.log(logu) < log_ratio  # (C, B)
        a3 = accept.unsqueeze(-1)
        z = torch.where(a3, zn.detach(), z)
        g0, gd = torch.where(a3, g0n, g0), torch.where(a3, gdn, gd)
        f0, d = torch.where(accept, f0n, f0), torch.where(accept, dn, d)
        rate = accept.double().mean(0)
        n_acc += rate
        avg_acc = _ACC_SLOWNESS * avg_acc + (1.0 - _ACC_SLOWNESS) * rate
        eps = torch.where(avg_acc > target_accept, eps * _EPS_INC, eps * _EPS_DEC).clamp(_EPS_MIN, _EPS_MAX)
    acc = n_acc / max(n_trans, 1)
    return logw, acc, eps


def _summarise(logw: np.ndarray, reverse: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, C) log-weights -> estimate, delta-method stderr, ESS per example."""
    c = logw.shape[1]
    m = logw.max(1, keepdims=True)
    w = np.exp(logw - m)
    s1, s2 = w.sum(1), (w**2).sum(1)
    lme = m[:, 0] + np.log(s1) - math.log(c)
    est = -lme if reverse else lme
    se = np.sqrt(np.maximum(c * s2 / s1**2 - 1.0, 0.0) / (c - 1)) if c > 1 else np.full(len(logw), np.nan)
    return est, se, s1**2 / s2


def _run(model: Any, x: torch.Tensor, *, n_steps: int, n_chains: int, leapfrog: int, target_accept: float,
         step_size: float, initial: str, schedule: Any, batch_size: int, seed: int, device: Any,
         z_post: torch.Tensor | None = None) -> AISEstimate:
    """Forward AIS (z_post None) or reverse AIS from exact posterior samples z_post (N, Z)."""
    if initial not in ("prior", "encoder"):
        raise ValueError(f"initial must be 'prior' or 'encoder'; got {initial!r}.")
    _check_model(model, encoder=initial == "encoder")
    n_steps = _positive_int(n_steps, "n_steps")
    n_chains = _positive_int(n_chains, "n_chains")
    leapfrog = _positive_int(leapfrog, "leapfrog")
    batch_size = _positive_int(batch_size, "batch_size")
    ta = float(target_accept)
    if not 0.0 < ta < 1.0:
        raise ValueError(f"target_accept must lie in (0, 1); got {target_accept!r} (Wu et al. use 0.65).")
    step_size = check_positive(step_size, "step_size")
    betas, sched_name = _betas(schedule, n_steps)
    reverse = z_post is not None
    path = betas[::-1].copy() if reverse else betas
    xt = _as_input(x)
    dev = _model_device(model, device)
    n = len(xt)
    logw = np.empty((n, n_chains))
    acc = np.empty(n)
    eps_out = np.empty(n)
    with eval_mode(model, grad=True):
        for i0 in range(0, n, batch_size):
            i1 = min(n, i0 + batch_size)
            xb = xt[i0:i1].to(dev)
            gens = example_generators(seed, i0, i1, stream=1 if reverse else 0, device=dev)
            q = None
            if initial == "encoder":
                with torch.no_grad():
                    q = model.proposal(xb)
                if tuple(q.batch_shape) != (i1 - i0,) or len(q.event_shape) != 1 or not q.has_rsample:
                    raise ValueError(f"model.proposal(x) must be a reparameterisable distribution with batch shape "
                                     f"(N,) = ({i1 - i0},) and event shape (Z,); got batch {tuple(q.batch_shape)}, "
                                     f"event {tuple(q.event_shape)}.")
            if reverse:
                assert z_post is not None
                z = z_post[i0:i1].to(dev).unsqueeze(0).expand(n_chains, -1, -1).clone()
            elif q is None:
                parts = []
                for g in gens:
                    zi = model.sample_prior(n_chains, generator=g)
                    if zi.ndim != 2 or len(zi) != n_chains:
                        raise ValueError(f"model.sample_prior(n, generator=g) must return shape (n, Z) = "
                                         f"({n_chains}, Z); got {tuple(zi.shape)}.")
                    parts.append(zi.to(dev))
                z = torch.stack(parts, dim=1)
            else:
                zdim = int(q.event_shape[0])
                e = torch.stack([torch.randn((n_chains, zdim), generator=g, device=dev) for g in gens], dim=1)
                loc = q.mean
                with torch.no_grad():
                    if isinstance(q, torch.distributions.MultivariateNormal):
                        z = loc + (q.scale_tril @ e.to(loc).unsqueeze(-1)).squeeze(-1)
                    elif isinstance(q, torch.distributions.Independent) and isinstance(q.base_dist,
                                                                                      torch.distributions.Normal):
                        z = loc + q.base_dist.scale * e.to(loc)
                    else:
                        raise ValueError(f"initial='encoder' needs a Gaussian proposal (Independent(Normal) or "
                                         f"MultivariateNormal); got {type(q).__name__}.")
            if not z.is_floating_point():
                z = z.float()
            lw, a, e_fin = _anneal(_Target(model, xb, q), z, path, gens, leapfrog=leapfrog, target_accept=ta,
                                   step_size=step_size, device=dev)
            lw_np = lw.T.cpu().numpy()
            bad = np.isnan(lw_np) | (lw_np == np.inf)
            if bad.any():
                raise ValueError(f"{int(bad.sum())} AIS log-weights are NaN or +inf (examples {i0}..{i1 - 1}); check "
                                 "the model's log_likelihood / prior_log_prob for NaN at these latents.")
            logw[i0:i1] = lw_np
            acc[i0:i1] = a.cpu().numpy()
            eps_out[i0:i1] = e_fin.double().cpu().numpy()
    if not reverse and np.isneginf(logw).all(1).any():
        raise ValueError("some examples got zero weight from every chain (log p(x|z) = -inf); the model gives "
                         "these data probability 0.")
    est, se, ess = _summarise(logw, reverse)
    return AISEstimate(
        log_likelihood=est, stderr=se, log_weights=logw, k=n_chains, kind="upper-bound" if reverse else "lower-bound",
        stderr_kind="delta-method", ess=ess, acceptance=acc, step_size=eps_out, betas=betas, seed=int(seed),
        settings={"leapfrog": leapfrog, "target_accept": ta, "initial": initial, "schedule": sched_name,
                  "initial_step_size": step_size, "direction": "reverse" if reverse else "forward",
                  "step_size_adaptation": "per example: x1.02 / x0.98 when the smoothed (0.9) acceptance over its "
                                          "chains is above / below target, within [1e-4, 0.5]"},
    )


def ais_log_likelihood(model: Any, x: Any, *, n_steps: int = 1000, n_chains: int = 16, leapfrog: int = 10,
                       target_accept: float = 0.65, step_size: float = 0.01, initial: str = "prior",
                       schedule: str | Sequence[float] = "sigmoid", batch_size: int = 128, seed: int = 0,
                       device: Any = None) -> AISEstimate:
    """AIS estimate of log p(x) per example (Neal 2001; Wu et al. 2017), nats, higher is better.

    Chains start from the prior (or the encoder q(z|x)) and are annealed along
    ``f_t = p_0^(1-beta_t) (p(z) p(x|z))^beta_t`` with one HMC transition per intermediate
    distribution; ``log p_hat(x) = logmeanexp`` over chains of the AIS log-weights. ``E[p_hat] =
    p(x)``, so ``log p_hat`` is a stochastic lower bound that tightens as ``n_steps`` grows; check
    the schedule with :func:`bdmc`.

    Parameters
    ----------
    model : an :class:`AISModel`: ``prior_log_prob(z)``, ``log_likelihood(x, z)`` (differentiable
        in z), ``sample_prior(n, *, generator)``; and ``proposal(x)`` for ``initial="encoder"``.
        Torch modules run in eval mode (restored afterwards).
    x : (N, ...) examples in the model's input format.
    n_steps : T, annealing steps (T - 1 intermediate distributions plus the posterior; Wu et al.
        used 10,000 on MNIST). Cost is ``N * n_chains * (T - 1) * leapfrog`` gradient evaluations.
    n_chains : independent chains per example (Wu et al.: 16).
    leapfrog : leapfrog steps per HMC transition (Wu et al.: 10).
    target_accept : HMC acceptance rate the step size is adapted toward (Wu et al.: 0.65).
    step_size : initial leapfrog step size; adapted per example by x1.02 / x0.98 per transition
        (so ~200 transitions span 0.01 -> 0.5): keep it near the posterior's scale for short schedules.
    initial : ``"prior"`` (p_0 = p(z)) or ``"encoder"`` (p_0 = q(z|x), a Gaussian proposal).
    schedule : ``"sigmoid"`` (default), ``"linear"`` or an explicit increasing array of betas
        from 0 to 1 (then ``n_steps`` is ignored).
    batch_size : examples annealed together (each with ``n_chains`` chains). Results do not depend
        on it beyond float rounding: every example has its own noise stream and step size.
    seed : seeds the draws; example i's draws depend only on (seed, i).
    device : where the model runs (default: its parameters' device, else CPU); any torch device.

    Returns
    -------
    AISEstimate : per-example estimates (``log_likelihood``, ``kind="lower-bound"``), their Monte
        Carlo standard errors over chains, the log-weights, ESS, acceptance rates and final step
        sizes; ``mean`` / ``mean_stderr`` over examples.

    References
    ----------
    Neal 2001; Wu, Burda, Salakhutdinov & Grosse 2017; Grosse, Ghahramani & Adams 2015.

    Examples
    --------
    >>> class Toy:  # z ~ N(0, 1), x | z ~ N(z, 1): log p(x) = log N(x; 0, 2)
    ...     def prior_log_prob(self, z): return -0.5 * (z**2 + math.log(2 * math.pi)).sum(-1)
    ...     def log_likelihood(self, x, z): return -0.5 * ((x - z)**2 + math.log(2 * math.pi)).sum(-1)
    ...     def sample_prior(self, n, *, generator): return torch.randn(n, 1, generator=generator)
    >>> est = ais_log_likelihood(Toy(), torch.tensor([[1.0]]), n_steps=200, n_chains=8, leapfrog=5)
    >>> bool(abs(est.log_likelihood[0] - (-0.25 - 0.5 * math.log(4 * math.pi))) < 0.05)
    True
    """
    return _run(model, x, n_steps=n_steps, n_chains=n_chains, leapfrog=leapfrog, target_accept=target_accept,
                step_size=step_size, initial=initial, schedule=schedule, batch_size=batch_size, seed=seed,
                device=device)


def bdmc(model: Any, n_examples: int, *, n_steps: int = 1000, n_chains: int = 16, leapfrog: int = 10,
         target_accept: float = 0.65, step_size: float = 0.01, initial: str = "prior",
         schedule: str | Sequence[float] = "sigmoid", batch_size: int = 128, seed: int = 0,
         device: Any = None) -> BDMCResult:
    """Bidirectional Monte Carlo: sandwich log p(x) of simulated data between two AIS runs.

    Simulates (z, x) ~ p(z) p(x|z); forward AIS on x gives a stochastic lower bound, reverse AIS
    (beta from 1 to 0) started at z, an exact posterior sample of x, gives a stochastic upper
    bound (``-logmeanexp`` of the reverse log-weights, whose mean estimates 1/p(x) without bias).
    Their gap bounds the forward estimate's error on simulated data: a gap of a fraction of a nat
    means the schedule is long enough (for data like the model's own samples).

    Parameters
    ----------
    model : an :class:`AISModel` that also has ``sample_observation(z, *, generator)``
        (x ~ p(x|z) for z (N, Z)).
    n_examples : simulated examples.
    n_steps, n_chains, leapfrog, target_accept, step_size, initial, schedule, batch_size, device :
        as in :func:`ais_log_likelihood`; both directions use the same settings. For
        ``initial="encoder"`` the reverse run anneals toward the encoder distribution.
    seed : seeds the simulation and both runs.

    Returns
    -------
    BDMCResult : ``lower``, ``upper`` (:class:`AISEstimate`), ``gap`` per example, ``mean_gap``,
        ``gap_stderr``, and the simulated ``x``, ``z``.

    References
    ----------
    Grosse, Ghahramani & Adams 2015; Wu et al. 2017 (section 3.2).

    Examples
    --------
    >>> # see tests/test_ais.py: on probabilistic PCA the two bounds bracket the exact log p(x)
    """
    _check_model(model, encoder=initial == "encoder", simulate=True)
    n = _positive_int(n_examples, "n_examples")
    dev = _model_device(model, device)
    g = torch.Generator(device=dev).manual_seed(int(np.random.SeedSequence([int(seed), 2]).generate_state(1)[0]))
    with eval_mode(model):
        z = model.sample_prior(n, generator=g)
        if z.ndim != 2 or len(z) != n:
            raise ValueError(f"model.sample_prior(n, generator=g) must return shape (n, Z) = ({n}, Z); "
                             f"got {tuple(z.shape)}.")
        x = model.sample_observation(z.to(dev), generator=g)
        if len(x) != n:
            raise ValueError(f"model.sample_observation(z, generator=g) must return one example per latent "
                             f"({n}); got shape {tuple(x.shape)}.")
    kw = dict(n_steps=n_steps, n_chains=n_chains, leapfrog=leapfrog, target_accept=target_accept, step_size=step_size,
              initial=initial, schedule=schedule, batch_size=batch_size, seed=seed, device=device)
    lower = _run(model, x, **kw)
    upper = _run(model, x, z_post=z, **kw)
    return BDMCResult(lower=lower, upper=upper, x=x.detach().cpu(), z=z.detach().cpu())


# ----------------------------------------------------------------------------- GANs


class GaussianObservationModel(nn.Module):
    """A GAN generator with the observation model p(x|z) = N(G(z), sigma^2 I) and prior N(0, I).

    Wu et al. 2017 (section 4) give decoder-based models without a likelihood this fixed-variance
    Gaussian so that AIS can estimate a (density) log-likelihood; sigma is a hyper-parameter chosen
    on validation data (:func:`select_gan_sigma`), and the numbers hold for this observation
    model only.

    Parameters
    ----------
    generator : an object with ``generate(z)`` mapping (M, Z) latents to (M, *shape) data-space
        means (e.g. ``baselines.gan.GAN``), and ``z_dim`` (or pass ``z_dim``). If it is a torch
        module it is held as a submodule (eval mode and device follow it).
    sigma : observation std > 0, in data units.
    z_dim : latent dimension, when ``generator`` has no ``z_dim``.

    Examples
    --------
    >>> class Lin(nn.Module):
    ...     z_dim = 2
    ...     def generate(self, z): return z @ torch.ones(2, 3)
    >>> m = GaussianObservationModel(Lin(), sigma=0.5)
    >>> m.log_likelihood(torch.zeros(4, 3), torch.zeros(5, 4, 2)).shape
    torch.Size([5, 4])
    """

    likelihood_space = "density"

    def __init__(self, generator: Any, sigma: float, *, z_dim: int | None = None) -> None:
        super().__init__()
        if not callable(getattr(generator, "generate", None)):
            raise ValueError(f"{type(generator).__name__} has no generate(z); pass a GAN whose generate maps latents "
                             "to data-space means.")
        self.generator = generator
        self.sigma = check_positive(sigma, "sigma", fix="choose it with select_gan_sigma on validation data")
        zd = z_dim if z_dim is not None else getattr(generator, "z_dim", None)
        if zd is None:
            raise ValueError(f"{type(generator).__name__} has no z_dim; pass z_dim=.")
        self.z_dim = _positive_int(zd, "z_dim")

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; 0, I) summed over latent dims: (..., N, Z) -> (..., N)."""
        return -0.5 * (z**2 + _LOG_2PI).sum(-1)

    def _mean(self, z: torch.Tensor) -> torch.Tensor:
        lead = z.shape[:-1]
        flat = z.reshape(-1, z.shape[-1])
        dev = next(iter(self.parameters()), flat).device
        return self.generator.generate(flat.to(dev)).reshape(*lead, -1)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log N(x; G(z), sigma^2 I) summed over data dims; z (..., N, Z), x (N, ...) -> (..., N)."""
        mu = self._mean(z)
        xf = x.reshape(len(x), -1).to(mu)
        d = xf.shape[1]
        return (-0.5 * ((xf - mu) ** 2).sum(-1) / self.sigma**2
                - d * (math.log(self.sigma) + 0.5 * _LOG_2PI))

    def sample_prior(self, n: int, *, generator: torch.Generator) -> torch.Tensor:
        """z ~ N(0, I): (n, Z) on ``generator``'s device."""
        return torch.randn((n, self.z_dim), generator=generator, device=generator.device)

    def sample_observation(self, z: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        """x = G(z) + sigma * eps: (N, *shape) of the generator's output shape."""
        with torch.no_grad():
            flat = z.reshape(-1, z.shape[-1])
            dev = next(iter(self.parameters()), flat).device
            mu = self.generator.generate(flat.to(dev))
        return mu + self.sigma * torch.randn(mu.shape, generator=generator, device=generator.device).to(mu)


def select_gan_sigma(generator: Any, validation: Any, *, grid: Sequence[float] = GAN_SIGMA_GRID,
                     n_steps: int = 100, n_chains: int = 4, leapfrog: int = 10, target_accept: float = 0.65,
                     step_size: float = 0.01, schedule: str | Sequence[float] = "sigmoid", batch_size: int = 128,
                     seed: int = 0, device: Any = None, search: str = "climb") -> tuple[float, list[dict[str, float]]]:
    """Choose the Gaussian observation std of a GAN by the AIS estimate on validation data.

    As Wu et al. 2017: each sigma in ``grid`` is scored by a short-schedule AIS estimate of the
    mean validation log-likelihood under :class:`GaussianObservationModel`, and the best one is
    kept. A short schedule underestimates sharp posteriors (small sigma) most, so the choice leans
    toward larger sigma than a long schedule would pick.

    ``search="grid"`` scores every grid value. ``search="climb"`` (the default) starts at the middle of
    the sorted grid and moves to the better neighbour until neither neighbour is better: the same
    choice as the full grid whenever the validation curve is unimodal over the grid (it is a
    log-likelihood in the noise scale: too small a sigma punishes every pixel error, too large
    blurs everything), with the same estimate for every sigma it scores (same seed), at 3 of 5 AIS
    runs when the best sigma is in the middle. The table lists the sigmas scored.

    Parameters
    ----------
    generator : a GAN (``generate(z)``, ``z_dim``).
    validation : (N_val, ...) real data disjoint from the test set.
    grid : candidate sigmas (default :data:`GAN_SIGMA_GRID`).
    n_steps, n_chains, leapfrog, target_accept, step_size, schedule, batch_size, seed, device :
        AIS settings (see :func:`ais_log_likelihood`).

    Returns
    -------
    sigma : the best grid value (first on ties).
    table : ``{"sigma", "mean_ll", "stderr"}`` per grid value, in grid order.

    Examples
    --------
    >>> # see tests/test_ais.py
    """
    g = sorted({check_positive(s, "every sigma in grid") for s in grid})
    if not g:
        raise ValueError("grid is empty; pass candidate sigmas, e.g. (0.05, 0.1, 0.2).")
    if search not in ("climb", "grid"):
        raise ValueError(f"search must be 'climb' or 'grid'; got {search!r}.")
    scored: dict[int, dict[str, float]] = {}

    def score(i: int) -> float:
        if i not in scored:
            est = ais_log_likelihood(GaussianObservationModel(generator, g[i]), validation, n_steps=n_steps,
                                     n_chains=n_chains, leapfrog=leapfrog, target_accept=target_accept,
                                     step_size=step_size, schedule=schedule, batch_size=batch_size, seed=seed,
                                     device=device)
            scored[i] = {"sigma": float(g[i]), "mean_ll": est.mean, "stderr": est.mean_stderr}
        return scored[i]["mean_ll"]

    if search == "grid":
        for i in range(len(g)):
            score(i)
    else:
        i = (len(g) - 1) // 2
        while True:
            around = [j for j in (i - 1, i, i + 1) if 0 <= j < len(g)]
            best = max(around, key=lambda j: (score(j), -j))  # the smaller sigma on ties, as the grid's argmax
            if best == i:
                break
            i = best
    table = [scored[i] for i in sorted(scored)]
    best = int(np.argmax([r["mean_ll"] for r in table]))
    return table[best]["sigma"], table


# ----------------------------------------------------------------------------- MetricResult rows


def _space(model: Any, model_space: str | None) -> str:
    space = model_space or getattr(model, "likelihood_space", None)
    if space is None:
        obs_kind = getattr(getattr(model, "obs", None), "kind", None)
        space = "density" if obs_kind == "density" else "mass"
    if space not in ("mass", "density"):
        raise ValueError(f"model_space must be 'mass' or 'density'; got {space!r}.")
    return space


# AIS is expensive: never computed by default (the matrix asks for it with evaluation.ais_steps)
@register_metric("ais", family="likelihood", needs="model", kind="lower-bound", direction="higher", unit="nats",
                 default=False,
                 description="annealed importance sampling log p(x) (HMC, geometric path; Wu et al. 2017), "
                 "nats/example, with its BDMC gap on simulated data")
def ais_measure(model: Any, test: Any, *, validation: Any = None, n_steps: int = 1000, n_chains: int = 16,
                leapfrog: int = 10, target_accept: float = 0.65, step_size: float = 0.01, initial: str = "prior",
                schedule: str = "sigmoid", bdmc_examples: int = 16, bdmc_steps: int | None = None,
                sigma: float | None = None, sigma_grid: Sequence[float] = GAN_SIGMA_GRID, sigma_steps: int = 100,
                sigma_chains: int = 4, sigma_search: str = "climb", n_val: int | None = 100, levels: int | None = None,
                model_space: str | None = None, batch_size: int = 128, seed: int = 0,
                device: Any = None) -> Measurement:
    """The AIS protocol in one call, as the ``ais`` spec's :class:`~genbench.metrics.Measurement`.

    For a model without ``log_likelihood`` but with ``generate`` (a GAN) the Gaussian observation
    model is used, with ``sigma`` given or chosen on ``validation`` by :func:`select_gan_sigma`.
    The schedule is checked by :func:`bdmc` on ``bdmc_examples`` examples simulated from the
    (wrapped) model; the gap is recorded in ``params`` and a warning is added above 1 nat.

    Parameters
    ----------
    model : an :class:`AISModel` (e.g. the VAE / AAE baselines) or a GAN (``generate``, ``z_dim``).
    test : (N, ...) examples scored (the row's ``ref`` split).
    validation : (N_val, ...) data disjoint from ``test``; needed only to choose a GAN's sigma
        (its first ``n_val`` rows are used).
    n_steps, n_chains, leapfrog, target_accept, step_size, initial, schedule : AIS settings.
    bdmc_examples : simulated examples for the BDMC check (0 to skip it).
    bdmc_steps : schedule length of the BDMC check (default ``n_steps``, the schedule used on test).
    sigma, sigma_grid, sigma_steps, sigma_chains, sigma_search : a GAN's observation std, or the grid, the
        short AIS schedule and the search (``climb`` or ``grid``, see :func:`select_gan_sigma`) that choose it
        on validation.
    levels : discrete levels per data value, for bits/dim (``None``: continuous).
    model_space : ``"mass"`` (log-probabilities of discrete values) or ``"density"``; default: the
        model's ``likelihood_space``, else its observation model's kind, else ``"mass"``.
    batch_size, seed, device : as in :func:`ais_log_likelihood`.

    Returns
    -------
    Measurement : value = mean log p_hat(x) in nats per example, ``std`` = standard error over
        examples, fixed protocol parameters chains, steps, leapfrog (and sigma when given; init and
        schedule when not the defaults), sigma tuned on validation for a GAN, params with the schedule,
        BDMC gap, acceptance and bits/dim. :func:`evaluate_ais` turns it into a row,
        ``ais/n=N/ref=test/chains=C/steps=T/leapfrog=L[/sigma=s]/seed=S``, kind ``lower-bound``.

    Examples
    --------
    >>> # see tests/test_ais.py and benchmarks/ais_digits.py
    """
    xt = _as_input(test, "test")
    warnings_: list[str] = [
        "AIS numbers depend on the observation model p(x|z): never compare them across observation models "
        "(a discrete decoder's probability mass vs a Gaussian density)."
    ]
    params: dict[str, Any] = {}
    if not callable(getattr(model, "log_likelihood", None)) and callable(getattr(model, "generate", None)):
        if sigma is None:
            if validation is None:
                raise ValueError("a GAN needs sigma or validation data to choose it (select_gan_sigma); pass "
                                 "validation= (disjoint from test) or sigma=.")
            v = _as_input(validation, "validation")
            v = v[:n_val] if n_val is not None else v
            vb = {r.reshape(-1).double().numpy().tobytes() for r in v.cpu()}
            if any(r.reshape(-1).double().numpy().tobytes() in vb for r in xt.cpu()):
                raise ValueError("validation and test share rows; choose sigma on data disjoint from test.")
            sigma, table = select_gan_sigma(model, v, grid=sigma_grid, n_steps=sigma_steps, n_chains=sigma_chains,
                                            leapfrog=leapfrog, target_accept=target_accept, step_size=step_size,
                                            batch_size=batch_size, seed=seed, device=device, search=sigma_search)
            params.update(sigma_grid=table, sigma_selection=f"max mean AIS validation log-likelihood "
                                                            f"(steps={sigma_steps}, chains={sigma_chains}, "
                                                            f"n_val={len(v)}, search={sigma_search} over "
                                                            f"{sorted(float(x) for x in sigma_grid)})")
            if len(sigma_grid) > 1 and sigma in (min(sigma_grid), max(sigma_grid)):
                warnings_.append(f"sigma={sigma:.4g} is at the edge of the grid; widen it.")
        model = GaussianObservationModel(model, sigma)
        params.update(sigma=float(sigma), observation_model="N(G(z), sigma^2 I), prior N(0, I)")
    est = ais_log_likelihood(model, xt, n_steps=n_steps, n_chains=n_chains, leapfrog=leapfrog,
                             target_accept=target_accept, step_size=step_size, initial=initial, schedule=schedule,
                             batch_size=batch_size, seed=seed, device=device)
    if bdmc_examples:
        bs = bdmc_steps if bdmc_steps is not None else n_steps
        br = bdmc(model, bdmc_examples, n_steps=bs, n_chains=n_chains, leapfrog=leapfrog, target_accept=target_accept,
                  step_size=step_size, initial=initial, schedule=schedule, batch_size=batch_size, seed=seed,
                  device=device)
        params.update(bdmc_gap=br.mean_gap, bdmc_gap_stderr=br.gap_stderr, bdmc_lower=br.lower.mean,
                      bdmc_upper=br.upper.mean, bdmc_n=int(bdmc_examples), bdmc_steps=int(bs),
                      bdmc_data="simulated from the model")
        if br.mean_gap > 1.0:
            warnings_.append(f"BDMC gap {br.mean_gap:.3g} nats on simulated data (steps={bs}): the schedule is too "
                             "short to trust the estimate to better than that; lengthen n_steps.")
    else:
        warnings_.append("no BDMC check: the schedule's adequacy is unknown.")
    space = _space(model, model_space)
    n = len(xt)
    dim = int(xt[0].numel())
    fixed: dict[str, Any] = {"chains": int(n_chains), "steps": int(n_steps), "leapfrog": int(leapfrog)}
    tuned: dict[str, Any] = {}
    if "sigma" in params:  # a GAN's sigma: chosen on validation (tuned), or given (fixed)
        (tuned if "sigma_grid" in params else fixed)["sigma"] = float(f"{params['sigma']:.3g}")
    if initial != "prior":
        fixed["init"] = initial
    if schedule != "sigmoid":
        fixed["schedule"] = schedule
    params.update(
        n_steps=int(n_steps), n_chains=int(n_chains), leapfrog=int(leapfrog), target_accept=float(target_accept),
        schedule=schedule, initial=initial, initial_step_size=float(step_size),
        step_size_adaptation=est.settings["step_size_adaptation"],
        acceptance_mean=float(est.acceptance.mean()), step_size_median=float(np.median(est.step_size)),
        ess_median=float(np.median(est.ess)),
        mc_stderr=float(np.sqrt(np.nansum(est.stderr**2)) / n),
        mc_stderr_kind="delta-method over chains per example, combined over examples", model_space=space,
    )
    m = loglik_measurement(est.log_likelihood, dim=dim, levels=levels, density=space == "density", params=params,
                           tuned=tuned, warnings=warnings_)
    return replace(m, fixed=fixed)


def evaluate_ais(model: Any, test: Any, validation: Any = None, *, ref: str = "test", seed: int = 0,
                 protocol_seed: int | None = None, device: Any = None, **settings: Any) -> list[MetricResult]:
    """One ``ais`` row for ``model`` on ``test`` through the generic evaluator; ``settings`` are
    :func:`ais_measure`'s keywords (``n_steps``, ``n_chains``, ``sigma``, ``levels``...). ``protocol_seed``
    is the seed the row's protocol records (default ``seed``): the evaluation's own seed when ``seed``
    was derived from it for AIS's random streams, as the other families' rows record it."""
    from genbench.metrics._evaluator import MetricInputs, evaluate_metrics

    inputs = MetricInputs(None, model=model, x=_as_input(test, "test"), ref=ref)
    return evaluate_metrics(inputs, metrics=["ais"], seed=seed, protocol_seed=protocol_seed, device=device,
                            settings={"ais": {"validation": validation, **settings}})
