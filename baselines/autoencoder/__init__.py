"""Autoencoders as generators: ``ae``, ``sparse-ae``, ``contractive-ae`` (a GMM on the codes) and ``dae``
(the denoising autoencoder's Markov chain)."""

from __future__ import annotations

from functools import partial
from typing import Any

from baselines.autoencoder.config import AEConfig, DAEConfig, default_config, default_dae_config, default_train
from baselines.autoencoder.model import Autoencoder, DenoisingAutoencoder, encoder_jacobian

VARIANTS = {"ae": "plain", "sparse-ae": "sparse", "contractive-ae": "contractive"}


def build(config: AEConfig, dataset: Any) -> Autoencoder:
    # only dataset.info: a model must be rebuildable from its checkpoint alone
    return Autoencoder(config, dataset.info)


def build_dae(config: DAEConfig, dataset: Any) -> DenoisingAutoencoder:
    return DenoisingAutoencoder(config, dataset.info)


def register() -> None:
    from genbench.generators import GeneratorSpec, register_generator

    what = {"plain": "", "sparse": ", L1 penalty on the code", "contractive": ", encoder-Jacobian (Frobenius) penalty"}
    for name, variant in VARIANTS.items():
        register_generator(GeneratorSpec(
            name=name, config_cls=AEConfig, build=build, trained=True,
            description=f"Deterministic autoencoder{what[variant]}; samples decode draws of a GMM fitted to the "
                        "training codes (components chosen on validation codes)",
            default_config=partial(default_config, variant=variant), default_train=default_train,
            dataset_kinds=("image", "points"), tags=("latent", "autoencoder"),
        ))
    register_generator(GeneratorSpec(
        name="dae", config_cls=DAEConfig, build=build_dae, trained=True,
        description="Denoising autoencoder sampled as its corrupt-reconstruct Markov chain (Bengio et al. 2013)",
        default_config=default_dae_config, default_train=default_train, dataset_kinds=("image", "points"),
        tags=("autoencoder", "markov-chain"),
    ))


__all__ = ["VARIANTS", "AEConfig", "Autoencoder", "DAEConfig", "DenoisingAutoencoder", "build", "build_dae",
           "default_config", "default_dae_config", "default_train", "encoder_jacobian", "register"]
