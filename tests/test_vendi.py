"""The Vendi score against its oracles (Friedman and Dieng 2023): it was added as one file, and the
registry, the evaluator, the common tests and the tables picked it up with no other edit."""

from __future__ import annotations

import numpy as np
import pytest

from genbench.metrics import MetricInputs, evaluate_metrics, vendi_score


@pytest.mark.parametrize("n", [1, 5, 40])
def test_identical_samples_count_once_and_orthogonal_ones_count_n(n):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(1, 64))
    assert vendi_score(np.repeat(x, n, axis=0)) == pytest.approx(1.0, abs=1e-9)
    q, _ = np.linalg.qr(rng.normal(size=(64, 64)))  # 64 orthonormal rows, randomly rotated
    assert vendi_score(q[:n] * rng.uniform(0.5, 3.0, size=(n, 1))) == pytest.approx(n, rel=1e-9)


def test_k_equal_clusters_of_orthogonal_directions_score_k():
    # the exp-entropy of K/n's eigenvalues: k orthogonal directions each repeated m times give k
    basis = np.eye(10)[:4]
    assert vendi_score(np.repeat(basis, 25, axis=0)) == pytest.approx(4.0, rel=1e-9)


def test_registered_with_a_reference_row_and_through_the_evaluator():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(50, 8)), np.repeat(rng.normal(size=(1, 8)), 50, axis=0)
    rows = {r.metric: r for r in evaluate_metrics(MetricInputs("x", real=real, fake=fake), metrics=["vendi"])}
    assert rows["vendi"].value == pytest.approx(1.0) and rows["vendi"].higher_is_better
    assert rows["vendi_real"].value == pytest.approx(vendi_score(real)) and rows["vendi_real"].n == {"real": 50}
    with pytest.raises(ValueError, match="all-zero feature rows"):
        vendi_score(np.zeros((3, 4)))
