"""Configuration of the GAN family: DCGAN-style nets for images, MLPs for 2-D points.

One frozen dataclass holds both the image fields (``width``, ``stages``) and the points fields
(``hidden``, ``mlp_layers``); the dataset kind in :class:`genbench.data.DatasetInfo` decides
which net is built, and the other group is ignored.

Recommended overrides per loss (the defaults are the DCGAN ones and work for all four losses,
but the papers used these):

=================  ==========================================================================
loss               settings from its paper
=================  ==========================================================================
non-saturating     defaults (Radford et al. 2016: Adam lr 2e-4, beta1 0.5)
minimax            defaults; saturates early in training by design (Goodfellow et al. 2014)
lsgan              defaults (Mao et al. 2017 used Adam lr 2e-4, beta1 0.5 too)
wgan-gp            ``lr_g = lr_d = 1e-4, beta1 = 0.0, beta2 = 0.9, d_steps = 5``
                   (Gulrajani et al. 2017, Algorithm 1)
=================  ==========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from genbench.config import ConfigError

LOSSES = ("minimax", "non-saturating", "wgan-gp", "lsgan")
GANLoss = Literal["minimax", "non-saturating", "wgan-gp", "lsgan"]


@dataclass(frozen=True)
class GANConfig:
    """Architecture, loss and optimiser of a GAN.

    Attributes
    ----------
    loss : ``"non-saturating"`` (default; G minimises -log D(G(z))), ``"minimax"`` (G minimises
        log(1 - D(G(z))), the original game), ``"wgan-gp"`` (Wasserstein critic with gradient
        penalty) or ``"lsgan"`` (least squares, targets a=0, b=1, c=1).
    d_steps : discriminator (critic) updates per generator update, k in Goodfellow et al.'s
        Algorithm 1. Each reuses the harness batch with fresh noise.
    z_dim : latent dimension; z ~ N(0, I).
    width : images: channels of the finest conv stage; each coarser stage doubles them
        (G's first projection and D's last conv have ``width * 2**(stages-1)``).
    stages : images: number of stride-2 (transposed) convolutions; H and W must be divisible by
        ``2**stages`` (8x8: 2 stages from 2x2; 28x28: 2 from 7x7; 32x32: 3 from 4x4).
    d_norm : normalisation inside D: ``"auto"`` is batchnorm (DCGAN) except layer norm for
        ``wgan-gp``, whose per-example gradient penalty is invalid under batch statistics
        (Gulrajani et al. 2017, section 4); or force ``"batch"``, ``"layer"`` or ``"none"``.
    hidden, mlp_layers : points: width and number of hidden layers of the G and D MLPs.
    lr_g, lr_d, beta1, beta2 : Adam settings of G and D.
    gp_weight : lambda of the WGAN-GP gradient penalty.
    """

    loss: GANLoss = "non-saturating"
    d_steps: int = 1
    z_dim: int = 32
    width: int = 32
    stages: int = 2
    d_norm: Literal["auto", "batch", "layer", "none"] = "auto"
    hidden: int = 128
    mlp_layers: int = 3
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    gp_weight: float = 10.0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"GANConfig.loss: expected one of {', '.join(LOSSES)}, got {self.loss!r}")
        for name in ("d_steps", "z_dim", "width", "stages", "hidden", "mlp_layers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"GANConfig.{name}: must be at least 1, got {getattr(self, name)}")
        if self.d_norm not in ("auto", "batch", "layer", "none"):
            raise ConfigError(f"GANConfig.d_norm: expected auto, batch, layer or none, got {self.d_norm!r}")

    @property
    def resolved_d_norm(self) -> str:
        """The normalisation D actually uses (``"auto"`` resolved against the loss)."""
        if self.d_norm != "auto":
            return self.d_norm
        return "layer" if self.loss == "wgan-gp" else "batch"


def default_config(info) -> GANConfig:
    """Sizes per dataset: digits 8x8 (seconds on CPU), MNIST 28x28, CIFAR-10 32x32, 2-D points."""
    if info.kind == "points":
        # lr 1e-3 and a 2-D latent: at the DCGAN lr of 2e-4 the MLP had not reached the ring's
        # std-0.02 modes after 3000 steps (median distance 0.6); with these it covers all 8
        return GANConfig(z_dim=2, hidden=128, mlp_layers=3, lr_g=1e-3, lr_d=1e-3)
    _, h, w = info.shape
    if max(h, w) <= 8:
        return GANConfig(z_dim=32, width=32, stages=2)
    if h % 8 == 0 and w % 8 == 0:  # CIFAR-10 32x32: 4x4 -> 8 -> 16 -> 32, as DCGAN's 64x64 from 4x4
        return GANConfig(z_dim=100, width=64, stages=3)
    return GANConfig(z_dim=64, width=64, stages=2)  # MNIST 28x28: 7x7 -> 14 -> 28


def default_train(info) -> dict:
    """Harness TrainConfig overrides: step budget and batch size per dataset.

    digits: 1500 steps of 64 (about 76 epochs of its 1258 training images; about 10 s on one CPU
    core). 2-D mixtures: 5000 steps of 256 (about 20 s). MNIST and CIFAR-10: 12000 steps of 128,
    roughly DCGAN's 25 epochs of MNIST (not run in tests).
    """
    if info.kind == "points":
        return {"steps": 5000, "batch_size": 256}
    _, h, _ = info.shape
    if h <= 8:
        return {"steps": 1500, "batch_size": 64}
    return {"steps": 12000, "batch_size": 128}
