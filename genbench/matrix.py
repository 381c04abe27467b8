"""The benchmark matrix: a declarative TOML file of generators x datasets x seeds x evaluation.

A matrix file holds one or more ``[[block]]`` tables (or the same keys at top level for a single
block)::

    name = "my-matrix"

    [[block]]
    datasets = ["digits"]
    seeds = [0, 1]
    generators = ["vae", {name = "gan", label = "gan-wgan", model = {loss = "wgan-gp"}}, "copycat"]
    [block.evaluation]
    n_samples = 2000
    extractor = "domain"

Every cell (one generator entry on one dataset with one seed under one evaluation setting)
gets a deterministic id derived from its content, so a re-run finds finished cells and skips
them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from genbench._io import hash_text
from genbench.config import ConfigError, from_dict, load_toml, to_dict

EVAL_FAMILIES = ("quality", "likelihood", "overfitting", "coverage", "representation", "conditional")
#: what an evaluation computes when its block names no families (the newer families are asked for by name)
DEFAULT_FAMILIES = EVAL_FAMILIES[:4]


@dataclass(frozen=True)
class EvalConfig:
    """How every cell of a block is evaluated.

    Attributes
    ----------
    n_samples : generated samples per cell (the Parzen protocol uses 10,000).
    reference : the real split metrics compare against (``test``).
    extractor : ``"domain"`` (the dataset's domain classifier, default for labelled image data),
        ``"pixels"``, ``"inception-v3-compat"``, or a full extractor name.
    families : which metric families to compute (quality, likelihood, overfitting, coverage).
    iwae_k : importance samples per example for latent-variable models (5000 is the published
        standard for final numbers; the default matrix uses fewer and says so in the protocol).
    n_test : test examples used by likelihood estimators (0 = the whole split).
    gmm_components : the GMM estimator's component-count grid, chosen on validation (empty = the
        estimator's default grid; the default matrix uses (1, 2, 5, 10) on digits, where the
        20-component full-covariance fit alone took most of a cell's time).
    gallery_n : generated samples shown in the nearest-neighbour gallery.
    n_boot : bootstrap resamples for confidence intervals (0 = none).
    device : ``auto``, ``cpu`` or ``cuda``.
    threads : torch CPU threads inside a cell (0 = the executor's default).
    n_eval : the quality family compares equal-sized sets, both subsampled to this n (0 = the smaller of
        the reference split and the samples); give one n for every generator of a block so that their
        numbers share a column (the default matrix uses the heldout control's 180 on digits).
    quality_repeats : equal-n subsamples per quality number (mean ± std over them).
    """

    n_samples: int = 10000
    reference: str = "test"
    extractor: str = "domain"
    families: tuple[str, ...] = DEFAULT_FAMILIES
    iwae_k: int = 1000
    n_test: int = 0
    gmm_components: tuple[int, ...] = ()
    gallery_n: int = 16
    n_boot: int = 0
    device: str = "auto"
    threads: int = 0
    n_eval: int = 0
    quality_repeats: int = 5

    def __post_init__(self) -> None:
        bad = [f for f in self.families if f not in EVAL_FAMILIES]
        if bad:
            raise ConfigError(f"evaluation.families: unknown {bad}; choose from {', '.join(EVAL_FAMILIES)}")
        if self.n_samples < 1:
            raise ConfigError(f"evaluation.n_samples must be >= 1, got {self.n_samples}")
        if self.reference not in ("train", "val", "test"):
            raise ConfigError(f"evaluation.reference must be train, val or test, got {self.reference!r}")


@dataclass(frozen=True)
class GeneratorEntry:
    """One generator of a block: a registry name, a label for tables, and config overrides."""

    name: str
    label: str = ""
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)

    @property
    def display(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class Block:
    datasets: tuple[str, ...]
    generators: tuple[GeneratorEntry, ...]
    seeds: tuple[int, ...] = (0,)
    evaluation: EvalConfig = field(default_factory=EvalConfig)


@dataclass(frozen=True)
class Cell:
    """One unit of work: train (or load) a generator, sample, evaluate, store."""

    matrix: str
    generator: GeneratorEntry
    dataset: str
    seed: int
    evaluation: EvalConfig

    def content(self) -> dict[str, Any]:
        return {
            "generator": to_dict(self.generator),
            "dataset": self.dataset,
            "seed": self.seed,
            "evaluation": to_dict(self.evaluation),
        }

    @property
    def cell_id(self) -> str:
        """Deterministic: derived from the cell's content (not the matrix name or file)."""
        h = hash_text(json.dumps(self.content(), sort_keys=True))[:10]
        ds = self.dataset.replace(":", "_").replace("/", "_")[-24:]
        return f"{self.generator.display}-{ds}-s{self.seed}-{h}"

    def to_dict(self) -> dict[str, Any]:
        return {"matrix": self.matrix, "cell_id": self.cell_id, **self.content()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Cell:
        return cls(
            matrix=d["matrix"],
            generator=from_dict(GeneratorEntry, d["generator"]),
            dataset=d["dataset"],
            seed=int(d["seed"]),
            evaluation=from_dict(EvalConfig, d["evaluation"]),
        )


@dataclass(frozen=True)
class Matrix:
    name: str
    blocks: tuple[Block, ...]
    source: str = ""

    def cells(self) -> list[Cell]:
        out: list[Cell] = []
        seen: set[str] = set()
        for b in self.blocks:
            for ds in b.datasets:
                for g in b.generators:
                    for s in b.seeds:
                        c = Cell(self.name, g, ds, s, b.evaluation)
                        if c.cell_id not in seen:  # the same cell declared twice runs once
                            seen.add(c.cell_id)
                            out.append(c)
        return out


def _generator_entry(g: Any, where: str) -> GeneratorEntry:
    if isinstance(g, str):
        return GeneratorEntry(name=g)
    if isinstance(g, dict):
        return from_dict(GeneratorEntry, g, where=where)
    raise ConfigError(f"{where}: expected a generator name or a table with name/label/model/train, got {g!r}")


def parse_matrix(d: dict[str, Any], *, source: str = "") -> Matrix:
    """Build a :class:`Matrix` from a parsed TOML dict, checking every name against the registries."""
    d = dict(d)
    name = d.pop("name", Path(source).stem if source else "matrix")
    blocks_raw = d.pop("block", None)
    if blocks_raw is None:
        blocks_raw = [d]
    elif d:
        raise ConfigError(f"{source or 'matrix'}: with [[block]] tables, top-level keys other than name are not "
                          f"allowed; move {sorted(d)} into a block.")
    if not isinstance(blocks_raw, list) or not blocks_raw:
        raise ConfigError(f"{source or 'matrix'}: expected at least one [[block]] with datasets and generators.")
    blocks = []
    for i, b in enumerate(blocks_raw):
        where = f"block[{i}]"
        b = dict(b)
        for req in ("datasets", "generators"):
            if req not in b:
                raise ConfigError(f"{where}: missing {req!r} (a list).")
        unknown = set(b) - {"datasets", "generators", "seeds", "evaluation"}
        if unknown:
            raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; accepted: datasets, generators, seeds, "
                              "evaluation.")
        for req in ("datasets", "generators"):
            if not isinstance(b[req], list) or not b[req]:
                raise ConfigError(f"{where}.{req}: expected a non-empty list, got {b[req]!r}.")
        gens = tuple(_generator_entry(g, f"{where}.generators[{j}]") for j, g in enumerate(b["generators"]))
        seeds = b.get("seeds", [0])
        if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise ConfigError(f"{where}.seeds: expected a list of integers, got {seeds!r}")
        ev = from_dict(EvalConfig, b.get("evaluation", {}), where=f"{where}.evaluation")
        blocks.append(Block(tuple(b["datasets"]), gens, tuple(seeds), ev))
    m = Matrix(str(name), tuple(blocks), source)
    check_names(m)
    return m


def check_names(m: Matrix) -> None:
    """Unknown generator or dataset names fail here, with suggestions, before anything runs."""
    from genbench.config import override
    from genbench.data import DATASETS
    from genbench.generators import GENERATORS

    for b in m.blocks:
        for ds in b.datasets:
            DATASETS.entry(ds)
        for g in b.generators:
            spec = GENERATORS.get(g.name)
            if g.model:
                override(spec.config_cls(), g.model, where=f"{g.display}.model")
            if g.train:
                from genbench.harness import TrainConfig

                override(TrainConfig(), g.train, where=f"{g.display}.train")


def load_matrix(path: str | Path | None = None) -> Matrix:
    """Load a matrix file; ``None`` loads the built-in default matrix, and a bare name that is not a
    file (``"families"``) loads the built-in ``genbench/matrices/<name>.toml``."""
    name = "default" if path is None else str(path)
    builtin = resources.files("genbench").joinpath(f"matrices/{name}.toml")
    if path is None or (not Path(name).exists() and "/" not in name and not name.endswith(".toml")
                        and builtin.is_file()):
        import tomllib

        return parse_matrix(tomllib.loads(builtin.read_text()), source=f"<built-in {name}>")
    return parse_matrix(load_toml(path), source=str(path))
