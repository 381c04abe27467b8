"""GAN reference family (``gan``): DCGAN-style nets for images, MLPs for 2-D points.

Four losses (``minimax``, ``non-saturating``, ``wgan-gp``, ``lsgan``) and k discriminator steps
per generator step; see :mod:`baselines.gan.config` for the settings and
:class:`baselines.gan.model.GAN` for what the training curves record.
"""

from __future__ import annotations

from baselines.gan.config import GANConfig, default_config, default_train
from baselines.gan.model import GAN
from genbench.generators import GeneratorSpec, register_generator

__all__ = ["GAN", "GANConfig", "register"]


def register() -> None:
    register_generator(GeneratorSpec(
        name="gan",
        config_cls=GANConfig,
        build=lambda config, dataset: GAN(config, dataset.info),
        trained=True,
        description="DCGAN-style GAN (images) or MLP GAN (2-D points); minimax, non-saturating, wgan-gp, lsgan losses",
        default_config=default_config,
        default_train=default_train,
        dataset_kinds=("image", "points"),
    ))
