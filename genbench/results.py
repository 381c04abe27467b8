"""Result records: one metric value with its protocol, uncertainty, sample counts and kind."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1

# Estimator kinds for likelihoods (PROTOCOLS.md): never rank an exact number against an
# estimate in one column without marking it.
ESTIMATOR_KINDS = ("exact", "lower-bound", "estimate")


@dataclass(frozen=True)
class MetricResult:
    """One number and everything needed to read it.

    Attributes
    ----------
    metric : short metric name, e.g. ``"fid"``.
    value : the number (never a sentinel: a metric that cannot be computed raises).
    protocol : the full protocol name, e.g. ``"fid@domain-digits/n=1797/ref=test"``; numbers of
        different protocols never share a column.
    std, std_kind : uncertainty and what it is (``"splits"``, ``"subsets"``, ``"stderr"``,
        ``"bootstrap"``, ``"seeds"``).
    ci : optional (low, high) confidence interval, with ``ci_level``.
    n : sample counts, e.g. ``{"real": 1797, "fake": 1797}``.
    kind : estimator kind for likelihoods (exact / lower-bound / estimate).
    unit : e.g. ``"nats"``, ``"bits/dim"``.
    higher_is_better : direction.
    params : tuned or fixed hyper-parameters (sigma, k, subsets, ...).
    warnings : anything the reader must know (e.g. ``n < d`` for FID).
    """

    metric: str
    value: float
    protocol: str
    std: float | None = None
    std_kind: str | None = None
    ci: tuple[float, float] | None = None
    ci_level: float | None = None
    n: dict[str, int] = field(default_factory=dict)
    kind: str | None = None
    unit: str | None = None
    higher_is_better: bool | None = None
    params: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.value, numbers.Real) and not isinstance(self.value, bool):
            object.__setattr__(self, "value", float(self.value))  # numpy scalars -> a plain float
        if not isinstance(self.value, float) or not math.isfinite(self.value):
            raise ValueError(f"{self.metric}: value must be a finite number, got {self.value!r}")
        if self.kind is not None and self.kind not in ESTIMATOR_KINDS:
            raise ValueError(f"{self.metric}: kind must be one of {ESTIMATOR_KINDS}, got {self.kind!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["value"] = float(self.value)
        d["ci"] = list(self.ci) if self.ci is not None else None
        d["warnings"] = list(self.warnings)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MetricResult:
        d = dict(d)
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
