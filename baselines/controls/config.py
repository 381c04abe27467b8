"""Configs of the control generators (none is trained; each is built from the dataset)."""

from __future__ import annotations

from dataclasses import dataclass

from genbench.config import ConfigError


@dataclass(frozen=True)
class CopycatConfig:
    """Replays real images of ``split`` (default: the training split, i.e. perfect memorisation)."""

    split: str = "train"


@dataclass(frozen=True)
class NoisyCopycatConfig:
    """Training images plus N(0, noise_std^2) noise per value, clipped to the value range."""

    split: str = "train"
    noise_std: float = 0.05

    def __post_init__(self) -> None:
        if not self.noise_std >= 0:
            raise ConfigError(f"NoisyCopycatConfig.noise_std: must be >= 0, got {self.noise_std}")


@dataclass(frozen=True)
class HeldoutConfig:
    """Real held-out images. The default ``val`` split is disjoint from ``train`` (so memorisation
    metrics must pass it) and from ``test`` (the usual reference set, so quality metrics compare
    two independent real samples rather than a set with itself)."""

    split: str = "val"


@dataclass(frozen=True)
class IndependentPixelsConfig:
    """Per-value marginals of ``split``: for images a categorical over the discrete levels per
    pixel with add-``alpha`` (Laplace) smoothing, so unseen levels keep a finite log-probability;
    for points an independent Gaussian per dimension (maximum-likelihood mean and std)."""

    split: str = "train"
    alpha: float = 1.0

    def __post_init__(self) -> None:
        if not self.alpha >= 0:
            raise ConfigError(f"IndependentPixelsConfig.alpha: the smoothing must be >= 0, got {self.alpha}")


@dataclass(frozen=True)
class MixtureTruthConfig:
    """The true density of a synthetic mixture (``mixture-ring``, ``mixture-grid``); no options."""
