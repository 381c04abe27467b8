"""VAE configuration and its defaults per dataset size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from baselines._nets import size_class
from genbench.config import ConfigError


@dataclass(frozen=True)
class VAEConfig:
    """A variational autoencoder (Kingma & Welling 2014).

    Attributes
    ----------
    arch : ``"mlp"`` (any shape; flattened images, 2-D points) or ``"conv"`` (images with H, W
        divisible by 4).
    z_dim : latent dimension; the prior is N(0, I).
    hidden : MLP widths of the encoder (the decoder mirrors them).
    channels : conv widths (two stride-2 stages).
    decoder : ``"auto"`` (Bernoulli for binary images, categorical over the grey levels up to 32
        levels, discretised logistic above, Gaussian for points), or one of ``"bernoulli"``,
        ``"categorical"``, ``"logistic"``, ``"gaussian"`` (a density: its ELBO is not a discrete
        probability and must not be compared with exact discrete NLLs).
    min_std : lower bound of a Gaussian decoder's std.
    lr : Adam learning rate.
    beta : weight of the KL term in the *training* loss (1: the ELBO); reported ELBOs always use 1.
    kl_warmup : steps over which the KL weight ramps linearly from 0 to ``beta``.
    grad_clip : max gradient norm (None: no clipping).
    sample_mode : what ``sample`` returns: ``"mean"`` (the decoder mean E[x|z], z ~ p(z); noise-free
        images, as VAE papers show), ``"sample"`` (x ~ p(x|z)), or ``"auto"`` (mean for images,
        sample for points, whose decoder noise is part of the distribution).
    """

    arch: Literal["mlp", "conv"] = "mlp"
    z_dim: int = 16
    hidden: tuple[int, ...] = (256, 256)
    channels: tuple[int, int] = (32, 64)
    decoder: Literal["auto", "bernoulli", "categorical", "logistic", "gaussian"] = "auto"
    min_std: float = 1e-3
    lr: float = 1e-3
    beta: float = 1.0
    kl_warmup: int = 0
    grad_clip: float | None = 100.0
    sample_mode: Literal["auto", "mean", "sample"] = "auto"

    def __post_init__(self) -> None:
        check_latent_autoencoder(self)
        if self.beta < 0:
            raise ConfigError(f"{type(self).__name__}.beta: must be >= 0, got {self.beta}")
        if self.kl_warmup < 0:
            raise ConfigError(f"{type(self).__name__}.kl_warmup: must be >= 0 steps, got {self.kl_warmup}")


def check_latent_autoencoder(c: Any) -> None:
    """Checks shared by the VAE and AAE configs (same nets, same decoder fields)."""
    name = type(c).__name__
    if c.z_dim < 1:
        raise ConfigError(f"{name}.z_dim: the latent dimension must be at least 1, got {c.z_dim}")
    if not c.hidden or min(c.hidden) < 1:
        raise ConfigError(f"{name}.hidden: expected one or more widths >= 1, got {list(c.hidden)}")
    if min(c.channels) < 1:
        raise ConfigError(f"{name}.channels: expected widths >= 1, got {list(c.channels)}")
    if not c.min_std > 0:
        raise ConfigError(f"{name}.min_std: must be > 0, got {c.min_std}")
    if not c.lr > 0:
        raise ConfigError(f"{name}.lr: the learning rate must be > 0, got {c.lr}")
    if c.grad_clip is not None and not c.grad_clip > 0:
        raise ConfigError(f"{name}.grad_clip: must be > 0 or None (no clipping), got {c.grad_clip}")


def default_config(info: Any) -> VAEConfig:
    """Sizes: points -> 2-D latent MLP; digits (8x8) -> MLP; MNIST -> conv z=32; CIFAR-10 -> conv z=128."""
    size = size_class(info)
    if size == "points":
        # KL warm-up: without it the 2-D mixtures collapse the posterior in the first few hundred
        # steps (KL -> 0, the decoder fits one broad Gaussian, ELBO -3.5 on mixture-ring instead of -1.4)
        return VAEConfig(arch="mlp", z_dim=2, hidden=(128, 128), lr=3e-3, kl_warmup=1000)
    if size == "small":
        # (128, 128) rather than 256: the same validation ELBO on 1258 training images, half the time
        return VAEConfig(arch="mlp", z_dim=8, hidden=(128, 128))
    if size == "medium":
        return VAEConfig(arch="conv", z_dim=32, channels=(32, 64))
    return VAEConfig(arch="conv", z_dim=128, channels=(64, 128), lr=5e-4)


def default_train(info: Any) -> dict[str, Any]:
    """digits: ~10 s of one CPU core; 2-D mixtures: ~10 s; MNIST / CIFAR-10: GPU-sized (not run in tests)."""
    size = size_class(info)
    if size == "points":
        return {"steps": 3000, "batch_size": 256, "val_every": 500, "checkpoint_every": 1000, "threads": 1}
    if size == "small":
        # the validation ELBO peaks around 1500-2000 steps; later steps overfit (selection keeps the best)
        return {"steps": 2000, "batch_size": 64, "val_every": 250, "checkpoint_every": 1000, "threads": 1}
    if size == "medium":
        return {"steps": 20000, "batch_size": 128, "val_every": 1000, "checkpoint_every": 2000}
    return {"steps": 50000, "batch_size": 128, "val_every": 2500, "checkpoint_every": 5000}
