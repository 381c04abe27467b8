"""PixelCNN reference family (``pixelcnn``): masked convolutions, softmax over grey levels, exact likelihood.

See :mod:`baselines.pixelcnn.config` for the settings and :class:`baselines.pixelcnn.model.PixelCNN`
for the factorisation, the likelihood convention and sampling.
"""

from __future__ import annotations

from baselines.pixelcnn.config import PixelCNNConfig, default_config, default_train
from baselines.pixelcnn.model import PixelCNN
from genbench.generators import GeneratorSpec, register_generator

__all__ = ["PixelCNN", "PixelCNNConfig", "register"]


def register() -> None:
    register_generator(GeneratorSpec(
        name="pixelcnn",
        config_cls=PixelCNNConfig,
        build=lambda config, dataset: PixelCNN(config, dataset.info),
        trained=True,
        description="residual PixelCNN (masked convs, softmax over grey levels); exact log-likelihood",
        default_config=default_config,
        default_train=default_train,
        dataset_kinds=("image",),
    ))
