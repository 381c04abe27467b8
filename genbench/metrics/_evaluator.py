"""The one generic evaluator: metric specs plus inputs in, :class:`~genbench.results.MetricResult` rows out.

Every metric is called the same way: its inputs are bound from what it ``needs``, its keyword
settings are passed where its signature accepts them, the warnings it raises are recorded on its
rows, and its protocol record is built from the inputs (space, sample counts, reference and
held-out splits) and from the parameters the spec names. Metric functions return numbers or
:class:`~genbench.metrics._spec.Measurement` records; they never build result rows.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from genbench._validation import check_positive_int
from genbench.metrics import METRICS, spec_for_output, specs
from genbench.metrics._spec import NEEDS, Measurement, MetricSpec, MetricWarning
from genbench.metrics.bootstrap import bootstrap_replicates, summarize_replicates
from genbench.results import MetricResult, Protocol

__all__ = ["MetricInputs", "evaluate_metrics"]


@dataclass
class MetricInputs:
    """What the metrics of one evaluation may read, in one space.

    Attributes
    ----------
    space : the protocol's space: an extractor id with its weights hash, ``pixels``, ``points``.
    real, fake : reference and sample rows (features for the quality family).
    real_probs, fake_probs : class probabilities (IS, class coverage).
    train, heldout : training rows and held-out real rows in the same space (copy checks; for an
        encoder, the rows its linear probe is trained on).
    centres, std : the true mixture's modes (coverage on synthetic mixtures).
    val : validation rows, disjoint from ``x``, used only to tune a density estimate's
        hyper-parameters (Parzen sigma, GMM components); counted on the row as ``validation``, not in
        the protocol name (the tuned value is).
    train_ll, test_ll : per-example log-likelihoods.
    model, x : a model and data, for metrics that call a model through a protocol; ``x`` is also the
        data a density estimate scores. Its count is named by ``ref`` (``test``, ``train``).
    train_labels, x_labels : integer classes of ``train`` and ``x`` (an encoder's linear probe).
    real_labels, fake_labels : classes of ``real`` and the classes requested for the samples ``fake``
        (``fake_probs``) of a class-conditional generator.
    ref, heldout_split : the names of the reference and held-out splits (protocol fields).
    weights : the extractor's weights hash (protocol field).
    info : facts about the extractor recorded in the rows' params (``params["extractor"]``).
    device : where shared computations (the nearest-neighbour search) run.
    """

    space: str
    real: Any = None
    fake: Any = None
    real_probs: Any = None
    fake_probs: Any = None
    train: Any = None
    heldout: Any = None
    val: Any = None
    centres: Any = None
    std: Any = None
    train_ll: Any = None
    test_ll: Any = None
    model: Any = None
    x: Any = None
    train_labels: Any = None
    x_labels: Any = None
    real_labels: Any = None
    fake_labels: Any = None
    ref: str | None = None
    heldout_split: str | None = None
    weights: str | None = None
    info: Mapping[str, Any] | None = None
    device: Any = None
    _shared: dict[str, Any] = field(default_factory=dict, repr=False)

    def has(self, needs: str) -> bool:
        return all(getattr(self, a) is not None for a in NEEDS[needs])

    def args(self, needs: str) -> tuple[Any, ...]:
        return tuple(getattr(self, a) for a in NEEDS[needs])

    def for_split(self, x: Any, ref: str) -> MetricInputs:
        """The same inputs scoring another split ``x`` (named ``ref``), sharing the values built once per
        evaluation (a sigma chosen on validation, a mixture fitted to the samples): the likelihood family
        scores test and train rows with one model selection."""
        return replace(self, x=x, ref=ref)  # replace passes _shared on: the same dict, not a copy

    def shared(self, key: str, factory: Callable[[MetricInputs], Any]) -> Any:
        """A value several metrics share (one nearest-neighbour search), built once."""
        if key not in self._shared:
            self._shared[key] = factory(self)
        return self._shared[key]

    def counts(self, needs: str) -> dict[str, int]:
        """Sample counts by role, for rows and protocols."""
        names = {"features": (("real", "real"), ("fake", "fake")), "fake": (("fake", "fake"),),
                 "probs": (("fake", "fake_probs"),),
                 "samples": (("fake", "fake"), ("train", "train"), ("heldout", "heldout")),
                 "mixture": (("fake", "fake"),),
                 "density": (("samples", "fake"), ("validation", "val"), (self.ref or "x", "x")),
                 "loglik": (("train", "train_ll"), ("test", "test_ll")),
                 "model": ((self.ref or "x", "x"),),
                 "encoder": (("train", "train"), (self.ref or "x", "x")),
                 "labelled": (("real", "real"), ("fake", "fake")),
                 "labelled_probs": (("fake", "fake_probs"),)}[needs]
        return {role: len(getattr(self, a)) for role, a in names if getattr(self, a) is not None}


def _capture(fn: Callable[[], Any]) -> tuple[Any, tuple[str, ...]]:
    """Run fn; return its value and the messages of MetricWarnings it raised (others re-raised)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = fn()
    mine = []
    for w in caught:
        if issubclass(w.category, MetricWarning):
            mine.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return value, tuple(dict.fromkeys(mine))


def _as_measurement(v: Any) -> Measurement:
    if isinstance(v, Measurement):
        return v
    if isinstance(v, tuple) and len(v) == 2:
        return Measurement(float(v[0]), std=float(v[1]))
    return Measurement(float(v))


def _normalise(spec: MetricSpec, raw: Any) -> dict[str, Measurement]:
    """compute's return value as {output: Measurement} (see the module docstring of _spec)."""
    if isinstance(raw, Mapping):
        return {o: _as_measurement(raw[o]) for o in spec.outputs if o in raw}
    if spec.returns == "outputs":
        if not isinstance(raw, tuple | list) or len(raw) != len(spec.outputs):
            raise TypeError(f"metric {spec.name!r} must return one value per output {spec.outputs}; got {raw!r}")
        return {o: _as_measurement(v) for o, v in zip(spec.outputs, raw)}
    if spec.returns == "value_std" and isinstance(raw, tuple):
        m = Measurement(float(raw[0]), std=float(raw[1]))
    else:
        m = _as_measurement(raw)
    if m.std is not None and m.std_kind is None and spec.uncertainty:
        m = Measurement(**{**m.__dict__, "std_kind": spec.uncertainty})
    return {spec.outputs[0]: m}


def _default(spec: MetricSpec, name: str) -> Any:
    p = inspect.signature(spec.compute).parameters.get(name)
    return None if p is None or p.default is inspect.Parameter.empty else p.default


def resolve(metrics: Iterable[str] | str | None, *, family: str | None,
            available: Callable[[MetricSpec], bool]) -> list[tuple[MetricSpec, tuple[str, ...]]]:
    """The specs to run and which of their outputs: named ones (outputs or spec names), or the
    family's defaults whose inputs are available."""
    if metrics is None:
        return [(s, s.outputs) for s in specs(family) if s.default and available(s)]
    if isinstance(metrics, str):
        metrics = [metrics]
    wanted: dict[str, tuple[MetricSpec, list[str]]] = {}
    for name in metrics:
        name = name.strip()
        # an output (fid_per_class) or spec name (class-fid); a spec name may be written with _ (conditional_accuracy)
        known = name in METRICS or "_" not in name or any(name in e.obj.outputs for e in METRICS.entries())
        spec = spec_for_output(name if known else name.replace("_", "-"))
        if family is not None and spec.family != family:
            raise ValueError(f"metric {name!r} belongs to the {spec.family} family, not {family}; "
                             f"choose from: {', '.join(o for s in specs(family) for o in s.outputs)}")
        outs = spec.outputs if name in (spec.name, spec.name.replace("-", "_")) else (name,)
        wanted.setdefault(spec.name, (spec, []))[1].extend(o for o in outs if o not in wanted.get(spec.name,
                                                                                                  (None, []))[1])
    order = {s.name: i for i, s in enumerate(specs())}
    return [(s, tuple(o for o in s.outputs if o in outs)) for s, outs in
            sorted(wanted.values(), key=lambda so: order[so[0].name])]


def evaluate_metrics(inputs: MetricInputs, *, metrics: Iterable[str] | str | None = None,
                     family: str | None = None, settings: Mapping[str, Mapping[str, Any]] | None = None,
                     seed: int = 0, device: Any = None, n_boot: int = 0, ci_level: float = 0.95,
                     protocol_seed: int | None = None, suffix: str = "", note: str | None = None,
                     measurements: dict[str, Measurement] | None = None) -> list[MetricResult]:
    """Run metric specs on ``inputs`` and return result rows with protocol records.

    Parameters
    ----------
    inputs : :class:`MetricInputs`.
    metrics : output or spec names (``"fid"``, ``"recall"``, ``"precision-recall"``); default: every
        default spec of ``family`` whose inputs are present.
    family : restrict to one family.
    settings : per spec name, keyword settings (``{"kid": {"subset_size": 500}}``); only keywords
        the spec's compute accepts are passed.
    seed : passed to every compute that takes a seed.
    protocol_seed : the seed recorded in those metrics' protocols (default ``seed``): the evaluation's
        own seed when ``seed`` was derived from it for one family.
    device : passed to every compute that takes a device.
    n_boot : bootstrap replicates (0: none), for specs that declare how to bootstrap; rows then get a
        percentile ``ci`` at ``ci_level`` and, where they have no std of their own, the replicates' std.
    suffix, note : for reference rows (the same metrics on reference inputs: raw pixels instead of a
        model's codes, real training images instead of samples): appended to every output's name
        (``probe_acc_pixels``, ``cas_real``), and a warning recorded on every row saying what they are.
    measurements : a dict to fill with each computed output's :class:`Measurement` (per-example ``parts``
        included), for callers that combine them further: the likelihood family's train/test gap is
        computed from the per-example log-likelihoods of two evaluations.

    Returns
    -------
    list of MetricResult, in registration order.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> inputs = MetricInputs("pixels", real=rng.normal(size=(50, 3)), fake=rng.normal(size=(50, 3)), ref="test")
    >>> [str(r.protocol) for r in evaluate_metrics(inputs, metrics=["fid", "recall"])]
    ['fid@pixels/n=50v50/ref=test', 'recall@pixels/n=50v50/ref=test/k=3']
    """
    n_boot = check_positive_int(n_boot, "n_boot", minimum=0)
    settings = settings or {}
    unknown = [k for k in settings if k not in METRICS]
    if unknown:
        raise ValueError(f"settings name unknown metrics {unknown}; use spec names such as "
                         f"{', '.join(s.name for s in specs(family))}")
    rows: list[MetricResult] = []
    for spec, outputs in resolve(metrics, family=family, available=lambda s: inputs.has(s.needs)):
        if not inputs.has(spec.needs):
            missing = [a for a in NEEDS[spec.needs] if getattr(inputs, a) is None]
            raise ValueError(f"metric {spec.name!r} needs {', '.join(NEEDS[spec.needs])}; missing: "
                             f"{', '.join(missing)}"
                             + (" (class probabilities come from an extractor with a classifier head: "
                                "domain:<dataset>, or inception-v3-compat with logits)"
                                if spec.needs == "probs" else ""))
        rows += _run_spec(spec, outputs, inputs, dict(settings.get(spec.name, {})), seed=seed, device=device,
                          n_boot=n_boot, ci_level=ci_level,
                          protocol_seed=seed if protocol_seed is None else protocol_seed, suffix=suffix,
                          note=note, measurements=measurements)
    return rows


def _run_spec(spec: MetricSpec, outputs: Sequence[str], inputs: MetricInputs, kw: dict[str, Any], *, seed: int,
              device: Any, n_boot: int, ci_level: float, protocol_seed: int, suffix: str = "",
              note: str | None = None, measurements: dict[str, Measurement] | None = None) -> list[MetricResult]:
    accepted = spec.keywords
    bad = [k for k in kw if k not in accepted]
    if bad:
        raise ValueError(f"metric {spec.name!r} takes no setting {bad}; it takes {sorted(accepted)}")
    if "seed" in accepted:
        kw.setdefault("seed", seed)
    if "device" in accepted and device is not None:
        kw.setdefault("device", device)
    for key, factory in spec.shared.items():
        kw[key] = inputs.shared(key, factory)
    prep_warn: tuple[str, ...] = ()
    if spec.prepare is not None:
        kw, prep_warn = spec.prepare(kw, inputs)
    args = inputs.args(spec.needs)
    raw, warn = _capture(lambda: spec.compute(*args, **kw))
    measured = _normalise(spec, raw)
    if measurements is not None:
        measurements.update({o: measured[o] for o in outputs})
    row_seed = protocol_seed if "seed" in accepted else None
    out = [_row(spec, o, measured[o], inputs, kw, spec.needs, warn=prep_warn + warn, seed=row_seed, suffix=suffix,
                note=note) for o in outputs]
    if n_boot:
        out = _bootstrap(spec, out, measured, args, kw, n_boot=n_boot, seed=seed, level=ci_level, suffix=suffix)
    # a one-sample metric is also computed on the reference data, as the value real data reaches
    real_data = {"probs": inputs.real_probs, "fake": inputs.real}.get(spec.needs)
    if spec.reference_row and real_data is not None and not suffix:
        raw_r, warn_r = _capture(lambda: spec.compute(real_data, **kw))
        for o, m in _normalise(spec, raw_r).items():
            if o in outputs:
                ref_inputs = MetricInputs(inputs.space, fake=real_data, fake_probs=real_data, ref=inputs.ref,
                                          weights=inputs.weights, info=inputs.info)
                row = _row(spec, o, m, ref_inputs, kw, spec.needs, warn=warn_r, suffix="_real", role="real",
                           seed=row_seed)
                if n_boot:
                    row = _bootstrap(spec, [row], {o: m}, (real_data,), kw, n_boot=n_boot, seed=seed,
                                     level=ci_level)[0]
                out.append(row)
    return out


def _row(spec: MetricSpec, output: str, m: Measurement, inputs: MetricInputs, kw: Mapping[str, Any], needs: str,
         *, warn: tuple[str, ...], suffix: str = "", role: str | None = None, seed: int | None = None,
         note: str | None = None) -> MetricResult:
    counts = dict(m.n) if m.n is not None else inputs.counts(needs)
    if role:  # a reference row: the counts belong to the real data
        counts = {role: sum(counts.values())}
    fixed = {}
    for kwname, pname in spec.protocol_params.items():
        v = kw.get(kwname, _default(spec, kwname))
        if v is not None:
            fixed[pname] = v
    fixed.update(m.fixed)
    two_sample = needs in ("features", "samples", "model", "loglik", "density", "encoder", "labelled")
    # data that only tuned a hyper-parameter is counted on the row; the protocol names the tuned value instead
    protocol = Protocol(
        output + suffix, space=inputs.space if needs != "model" else (inputs.space or None),
        n={k: v for k, v in counts.items() if k != "validation"},
        ref=inputs.ref if (two_sample or role) else None,
        heldout=inputs.heldout_split if needs == "samples" else None,
        fixed=fixed, tuned=dict(m.tuned), seed=seed,
        weights=inputs.weights,
    )
    params = dict(m.params)
    params.update({k: v for k, v in fixed.items() if k not in params})
    if "seed" in spec.keywords:
        params["seed"] = kw.get("seed")
    params["metric_family"] = spec.family  # tables group by it without importing the registry (or torch)
    if inputs.info and needs in ("features", "fake", "probs"):
        params["extractor"] = dict(inputs.info)
    return MetricResult(
        metric=output + suffix, value=m.value, protocol=protocol, std=m.std,
        std_kind=m.std_kind or (spec.uncertainty if m.std is not None else None), n=counts,
        kind=m.kind or spec.kind, unit=m.unit or spec.unit, higher_is_better=spec.higher_is_better(output),
        target=spec.target(output), params=params,
        warnings=tuple(dict.fromkeys((*warn, *m.warnings, *((note,) if note else ())))),
    )


def _bootstrap(spec: MetricSpec, rows: list[MetricResult], measured: Mapping[str, Measurement], args: tuple,
               kw: Mapping[str, Any], *, n_boot: int, seed: int, level: float, suffix: str = "") -> list[MetricResult]:
    """Percentile intervals: over query points for per-point parts (the manifolds stay fixed, since
    repeated points collapse k-NN radii), else over the input sets resampled with replacement."""
    if spec.bootstrap is None:
        return rows
    out = []
    for r in rows:
        base = r.metric.removesuffix(suffix or "_real")
        m = measured[base]
        if spec.bootstrap == "parts" and m.parts is not None:
            reps = bootstrap_replicates(lambda v, s=m.scale: s * v.mean(), np.asarray(m.parts, dtype=np.float64),
                                        n_boot=n_boot, seed=seed)
            method = "bootstrap over query points, manifolds fixed"
        elif spec.bootstrap == "sets":
            def one(*arrays: Any, base: str = base) -> float:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", MetricWarning)  # recorded once, on the value itself
                    return _normalise(spec, spec.compute(*arrays, **kw))[base].value

            reps = bootstrap_replicates(one, *args, n_boot=n_boot, seed=seed)
            method = "percentile bootstrap over samples"
        else:
            out.append(r)
            continue
        s = summarize_replicates(np.asarray(reps).reshape(len(reps), -1)[:, 0], level=level)
        std, std_kind = (r.std, r.std_kind) if r.std is not None else (s.std, "bootstrap")
        warn = r.warnings
        if not s.low <= r.value <= s.high:
            warn += (f"{r.metric} {r.value:.4g} lies outside its bootstrap interval [{s.low:.4g}, {s.high:.4g}]: "
                     "resampling with replacement duplicates samples, which shifts this metric; read the interval "
                     "as the spread under resampling, not as coverage of the value.",)
        out.append(r.with_(ci=(s.low, s.high), ci_level=level, std=std, std_kind=std_kind, warnings=warn,
                           params={**r.params, "n_boot": n_boot, "ci_method": method}))
    return out
