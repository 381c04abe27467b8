"""Reference generators for genbench: VAE, GAN, PixelCNN, AAE and control generators.

Each family lives in its own folder (``config.py``, ``model.py``) and exposes ``register()``,
which adds its :class:`genbench.generators.GeneratorSpec` to the registry. genbench finds
this package through the ``genbench.generators`` entry point (``register_all``).
"""

from __future__ import annotations

import importlib
import pkgutil

_registered = False


def register_all() -> None:
    global _registered
    if _registered:
        return
    _registered = True
    for m in pkgutil.iter_modules(__path__):
        if not m.name.startswith("_") and m.ispkg:
            importlib.import_module(f"{__name__}.{m.name}").register()
