"""``genbench.scoring.score`` on sample files written here, and the text table."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from genbench.features import extract, get_extractor
from genbench.harness import derive_seed
from genbench.metrics.quality import frechet_distance
from genbench.scoring import default_extractor, format_table, score

Q = ("quality",)  # these tests are about the quality rows; the other families are in test_score_external.py


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("score-cache")



def write_npz(path, x: torch.Tensor):
    np.savez(path, x=(x * 255).round().to(torch.uint8).numpy())
    return f"npz:{path}"


def test_score_npz_against_digits(tmp_path, cache, digits):
    fake = digits.train.x[:300]
    spec = write_npz(tmp_path / "fake.npz", fake)
    rows = score(spec, "digits", cache_dir=cache, families=Q)
    by = {r.metric: r for r in rows}
    assert list(by) == ["fid", "fid-inf", "is", "is_real", "kid", "precision", "recall", "density", "coverage",
                        "vendi", "vendi_real", "fid_real", "fid-inf_real", "kid_real", "precision_real",
                        "recall_real", "density_real", "coverage_real"]
    # (the *_real rows are the real-vs-real rows: the train split against test, same protocol)
    assert by["fid_real"].params["real_vs_real"] == "train" and by["fid_real"].n == by["fid"].n
    ext = get_extractor("domain:digits", cache_dir=cache)
    # equal n: the 359 test images are subsampled to the 300 samples, 5 times (mean ± std over subsamples)
    assert str(by["fid"].protocol) == f"fid@{ext.id}/n=300v300/ref=test/subsamples=5"
    assert by["fid"].std_kind == "subsamples" and len(by["fid"].params["subsample_values"]) == 5
    assert str(by["kid"].protocol) == f"kid@{ext.id}/n=300v300/ref=test/m=300/subsets=1/subsamples=5/seed=0"
    assert by["kid"].params["m"] == 300 and by["kid"].warnings
    assert str(by["is"].protocol) == f"is@{ext.id}/n=300/splits=10/subsamples=5/seed=0"
    for r in rows:
        assert r.params["extractor"]["test_accuracy"] == ext.accuracy > 0.95
        assert r.params["data"]["reference"]["split"] == "test"
    # the numbers are those of the metric on the extractor's features of the same images
    real_f = extract(ext, digits.test.x)["features"]
    fake_f = extract(ext, (fake * 255).round() / 255)["features"]
    subs = np.sort(np.random.default_rng(derive_seed(0, "subsample", "model")).choice(359, 300, replace=False))
    assert by["fid"].params["subsample_values"][0] == pytest.approx(frechet_distance(real_f[subs], fake_f), rel=1e-12)
    # equal sizes need no subsample: one comparison of the two whole sets
    whole = score(write_npz(tmp_path / "f359.npz", digits.train.x[:359]), "digits", cache_dir=cache, metrics=["fid"])
    fake359 = extract(ext, (digits.train.x[:359] * 255).round() / 255)["features"]
    assert str(whole[0].protocol) == f"fid@{ext.id}/n=359v359/ref=test"
    assert whole[0].value == pytest.approx(frechet_distance(real_f, fake359), rel=1e-12)
    # a tensor of the same images scores the same
    again = score((fake * 255).round() / 255, "digits", cache_dir=cache, families=Q, metrics=["fid"])
    assert again[0].value == pytest.approx(by["fid"].value, rel=1e-12)


def test_score_orders_good_and_bad_samples(tmp_path, cache, digits):
    good = write_npz(tmp_path / "good.npz", digits.train.x[:400])
    g = torch.Generator().manual_seed(0)
    noisy = (digits.train.x[:400] + 0.4 * torch.randn(digits.train.x[:400].shape, generator=g)).clamp(0, 1)
    bad = write_npz(tmp_path / "bad.npz", noisy)
    collapsed = write_npz(tmp_path / "collapsed.npz", digits.train.x[:1].repeat(400, 1, 1, 1))
    metrics = ["fid", "precision", "recall"]
    s_good = {r.metric: r.value for r in score(good, "digits", cache_dir=cache, families=Q, metrics=metrics)}
    s_bad = {r.metric: r.value for r in score(bad, "digits", cache_dir=cache, families=Q, metrics=metrics)}
    s_col = {r.metric: r.value for r in score(collapsed, "digits", cache_dir=cache, families=Q, metrics=metrics)}
    assert s_good["fid"] < s_bad["fid"] and s_good["fid"] < s_col["fid"]
    assert s_col["recall"] < 0.05 < s_good["recall"]  # one image repeated covers almost nothing


def test_score_defaults_and_errors(tmp_path, cache, digits):
    assert default_extractor("digits") == "domain:digits"
    assert default_extractor("mixture-ring") == "pixels"
    ref = write_npz(tmp_path / "ref.npz", digits.test.x[:120])
    fake = write_npz(tmp_path / "f.npz", digits.val.x[:100])
    assert default_extractor(ref) == "pixels"
    rows = score(fake, ref, cache_dir=cache, families=Q, metrics=["fid", "kid"], kid_subset_size=50, kid_subsets=5)
    assert str(rows[0].protocol) == "fid@pixels/n=100v100/ref=all/subsamples=5"
    assert str(rows[1].protocol) == "kid@pixels/n=100v100/ref=all/m=50/subsets=5/subsamples=5/seed=0"
    assert not rows[1].warnings
    with pytest.raises(ValueError, match=r"samples have shape \(1, 4, 4\) .* has \(1, 8, 8\)"):
        score(torch.rand(10, 1, 4, 4), "digits", cache_dir=cache, families=Q)
    with pytest.raises(ValueError, match="IS needs fake_probs"):
        score(fake, ref, cache_dir=cache, families=Q, metrics=["is"])


def test_format_table(tmp_path, cache, digits):
    spec = write_npz(tmp_path / "t.npz", digits.train.x[:200])
    rows = score(spec, "digits", cache_dir=cache, families=Q, metrics=["fid", "kid", "is"], n_boot=5)
    text = format_table(rows)
    lines = text.splitlines()
    assert lines[0].split() == ["metric", "value", "protocol"]
    for r in rows:
        line = next(ln for ln in lines if ln.startswith(r.metric + " "))
        assert f"{r.value:.5g}" in line and str(r.protocol) in line
    assert re.search(r"^kid .* ± .*\(subsamples\).*subsets=1/subsamples=5/seed=0 \[\d\]$", text, re.M)
    assert re.search(r"^\[\d\] KID subset size reduced from 1000 to m=200", text, re.M)
    assert "test accuracy" in text
