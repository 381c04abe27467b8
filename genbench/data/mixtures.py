"""Synthetic 2-D Gaussian mixtures with a known density: ``mixture-ring`` and ``mixture-grid``.

The ring of 8 and grid of 25 follow the Unrolled-GAN / VEEGAN / PacGAN mode-collapse suites:
ring radius 2 with std 0.02; grid points at {-4, -2, 0, 2, 4}^2 with std 0.05.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from genbench.data._base import Dataset, make_dataset, register_dataset

SPLIT_SIZES = {"train": 20000, "val": 5000, "test": 5000}
SPLIT_SEED = 0


@dataclass
class MixtureDataset(Dataset):
    """A 2-D equal-weight isotropic Gaussian mixture whose density is known."""

    centres: np.ndarray | None = None  # (M, 2)
    std: float = 0.0

    @property
    def n_modes(self) -> int:
        assert self.centres is not None
        return len(self.centres)

    def log_density(self, x: Any) -> np.ndarray:
        """True log p(x) for points (N, 2), in nats, float64."""
        assert self.centres is not None
        x = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
        d2 = ((x[:, None, :] - self.centres[None, :, :]) ** 2).sum(-1)  # (N, M)
        dim = x.shape[1]
        log_comp = -d2 / (2 * self.std**2) - dim * math.log(self.std * math.sqrt(2 * math.pi))
        m = log_comp.max(axis=1, keepdims=True)
        return (m[:, 0] + np.log(np.exp(log_comp - m).mean(axis=1))).astype(np.float64)

    def sample(self, n: int, *, seed: int) -> torch.Tensor:
        """Samples from the true mixture (the ``mixture-truth`` control uses this)."""
        x, _ = _draw(self.centres, self.std, n, np.random.default_rng(seed))
        return torch.from_numpy(x)


def _draw(centres: np.ndarray, std: float, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, len(centres), size=n)
    x = centres[y] + std * rng.standard_normal((n, centres.shape[1]))
    return x.astype(np.float32), y.astype(np.int64)


def _make(name: str, centres: np.ndarray, std: float) -> MixtureDataset:
    rng = np.random.default_rng(SPLIT_SEED)
    splits = {k: _draw(centres, std, n, rng) for k, n in SPLIT_SIZES.items()}
    rule = f"i.i.d. draws with seed {SPLIT_SEED}: " + ", ".join(f"{k} {n}" for k, n in SPLIT_SIZES.items())
    ds = make_dataset(
        name, "points", splits, value_range=None, n_classes=len(centres), split_seed=SPLIT_SEED,
        split_rule=rule, source="synthetic", cls=MixtureDataset, centres=centres, std=std,
    )
    assert isinstance(ds, MixtureDataset)
    return ds


def ring_centres(n: int = 8, radius: float = 2.0) -> np.ndarray:
    a = 2 * np.pi * np.arange(n) / n
    return np.stack([radius * np.cos(a), radius * np.sin(a)], axis=1)


def grid_centres() -> np.ndarray:
    g = np.arange(-4.0, 5.0, 2.0)
    return np.array([(a, b) for a in g for b in g], dtype=np.float64)


@register_dataset("mixture-ring", description="8 2-D Gaussians on a circle of radius 2 (std 0.02), known density",
                  kind="points")
def load_ring(root: Any = None) -> MixtureDataset:
    return _make("mixture-ring", ring_centres(), 0.02)


@register_dataset("mixture-grid", description="25 2-D Gaussians on a 5x5 grid (spacing 2, std 0.05), known density",
                  kind="points")
def load_grid(root: Any = None) -> MixtureDataset:
    return _make("mixture-grid", grid_centres(), 0.05)
