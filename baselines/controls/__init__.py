"""Control generators (not trained): copycat, noisy-copycat, heldout, independent-pixels, mixture-truth."""

from __future__ import annotations

from typing import Any

from baselines.controls.config import (
    CopycatConfig,
    HeldoutConfig,
    IndependentPixelsConfig,
    MixtureTruthConfig,
    NoisyCopycatConfig,
)
from baselines.controls.model import IndependentPixels, MixtureTruth, NoisyReplayGenerator, ReplayGenerator


def build_copycat(config: CopycatConfig, dataset: Any) -> ReplayGenerator:
    return ReplayGenerator(dataset.split(config.split).x, split=config.split, info=dataset.info, name="copycat")


def build_noisy_copycat(config: NoisyCopycatConfig, dataset: Any) -> NoisyReplayGenerator:
    return NoisyReplayGenerator(dataset.split(config.split).x, split=config.split, info=dataset.info,
                                name="noisy-copycat", noise_std=config.noise_std)


def build_heldout(config: HeldoutConfig, dataset: Any) -> ReplayGenerator:
    return ReplayGenerator(dataset.split(config.split).x, split=config.split, info=dataset.info, name="heldout")


def build_independent_pixels(config: IndependentPixelsConfig, dataset: Any) -> IndependentPixels:
    return IndependentPixels(dataset.split(config.split).x, dataset.info, alpha=config.alpha)


def build_mixture_truth(config: MixtureTruthConfig, dataset: Any) -> MixtureTruth:
    return MixtureTruth(dataset)


def register() -> None:
    from genbench.generators import GeneratorSpec, register_generator

    both = ("image", "points")
    specs = [
        ("copycat", CopycatConfig, build_copycat, both,
         "Control: replays training images (without replacement while n <= N_train)"),
        ("noisy-copycat", NoisyCopycatConfig, build_noisy_copycat, both,
         "Control: training images + Gaussian noise (std 0.05), clipped to the value range"),
        ("heldout", HeldoutConfig, build_heldout, both,
         "Control: real held-out images (the val split: disjoint from train and from the test reference)"),
        ("independent-pixels", IndependentPixelsConfig, build_independent_pixels, both,
         "Control: per-pixel training marginals (exact likelihood); independent Gaussians for points"),
        ("mixture-truth", MixtureTruthConfig, build_mixture_truth, ("points",),
         "Control: the true density of a synthetic 2-D mixture (exact likelihood)"),
    ]
    for name, cfg, build, kinds, desc in specs:
        register_generator(GeneratorSpec(name=name, config_cls=cfg, build=build, trained=False, description=desc,
                                         dataset_kinds=kinds, tags=("control",)))


__all__ = [
    "CopycatConfig", "HeldoutConfig", "IndependentPixels", "IndependentPixelsConfig", "MixtureTruth",
    "MixtureTruthConfig", "NoisyCopycatConfig", "NoisyReplayGenerator", "ReplayGenerator", "register",
]
