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
from genbench.config import ConfigError, check_device, check_device_name, from_dict, load_toml, to_dict

EVAL_FAMILIES = ("quality", "likelihood", "overfitting", "coverage", "representation", "conditional")
#: what an evaluation computes when its block names no families (the newer families are asked for by name)
DEFAULT_FAMILIES = EVAL_FAMILIES[:4]
#: torch intra-op threads of a cell whose ``evaluation.threads`` is 0. Fixed (not the machine's
#: core count) so that a cell gives the same numbers under every executor: reductions split over
#: other thread counts sum in another order, and a GAN trained with 2 threads scored FID 1.5951
#: where the same cell trained with 1 thread scored 1.5226.
DEFAULT_THREADS = 1
#: extractor names besides the registry's: ``domain`` picks ``domain:<dataset>`` per cell
EXTRACTOR_ALIASES = ("domain",)


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
    device : ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    threads : torch CPU threads inside a cell, for training and evaluation alike (0 =
        :data:`DEFAULT_THREADS`, i.e. 1). Every executor applies the same number, and the Ray
        executor reserves that many CPUs per cell, so a cell's numbers do not depend on where it ran.
    n_eval : the quality family compares equal-sized sets, both subsampled to this n (0 = the smaller of
        the reference split and the samples); give one n for every generator of a block so that their
        numbers share a column (the default matrix uses the heldout control's 180 on digits).
    quality_repeats : equal-n subsamples per quality number (mean ± std over them).
    settings : keyword settings of the sample-based metrics by spec name, as ``evaluate_samples`` takes them
        (``{"transform-copy-rate": {"max_samples": 500}}``); checked against each spec's keywords when the
        matrix is read. What changes a number enters its protocol.
    ais_steps, ais_chains, ais_n_test : annealed importance sampling in the likelihood family for
        decoder-based models (VAE, AAE; a GAN through a Gaussian observation model whose sigma is chosen
        on the validation split): intermediate distributions (0 = no AIS), chains, and test examples
        scored; each AIS row carries its BDMC gap on data simulated from the model.
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
    ais_steps: int = 0
    ais_chains: int = 16
    ais_n_test: int = 100
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = [f for f in self.families if f not in EVAL_FAMILIES]
        if bad:
            raise ConfigError(f"evaluation.families: unknown {bad}; choose from {', '.join(EVAL_FAMILIES)}")
        if self.n_samples < 1:
            raise ConfigError(f"evaluation.n_samples must be >= 1, got {self.n_samples}")
        if self.reference not in ("train", "val", "test"):
            raise ConfigError(f"evaluation.reference must be train, val or test, got {self.reference!r}")
        if self.iwae_k < 1:
            raise ConfigError(f"evaluation.iwae_k must be >= 1 (importance samples per example), got {self.iwae_k}")
        for name in ("n_test", "gallery_n", "n_boot", "threads"):
            if getattr(self, name) < 0:
                raise ConfigError(f"evaluation.{name} must be >= 0, got {getattr(self, name)}")
        bad_k = [c for c in self.gmm_components if c < 1]
        if bad_k:
            raise ConfigError("evaluation.gmm_components: component counts must be >= 1, got "
                              f"{list(self.gmm_components)}")
        if len(set(self.gmm_components)) != len(self.gmm_components):
            raise ConfigError(f"evaluation.gmm_components: repeated counts in {list(self.gmm_components)}; list each "
                              "count once")
        if self.gmm_components and min(self.gmm_components) > self.n_samples and "likelihood" in self.families:
            raise ConfigError(f"evaluation.gmm_components: every count in {list(self.gmm_components)} exceeds "
                              f"n_samples = {self.n_samples}, so no GMM can be fitted; use smaller counts")
        check_device_name(self.device, where="evaluation.device")

    @property
    def cell_threads(self) -> int:
        """The torch thread count a cell runs with (``threads``, or :data:`DEFAULT_THREADS` when 0)."""
        return self.threads or DEFAULT_THREADS


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
        ev_raw = b.get("evaluation", {})
        if isinstance(ev_raw, dict) and ev_raw.get("gmm_components") == []:
            raise ConfigError(f"{where}.evaluation.gmm_components: an empty grid fits no GMM; list component "
                              "counts (e.g. [1, 2, 5, 10]) or leave the key out for the estimator's default grid.")
        try:
            ev = from_dict(EvalConfig, ev_raw, where=f"{where}.evaluation")
        except ConfigError as e:  # __post_init__ messages start at "evaluation."; say which block
            msg = str(e)
            raise ConfigError(f"{where}.{msg}" if msg.startswith("evaluation.") else msg) from None
        blocks.append(Block(tuple(b["datasets"]), gens, tuple(seeds), ev))
    m = Matrix(str(name), tuple(blocks), source)
    check_names(m)
    return m


def check_names(m: Matrix) -> None:
    """Everything that would otherwise fail once compute is spent fails here, before anything runs:
    unknown generator, dataset or extractor names (with suggestions), a generator that does not
    support a dataset's kind, and model / training overrides that its config classes reject
    (built exactly as the cell will build them, e.g. ``z_dim = 0``)."""
    from genbench.data import DATASETS
    from genbench.generators import GENERATORS

    infos: dict[str, Any] = {}
    for i, b in enumerate(m.blocks):
        where = f"block[{i}]"
        for ds in b.datasets:
            DATASETS.entry(ds)
            if ds not in infos:
                infos[ds] = _dataset_info(ds)
        _check_extractor(b.evaluation, where)
        _check_settings(b.evaluation, where)
        for g in b.generators:
            spec = GENERATORS.get(g.name)
            for ds in b.datasets:
                info = infos[ds]
                kind = info.kind if info is not None else DATASETS.entry(ds).meta.get("kind")
                if kind is not None and kind not in spec.dataset_kinds:
                    raise ConfigError(
                        f"{where}: generator {g.display!r} ({g.name}) supports {', '.join(spec.dataset_kinds)} data, "
                        f"but dataset {ds!r} is {kind!r}; put them in separate blocks so this pair is not a cell.")
                _check_overrides(spec, g, info, where=f"{where}: {g.display} on {ds}")


def _check_settings(ev: EvalConfig, where: str) -> None:
    """Metric settings name registered metrics and keywords their compute takes (a typo would be ignored)."""
    from genbench.metrics import METRICS

    for name, kw in ev.settings.items():
        spec = METRICS.get(name)  # unknown names: an error with close matches
        if not isinstance(kw, dict):
            raise ConfigError(f"{where}.evaluation.settings.{name}: expected a table of keyword settings, got {kw!r}")
        bad = sorted(set(kw) - spec.keywords)
        if bad:
            raise ConfigError(f"{where}.evaluation.settings.{name}: unknown setting(s) {', '.join(bad)}; "
                              f"{name} takes {', '.join(sorted(spec.keywords))}")


def _dataset_info(name: str) -> Any:
    """The dataset's info, or None when its files are missing (the cell reports that when it runs)."""
    from genbench.data import load_dataset
    from genbench.data.files import DataFileError

    try:
        return load_dataset(name).info
    except (DataFileError, FileNotFoundError):
        return None


def _check_overrides(spec: Any, g: GeneratorEntry, info: Any, *, where: str) -> None:
    from genbench.config import override
    from genbench.harness import TrainConfig

    try:
        if info is not None:
            from genbench.harness.loop import resolve_configs

            # the configs exactly as the cell builds them: the family's defaults for this dataset,
            # then the overrides; __post_init__ checks (z_dim >= 1, ...) run here
            resolve_configs(spec, info, g.model or None, g.train or None if spec.trained else None)
        else:
            if g.model:
                override(spec.config_cls(), g.model, where=f"{g.display}.model")
            if g.train:
                override(TrainConfig(), g.train, where=f"{g.display}.train")
    except ConfigError as e:
        msg = str(e)
        if g.model and "config" in msg.split(":", 1)[0]:
            msg = msg.replace(f"{spec.name} config", f"{g.display}.model", 1)
        elif msg.startswith("TrainConfig:"):
            msg = f"{g.display}.train:" + msg[len("TrainConfig:"):]
        raise ConfigError(f"{where}: {msg}") from e
    if g.train:  # keys are checked even for controls, which ignore training settings
        override(TrainConfig(), g.train, where=f"{g.display}.train")


def _check_extractor(ev: EvalConfig, where: str) -> None:
    if "quality" not in ev.families and "coverage" not in ev.families:
        return
    from genbench._registry import UnknownNameError
    from genbench.data import DATASETS
    from genbench.features import EXTRACTORS

    name = ev.extractor
    if name in EXTRACTOR_ALIASES:
        return
    try:
        entry = EXTRACTORS.entry(name)
    except UnknownNameError:
        import difflib

        names = sorted({*EXTRACTOR_ALIASES, *(n.rstrip(":") for n in EXTRACTORS.names())})
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ConfigError(f"{where}.evaluation.extractor: unknown feature extractor {name!r}.{hint} Available: "
                          f"{', '.join(names)} (domain:<dataset> names a dataset's classifier).") from None
    if entry.name.endswith(":"):
        arg = name.split(":", 1)[1]
        if not arg:
            raise ConfigError(f"{where}.evaluation.extractor: {name!r} needs a dataset after the colon, e.g. "
                              "domain:digits; or use 'domain' for each cell's own dataset.")
        DATASETS.entry(arg)
    if entry.name == "inception-v3-compat":
        from genbench.features.inception import resolve_weights

        try:
            resolve_weights(None, None)
        except FileNotFoundError as e:
            raise ConfigError(f"{where}.evaluation.extractor: {e}") from None


def check_devices(m: Matrix) -> None:
    """Every block's evaluation device exists on this machine (say what does, if not)."""
    for i, b in enumerate(m.blocks):
        check_device(b.evaluation.device, where=f"block[{i}].evaluation.device")
        for g in b.generators:
            if isinstance(g.train.get("device"), str):
                check_device(g.train["device"], where=f"block[{i}]: {g.display}.train.device")


def builtin_matrices() -> list[str]:
    """Names of the matrices shipped in ``genbench/matrices/`` (``default``, ``mnist``, ``families``...)."""
    return sorted(p.name.removesuffix(".toml") for p in resources.files("genbench").joinpath("matrices").iterdir()
                  if p.name.endswith(".toml"))


def load_matrix(path: str | Path | None = None) -> Matrix:
    """Load a matrix file, or a built-in matrix by name (``genbench run mnist``); ``None`` is ``default``."""
    import tomllib

    name = "default" if path is None else str(path)
    if path is None or (not Path(name).exists() and name in builtin_matrices()):
        text = resources.files("genbench").joinpath(f"matrices/{name}.toml").read_text()
        return parse_matrix(tomllib.loads(text), source=f"<built-in {name}>")
    return parse_matrix(load_toml(path), source=str(path))  # a missing file: load_toml says so
