"""Progress bars on a terminal, quiet in CI logs and tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any


def progress_enabled(requested: bool | None = None) -> bool:
    """True on an interactive terminal unless CI=true or GENBENCH_PROGRESS=0."""
    if requested is not None:
        return bool(requested)
    if os.environ.get("GENBENCH_PROGRESS", "").strip() == "0":
        return False
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        return False
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def progress(iterable: Iterable[Any] | None = None, *, enabled: bool | None = None, **kwargs: Any):
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=not progress_enabled(enabled), dynamic_ncols=True, **kwargs)
