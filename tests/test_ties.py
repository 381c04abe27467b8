"""Tie-safe k-NN balls: precision, recall, density and coverage equal a brute-force float64 oracle.

Pixel and lattice-valued features have many exact ties, between a point's distance and a k-NN
radius. The ``<=`` rule (Kynkäänniemi et al. 2019; Naeem et al. 2020) must see the exact
distances there, not the rounding noise of ``|a|^2 + |b|^2 - 2 a.b``. Before the fix, on
``{0,1,2}^6`` lattice points (400 real, 300 fake) density read 1.687 against the exact 2.448 and
recall 0.9825 against 1.0; shifted by +10 (larger norms, more cancellation) precision and recall
read 0.98 and density 1.599; on ``digits`` pixels (real = test, fake = val) density read 0.9333
against 0.9356, and with fake = 359 training images recall 0.7270 against 0.7298.

The oracle computes every distance as ``np.linalg.norm(a - b)`` (explicit differences), sorts to
get the k-th neighbour with the point itself excluded by index, and applies the rules literally.
On these inputs every squared difference and sum is exact in float64, so the equality is exact.
"""

from __future__ import annotations

import numpy as np
import pytest

from genbench.data import load_dataset
from genbench.metrics.quality import _kth_nn_sq_radius, density_coverage, precision_recall


def _dist(a, b):
    return np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)


def _radius(x, k):
    m = _dist(x, x)
    np.fill_diagonal(m, np.inf)  # itself excluded by index; a duplicate elsewhere counts at 0
    return np.sort(m, axis=1)[:, k - 1]


def brute_prdc(real, fake, k_pr=3, k_dc=5):
    fr = _dist(fake, real)
    precision = float((fr <= _radius(real, k_pr)[None, :]).any(axis=1).mean())
    recall = float((fr.T <= _radius(fake, k_pr)[None, :]).any(axis=1).mean())
    rr = _radius(real, k_dc)
    density = float((fr <= rr[None, :]).sum() / (k_dc * len(fake)))
    coverage = float((fr.T.min(axis=1) <= rr).mean())
    return precision, recall, density, coverage


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset("digits")
    return [s.x.numpy().reshape(len(s.x), -1).astype(np.float64) for s in (ds.train, ds.val, ds.test)]


def _lattice(seed, n, d, offset=0.0):
    return np.random.default_rng(seed).integers(0, 3, (n, d)).astype(np.float64) + offset


LATTICE = {
    "lattice-d6": lambda: (_lattice(0, 400, 6), _lattice(1, 300, 6)),
    "lattice-d6-offset": lambda: (_lattice(0, 400, 6, 10.0), _lattice(1, 300, 6, 10.0)),
    "lattice-d3-dense": lambda: (_lattice(2, 200, 3), _lattice(3, 150, 3)),  # 27 sites: huge tie groups
    "lattice-d20": lambda: (_lattice(4, 300, 20), _lattice(5, 250, 20)),
}


@pytest.mark.parametrize("case", sorted(LATTICE))
def test_lattice_features_equal_the_brute_force_oracle(case):
    real, fake = LATTICE[case]()
    ours = precision_recall(real, fake, k=3) + density_coverage(real, fake, k=5)
    assert ours == brute_prdc(real, fake)


def test_the_lattice_case_is_one_rounding_breaks():
    # the GEMM expansion on these points puts exact ties on both sides of the radius; guard that
    # the oracle test above exercises the re-check (a naive expansion disagrees with the oracle)
    real, fake = LATTICE["lattice-d6-offset"]()
    c = real.mean(0)
    r, f = real - c, fake - c
    d2 = (f * f).sum(1)[:, None] + (r * r).sum(1)[None, :] - 2 * f @ r.T
    rad = _radius(real, 5) ** 2
    naive_density = (d2 <= rad[None, :]).sum() / (5 * len(fake))
    assert naive_density != brute_prdc(real, fake)[2]


@pytest.mark.parametrize("pair", ["val-vs-test", "train-vs-test", "collapsed-vs-test", "test-vs-itself"])
def test_digits_pixels_equal_the_brute_force_oracle(digits, pair):
    train, val, test = digits
    fake = {"val-vs-test": val, "train-vs-test": train[:359], "collapsed-vs-test": np.repeat(train[:20], 18, axis=0),
            "test-vs-itself": test.copy()}[pair]
    ours = precision_recall(test, fake, k=3) + density_coverage(test, fake, k=5)
    assert ours == brute_prdc(test, fake)


def test_chunking_does_not_change_tied_answers(digits):
    train, val, test = digits
    full = precision_recall(test, val) + density_coverage(test, val)
    assert precision_recall(test, val, chunk_size=7) + density_coverage(test, val, chunk_size=7) == full


@pytest.mark.parametrize("case", ["lattice-d4-plus-copies", "lattice-d2-9-sites", "one-row-repeated-plus-3",
                                  "all-identical", "distinct"])
def test_radii_equal_the_oracle_with_duplicates(case):
    # repeated rows are searched once and their radii rebuilt from multiplicities: check every branch
    # (copies >= k: radius 0; fewer copies: the k-th neighbour counted with multiplicities; no repeats)
    x = {
        "lattice-d4-plus-copies": lambda: np.concatenate([_lattice(6, 300, 4), _lattice(6, 300, 4)[:50]]),
        "lattice-d2-9-sites": lambda: _lattice(7, 40, 2),
        "one-row-repeated-plus-3": lambda: np.concatenate([np.ones((10, 3)), _lattice(8, 3, 3) + 5.0]),
        "all-identical": lambda: np.full((12, 4), 2.5),
        "distinct": lambda: np.random.default_rng(9).permutation(1000)[:60, None] / 8.0 * np.ones(3),  # exact
    }[case]()
    for k in (1, 2, 3, 5, 8):
        np.testing.assert_array_equal(np.sqrt(_kth_nn_sq_radius(x, k)), _radius(x, k), err_msg=f"k={k}")


def test_a_collapsed_sample_set_equals_the_oracle(digits):
    train, _, test = digits
    fake = np.repeat(train[:7], 60, axis=0)[::-1]  # 420 samples, 7 images: radii 0, recall ~0
    ours = precision_recall(test, fake, k=3) + density_coverage(test, fake, k=5)
    assert ours == brute_prdc(test, fake)


def test_continuous_features_are_unchanged_by_the_recheck():
    # off the lattice no pair lies within the rounding band of a radius: same as the naive rule
    rng = np.random.default_rng(7)
    real, fake = rng.normal(size=(300, 8)), 0.9 * rng.normal(size=(250, 8)) + 0.2
    assert precision_recall(real, fake) + density_coverage(real, fake) == pytest.approx(brute_prdc(real, fake),
                                                                                          abs=0)
