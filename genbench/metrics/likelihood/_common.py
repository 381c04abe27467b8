"""What every likelihood estimator shares: input checks, mean and standard error, bits/dim, the Measurement.

Bits per dimension (GitHub issue 12)
------------------------------------
A *density* ``p`` on data stored on a grid of spacing ``Delta`` per dimension is turned into a
probability mass by the bin of width ``Delta`` around each grid point: ``P(y) ~= p(y) Delta**D``,
so ``-log P(y) = -log p(y) - D log Delta``: the dequantisation offset is ``-log Delta`` nats per
dimension. genbench stores discrete data with ``L`` levels (``DatasetInfo.levels``) as
``k / (L - 1)``, ``k = 0 .. L-1`` (digits: 0, 1/16, ..., 1), a grid that includes both ends, so
``Delta = 1 / (L - 1)`` and the offset is ``log(L - 1)``, not ``log L``:

    ``bits/dim = (nll_nats + D log(L - 1)) / (D ln 2)``.

(The PixelCNN papers add ``log 256`` because their data are scaled as ``k / 256`` with bins
``[k/256, (k+1)/256)``; on their scale that is the same rule.) A uniform mass over the ``L``
levels is ``log2 L`` bits/dim; the piecewise-constant density ``(1/L) / Delta`` per dimension on
the bins centred on the grid gives the same number after the offset (tests/test_likelihood.py).
When the number is already a probability mass over the levels (a Bernoulli or categorical
decoder, PixelCNN's softmax) nothing is added. Which rule applied is written into
``params["dequantisation"]``.

Uncertainty: ``std`` is the standard error of the mean over evaluation examples, ``std / sqrt(N)``
with numpy's default ``ddof=0`` (as in Goodfellow et al.'s ``parzen_ll.py``), ``std_kind="stderr"``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from genbench._runtime import resolve_device
from genbench._validation import as_numpy, check_finite, check_n
from genbench.metrics._spec import Measurement

_LN2 = math.log(2.0)
_LOG_2PI = math.log(2.0 * math.pi)
VALUE_UNIT = "log-likelihood in nats per example (higher is better); bits/dim in params (lower is better)"


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
    """The one resolver (genbench._runtime), with None meaning the CPU here: estimators never move
    to a GPU unless asked."""
    return resolve_device("cpu" if device is None else device)


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


def _grid_edge_warning(name: str, value: float, grid: Sequence[float]) -> list[str]:
    g = list(grid)
    if len(g) > 1 and value in (min(g), max(g)):
        return [f"{name}={value:.4g} is at the edge of the search grid [{min(g):.4g}, {max(g):.4g}]; "
                "the optimum may lie outside it: widen the grid."]
    return []


def evaluation_memo(inputs: Any) -> dict[str, Any]:
    """A dict kept for one evaluation (``MetricSpec.shared`` factory): the density estimators store their
    model selection there, keyed by samples, validation rows and settings, so the splits of one
    evaluation (``MetricInputs.for_split``) share one sigma / one fitted mixture."""
    return {}


def dequantisation_offset(levels: int | None, density: bool = True) -> float:
    """Nats per dimension added to a density's NLL before bits/dim: ``-log Delta = log(L - 1)``.

    ``levels`` values stored as ``k / (L - 1)`` sit on a grid of spacing ``Delta = 1 / (L - 1)``
    (both ends included); 0 for continuous data (``levels=None``), for a mass (``density=False``)
    and for a single level.

    Examples
    --------
    >>> round(dequantisation_offset(17), 12) == round(math.log(16), 12)
    True
    """
    if levels is None or not density or levels < 2:
        return 0.0
    return math.log(levels - 1)


def bits_per_dim(log_likelihood_nats: float, dim: int, *, levels: int | None = None,
                 density: bool = True) -> float:
    """Convert a mean log-likelihood in nats per example to bits per dimension (lower is better).

    Parameters
    ----------
    log_likelihood_nats : mean log-likelihood per example, in nats (higher is better).
    dim : D, the number of dimensions per example.
    levels : L, discrete levels per dimension, stored as ``k / (L - 1)``; None for continuous data.
    density : True when the log-likelihood is a density on the stored values; then, for discrete
        data, the dequantisation offset ``log(L - 1)`` nats per dim (minus the log of the grid
        spacing, see the module docstring) is added to the NLL first. False when it is already a
        probability mass over the levels.

    Returns
    -------
    float : ``(-ll + D * offset) / (D * ln 2)``.

    Examples
    --------
    >>> round(bits_per_dim(-784 * math.log(2), 784, levels=None), 6)
    1.0
    >>> round(bits_per_dim(-3072 * math.log(256), 3072, levels=256, density=False), 6)  # uniform mass
    8.0
    >>> round(bits_per_dim(3072 * math.log(255 / 256), 3072, levels=256), 6)  # the same, as a density
    8.0
    """
    return (-float(log_likelihood_nats) + dim * dequantisation_offset(levels, density)) / (dim * _LN2)


def _dequantisation_note(levels: int | None, density: bool) -> str:
    if levels is None:
        return "none: continuous data; bits/dim = nll / (D ln 2)"
    if density:
        return (f"grid bins: a density on data with {levels} levels stored as k/{levels - 1}; bits/dim adds "
                f"-log(spacing) = log({levels - 1}) nats per dim before dividing by D ln 2 (bins of width "
                f"1/{levels - 1} centred on the grid points, no noise added to the data)")
    return f"none: a probability mass over the {levels} levels; bits/dim = nll / (D ln 2)"


def loglik_measurement(ll: np.ndarray, *, dim: int, levels: int | None, density: bool,
                       params: Mapping[str, Any] | None = None, tuned: Mapping[str, Any] | None = None,
                       warnings: Sequence[str] = (), n: Mapping[str, int] | None = None) -> Measurement:
    """Per-example log-likelihoods as one :class:`Measurement`: mean (nats/example) +- stderr.

    ``parts`` carries the per-example values (the train/test gap and a bootstrap read them);
    ``params`` gets bits/dim, its standard error and the dequantisation rule.
    """
    ll = np.asarray(ll, dtype=np.float64)
    mean, se = _mean_stderr(ll)
    p = dict(params or {})
    p.update(bits_per_dim=bits_per_dim(mean, dim, levels=levels, density=density),
             bits_per_dim_stderr=se / (dim * _LN2), dim=dim, levels=levels,
             dequantisation=_dequantisation_note(levels, density), value_unit=VALUE_UNIT)
    return Measurement(mean, std=se, std_kind="stderr", params=p, warnings=tuple(warnings), n=n,
                       tuned=dict(tuned or {}), parts=ll)
