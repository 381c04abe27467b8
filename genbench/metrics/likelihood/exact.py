"""Exact log-likelihoods: models that declare ``likelihood_kind == "exact"`` (PixelCNN), a model's own
``log_prob`` bound, and a dataset's known density (the synthetic mixtures)."""

from __future__ import annotations

import math  # noqa: F401  (the doctest of exact_log_likelihood uses it)
from typing import Any

import numpy as np
import torch  # noqa: F401  (the doctest of exact_log_likelihood uses it)

from genbench._runtime import eval_mode
from genbench._validation import check_finite
from genbench.metrics import register_metric
from genbench.metrics._spec import Measurement
from genbench.metrics.likelihood._common import _check_batch, _model_device, loglik_measurement
from genbench.metrics.likelihood._weights import _as_model_input
from genbench.protocols import LikelihoodModel


def _model_log_prob(model: Any, x: Any, *, batch_size: int, device: Any) -> np.ndarray:
    xt = _as_model_input(x)
    dev = _model_device(model, device)
    bs = _check_batch(batch_size, "batch_size")
    out = np.empty(len(xt))
    with eval_mode(model):
        for i0 in range(0, len(xt), bs):
            lp = model.log_prob(xt[i0 : i0 + bs].to(dev))
            b = min(bs, len(xt) - i0)
            if tuple(lp.shape) != (b,):
                raise ValueError(f"model.log_prob(x) must return shape (N,) = ({b},); got {tuple(lp.shape)}. "
                                 "Sum over data dimensions.")
            out[i0 : i0 + b] = lp.double().cpu().numpy()
    check_finite(out, "model.log_prob(x)", hint="check the model (a probability of 0 gives -inf)")
    return out



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



def _density_flag(model_space: str) -> bool:
    if model_space not in ("mass", "density"):
        raise ValueError(f"model_space must be 'mass' or 'density'; got {model_space!r}.")
    return model_space == "density"


@register_metric(
    "exact-loglik", family="likelihood", needs="model", direction="higher", kind="exact", unit="nats", default=False,
    description="exact log-likelihood of a model with likelihood_kind == 'exact' (e.g. PixelCNN), nats/example",
)
def exact_measure(model: Any, x: Any, *, batch_size: int = 256, device: Any = None, levels: int | None = None,
                  model_space: str = "mass") -> Measurement:
    """:func:`exact_log_likelihood` as a :class:`Measurement` (mean over examples +- stderr).

    ``levels`` and ``model_space`` (``"mass"`` or ``"density"``) decide the bits/dim convention.
    """
    density = _density_flag(model_space)
    ll = exact_log_likelihood(model, x, batch_size=batch_size, device=device)
    return loglik_measurement(ll, dim=int(np.prod(tuple(x.shape[1:]))), levels=levels, density=density,
                              params={"model_space": model_space, "likelihood_kind": model.likelihood_kind})


@register_metric(
    "bound-loglik", family="likelihood", needs="model", direction="higher", kind="lower-bound", unit="nats",
    default=False,
    description="a LikelihoodModel's own log_prob where it declares a lower bound (no latent protocol), nats/example",
)
def bound_measure(model: Any, x: Any, *, batch_size: int = 256, device: Any = None, levels: int | None = None,
                  model_space: str = "mass") -> Measurement:
    """``model.log_prob(x)`` of a :class:`~genbench.protocols.LikelihoodModel` declaring a lower bound."""
    if not isinstance(model, LikelihoodModel):
        raise ValueError(f"{type(model).__name__} is not a LikelihoodModel: it needs likelihood_kind and "
                         "log_prob(x) (genbench.protocols).")
    density = _density_flag(model_space)
    ll = _model_log_prob(model, x, batch_size=batch_size, device=device)
    return loglik_measurement(ll, dim=int(np.prod(tuple(x.shape[1:]))), levels=levels, density=density,
                              params={"model_space": model_space, "likelihood_kind": model.likelihood_kind})


@register_metric(
    "true-loglik", family="likelihood", needs="model", direction="higher", kind="exact", unit="nats", default=False,
    description="log-density of real data under a dataset's known density (synthetic mixtures), nats/example",
)
def true_measure(dataset: Any, x: Any, *, levels: int | None = None) -> Measurement:
    """The known density ``dataset.log_density(x)`` as a :class:`Measurement`: the value estimates aim at."""
    if not callable(getattr(dataset, "log_density", None)):
        raise ValueError(f"{type(dataset).__name__} has no known density (log_density(x)); only synthetic "
                         "datasets such as mixture-ring have one.")
    ll = np.asarray(dataset.log_density(x), dtype=np.float64)
    check_finite(ll, "dataset.log_density(x)", hint="check the dataset's density")
    return loglik_measurement(ll, dim=int(np.prod(tuple(x.shape[1:]))), levels=levels, density=True,
                              params={"source": "the dataset's known density"})
