"""AAE: adversarial autoencoder with a Gaussian posterior of fixed width (an IS proposal)."""

from __future__ import annotations

from typing import Any

from baselines.aae.config import AAEConfig, default_config, default_train
from baselines.aae.model import AAE


def build(config: AAEConfig, dataset: Any) -> AAE:
    # only dataset.info: a model must be rebuildable from its checkpoint alone
    return AAE(config, dataset.info)


def register() -> None:
    from genbench.generators import GeneratorSpec, register_generator

    register_generator(GeneratorSpec(
        name="aae", config_cls=AAEConfig, build=build, trained=True,
        description="Adversarial autoencoder: reconstruction + latent discriminator (N(0, I) or MoG prior)",
        default_config=default_config, default_train=default_train, dataset_kinds=("image", "points"),
        tags=("latent", "adversarial"),
    ))


__all__ = ["AAE", "AAEConfig", "build", "default_config", "default_train", "register"]
