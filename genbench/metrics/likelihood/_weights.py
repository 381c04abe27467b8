"""Shared machinery of the model-based estimators: per-example noise streams, log importance weights,
the estimate record, and running a model in eval mode.

Importance-sampling noise is drawn in blocks of ``_NOISE_BLOCK`` samples per example, from one
generator per example, so the draws do not depend on batch_size, k_chunk or device.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from genbench._runtime import example_generators
from genbench._validation import as_numpy, check_finite
from genbench.protocols import LatentVariableModel

_NOISE_BLOCK = 128


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
        gens = example_generators(seed, i0, i1) if reparam is not None else []

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


def _check_latent_model(model: Any) -> None:
    if not isinstance(model, LatentVariableModel):
        missing = [m for m in ("prior_log_prob", "log_likelihood", "proposal") if not callable(getattr(model, m, None))]
        raise ValueError(
            f"{type(model).__name__} is not a LatentVariableModel (missing {', '.join(missing)}); importance "
            "sampling needs prior_log_prob(z), log_likelihood(x, z) and proposal(x) (genbench.protocols)."
        )


