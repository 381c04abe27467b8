"""Metric specs: what the registry holds for every metric, and what one generic evaluator reads.

A metric is a pure ``compute`` function of arrays, registered once with everything the
evaluator and the tables need: its outputs, family, what inputs it needs, the direction of each
output (higher, lower, or a target value such as 1 for density), how its uncertainty is made,
its unit, and which keyword parameters enter the protocol. In the spirit of
lm-evaluation-harness's ``MetricSpec``: the evaluator calls every metric the same way.

Adding a metric is one function and one decorator (see ``genbench/metrics/vendi.py``)::

    @register_metric("vendi", family="quality", needs="features", direction="higher")
    def vendi_score(real, fake): ...

What ``compute`` returns
------------------------
- a number: the value of the single output;
- a :class:`Measurement`: value plus std, params, warnings, sample counts, protocol parameters;
- a tuple: ``(value, std)`` when the spec's ``returns`` is ``"value_std"``, or one entry per output
  (each a number or a Measurement) when ``returns`` is ``"outputs"``;
- a dict ``{output: number | Measurement}``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: what a metric can need; the evaluator binds these to compute's leading positional arguments
NEEDS = {
    "features": ("real", "fake"),  # features of the reference and of the samples, same extractor
    "fake": ("fake",),  # sample features alone (one-sample metrics such as the Vendi score)
    "probs": ("fake_probs",),  # class probabilities of the samples (IS, class coverage)
    "samples": ("fake", "train", "heldout"),  # rows in one space: samples, training data, held-out data
    "mixture": ("fake", "centres", "std"),  # 2-D points and the true mixture's modes
    # samples that define a density, validation rows that tune it (sigma, components), the rows it scores
    "density": ("fake", "val", "x"),
    "loglik": ("train_ll", "test_ll"),  # per-example log-likelihoods
    "model": ("model", "x"),  # a model through a protocol, and data
    # a model with ``encode``, training rows and their labels, and the labelled rows it is tested on
    "encoder": ("model", "train", "train_labels", "x", "x_labels"),
    # labelled reference and sample rows in one space: real rows with their classes, samples with the
    # classes requested for them (classifiers trained on samples, tested on real data)
    "labelled": ("real", "fake", "real_labels", "fake_labels"),
    # class probabilities of the samples and the classes requested for them
    "labelled_probs": ("fake_probs", "fake_labels"),
}

FAMILIES = ("quality", "likelihood", "overfitting", "coverage", "representation", "conditional")


class MetricWarning(UserWarning):
    """A condition that changes how a number must be read; the evaluator records it on the row."""


@dataclass(frozen=True)
class Measurement:
    """One output of a metric before it becomes a result row.

    Attributes
    ----------
    value : the number.
    std, std_kind : its uncertainty and what it is (``splits``, ``subsets``, ``stderr``...).
    params : facts to record with the number (thresholds, verdicts such as ``flagged``).
    warnings : what the reader must know.
    n : sample counts by role, when they differ from the evaluator's default for the spec's needs.
    fixed, tuned : protocol parameters decided inside compute (a reduced KID subset size, a
        Parzen sigma chosen on validation); they override the spec's declared parameters.
    parts : per-point contributions with ``value == scale * parts.mean()``; a bootstrap over
        query points resamples them (k-NN metrics, whose radii collapse when points repeat).
    scale : see ``parts``.
    kind, unit : estimator kind and unit when they differ from the spec's.
    """

    value: float
    std: float | None = None
    std_kind: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    n: Mapping[str, int] | None = None
    fixed: Mapping[str, Any] = field(default_factory=dict)
    tuned: Mapping[str, Any] = field(default_factory=dict)
    parts: Any = None
    scale: float = 1.0
    kind: str | None = None
    unit: str | None = None


Direction = str | float | None  # "higher", "lower", a target value, or None (descriptive)


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric.

    Attributes
    ----------
    name : registry name (``"fid"``, ``"precision-recall"``).
    compute : the pure function; its leading positional arguments are bound from ``needs``.
    family : quality, likelihood, overfitting, coverage, ...
    needs : key of :data:`NEEDS` naming the inputs.
    outputs : output metric names, in order (``("precision", "recall")``).
    directions : per output: ``"higher"``, ``"lower"``, a target value, or None.
    uncertainty : how the std is made (``"splits"``, ``"subsets"``, ``"stderr"``), None if none.
    unit : unit of the outputs, None for unitless.
    kind : estimator kind for likelihoods.
    returns : ``"value"``, ``"value_std"`` or ``"outputs"``; how a tuple return is read.
    protocol_params : compute keyword -> the name it has in the protocol (``{"k": "k"}``); their
        values are fixed protocol parameters.
    bootstrap : ``"sets"`` (resample the input sets), ``"parts"`` (resample per-point parts), None.
    default : computed when no metric list is given.
    reference_row : also compute the metric on the reference data, as ``<output>_real`` (IS).
    shared : compute keyword -> factory(inputs) of a value shared by the family's metrics (one NN
        search for all overfitting checks), built once per evaluation.
    prepare : optional ``prepare(kwargs, inputs) -> (kwargs, warnings)`` adjusting parameters to
        the inputs explicitly (KID's subset size when there are fewer samples).
    description : one line for ``genbench ls``.
    """

    name: str
    compute: Callable[..., Any]
    family: str
    needs: str
    outputs: tuple[str, ...]
    directions: Mapping[str, Direction]
    uncertainty: str | None = None
    unit: str | None = None
    kind: str | None = None
    returns: str = "value"
    protocol_params: Mapping[str, str] = field(default_factory=dict)
    bootstrap: str | None = None
    default: bool = True
    reference_row: bool = False
    shared: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)
    prepare: Callable[[dict[str, Any], Any], tuple[dict[str, Any], tuple[str, ...]]] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.needs not in NEEDS:
            raise ValueError(f"metric {self.name!r}: needs must be one of {', '.join(NEEDS)}; got {self.needs!r}")
        if self.family not in FAMILIES:
            raise ValueError(f"metric {self.name!r}: family must be one of {', '.join(FAMILIES)}; got {self.family!r}")
        if self.returns not in ("value", "value_std", "outputs"):
            raise ValueError(f"metric {self.name!r}: returns must be value, value_std or outputs")
        missing = [o for o in self.outputs if o not in self.directions]
        if missing:
            raise ValueError(f"metric {self.name!r}: no direction for outputs {missing}")
        for d in self.directions.values():
            if not (d is None or d in ("higher", "lower") or isinstance(d, int | float)):
                raise ValueError(f"metric {self.name!r}: a direction is 'higher', 'lower', a target value or None; "
                                 f"got {d!r}")

    # -- directions, as the result rows carry them
    def higher_is_better(self, output: str) -> bool | None:
        d = self.directions[output]
        return {"higher": True, "lower": False}.get(d) if isinstance(d, str) else None

    def target(self, output: str) -> float | None:
        d = self.directions[output]
        return float(d) if isinstance(d, int | float) and not isinstance(d, bool) else None

    @property
    def keywords(self) -> set[str]:
        """The keyword parameters compute accepts (settings outside this set are not passed)."""
        sig = inspect.signature(self.compute)
        return {p.name for p in sig.parameters.values() if p.kind == p.KEYWORD_ONLY}

    @property
    def meta(self) -> dict[str, Any]:
        """The spec as plain metadata (for ``genbench ls`` and the common tests)."""
        return {"family": self.family, "needs": self.needs, "outputs": self.outputs,
                "directions": dict(self.directions), "uncertainty": self.uncertainty, "unit": self.unit,
                "kind": self.kind, "default": self.default}


def make_spec(name: str, compute: Callable[..., Any], *, family: str, needs: str,
              direction: Direction | Mapping[str, Direction], outputs: tuple[str, ...] | None = None,
              **options: Any) -> MetricSpec:
    """Build a :class:`MetricSpec`; ``direction`` is one direction for every output, or one per output."""
    outputs = tuple(outputs or (name,))
    directions = dict(direction) if isinstance(direction, Mapping) else {o: direction for o in outputs}
    if "returns" not in options:
        options["returns"] = "outputs" if len(outputs) > 1 else (
            "value_std" if options.get("uncertainty") in ("splits", "subsets") else "value")
    if not options.get("description"):
        doc = (compute.__doc__ or "").strip()
        options["description"] = doc.splitlines()[0] if doc else ""
    return MetricSpec(name=name, compute=compute, family=family, needs=needs, outputs=outputs,
                      directions=directions, **options)
