"""Result records: one metric value with its protocol record, uncertainty, sample counts and kind.

A :class:`Protocol` is a record, not a string: tables group by its fields, and its one
``__str__`` is the name people read (``fid@domain-digits-1a2b3c4d/n=359v359/ref=test``).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 2

# Estimator kinds for likelihoods (PROTOCOLS.md): never rank an exact number against an
# estimate in one column without marking it.
ESTIMATOR_KINDS = ("exact", "lower-bound", "estimate")


def _items(d: Any) -> tuple[tuple[str, Any], ...]:
    """A mapping as a hashable tuple of (key, value) pairs, insertion order kept (it is display order)."""
    if not d:
        return ()
    if isinstance(d, dict):
        d = d.items()
    return tuple((str(k), _plain(v)) for k, v in d)


def _plain(v: Any) -> Any:
    if isinstance(v, bool | str) or v is None:
        return v
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        return float(v)
    if isinstance(v, list | tuple):
        return tuple(_plain(x) for x in v)
    return str(v)


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, tuple):
        return ",".join(_fmt_value(x) for x in v)
    return str(v)


@dataclass(frozen=True)
class Protocol:
    """Everything that changes a number, as fields; numbers of different protocols never share a column.

    Attributes
    ----------
    metric : the metric (output) name, e.g. ``"fid"``.
    space : the space the metric is computed in: a feature extractor id with its weights hash
        (``domain-digits-1a2b3c4d``), ``pixels``, ``points`` or a dataset name.
    n : sample counts by role, e.g. ``(("real", 359), ("fake", 359))``.
    ref : the real split compared against (``test``), or None.
    heldout : the held-out split used as the null of copy tests (``test``), or None.
    fixed : fixed hyper-parameters, in display order (``k=3``, ``m=1000``).
    tuned : hyper-parameters chosen by the protocol itself on validation data (Parzen ``sigma``,
        GMM ``components``): part of the full name, not of the column key.
    seed : the evaluation seed, or None; part of the full name, not of the column key.
    weights : the weights hash of the feature extractor, when it has weights.

    Examples
    --------
    >>> p = Protocol("fid", space="pixels", n={"real": 10, "fake": 10}, ref="test", seed=0)
    >>> str(p), p.column
    ('fid@pixels/n=10v10/ref=test/seed=0', 'fid@pixels/n=10v10/ref=test')
    """

    metric: str
    space: str | None = None
    n: tuple[tuple[str, int], ...] = ()
    ref: str | None = None
    heldout: str | None = None
    fixed: tuple[tuple[str, Any], ...] = ()
    tuned: tuple[tuple[str, Any], ...] = ()
    seed: int | None = None
    weights: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric:
            raise ValueError(f"Protocol.metric must be a non-empty string, got {self.metric!r}")
        for name in ("n", "fixed", "tuned"):
            object.__setattr__(self, name, _items(getattr(self, name)))
        object.__setattr__(self, "n", tuple((k, int(v)) for k, v in self.n))

    def _n_text(self) -> str:
        n = dict(self.n)
        if set(n) == {"real", "fake"}:
            return f"{n['real']}v{n['fake']}"
        if len(n) == 1:
            return str(next(iter(n.values())))
        return ",".join(f"{k}:{v}" for k, v in self.n)

    def _parts(self, *, full: bool) -> list[str]:
        parts = [f"{self.metric}@{self.space}" if self.space else self.metric]
        if self.n:
            parts.append(f"n={self._n_text()}")
        if self.ref:
            parts.append(f"ref={self.ref}")
        if self.heldout:
            parts.append(f"heldout={self.heldout}")
        parts += [f"{k}={_fmt_value(v)}" for k, v in self.fixed]
        if full:
            parts += [f"{k}={_fmt_value(v)}" for k, v in self.tuned]
            if self.seed is not None:
                parts.append(f"seed={self.seed}")
        return parts

    def __str__(self) -> str:
        return "/".join(self._parts(full=True))

    @property
    def name(self) -> str:
        """The full protocol name (``str(self)``)."""
        return str(self)

    @property
    def column(self) -> str:
        """The column key: the name without tuned hyper-parameters and the seed (those are chosen per
        model, or vary over seeds, within one protocol)."""
        return "/".join(self._parts(full=False))

    def with_(self, **changes: Any) -> Protocol:
        from dataclasses import replace

        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "space": self.space, "n": dict(self.n), "ref": self.ref,
                "heldout": self.heldout, "fixed": [list(kv) for kv in self.fixed],
                "tuned": [list(kv) for kv in self.tuned], "seed": self.seed, "weights": self.weights}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Protocol:
        try:
            return cls(metric=d["metric"], space=d.get("space"), n=d.get("n") or {}, ref=d.get("ref"),
                       heldout=d.get("heldout"), fixed=d.get("fixed") or (), tuned=d.get("tuned") or (),
                       seed=d.get("seed"), weights=d.get("weights"))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a protocol record: {d!r} ({e})") from e


@dataclass(frozen=True)
class MetricResult:
    """One number and everything needed to read it.

    Attributes
    ----------
    metric : short metric name, e.g. ``"fid"``.
    value : the number (never a sentinel: a metric that cannot be computed raises).
    protocol : the :class:`Protocol` record; ``str(protocol)`` is its full name, e.g.
        ``"fid@domain-digits-1a2b3c4d/n=359v359/ref=test/seed=0"``.
    std, std_kind : uncertainty and what it is (``"splits"``, ``"subsets"``, ``"stderr"``,
        ``"bootstrap"``, ``"seeds"``, ``"subsamples"``).
    ci : optional (low, high) confidence interval, with ``ci_level``.
    n : sample counts, e.g. ``{"real": 1797, "fake": 1797}``.
    kind : estimator kind for likelihoods (exact / lower-bound / estimate).
    unit : e.g. ``"nats"``, ``"bits/dim"``.
    higher_is_better : direction (None: no direction, or a target value).
    target : the ideal value, for metrics that are best near a value (density: 1).
    params : tuned or fixed hyper-parameters (sigma, k, subsets, ...).
    warnings : anything the reader must know (e.g. ``n < d`` for FID).
    """

    metric: str
    value: float
    protocol: Protocol
    std: float | None = None
    std_kind: str | None = None
    ci: tuple[float, float] | None = None
    ci_level: float | None = None
    n: dict[str, int] = field(default_factory=dict)
    kind: str | None = None
    unit: str | None = None
    higher_is_better: bool | None = None
    target: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.value, numbers.Real) and not isinstance(self.value, bool):
            object.__setattr__(self, "value", float(self.value))  # numpy scalars -> a plain float
        if not isinstance(self.value, float) or not math.isfinite(self.value):
            raise ValueError(f"{self.metric}: value must be a finite number, got {self.value!r}")
        if self.kind is not None and self.kind not in ESTIMATOR_KINDS:
            raise ValueError(f"{self.metric}: kind must be one of {ESTIMATOR_KINDS}, got {self.kind!r}")
        if not isinstance(self.protocol, Protocol):
            raise TypeError(f"{self.metric}: protocol must be a genbench.results.Protocol record, got "
                            f"{type(self.protocol).__name__} {self.protocol!r}; build one with Protocol(metric, ...).")

    @property
    def direction(self) -> str:
        """``"higher"``, ``"lower"``, ``"target=<v>"`` or ``""`` (descriptive, no direction)."""
        if self.target is not None:
            return f"target={self.target:g}"
        return {True: "higher", False: "lower"}.get(self.higher_is_better, "")  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["value"] = float(self.value)
        d["protocol"] = str(self.protocol)
        d["protocol_fields"] = self.protocol.to_dict()
        d["ci"] = list(self.ci) if self.ci is not None else None
        d["warnings"] = list(self.warnings)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MetricResult:
        d = dict(d)
        fields_ = d.pop("protocol_fields", None)
        if not isinstance(fields_, dict):
            raise ValueError(f"metric {d.get('metric')!r}: no protocol record (protocol_fields); written by an older "
                             f"genbench (schema < {SCHEMA_VERSION}). Re-run the cell, or remove its run folder.")
        d["protocol"] = Protocol.from_dict(fields_)
        if d.get("ci") is not None:
            d["ci"] = tuple(d["ci"])
        d["warnings"] = tuple(d.get("warnings") or ())
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    def with_(self, **changes: Any) -> MetricResult:
        from dataclasses import replace

        return replace(self, **changes)

    def __format__(self, spec: str) -> str:
        s = f"{self.value:.4g}"
        if self.std is not None:
            s += f" ± {self.std:.2g}"
        return s


RUN_KINDS = ("cell", "train", "score")
RUN_STATUSES = ("done", "failed", "running")


@dataclass
class RunRecord:
    """What one run folder's ``result.json`` holds: one type for the matrix cells (local or Ray
    executor alike), training runs and scored models, so that the store and the reports read every
    run the same way.

    Attributes
    ----------
    run_id, status, kind : the run's id, ``done`` / ``failed`` / ``running``, and ``cell`` / ``train`` / ``score``.
    generator : the row label (a cell's display label, a scored model's ``--name``); family : the
        generator family; dataset, seed, cell_id, matrix : where the run belongs.
    config : everything that defines the run (a cell's dict, a training run's configs).
    metrics : the result rows.
    artifacts : files in the run folder by role (``samples``, ``sample_grid``, ``nn_gallery``...).
    timings : seconds per stage (``train_s``, ``sample_s``, ``features_s``, ``quality_s``...).
    provenance : package versions, git commit, device, threads, seed.
    error, traceback : why a failed run failed.
    control : a control generator (a reference row in tables).
    started, finished : ISO times.
    extra : anything else a kind of run records (a training summary), kept as is.
    """

    run_id: str
    status: str
    kind: str | None = None
    generator: str | None = None
    family: str | None = None
    dataset: str | None = None
    seed: int | None = None
    cell_id: str | None = None
    matrix: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    metrics: list[MetricResult] = field(default_factory=list)
    artifacts: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None
    control: bool = False
    started: str | None = None
    finished: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.status not in RUN_STATUSES:
            raise ValueError(f"run {self.run_id!r}: status must be one of {', '.join(RUN_STATUSES)}, "
                             f"got {self.status!r}")
        if self.kind is not None and self.kind not in RUN_KINDS:
            raise ValueError(f"run {self.run_id!r}: kind must be one of {', '.join(RUN_KINDS)}, got {self.kind!r}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the fields, metrics as dicts, and ``extra``'s keys at the top level."""
        d = {f: getattr(self, f) for f in self.__dataclass_fields__ if f not in ("metrics", "extra")}
        d["metrics"] = [m.to_dict() for m in self.metrics]
        return {**self.extra, **d}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunRecord:
        """Read a ``result.json`` record; unknown keys go to ``extra``; metrics are validated."""
        known = set(cls.__dataclass_fields__) - {"extra"}
        kw = {k: v for k, v in d.items() if k in known}
        kw["metrics"] = [m if isinstance(m, MetricResult) else MetricResult.from_dict(m)
                         for m in d.get("metrics") or []]
        kw["control"] = bool(kw.get("control", False))
        for key in ("config", "artifacts", "timings", "provenance"):
            kw[key] = dict(kw.get(key) or {})
        return cls(**kw, extra={k: v for k, v in d.items() if k not in known and k != "extra"})
