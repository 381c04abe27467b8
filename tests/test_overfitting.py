"""Overfitting checks: calibration controls on `digits`, closed forms, and scikit-learn/scipy oracles.

Calibration controls are built here from the data (1258 train, 180 val, 359 test images, pixels):
a copycat replaying 359 random training images, noisy copycats (the same images plus Gaussian
noise of std 0.02 / 0.05, clipped to [0, 1]), and held-out real data (val scored against test,
and test scored against val). Measured with the defaults (seed 0, 8 C_T cells for 359 held-out
images, 4 for 180):

=================  ===============  =========  ============  =======
control            nn-median-ratio  copy-rate  authenticity  C_T
=================  ===============  =========  ============  =======
copycat            0.000            1.000      0.000         -8.54
noisy copycat .02  0.126            1.000      0.000         -8.50
noisy copycat .05  0.318            1.000      0.000         -8.34
val vs test        0.982            0.006      0.500         -0.07
test vs val        1.018            0.019      0.552         -0.24
=================  ===============  =========  ============  =======

(held-out authentic share on test: 0.552). Flags: ratio < 0.5, copy rate > 0.10, authenticity
< 0.5 x held-out share, C_T < -3. The asserted margins below are tighter than the flags, so a
drift in calibration shows up before the verdicts flip.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import mannwhitneyu, ttest_ind
from sklearn.neighbors import NearestNeighbors

from genbench._io import to_json
from genbench.metrics import METRICS
from genbench.metrics.overfitting import (
    authenticity_score,
    copy_rate,
    data_copying_ct,
    evaluate_overfitting,
    likelihood_gap,
    nn_distance_ratio,
    train_neighbours,
)


@pytest.fixture(scope="module")
def controls(digits_arrays):
    train, val, test = digits_arrays
    rng = np.random.default_rng(0)
    copycat = train[rng.choice(len(train), 359, replace=False)]
    noisy = {s: np.clip(copycat + rng.normal(0.0, s, copycat.shape), 0.0, 1.0).astype(np.float32) for s in (0.02, 0.05)}
    return {
        "copycat": (copycat, test),
        "noisy-0.02": (noisy[0.02], test),
        "noisy-0.05": (noisy[0.05], test),
        "heldout-val": (val, test),
        "heldout-test": (test, val),
    }


@pytest.fixture(scope="module")
def results(digits_arrays, controls):
    train = digits_arrays[0]
    return {name: {r.metric: r for r in evaluate_overfitting(f, train, h, heldout_split="test")}
            for name, (f, h) in controls.items()}


COPIES = ["copycat", "noisy-0.02", "noisy-0.05"]
HELDOUT = ["heldout-val", "heldout-test"]


@pytest.mark.parametrize("name", COPIES)
def test_copycats_are_flagged_by_every_check(results, name):
    r = results[name]
    assert all(res.params["flagged"] for res in r.values()), {m: res.value for m, res in r.items()}
    assert r["copy-rate"].value >= 0.95
    assert r["authenticity"].value <= 0.05
    assert r["nn-median-ratio"].value <= 0.4
    assert r["ct"].value < -6.0 and r["ct"].params["verdict"] == "copying"


@pytest.mark.parametrize("name", HELDOUT)
def test_heldout_data_is_not_flagged(results, name):
    r = results[name]
    assert not any(res.params["flagged"] for res in r.values()), {m: res.value for m, res in r.items()}
    assert r["copy-rate"].value <= 0.05
    assert r["authenticity"].value >= 0.8 * r["authenticity"].params["heldout_share"]
    assert 0.8 <= r["nn-median-ratio"].value <= 1.25
    assert abs(r["ct"].value) < 1.5 and r["ct"].params["verdict"] == "ok"


def test_exact_copies_are_exact(results):
    r = results["copycat"]
    assert r["copy-rate"].value == 1.0 and r["authenticity"].value == 0.0 and r["nn-median-ratio"].value == 0.0


def test_results_are_well_formed(results):
    rows = list(results["copycat"].values())
    n = "n=fake:359,train:1258,heldout:359/ref=train/heldout=test"
    assert [str(r.protocol) for r in rows] == [
        f"nn-median-ratio@pixels/{n}",
        f"copy-rate@pixels/{n}/q=0.01",
        f"authenticity@pixels/{n}",
        f"ct@pixels/{n}/cells=8/seed=0",
    ]
    for r in rows:
        assert r.n == {"fake": 359, "train": 1258, "heldout": 359}
        to_json(r.to_dict())  # params are JSON with finite numbers only (allow_nan=False)
        assert METRICS.entry(r.metric).meta["family"] == "overfitting"
    ct = results["copycat"]["ct"].params
    assert ct["n_cells"] == 8 and ct["cells_used"] == 8 and math.isclose(ct["tau"], 10 / 359)
    assert math.isclose(sum(ct["cell_weights"]), 1.0)


# ------------------------------------------------------------------ oracles


def _sk_nn(q, ref, exclude_self=False):
    nn = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(ref)
    d, i = nn.kneighbors() if exclude_self else nn.kneighbors(q)
    return d[:, 0], i[:, 0]


def test_copy_rate_and_authenticity_match_a_sklearn_computation(digits_arrays):
    train, val, test = digits_arrays
    rng = np.random.default_rng(1)
    # a mix: half near-copies, half real held-out images
    fake = np.concatenate([np.clip(train[:90] + rng.normal(0, 0.1, train[:90].shape), 0, 1), val[:90]])
    t, f, h = (a.reshape(len(a), -1).astype(np.float64) for a in (train, fake, test))
    fd, fi = _sk_nn(f, t)
    hd, hi = _sk_nn(h, t)
    td, _ = _sk_nn(None, t, exclude_self=True)
    delta = np.quantile(hd, 0.05)
    r = copy_rate(fake, train, test, quantile=0.05, flag_rate=0.2)
    assert r.value == np.mean(fd < delta) and math.isclose(r.params["threshold"], delta, rel_tol=1e-12)
    a = authenticity_score(fake, train, test)
    assert a.value == np.mean(fd > td[fi])
    assert a.params["heldout_share"] == np.mean(hd > td[hi])
    ratio = nn_distance_ratio(fake, train, test)
    assert math.isclose(ratio.value, np.median(fd) / np.median(hd), rel_tol=1e-12)
    assert math.isclose(ratio.params["fake_quantiles"]["p95"], np.quantile(fd, 0.95), rel_tol=1e-12)


def test_ct_closed_form_with_one_cell(digits_arrays):
    train, _, test = digits_arrays
    # one cell: every copy (distance 0) lies below every test distance (min 0.47), so U = 0 and
    # Z = -sqrt(3 m n / (m + n + 1)); shifted far away, U = m n and Z is the mirror image
    m, n = 300, len(test)
    closed = math.sqrt(3 * m * n / (m + n + 1))
    r = data_copying_ct(train[:m], train, test, n_cells=1)
    assert math.isclose(r.value, -closed, rel_tol=1e-12) and r.params["verdict"] == "copying"
    far = np.clip(test[:m] + 0.0, 0, 1) * 0 + 5.0  # constant images far outside [0, 1]
    r = data_copying_ct(far, train, test, n_cells=1)
    assert math.isclose(r.value, closed, rel_tol=1e-12) and r.params["verdict"] == "underfitting"
    assert not r.params["flagged"]


def test_ct_matches_the_reference_procedure(digits_arrays):
    # Meehan et al.'s procedure written out with sklearn NN and scipy's U on our cells
    from sklearn.cluster import KMeans

    train, val, test = digits_arrays
    rng = np.random.default_rng(2)
    fake = np.concatenate([train[:100], val[:80]]) + rng.normal(0, 0.01, (180, 1, 8, 8))
    t, f, h = (a.reshape(len(a), -1).astype(np.float64) for a in (train, fake, test))
    r = data_copying_ct(fake, train, test, n_cells=5, seed=3)
    km = KMeans(n_clusters=5, n_init=3, random_state=3).fit(t)
    ct_, cf, ch = km.labels_, km.predict(f), km.predict(h)
    zs, ws = [], []
    for c in range(5):
        if np.sum(cf == c) <= 10 or np.sum(ch == c) == 0:
            continue
        lq, _ = _sk_nn(f[cf == c], t[ct_ == c])
        lp, _ = _sk_nn(h[ch == c], t[ct_ == c])
        mm, nn = len(lq), len(lp)
        u = mannwhitneyu(lq, lp).statistic
        zs.append((u - mm * nn / 2) / math.sqrt(mm * nn * (mm + nn + 1) / 12))
        ws.append(nn)
    assert math.isclose(r.value, np.dot(ws, zs) / np.sum(ws), rel_tol=1e-9)
    assert r.params["cells_used"] == len(zs)


def test_ct_leaves_out_cells_without_generated_samples():
    # two far-apart blobs; the generator only produces the first: the second cell is dropped,
    # with its held-out mass reported and a warning
    rng = np.random.default_rng(4)
    blob = lambda n, c: rng.normal(c, 1.0, (n, 5))  # noqa: E731
    train = np.concatenate([blob(300, 0.0), blob(300, 50.0)])
    test = np.concatenate([blob(100, 0.0), blob(100, 50.0)])
    fake = blob(150, 0.0)
    r = data_copying_ct(fake, train, test, n_cells=2)
    assert r.params["cells_used"] == 1 and math.isclose(r.params["dropped_heldout_mass"], 0.5)
    assert r.warnings and "1 of 2 cells" in r.warnings[0]
    assert abs(r.value) < 3.0  # fresh samples of the covered blob: no copying verdict


def test_ct_is_near_zero_for_fresh_samples_on_synthetic_data():
    # null calibration: fake and held-out from the training distribution itself
    values = []
    for seed in range(4):
        rng = np.random.default_rng(100 + seed)
        train, test, fake = rng.normal(size=(600, 6)), rng.normal(size=(300, 6)), rng.normal(size=(300, 6))
        values.append(data_copying_ct(fake, train, test, seed=seed).value)
    assert max(abs(v) for v in values) < 3.0, values


def test_seeded_and_input_type_independent(digits_arrays):
    train, val, test = digits_arrays
    a = evaluate_overfitting(val, train, test, seed=5)
    b = evaluate_overfitting(torch.from_numpy(val.reshape(180, -1)), torch.from_numpy(train), test, seed=5)
    assert [r.value for r in a] == [r.value for r in b]


def test_shared_neighbours_give_the_same_numbers(digits_arrays):
    train, val, test = digits_arrays
    nb = train_neighbours(val, train, test)
    assert nb.train_dist.shape == (len(train),) and (nb.train_dist > 0).all()
    assert copy_rate(val, train, test, neighbours=nb).value == copy_rate(val, train, test).value


def test_boundary_errors(digits_arrays):
    train, val, test = digits_arrays
    with pytest.raises(ValueError, match="values per sample"):
        copy_rate(val[:, :, :4], train, test)
    with pytest.raises(ValueError, match="n_cells must be in"):
        data_copying_ct(val, train[:5], test, n_cells=6)
    with pytest.raises(ValueError, match="disjoint from train"):
        nn_distance_ratio(val, train, train[:50])
    with pytest.raises(ValueError, match="quantile must be in"):
        copy_rate(val, train, test, quantile=0.0)
    with pytest.raises(ValueError, match="no cell holds more than"):
        data_copying_ct(val[:5], train, test, n_cells=2)


# ------------------------------------------------------------------ likelihood gap


def test_likelihood_gap_matches_welch():
    rng = np.random.default_rng(6)
    train_ll = rng.normal(-80.0, 3.0, 1000)
    test_ll = rng.normal(-81.0, 4.0, 500)
    r = likelihood_gap(train_ll, test_ll, kind="exact")
    welch = ttest_ind(train_ll, test_ll, equal_var=False)
    assert math.isclose(r.value, train_ll.mean() - test_ll.mean(), rel_tol=1e-12)
    assert math.isclose(r.params["z"], welch.statistic, rel_tol=1e-10)
    assert math.isclose(r.std, r.value / welch.statistic, rel_tol=1e-10)
    assert r.params["flagged"] and r.n == {"train": 1000, "test": 500} and r.kind == "exact"


def test_likelihood_gap_not_flagged_without_a_gap():
    rng = np.random.default_rng(7)
    r = likelihood_gap(rng.normal(-80, 3, 800), rng.normal(-80, 3, 800))
    assert abs(r.params["z"]) < 3 and not r.params["flagged"]
    with pytest.raises(ValueError, match="non-finite"):
        likelihood_gap(np.array([-1.0, np.inf]), np.array([-1.0, -2.0]))


def test_data_side_neighbours_are_shared_between_sample_sets(monkeypatch):
    import genbench.metrics.overfitting as ov

    rng = np.random.default_rng(5)
    train, held = rng.normal(size=(300, 6)), rng.normal(size=(80, 6))
    calls = []
    real_nn = ov.nearest_neighbours
    monkeypatch.setattr(ov, "nearest_neighbours", lambda q, r, **k: calls.append(len(q)) or real_nn(q, r, **k))
    monkeypatch.setattr(ov, "_DATA_SIDE", {})
    a = ov.train_neighbours(rng.normal(size=(50, 6)), train, held)
    b = ov.train_neighbours(rng.normal(size=(40, 6)), train, held)
    assert calls == [50, 80, 300, 40]  # the held-out and train-to-train searches ran once
    assert np.array_equal(a.train_dist, b.train_dist) and np.array_equal(a.heldout_index, b.heldout_index)
    monkeypatch.setattr(ov, "_DATA_SIDE", {})  # afresh: the same numbers
    c = ov.train_neighbours(rng.normal(size=(40, 6)), train, held)
    assert np.array_equal(c.train_dist, a.train_dist) and np.array_equal(c.heldout_dist, a.heldout_dist)
    other = ov.train_neighbours(rng.normal(size=(40, 6)), train[:-1], held)  # other data: searched again
    assert len(other.train_dist) == 299 and calls[-2:] == [80, 299]


def test_ct_partition_is_fitted_once_per_training_set(monkeypatch):
    import genbench.metrics.overfitting as ov

    rng = np.random.default_rng(6)
    train, held = rng.random((400, 4)), rng.random((200, 4))
    monkeypatch.setattr(ov, "_PARTITIONS", {})
    a = ov.data_copying_ct(train[:200], train, held, n_cells=3)
    b = ov.data_copying_ct(rng.random((200, 4)), train, held, n_cells=3)
    assert len(ov._PARTITIONS) == 1 and a.value < -3 < b.value  # one k-means for both; copying told apart
    monkeypatch.setattr(ov, "_PARTITIONS", {})
    assert ov.data_copying_ct(train[:200], train, held, n_cells=3).value == a.value  # afresh: the same
