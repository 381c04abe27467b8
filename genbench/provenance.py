"""Provenance recorded with every result: versions, git commit, device, platform, time."""

from __future__ import annotations

import datetime as _dt
import platform
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("torch", "torchvision", "torch-fidelity", "numpy", "scipy", "scikit-learn", "pandas", "ray")


def genbench_version() -> str:
    try:
        return metadata.version("genbench")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "0+unknown"


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            continue
    return out


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the genbench source tree, with '+dirty' when it has local changes; None outside git."""
    src = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def device_description(device: Any = None) -> str:
    try:
        import torch

        if device is not None and str(device).startswith("cuda") and torch.cuda.is_available():
            return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    except Exception:  # provenance must never break a run
        pass
    return f"{device or 'cpu'} ({platform.processor() or platform.machine()})"


def provenance(*, seed: int | None = None, device: Any = None, **extra: Any) -> dict[str, Any]:
    return {
        "genbench": genbench_version(),
        "git_commit": git_commit(),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "device": device_description(device),
        "seed": seed,
        "time": now_iso(),
        **extra,
    }
