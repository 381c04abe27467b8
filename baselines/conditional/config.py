"""Configurations of the class-conditional families (CGAN, CVAE) and the conditional controls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from baselines._nets import size_class


@dataclass(frozen=True)
class CGANConfig:
    """A conditional GAN (Mirza & Osindero 2014): G(z, y) and D(x, y), y one-hot, concatenated to the inputs.

    Attributes
    ----------
    z_dim : noise dimension (N(0, I)).
    g_hidden, d_hidden : MLP widths of the generator and the discriminator.
    d_dropout : dropout after each discriminator layer.
    lr, beta1 : Adam learning rate and beta1 (0.5, the DCGAN choice) of both players.
    """

    z_dim: int = 32
    g_hidden: tuple[int, ...] = (256, 256)
    d_hidden: tuple[int, ...] = (256, 256)
    d_dropout: float = 0.3
    lr: float = 2e-4
    beta1: float = 0.5


@dataclass(frozen=True)
class CVAEConfig:
    """A conditional VAE (Sohn, Lee, Yan 2015): q(z | x, y), p(x | z, y), prior N(0, I).

    Sohn et al.'s prior network p(z | x) serves structured prediction (x is an input image); for
    class-conditional generation the condition is y alone and the prior is N(0, I), independent
    of y, so that the decoder alone carries the class (their "CVAE with baseline prior").

    Attributes
    ----------
    z_dim, hidden : latent dimension and MLP widths (the decoder mirrors them).
    decoder : observation model as for the VAE (``"auto"``: categorical over digits' grey levels).
    lr : Adam learning rate.
    """

    z_dim: int = 8
    hidden: tuple[int, ...] = (256, 256)
    decoder: Literal["auto", "bernoulli", "categorical", "logistic", "gaussian"] = "auto"
    lr: float = 1e-3


@dataclass(frozen=True)
class ConditionalCopycatConfig:
    """Replays training images of the requested class; ``shuffle_labels`` permutes the training labels
    first (seeded), so the class asked for and the image given are unrelated: the label-shuffled control."""

    split: str = "train"
    shuffle_labels: bool = False


def default_train(info: Any) -> dict[str, Any]:
    if size_class(info) == "small":
        return {"steps": 1500, "batch_size": 64, "val_every": 250, "checkpoint_every": 750, "threads": 1}
    return {"steps": 20000, "batch_size": 128, "val_every": 2000, "checkpoint_every": 2000, "val_max": 2000}
