"""Class-conditional families on labelled images: ``cgan``, ``cvae``, and the controls
``conditional-copycat`` (replays training images of the requested class) and ``label-shuffled``
(replays training images whose labels were permuted: real images, unrelated classes)."""

from __future__ import annotations

from typing import Any

from baselines.conditional.config import CGANConfig, ConditionalCopycatConfig, CVAEConfig, default_train
from baselines.conditional.model import CGAN, CVAE, ConditionalReplay, LabelTable, balanced_labels


def build_cgan(config: CGANConfig, dataset: Any) -> CGAN:
    # reads the train split's labels when the dataset has them (training); a checkpoint restores
    # the same table from its buffers (rebuilding from the checkpoint alone)
    return CGAN(config, dataset.info, dataset)


def build_cvae(config: CVAEConfig, dataset: Any) -> CVAE:
    return CVAE(config, dataset.info, dataset)


def _replay(shuffle: bool):
    def build(config: ConditionalCopycatConfig, dataset: Any) -> ConditionalReplay:
        if not dataset.info.n_classes:
            raise ValueError(f"{dataset.info.name} has no labels to condition on")
        s = dataset.split(config.split)
        return ConditionalReplay(s.x, s.y, dataset.info, split=config.split,
                                 shuffle_labels=config.shuffle_labels or shuffle)
    return build


def register() -> None:
    from genbench.generators import GeneratorSpec, register_generator

    common = dict(default_train=default_train, dataset_kinds=("image",), tags=("conditional",))
    register_generator(GeneratorSpec(
        name="cgan", config_cls=CGANConfig, build=build_cgan, trained=True,
        description="Conditional GAN (Mirza & Osindero 2014): G(z, y), D(x, y) with one-hot classes", **common))
    register_generator(GeneratorSpec(
        name="cvae", config_cls=CVAEConfig, build=build_cvae, trained=True,
        description="Conditional VAE (Sohn et al. 2015): q(z|x,y), p(x|z,y), N(0, I) prior", **common))
    register_generator(GeneratorSpec(
        name="conditional-copycat", config_cls=ConditionalCopycatConfig, build=_replay(False), trained=False,
        description="Control: replays training images of the requested class", dataset_kinds=("image",),
        tags=("control", "conditional")))
    register_generator(GeneratorSpec(
        name="label-shuffled", config_cls=ConditionalCopycatConfig, build=_replay(True), trained=False,
        description="Control: replays training images with permuted labels (conditional accuracy at chance)",
        dataset_kinds=("image",), tags=("control", "conditional")))


__all__ = ["CGAN", "CVAE", "CGANConfig", "CVAEConfig", "ConditionalCopycatConfig", "ConditionalReplay", "LabelTable",
           "balanced_labels", "build_cgan", "build_cvae", "register"]
