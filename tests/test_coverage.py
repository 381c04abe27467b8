"""Mode and class coverage: true mixture samples vs a mode-dropping control, oracles from scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import chi2, entropy

from genbench._io import to_json
from genbench.data import load_dataset
from genbench.metrics.coverage import (
    class_coverage,
    evaluate_mode_coverage,
    high_quality_share,
    mode_assignments,
    modes_captured,
)


def _by_metric(rows):
    return {r.metric: r for r in rows}


def _kl_uniform(counts):
    counts = np.asarray(counts, dtype=np.float64)
    return entropy(counts / counts.sum(), np.full(len(counts), 1.0 / len(counts)))


@pytest.mark.parametrize("name,n_modes", [("mixture-ring", 8), ("mixture-grid", 25)])
def test_true_samples_capture_every_mode(name, n_modes):
    ds = load_dataset(name)
    r = _by_metric(evaluate_mode_coverage(ds.sample(2500, seed=1), ds))
    assert r["modes-captured"].value == n_modes and not r["modes-captured"].params["flagged"]
    assert r["mode-kl"].value < 0.02 and not r["mode-kl"].params["flagged"]
    assert math.isclose(r["mode-kl"].value, _kl_uniform(r["mode-kl"].params["histogram"]), rel_tol=1e-9, abs_tol=1e-15)
    # high-quality share of true samples: P(chi2_2 <= 9) = 1 - exp(-4.5), within 4 binomial SE
    p = 1 - math.exp(-4.5)
    assert math.isclose(r["hq-share"].params["expected_true_share"], p, rel_tol=1e-12)
    assert abs(r["hq-share"].value - p) < 4 * math.sqrt(p * (1 - p) / 2500)
    assert str(r["modes-captured"].protocol) == f"modes-captured@{name}/n=2500/hq_std=3/min=1"
    for row in r.values():
        to_json(row.to_dict())


def test_mode_dropping_control_is_caught(ring):
    # samples from only 4 of the 8 ring modes (every other one), each as tight as the truth
    rng = np.random.default_rng(0)
    modes = rng.choice([0, 2, 4, 6], size=2500)
    x = ring.centres[modes] + ring.std * rng.standard_normal((2500, 2))
    r = _by_metric(evaluate_mode_coverage(x, ring))
    assert r["modes-captured"].value == 4 and r["modes-captured"].params["missing_modes"] == [1, 3, 5, 7]
    assert r["modes-captured"].params["flagged"]
    assert r["mode-kl"].params["flagged"] and abs(r["mode-kl"].value - math.log(2)) < 0.01
    assert math.isclose(r["mode-kl"].value, _kl_uniform(r["mode-kl"].params["histogram"]), rel_tol=1e-9)
    assert r["hq-share"].value > 0.97  # the kept modes are sharp: quality is not what is wrong


def test_collapsed_off_mode_samples_are_low_quality(ring):
    # a generator stuck between two modes: nothing is high quality, nothing is captured
    mid = (ring.centres[0] + ring.centres[1]) / 2
    x = mid + 0.01 * np.random.default_rng(1).standard_normal((500, 2))
    r = _by_metric(evaluate_mode_coverage(x, ring))
    assert r["hq-share"].value == 0.0 and r["modes-captured"].value == 0
    assert r["mode-kl"].value > 0.6  # all samples fall to the one or two nearest modes


def test_high_quality_radius_and_min_count():
    c = np.array([[0.0, 0.0], [10.0, 0.0]])
    x = np.array([[0.299, 0.0], [0.301, 0.0], [10.0, 0.0]] + [[0.0, 0.1]] * 30)
    nearest, hq = mode_assignments(x, c, 0.1)
    assert nearest[:3].tolist() == [0, 0, 1] and hq[:3].tolist() == [True, False, True]
    assert high_quality_share(x, c, 0.1).value == 32 / 33
    # mode 1 has a single high-quality sample: captured under VEEGAN's rule, not with min_count=20
    assert modes_captured(x, c, 0.1).value == 2
    strict = modes_captured(x, c, 0.1, min_count=20)
    assert strict.value == 1 and strict.params["missing_modes"] == [1] and strict.params["hq_counts"] == [31, 1]


def test_mode_coverage_errors(ring):
    with pytest.raises(ValueError, match="mixture dataset with known centres"):
        evaluate_mode_coverage(np.zeros((10, 2)), load_dataset("digits"))
    with pytest.raises(ValueError, match="centres must be"):
        modes_captured(np.zeros((10, 3)), ring.centres, ring.std)
    with pytest.raises(ValueError, match="std must be a positive"):
        modes_captured(np.zeros((10, 2)), ring.centres, 0.0)
    with pytest.raises(ValueError, match="NaN"):
        modes_captured(np.full((10, 2), np.nan), ring.centres, ring.std)


# ------------------------------------------------------------------ classes


@pytest.fixture(scope="module")
def digit_labels():
    return load_dataset("digits").test.y.numpy()


def test_real_digits_cover_every_class(digit_labels):
    covered, kl = class_coverage(np.eye(10)[digit_labels])
    assert covered.value == 10 and not covered.params["flagged"]
    assert covered.params["histogram"] == np.bincount(digit_labels, minlength=10).tolist()
    assert math.isclose(kl.value, _kl_uniform(covered.params["histogram"]), rel_tol=1e-9)
    assert kl.value < 0.02 and not kl.params["flagged"]
    from genbench.metrics import MetricInputs, evaluate_metrics

    rows = evaluate_metrics(MetricInputs("domain-digits", fake_probs=np.eye(10)[digit_labels]), family="coverage")
    assert [str(r.protocol) for r in rows] == ["classes-covered@domain-digits/n=359/min=0.2",
                                               "class-kl@domain-digits/n=359/min=0.2"]
    assert [r.direction for r in rows] == ["higher", "lower"] and rows[1].unit == "nats"


def test_dropped_digits_are_caught_despite_stray_predictions(digit_labels):
    # a model that only draws digits 0-4; the classifier misreads a few as other digits
    keep = digit_labels[digit_labels < 5]
    labels = keep.copy()
    labels[:6] = [5, 6, 7, 8, 9, 9]
    rng = np.random.default_rng(2)
    probs = 0.7 * np.eye(10)[labels] + 0.3 * rng.dirichlet(np.ones(10) * 0.1, len(labels))  # argmax = labels
    covered, kl = class_coverage(probs)
    hist = np.bincount(labels, minlength=10)
    assert covered.params["histogram"] == hist.tolist()
    assert covered.value == 5 and covered.params["missing_classes"] == [5, 6, 7, 8, 9] and covered.params["flagged"]
    assert kl.params["flagged"] and math.isclose(kl.value, _kl_uniform(hist), rel_tol=1e-9)
    assert kl.value > 0.5
    # with an "at least one prediction" rule (min_share * n / C = 1) the strays would hide the drop
    assert class_coverage(probs, min_share=10 / len(probs))[0].value == 10


def test_class_coverage_rejects_logits():
    with pytest.raises(ValueError, match="apply softmax"):
        class_coverage(np.random.default_rng(0).normal(size=(20, 10)))


def test_chi2_expectation_in_higher_dimension():
    # the recorded expectation follows the dimension of the points
    c = np.zeros((1, 5))
    r = high_quality_share(np.zeros((3, 5)), c, 1.0)
    assert math.isclose(r.params["expected_true_share"], chi2.cdf(9.0, 5), rel_tol=1e-12)
