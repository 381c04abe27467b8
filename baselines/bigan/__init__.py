"""BiGAN: bidirectional GAN (generator, encoder, joint discriminator), sampled and probed."""

from __future__ import annotations

from typing import Any

from baselines.bigan.config import BiGANConfig, default_config, default_train
from baselines.bigan.model import BiGAN


def build(config: BiGANConfig, dataset: Any) -> BiGAN:
    return BiGAN(config, dataset.info)


def register() -> None:
    from genbench.generators import GeneratorSpec, register_generator

    register_generator(GeneratorSpec(
        name="bigan", config_cls=BiGANConfig, build=build, trained=True,
        description="BiGAN (Donahue et al. 2017): G(z), encoder E(x), discriminator on (x, z)",
        default_config=default_config, default_train=default_train, dataset_kinds=("image",),
        tags=("adversarial", "latent"),
    ))


__all__ = ["BiGAN", "BiGANConfig", "build", "default_config", "default_train", "register"]
