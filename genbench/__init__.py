"""genbench: evaluation and benchmarking for generative models.

Every number has a named protocol, every metric is verified against a closed form or a peer,
everything works offline. The public API is re-exported lazily so that light modules (reports,
the results store) can be imported without importing torch.

Examples
--------
>>> import genbench
>>> ds = genbench.load_dataset("digits")
>>> ds.info.shape
(1, 8, 8)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_dataset": "genbench.data",
    "DATASETS": "genbench.data",
    "METRICS": "genbench.metrics",
    "GENERATORS": "genbench.generators",
    "MetricResult": "genbench.results",
    "ResultsStore": "genbench.store",
    "RunFolder": "genbench.runs",
    "score": "genbench.scoring",
    "load_generator": "genbench.loading",
    "run_matrix": "genbench.runner",
    "Protocol": "genbench.results",
    "RunRecord": "genbench.results",
    "evaluate_samples": "genbench.evaluate",
    "evaluate_model": "genbench.evaluate",
    "load_matrix": "genbench.matrix",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'genbench' has no attribute {name!r}")
