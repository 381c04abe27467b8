"""Seeding and RNG state: every random stream of a run derives from one seed, and all of them
can be captured into (and restored from) a checkpoint that ``torch.load(weights_only=True)`` reads.

Streams (each from :func:`derive_seed`): ``init`` (model initialisation), ``global`` (the
torch / numpy / python global RNGs during training, e.g. dropout), ``step`` (the harness-owned
generator given to ``training_step``), ``data`` + epoch (the data order), ``val`` (validation
noise, identical at every validation so scores are comparable across steps).
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import numpy as np
import torch

from genbench._runtime import seeded_generator


def derive_seed(seed: int, *keys: int | str) -> int:
    """A 31-bit seed for the named stream of run ``seed`` (stable across platforms and versions).

    31 bits so that every consumer takes it: torch, numpy's ``RandomState`` and scikit-learn's
    ``random_state`` (which refuse seeds of 2**32 and above)."""
    h = hashlib.sha256(repr((int(seed), *keys)).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 31) - 1)


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's and python's global RNGs."""
    torch.manual_seed(seed)
    np.random.seed(seed % (1 << 32))
    random.seed(seed)


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    return seeded_generator(seed, device)


def capture_rng(step_generator: torch.Generator, device: torch.device) -> dict[str, Any]:
    """All RNG states as tensors and primitives (weights_only-loadable)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": random.getstate(),
        "step_generator": step_generator.get_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], step_generator: torch.Generator, device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    random.setstate(_as_tuple(state["python"]))
    step_generator.set_state(state["step_generator"].cpu())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


def _as_tuple(v: Any) -> Any:
    return tuple(_as_tuple(x) for x in v) if isinstance(v, list | tuple) else v


def fork_rng(device: torch.device):
    """``torch.random.fork_rng`` over the CPU and (only) the run's CUDA device."""
    devices = [device.index or 0] if device.type == "cuda" else []
    return torch.random.fork_rng(devices=devices)
