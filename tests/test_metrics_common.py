"""Common tests over every registered metric, in the style of scikit-learn's metrics/tests/test_common.py.

Property sets drive the tests: each registered spec is exercised through the generic evaluator
with inputs built from what it ``needs``. Adding a metric adds it to these tests automatically,
and a metric whose inputs these tests cannot build fails ``test_every_metric_is_covered``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genbench.metrics import METRICS, MetricInputs, evaluate_metrics, specs

SPACE = "test-space"


def _features(rng: np.random.Generator, n: int = 80, d: int = 4, shift: float = 0.0) -> np.ndarray:
    return rng.normal(size=(n, d)) + shift


def _labelled(rng: np.random.Generator, n: int = 90, d: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Rows of three classes told apart by their first two values (the last two are noise), and the classes."""
    y = np.arange(n) % 3
    return rng.normal(size=(n, d)) + np.c_[4.0 * np.eye(3)[y][:, 1:], np.zeros((n, d - 2))], y


class _Columns:
    """An autoencoder keeping some columns of each row: ``encode`` selects them, ``decode`` puts them back
    among zeros. Keeping the class-bearing columns makes good codes; keeping fewer loses reconstruction."""

    def __init__(self, cols: list[int], d: int = 4) -> None:
        self.cols, self.d = cols, d

    def encode(self, x):
        return torch.as_tensor(x)[:, self.cols]

    def decode(self, z):
        out = torch.zeros(len(z), self.d, dtype=z.dtype)
        out[:, self.cols] = z
        return out


def _inputs(needs: str, *, seed: int = 0, worse: bool = False, identical: bool = False) -> MetricInputs:
    """Inputs for a kind of need: ``identical`` gives the generated set equal to the real one, ``worse``
    a generated set that is off (shifted, collapsed or copied, as the family reads it)."""
    rng = np.random.default_rng(seed)
    real = _features(rng)
    fake = real.copy() if identical else _features(rng, shift=1.5 if worse else 0.0)
    if needs in ("features", "fake"):
        return MetricInputs(SPACE, real=real, fake=fake, ref="test")
    if needs == "probs":
        conc = np.full(5, 0.2)
        probs = rng.dirichlet(conc, size=80)
        if worse:  # one class only: no diversity
            probs = np.tile(np.eye(5)[0] * 0.95 + 0.01, (80, 1))
        return MetricInputs(SPACE, fake_probs=probs, real_probs=rng.dirichlet(conc, size=80))
    if needs == "samples":  # 16 values per row: 4x4 images for the checks that search under shifts
        train = _features(rng, n=200, d=16)
        heldout = _features(rng, n=80, d=16)
        fake = train[:80] if worse else _features(rng, n=80, d=16)
        return MetricInputs(SPACE, fake=fake, train=train, heldout=heldout, ref="train", heldout_split="test")
    if needs == "mixture":
        centres = np.array([[np.cos(a), np.sin(a)] for a in np.linspace(0, 2 * np.pi, 8, endpoint=False)]) * 2
        idx = np.zeros(400, dtype=int) if worse else np.arange(400) % 8
        pts = centres[idx] + 0.02 * rng.normal(size=(400, 2))
        if worse:  # one mode, and half the points between modes
            pts[::2] *= 0.5
        return MetricInputs("mixture", fake=pts, centres=centres, std=0.02)
    if needs == "loglik":
        test_ll = rng.normal(-80, 3, 200)
        train_ll = rng.normal(-70 if worse else -80, 3, 200)
        return MetricInputs(SPACE, train_ll=train_ll, test_ll=test_ll)
    if needs == "encoder":  # worse: codes of the noise columns only
        (train, train_y), (test, test_y) = _labelled(rng, n=150), _labelled(rng)
        return MetricInputs(SPACE, model=_Columns([2, 3] if worse else [0, 1, 2]), train=train,
                            train_labels=train_y, x=test, x_labels=test_y, ref="test")
    if needs == "model":  # an autoencoder (the representation family; likelihood models have their own tests)
        return MetricInputs(SPACE, model=_Columns([0] if worse else [0, 1, 2]), x=real, ref="test")
    if needs == "labelled":  # worse: samples off the data (shifted) whose classes ignore the requested ones
        # (label-blind samples alone need not lower a per-class recall: a class's mixed samples still cover it)
        (real, real_y), (fake, fake_y) = _labelled(rng), _labelled(rng, n=120)
        return MetricInputs(SPACE, real=real, fake=fake + 1.5 if worse else fake, real_labels=real_y,
                            fake_labels=rng.permutation(fake_y) if worse else fake_y, ref="test")
    if needs == "labelled_probs":  # worse: the requested classes are not the ones the classifier sees
        probs = rng.dirichlet(np.full(5, 0.2), size=80)
        labels = probs.argmax(1)
        return MetricInputs(SPACE, fake_probs=probs, fake_labels=(labels + 1) % 5 if worse else labels)
    raise NotImplementedError(needs)


COVERED = ("features", "fake", "probs", "samples", "mixture", "loglik", "encoder", "model", "labelled",
           "labelled_probs")
# needs="model" is covered for autoencoders; the likelihood family's models need likelihood protocols
SAMPLE_SPECS = [s for s in specs() if s.needs in COVERED and not (s.needs == "model" and s.family == "likelihood")]


def test_every_metric_is_covered():
    # a metric whose inputs these tests cannot build must get a case here, or its own common test
    other = {s.name for s in specs() if s not in SAMPLE_SPECS}
    assert other <= {e.name for e in METRICS.entries() if e.obj.family == "likelihood"}, other
    assert {"fid", "kid", "is", "precision-recall", "density-coverage", "vendi", "copy-rate", "linear-probe",
            "reconstruction", "conditional-accuracy", "cas"} <= {s.name for s in SAMPLE_SPECS}


def _run(spec, inputs, seed=0, **settings):
    if "shape" in spec.keywords:  # image-only checks are told the rows' image shape
        settings.setdefault("shape", (1, 4, 4))
    return {r.metric: r for r in evaluate_metrics(inputs, metrics=[spec.name], seed=seed,
                                                  settings={spec.name: settings} if settings else None)}


@pytest.mark.parametrize("spec", SAMPLE_SPECS, ids=lambda s: s.name)
def test_rows_are_well_formed(spec):
    rows = _run(spec, _inputs(spec.needs))
    assert set(spec.outputs) <= set(rows)
    for out in spec.outputs:
        r = rows[out]
        assert math.isfinite(r.value) and r.protocol.metric == out and str(r.protocol).startswith(out)
        assert (r.higher_is_better, r.target) == (spec.higher_is_better(out), spec.target(out))
        assert r.kind == (r.kind if spec.kind is None else spec.kind)
        if r.std is not None:
            assert r.std_kind, f"{out}: an uncertainty must say what it is"
        assert set(r.n.values()) and all(v > 0 for v in r.n.values())


@pytest.mark.parametrize("spec", [s for s in SAMPLE_SPECS if s.needs == "features"], ids=lambda s: s.name)
def test_identical_inputs_score_best(spec):
    same = _run(spec, _inputs(spec.needs, identical=True))
    off = _run(spec, _inputs(spec.needs, worse=True))
    for out in spec.outputs:
        direction = spec.directions[out]
        a, b = same[out].value, off[out].value
        if direction == "higher":
            assert a >= b and a == pytest.approx(1.0) if out in ("precision", "recall", "coverage") else a >= b
        elif direction == "lower":
            assert a <= b and a <= 1e-9, (out, a, b)
        elif direction is not None:
            assert abs(a - direction) <= abs(b - direction), (out, a, b)


@pytest.mark.parametrize("spec", [s for s in SAMPLE_SPECS if s.needs not in ("features", "fake")
                                  and any(d is not None for d in s.directions.values())], ids=lambda s: s.name)
def test_a_worse_set_scores_worse(spec):
    good = _run(spec, _inputs(spec.needs))
    bad = _run(spec, _inputs(spec.needs, worse=True))
    for out in spec.outputs:
        d = spec.directions[out]
        if d == "higher":
            assert good[out].value > bad[out].value, out
        elif d == "lower":
            assert good[out].value < bad[out].value, out


@pytest.mark.parametrize("spec", SAMPLE_SPECS, ids=lambda s: s.name)
def test_deterministic_under_a_seed(spec):
    a = _run(spec, _inputs(spec.needs), seed=3)
    b = _run(spec, _inputs(spec.needs), seed=3)
    assert {k: (r.value, r.std) for k, r in a.items()} == {k: (r.value, r.std) for k, r in b.items()}
    if "seed" in spec.keywords:
        assert all(r.protocol.seed == 3 for r in a.values())


@pytest.mark.parametrize("spec", [s for s in SAMPLE_SPECS if {"chunk_size", "batch_size"} & s.keywords],
                         ids=lambda s: s.name)
def test_independent_of_chunk_and_batch_size(spec):
    key = "chunk_size" if "chunk_size" in spec.keywords else "batch_size"
    a = _run(spec, _inputs(spec.needs), **{key: 7})
    b = _run(spec, _inputs(spec.needs), **{key: 1000})
    for out in spec.outputs:
        assert a[out].value == pytest.approx(b[out].value, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("spec", [s for s in SAMPLE_SPECS if s.needs != "loglik"], ids=lambda s: s.name)
def test_nan_is_a_clear_error(spec):
    inputs = _inputs(spec.needs)
    attr = {"probs": "fake_probs", "labelled_probs": "fake_probs", "encoder": "x", "model": "x"}.get(spec.needs, "fake")
    bad = np.array(getattr(inputs, attr), dtype=np.float64)
    bad[3, 1] = np.nan
    setattr(inputs, attr, bad)
    with pytest.raises(ValueError, match=r"NaN"):
        _run(spec, inputs)


@pytest.mark.parametrize("spec", [s for s in SAMPLE_SPECS if s.needs in ("features", "samples", "labelled")],
                         ids=lambda s: s.name)
def test_mismatched_widths_are_a_clear_error(spec):
    inputs = _inputs(spec.needs)
    inputs.fake = np.asarray(inputs.fake)[:, :-1]
    with pytest.raises(ValueError, match=r"(width|values per sample|dimension)"):
        _run(spec, inputs)
