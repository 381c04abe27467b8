"""Configurations of the deterministic autoencoders (plain, sparse, contractive) and the denoising
autoencoder, with their defaults per dataset size."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from baselines._nets import size_class


@dataclass(frozen=True)
class AEConfig:
    """A deterministic autoencoder used as a generator through a GMM fitted to its codes.

    Attributes
    ----------
    variant : ``"plain"``; ``"sparse"`` (an L1 penalty ``sparse_weight * |z|_1`` on the code);
        ``"contractive"`` (``contractive_weight * ||J_f(x)||_F^2``, the squared Frobenius norm of
        the encoder's Jacobian with respect to its (scaled) input, Rifai et al. 2011), computed
        exactly with ``torch.func.vmap(jacrev(...))``. Registered as ``ae``, ``sparse-ae`` and
        ``contractive-ae``.
    arch, hidden, channels : encoder/decoder nets, as for the VAE (``"mlp"`` or ``"conv"``).
    z_dim : code width.
    decoder : observation model of the reconstruction loss, as for the VAE (``"auto"``: categorical
        over the grey levels for digits, Gaussian for points); ``decode`` returns its mean.
    min_std : lower bound of a Gaussian decoder's std.
    sparse_weight, contractive_weight : penalty weights (used by their variant only).
    lr, grad_clip : Adam learning rate and max gradient norm (None: no clipping).
    gmm_components : the grid of GMM component counts. At every validation a full-covariance GMM
        is fitted to the codes of the training examples (see ``bank_size``) for each count, and the
        count with the highest mean log-likelihood of the *validation* codes is kept (reported as
        ``gmm_components`` and ``val_code_ll``); sampling draws z from that GMM and decodes it.
    gmm_reg : added to the GMM covariances' diagonals (sklearn ``reg_covar``).
    bank_size : at most this many training examples are kept (a ring buffer filled by the training
        steps, stored with the weights) to encode for the GMM fit; the harness gives a model no
        data after training, and the checkpoint must rebuild the sampler alone.
    sample_mode : ``"mean"`` (decoder mean), ``"sample"`` or ``"auto"`` (mean for images, sample
        for points), as for the VAE.
    """

    variant: Literal["plain", "sparse", "contractive"] = "plain"
    arch: Literal["mlp", "conv"] = "mlp"
    z_dim: int = 8
    hidden: tuple[int, ...] = (128, 128)
    channels: tuple[int, int] = (32, 64)
    decoder: Literal["auto", "bernoulli", "categorical", "logistic", "gaussian"] = "auto"
    min_std: float = 1e-3
    sparse_weight: float = 1e-2
    contractive_weight: float = 1e-2
    lr: float = 1e-3
    grad_clip: float | None = 100.0
    gmm_components: tuple[int, ...] = (1, 2, 4, 8, 16)
    gmm_reg: float = 1e-4
    bank_size: int = 4096
    sample_mode: Literal["auto", "mean", "sample"] = "auto"


@dataclass(frozen=True)
class DAEConfig:
    """A denoising autoencoder sampled as a Markov chain (Bengio et al. 2013).

    Training minimises -log P(x | x~) with x~ ~ C(x~ | x) (Gaussian corruption). Sampling runs
    the chain x_{t+1} ~ P(x | x~_t), x~_t ~ C(x~ | x_t), whose stationary distribution estimates
    the data distribution (their Theorem 1).

    Attributes
    ----------
    arch, hidden, channels, z_dim, decoder, min_std, lr, grad_clip : as for :class:`AEConfig`.
    noise_std : std of the Gaussian corruption, as a fraction of the data range (images; clipped
        back into the range) or in data units (points).
    chains : parallel chains per ``sample`` call (at most n).
    burn_in : chain steps before the first sample is kept.
    thin : steps between kept samples of one chain (1: every step).
    chain_start : ``"noise"`` (uniform over the data range; N(0, I) for points) or ``"data"``
        (random training examples from the stored bank). Default ``"noise"``: a chain started on
        training images and stopped early would replay them, which copy checks would then (rightly)
        flag; from noise, whatever the samples look like is the chain's own doing.
    bank_size : training examples kept for ``chain_start="data"`` (0 otherwise).
    sample_mode : what a kept state is: ``"mean"`` (E[x | x~], noise-free images), ``"sample"``
        (the chain state x ~ P(x | x~)), ``"auto"`` (mean for images, sample for points). The
        chain itself always moves by draws.
    """

    arch: Literal["mlp", "conv"] = "mlp"
    z_dim: int = 32
    hidden: tuple[int, ...] = (256,)
    channels: tuple[int, int] = (32, 64)
    decoder: Literal["auto", "bernoulli", "categorical", "logistic", "gaussian"] = "auto"
    min_std: float = 1e-3
    lr: float = 1e-3
    grad_clip: float | None = 100.0
    noise_std: float = 0.3
    chains: int = 100
    burn_in: int = 50
    thin: int = 10
    chain_start: Literal["noise", "data"] = "noise"
    bank_size: int = 4096
    sample_mode: Literal["auto", "mean", "sample"] = "auto"


def default_config(info: Any, variant: str = "plain") -> AEConfig:
    size = size_class(info)
    if size == "points":
        c = AEConfig(z_dim=2, hidden=(128, 128))
    elif size == "small":
        c = AEConfig(z_dim=8, hidden=(128, 128))
    elif size == "medium":
        c = AEConfig(arch="conv", z_dim=32)
    else:
        c = AEConfig(arch="conv", z_dim=128, channels=(64, 128), lr=5e-4)
    return replace(c, variant=variant)


def default_dae_config(info: Any) -> DAEConfig:
    size = size_class(info)
    if size == "points":
        return DAEConfig(z_dim=16, hidden=(128,), noise_std=0.3)
    if size == "small":
        return DAEConfig(z_dim=32, hidden=(256,))
    if size == "medium":
        return DAEConfig(arch="conv", z_dim=64)
    return DAEConfig(arch="conv", z_dim=256, channels=(64, 128), lr=5e-4)


def default_train(info: Any) -> dict[str, Any]:
    """digits: a few seconds of one core; MNIST / CIFAR-10: GPU-sized (not run in tests)."""
    size = size_class(info)
    if size == "points":
        return {"steps": 2000, "batch_size": 256, "val_every": 500, "checkpoint_every": 1000, "threads": 1}
    if size == "small":
        return {"steps": 1000, "batch_size": 64, "val_every": 250, "checkpoint_every": 500, "threads": 1}
    if size == "medium":
        return {"steps": 20000, "batch_size": 128, "val_every": 2000, "checkpoint_every": 2000, "val_max": 2000}
    return {"steps": 50000, "batch_size": 128, "val_every": 5000, "checkpoint_every": 5000, "val_max": 2000}
