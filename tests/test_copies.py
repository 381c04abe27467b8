"""transform-copy-rate: a brute-force oracle, and calibration controls on `digits` pixels.

Controls (1258 train images; held-out reference = test, 359; shape (1, 8, 8); defaults: shifts
up to 2 pixels, brightness offset free, no flips, threshold = 1% quantile of held-out distances
under the same search). Measured:

===========================  ===================  =========  ====================
control                      transform-copy-rate  copy-rate  threshold (pixels)
===========================  ===================  =========  ====================
copycat shifted by 1 pixel   1.000                0.000      0.590
copycat shifted by 2 pixels  1.000                0.000      0.590
copycat brightness +0.1 (1)  1.000                0.000      0.590
val (held-out) vs test       0.006                0.006      0.590
test vs val                  0.017                0.019      0.613
independent-pixels (2000)    0.000                0.000      0.590
VAE, 300 steps (2000) (2)    0.000                0.000      0.590
GAN, 300 steps (2000) (2)    0.000                0.000      0.590
===========================  ===================  =========  ====================

(1) clipped to [0, 1]. (2) ``build_generator("vae" | "gan", digits, seed=0,
train_overrides={"steps": 300, "batch_size": 64})``, measured once by hand (training takes
20-35 s here, too long for this module); not asserted below. Time at the default matrix size
(10,000 samples, 1,258 train, 359 held-out, 25 shifts; one torch thread on a shared 2-core
machine): 13 s for all samples, 3.3 s with the default cap of 2,000.

The plain copy rate misses all three transformed copycats (Theis et al. 2016's blind spot);
the transformed search flags every one and leaves held-out data at about the null rate
q = 0.01. The brute-force oracle below builds every transformed training image
by explicit per-pixel index arithmetic and measures ``np.linalg.norm`` of differences.
"""

from __future__ import annotations

import numpy as np
import pytest

from genbench.data import load_dataset
from genbench.metrics import METRICS, MetricInputs, evaluate_metrics
from genbench.metrics.copies import transform_copy_rate, transform_family, transform_neighbours
from genbench.metrics.overfitting import copy_rate

SHAPE = (1, 8, 8)


def shift(x, dy, dx, fill=0.0):
    """Images (n, C, H, W) moved by (dy, dx), the pixels shifted in set to ``fill``."""
    out = np.full_like(x, fill)
    h, w = x.shape[-2:]
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        x[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


@pytest.fixture(scope="module")
def controls(digits_arrays):
    train, val, test = digits_arrays
    rng = np.random.default_rng(0)
    cc = train[rng.choice(len(train), 359, replace=False)]
    ring1 = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    ring2 = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if max(abs(dy), abs(dx)) == 2]
    return {
        "shift-1": np.concatenate([shift(x[None], *ring1[i % 8]) for i, x in enumerate(cc)]),
        "shift-2": np.concatenate([shift(x[None], *ring2[i % 16]) for i, x in enumerate(cc)]),
        "brightness+0.1": np.clip(cc + 0.1, 0.0, 1.0),
    }


@pytest.fixture(scope="module")
def independent_pixels(digits_arrays):
    from genbench.harness.runner import build_generator

    gen, _ = build_generator("independent-pixels", load_dataset("digits"), seed=0)
    return gen.sample(2000, seed=1).numpy()


# ------------------------------------------------------------------------------ the oracle


def oracle(queries, train, *, max_shift, flips, brightness, contrasts, fill=0.0):
    """Best (distance, train index, member) by brute force: every member, every training image,
    pixel by pixel; ties to the earlier member, then the lower training index."""
    c, h, w = queries.shape[1:]
    fam = transform_family(max_shift, flips=flips, contrasts=contrasts)
    cands = []
    for m in fam:
        img = np.full(train.shape, float(fill))
        for y in range(h):
            for x in range(w):
                sy, sx = y - m.dy, x - m.dx
                if 0 <= sy < h and 0 <= sx < w:
                    img[:, :, y, x] = train[:, :, sy, w - 1 - sx if m.flip else sx]
        rows = img.reshape(len(train), -1)
        if brightness:
            rows = rows - rows.mean(1, keepdims=True)
        cands.append(m.contrast * rows)
    q = queries.reshape(len(queries), -1).astype(np.float64)
    if brightness:
        q = q - q.mean(1, keepdims=True)
    out = []
    for row in q:
        d = np.stack([np.linalg.norm(cd - row, axis=1) for cd in cands])  # (members, train)
        best = d.min()
        mi, ti = np.argwhere(d == best)[0]  # row-major: earliest member, then lowest train index
        out.append((best, ti, mi))
    return [np.array(v) for v in zip(*out)]


@pytest.mark.parametrize("opts", [
    dict(max_shift=1, flips=False, brightness=False, contrasts=(1.0,)),
    dict(max_shift=2, flips=True, brightness=True, contrasts=(1.0,)),
    dict(max_shift=1, flips=True, brightness=True, contrasts=(0.75, 1.0, 1.25)),  # dyadic gains: exact
])
def test_neighbours_equal_the_brute_force_oracle(opts):
    rng = np.random.default_rng(1)
    # lattice values on 32 pixels: means, centred values and squared differences are exact dyadic
    # numbers, so exact ties stay exact ties in every summation order (oracle and search agree bit for bit)
    train = rng.integers(0, 3, (40, 1, 4, 8)).astype(np.float64) / 2
    train[:5] = train[5:10]  # duplicates: ties go to the lower index
    queries = np.concatenate([
        shift(train[:6], 1, -1), train[6:9, ..., ::-1], rng.integers(0, 3, (20, 1, 4, 8)) / 2, train[10:12] + 0.5])
    m = transform_neighbours(queries, train, shape=(1, 4, 8), **opts)
    d, ti, mi = oracle(queries, train, **opts)
    np.testing.assert_array_equal(m.distance, d)
    np.testing.assert_array_equal(m.train_index, ti)
    np.testing.assert_array_equal(m.transform_index, mi)


def test_flags_equal_the_oracle_rule():
    rng = np.random.default_rng(2)
    train = rng.random((60, 1, 6, 6))
    heldout = rng.random((50, 1, 6, 6))
    fake = np.concatenate([shift(train[:7], 0, 1), rng.random((33, 1, 6, 6))])
    opts = dict(max_shift=1, flips=False, brightness=True, contrasts=(1.0,))
    r = transform_copy_rate(fake, train, heldout, shape=(1, 6, 6), max_samples=None, **opts)
    dh = oracle(heldout, train, **opts)[0]
    df, ti, mi = oracle(fake, train, **opts)
    delta = np.quantile(dh, 0.01)
    assert r.params["threshold"] == pytest.approx(delta, rel=1e-12)
    assert r.value == (df < delta).mean() == 7 / 40
    assert r.params["transform_counts"] == {"dx=+1,dy=+0": 7}
    ex = r.params["examples"][0]
    assert (ex["sample"], ex["train"], ex["transform"]) == (0, 0, "dx=+1,dy=+0")
    assert ex["brightness"] == pytest.approx(0.0, abs=1e-12)  # same zero fill on both sides: no offset
    assert ex["distance"] == pytest.approx(df[0], abs=1e-12)


# ------------------------------------------------------------------------------ calibration


@pytest.mark.parametrize("name", ["shift-1", "shift-2", "brightness+0.1"])
def test_transformed_copycats_are_flagged_and_plain_copy_rate_misses_them(digits_arrays, controls, name):
    train, _, test = digits_arrays
    r = transform_copy_rate(controls[name], train, test, shape=SHAPE)
    assert r.value >= 0.95 and r.params["flagged"]  # measured 1.000
    assert copy_rate(controls[name], train, test).value < 0.05  # the blind spot: measured 0.000


def test_matched_transformations_are_the_ones_applied(digits_arrays, controls):
    train, _, test = digits_arrays
    r = transform_copy_rate(controls["shift-1"], train, test, shape=SHAPE)
    counts = r.params["transform_counts"]
    ring1 = {f"dx={dx:+d},dy={dy:+d}" for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)}
    assert set(counts) == ring1 and sum(counts.values()) == 359
    b = transform_copy_rate(controls["brightness+0.1"], train, test, shape=SHAPE)
    assert b.params["transform_counts"] == {"dx=+0,dy=+0": 359}
    offsets = [e["brightness"] for e in b.params["examples"]]
    assert all(0.05 < o <= 0.1 for o in offsets)  # +0.1, less where clipping at 1 took some


@pytest.mark.parametrize("which", ["val-vs-test", "test-vs-val"])
def test_heldout_data_is_not_flagged(digits_arrays, which):
    train, val, test = digits_arrays
    fake, held = (val, test) if which == "val-vs-test" else (test, val)
    r = transform_copy_rate(fake, train, held, shape=SHAPE)
    assert r.value <= 0.04 and not r.params["flagged"]  # measured 0.006 and 0.017


def test_reference_model_is_not_flagged(digits_arrays, independent_pixels):
    train, _, test = digits_arrays
    r = transform_copy_rate(independent_pixels, train, test, shape=SHAPE)
    assert r.value <= 0.02 and not r.params["flagged"]  # measured 0.000


def test_flips_are_searched_only_when_allowed(digits_arrays):
    train, _, test = digits_arrays
    flipped = train[:200, ..., ::-1].copy()
    asym = [i for i in range(200) if not np.array_equal(flipped[i], train[i])]
    off = transform_copy_rate(flipped[asym], train, test, shape=SHAPE)
    on = transform_copy_rate(flipped[asym], train, test, shape=SHAPE, flips=True)
    assert on.value == 1.0 and on.params["family"]["members"] == 50
    assert off.value < on.value


def test_sample_cap_is_recorded(digits_arrays, controls):
    train, _, test = digits_arrays
    r = transform_copy_rate(controls["shift-1"], train, test, shape=SHAPE, max_samples=100)
    assert r.n["checked"] == 100 and r.n["fake"] == 359 and r.fixed["checked"] == 100
    assert r.warnings and "first 100 of 359" in r.warnings[0]
    full = transform_copy_rate(controls["shift-1"], train, test, shape=SHAPE, max_samples=None)
    assert full.n["checked"] == 359 and not full.warnings


# ------------------------------------------------------------------------------ the spec


def test_registered_in_the_overfitting_family_and_run_by_the_evaluator(digits_arrays, controls):
    train, _, test = digits_arrays
    spec = METRICS.get("transform-copy-rate")
    assert spec.family == "overfitting" and spec.needs == "samples" and spec.higher_is_better("transform-copy-rate") \
        is False
    assert spec.default is False  # needs the image shape: run where the caller passes it (pixel space)
    assert "shape" in spec.keywords
    inputs = MetricInputs("pixels", fake=controls["shift-1"].reshape(359, -1), train=train.reshape(len(train), -1),
                          heldout=test.reshape(len(test), -1), ref="train", heldout_split="test")
    (row,) = evaluate_metrics(inputs, metrics=["transform-copy-rate"],
                              settings={"transform-copy-rate": {"shape": SHAPE}})
    assert row.value == 1.0 and row.params["flagged"]
    assert str(row.protocol).startswith("transform-copy-rate@pixels/")
    assert "shift=2" in str(row.protocol) and "q=0.01" in str(row.protocol)


def test_missing_or_wrong_shape_is_a_clear_error(digits_arrays):
    train, _, test = digits_arrays
    with pytest.raises(ValueError, match=r"needs the image shape.*shape=\(1, 8, 8\).*not to feature vectors"):
        transform_copy_rate(test, train, test)
    with pytest.raises(ValueError, match=r"C\*H\*W equal to the 64 values"):
        transform_copy_rate(test, train, test, shape=(1, 4, 4))
    with pytest.raises(ValueError, match="contrasts must be positive"):
        transform_copy_rate(test, train, test, shape=SHAPE, contrasts=(0.0,))


def test_non_default_family_enters_the_protocol(digits_arrays):
    train, _, test = digits_arrays
    inputs = MetricInputs("pixels", fake=test[:50].reshape(50, -1), train=train.reshape(len(train), -1),
                          heldout=test.reshape(len(test), -1), ref="train", heldout_split="test")
    (row,) = evaluate_metrics(inputs, metrics=["transform-copy-rate"], settings={"transform-copy-rate": {
        "shape": SHAPE, "contrasts": (0.9, 1.0, 1.1), "fill": "edge", "max_shift": 1}})
    name = str(row.protocol)
    assert "contrasts=0.9,1,1.1" in name and "fill=edge" in name and "shift=1" in name
    assert row.params["family"]["members"] == 27


def test_heldout_search_is_shared_and_max_heldout_is_the_first_rows(monkeypatch):
    import genbench.metrics.copies as cp
    from genbench.data import load_dataset

    ds = load_dataset("digits")
    train, test = ds.train.x.numpy(), ds.test.x.numpy()
    calls = []
    real = cp.transform_neighbours
    monkeypatch.setattr(cp, "transform_neighbours", lambda q, t, **k: calls.append(len(q)) or real(q, t, **k))
    monkeypatch.setattr(cp, "_HELDOUT", {})
    a = cp.transform_copy_rate(train[:40], train, test, shape=(1, 8, 8), max_shift=1)
    b = cp.transform_copy_rate(test[:30], train, test, shape=(1, 8, 8), max_shift=1)
    assert calls == [len(test), 40, 30]  # the held-out search ran once for both sample sets
    assert a.params["threshold"] == b.params["threshold"] and a.value == 1.0 and b.value < 0.1
    c = cp.transform_copy_rate(test[:30], train, test, shape=(1, 8, 8), max_shift=1, max_heldout=200)
    d = cp.transform_copy_rate(test[:30], train, test[:200], shape=(1, 8, 8), max_shift=1)
    assert c.value == d.value and c.params["threshold"] == d.params["threshold"]
    assert c.fixed["heldout_checked"] == 200 and c.n["heldout"] == 200 and "first 200 of 359" in c.warnings[-1]
    with pytest.raises(ValueError, match="max_heldout must be an integer >= 2"):
        cp.transform_copy_rate(test[:30], train, test, shape=(1, 8, 8), max_heldout=1)
