"""The generator registry: reference families and controls, found through entry points.

The library never imports ``baselines/``; a package (ours or a user's) declares in its
``pyproject.toml``::

    [project.entry-points."genbench.generators"]
    mypkg = "mypkg:register_all"

and ``register_all()`` calls :func:`register_generator` for each family it provides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from genbench._registry import Registry

ENTRY_POINT_GROUP = "genbench.generators"


@dataclass(frozen=True)
class GeneratorSpec:
    """How to build one generator family.

    Attributes
    ----------
    name : registry name (``"vae"``, ``"copycat"``).
    config_cls : frozen dataclass of the family's model config (architecture and optimiser).
    build : ``build(config, dataset) -> model``. A trained family returns an untrained
        :class:`genbench.harness.TrainableModel`; a control returns a ready generator.
    trained : whether the harness trains it (False for controls).
    default_config : ``default_config(info) -> config`` sized for a dataset (digits, MNIST, CIFAR-10,
        2-D points).
    default_train : ``default_train(info) -> dict`` of harness TrainConfig overrides for a dataset.
    dataset_kinds : which dataset kinds it supports (``"image"``, ``"points"``).
    """

    name: str
    config_cls: type
    build: Callable[..., Any]
    trained: bool = True
    description: str = ""
    default_config: Callable[..., Any] | None = None
    default_train: Callable[..., dict[str, Any]] | None = None
    dataset_kinds: tuple[str, ...] = ("image",)
    tags: tuple[str, ...] = field(default_factory=tuple)

    def config_for(self, info: Any) -> Any:
        return self.default_config(info) if self.default_config is not None else self.config_cls()


def _load_entry_points() -> None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()()


GENERATORS: Registry[GeneratorSpec] = Registry("generator", loader=_load_entry_points)


def register_generator(spec: GeneratorSpec) -> GeneratorSpec:
    GENERATORS.add(spec.name, spec, description=spec.description, trained=spec.trained)
    return spec


def get_generator_spec(name: str) -> GeneratorSpec:
    return GENERATORS.get(name)
