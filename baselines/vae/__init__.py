"""VAE: variational autoencoder with an N(0, I) prior (MLP and convolutional variants)."""

from __future__ import annotations

from typing import Any

from baselines.vae.config import VAEConfig, default_config, default_train
from baselines.vae.model import VAE


def build(config: VAEConfig, dataset: Any) -> VAE:
    # only dataset.info: a model must be rebuildable from its checkpoint alone
    return VAE(config, dataset.info)


def register() -> None:
    from genbench.generators import GeneratorSpec, register_generator

    register_generator(GeneratorSpec(
        name="vae", config_cls=VAEConfig, build=build, trained=True,
        description="Variational autoencoder: N(0, I) prior, Gaussian encoder, discrete/Gaussian decoder (ELBO)",
        default_config=default_config, default_train=default_train, dataset_kinds=("image", "points"),
        tags=("likelihood:lower-bound", "latent"),
    ))


__all__ = ["VAE", "VAEConfig", "build", "default_config", "default_train", "register"]
