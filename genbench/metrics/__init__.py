"""Metrics: pure functions of arrays, each registered with its metadata.

One module per family: ``quality`` (IS, FID, KID, P/R, D/C), ``likelihood`` (Parzen, GMM,
importance sampling, exact), ``overfitting`` (NN, copy tests), ``coverage`` (modes, classes).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from genbench._registry import Registry


def _load_all() -> None:
    for m in pkgutil.iter_modules(__path__):
        if not m.name.startswith("_"):
            importlib.import_module(f"{__name__}.{m.name}")


METRICS: Registry[Any] = Registry("metric", loader=_load_all)


def register_metric(name: str, *, higher_is_better: bool | None, needs: str, family: str,
                    description: str = "", **meta: Any):
    """Register a metric function where it is defined.

    ``needs`` says what it takes: ``"features"``, ``"probs"``, ``"samples"`` (raw samples and
    real data), ``"model"`` (a model through a protocol) or ``"loglik"``.
    """
    return METRICS.register(name, description=description, higher_is_better=higher_is_better,
                            needs=needs, family=family, **meta)
