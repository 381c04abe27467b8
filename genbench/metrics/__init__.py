"""Metrics: pure functions of arrays, each registered once with its :class:`MetricSpec`.

One module per family: ``quality`` (IS, FID, KID, P/R, D/C), ``likelihood`` (Parzen, GMM,
importance sampling, exact), ``overfitting`` (NN, copy tests), ``coverage`` (modes, classes),
``representation`` (linear probe, reconstruction), ``conditional`` (conditional accuracy, CAS);
small metrics have a file of their own (``vendi``). One generic evaluator,
:func:`evaluate_metrics`, turns specs plus inputs into result rows.

The public API is importable from here, as a user would try first:

>>> import numpy as np
>>> from genbench.metrics import frechet_distance
>>> x = np.random.default_rng(0).normal(size=(200, 4))
>>> round(frechet_distance(x, x), 9)
0.0
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

from genbench._registry import Registry
from genbench.metrics._spec import Direction, Measurement, MetricSpec, MetricWarning, make_spec  # noqa: F401


def _load_all() -> None:
    for m in pkgutil.iter_modules(__path__):
        if not m.name.startswith("_"):
            importlib.import_module(f"{__name__}.{m.name}")


METRICS: Registry[MetricSpec] = Registry("metric", loader=_load_all)


def register_metric(name: str, *, family: str, needs: str, direction: Direction | dict[str, Direction],
                    outputs: tuple[str, ...] | None = None, **options: Any) -> Callable[[Any], Any]:
    """Register a metric function where it is defined; the function itself is returned unchanged.

    ``needs`` says what its leading arguments are (see :data:`genbench.metrics._spec.NEEDS`);
    ``direction`` is ``"higher"``, ``"lower"``, a target value, or None, for every output or as
    ``{output: direction}``; other options are :class:`MetricSpec` fields.
    """

    def deco(fn: Any) -> Any:
        spec = make_spec(name, fn, family=family, needs=needs, direction=direction, outputs=outputs, **options)
        METRICS.add(name, spec, description=spec.description, **spec.meta)
        return fn

    return deco


def _definition_order(spec: MetricSpec) -> tuple[str, int]:
    fn = getattr(spec.compute, "__wrapped__", spec.compute)
    code = getattr(fn, "__code__", None)
    return getattr(fn, "__module__", ""), code.co_firstlineno if code else 0


def specs(family: str | None = None) -> list[MetricSpec]:
    """Registered specs in a stable order: by module, then by where they are defined (not by import order)."""
    return sorted((e.obj for e in METRICS.entries() if family is None or e.obj.family == family),
                  key=_definition_order)


def spec_for_output(output: str) -> MetricSpec:
    """The spec producing an output name (``"recall"`` -> ``precision-recall``), or by its own name."""
    for e in METRICS.entries():
        if output == e.name or output in e.obj.outputs:
            return e.obj
    METRICS.entry(output)  # raises UnknownNameError with close matches and all names
    raise KeyError(output)


_PUBLIC = {
    "frechet_distance": "quality", "frechet_distance_from_stats": "quality", "fid_infinity": "quality",
    "inception_score": "quality",
    "kernel_inception_distance": "quality", "precision_recall": "quality", "density_coverage": "quality",
    "feature_statistics": "quality", "parzen_log_likelihood": "likelihood", "select_parzen_sigma": "likelihood",
    "parzen_estimate": "likelihood", "gmm_log_likelihood": "likelihood",
    "importance_sampled_log_likelihood": "likelihood", "elbo": "likelihood", "exact_log_likelihood": "likelihood",
    "bits_per_dim": "likelihood", "nearest_neighbours": "neighbours", "train_neighbours": "overfitting",
    "nn_distance_ratio": "overfitting", "copy_rate": "overfitting", "authenticity_score": "overfitting",
    "data_copying_ct": "overfitting", "likelihood_gap": "overfitting", "modes_captured": "coverage",
    "high_quality_share": "coverage", "mode_kl": "coverage", "class_coverage": "coverage", "vendi_score": "vendi",
    "ais_log_likelihood": "likelihood", "bdmc": "likelihood", "evaluate_ais": "likelihood",
    "transform_copy_rate": "copies", "linear_probe": "representation", "reconstruction_error": "representation",
    "conditional_accuracy": "conditional", "classification_accuracy_score": "conditional",
    "evaluate_metrics": "_evaluator", "MetricInputs": "_evaluator",
}

__all__ = sorted([*_PUBLIC, "METRICS", "Measurement", "MetricSpec", "MetricWarning", "register_metric",
                  "spec_for_output", "specs"])


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)
    raise AttributeError(f"module 'genbench.metrics' has no attribute {name!r}")
