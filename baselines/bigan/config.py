"""BiGAN configuration and its defaults per dataset size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from baselines._nets import size_class


@dataclass(frozen=True)
class BiGANConfig:
    """A bidirectional GAN (Donahue, Krähenbühl, Darrell 2017; also ALI, Dumoulin et al. 2017).

    Attributes
    ----------
    z_dim : latent dimension; the prior is N(0, I).
    hidden : MLP widths of the generator G(z) and the encoder E(x) (batch-normalised ReLU layers).
    d_hidden : widths of the joint discriminator D(x, z) (LeakyReLU and dropout).
    d_dropout : dropout after each discriminator layer.
    lr, beta1 : Adam learning rate and beta1 of both players.
    """

    z_dim: int = 16
    hidden: tuple[int, ...] = (256, 256)
    d_hidden: tuple[int, ...] = (256, 256)
    d_dropout: float = 0.3
    lr: float = 2e-4
    beta1: float = 0.5


def default_config(info: Any) -> BiGANConfig:
    return BiGANConfig() if size_class(info) == "small" else BiGANConfig(z_dim=64, hidden=(1024, 1024),
                                                                         d_hidden=(1024, 1024))


def default_train(info: Any) -> dict[str, Any]:
    if size_class(info) == "small":
        return {"steps": 2000, "batch_size": 64, "checkpoint_every": 1000, "threads": 1}
    return {"steps": 30000, "batch_size": 128, "checkpoint_every": 5000}
