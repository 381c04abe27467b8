"""Imported once by the local executor's fork server (:mod:`genbench._workers`), for its workers.

The modules below are those a cell of the default matrix imports, most of them lazily, measured with
``python -X importtime``: torch (with genbench's own modules), ``torch._dynamo`` (torch imports it on
the first optimizer a process makes: 1.3 to 2.2 s alone), scipy's and scikit-learn's parts the
metrics use, and matplotlib's figure and Agg canvas for the plots. Importing has no other effect; a
module that fails to import here is left to the cell that needs it, which reports the error itself.
"""

from __future__ import annotations

import importlib

MODULES = (
    "torch",
    "torch._dynamo",
    "genbench.runner",
    "genbench.evaluate",
    "genbench.metrics.likelihood._em",
    "scipy.linalg",
    "scipy.special",
    "scipy.stats",
    "sklearn.cluster",
    "sklearn.mixture",
    "sklearn.neighbors",
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
)


def load(names: tuple[str, ...] = MODULES) -> list[str]:
    """Import ``names``; returns those that failed (left to the cell that needs one, which reports the error)."""
    failed = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - any failure here is reported by the cell that imports it
            failed.append(name)
    return failed


load()
