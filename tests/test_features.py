"""Feature extractors: domain classifier (trained, cached, deterministic), inception-v3-compat from a
weights file made here, pixels; batched extraction, cache keys, streaming statistics, bad input."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from genbench.data import load_dataset
from genbench.features import EXTRACTORS, RunningStats, extract, feature_cache_key, get_extractor
from genbench.features import domain as domain_mod
from genbench.features._base import cache_root


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("genbench-cache")


@pytest.fixture(scope="module")
def clf(cache):
    return get_extractor("domain:digits", cache_dir=cache, device="cpu")


# ------------------------------------------------------------------------------ domain classifier


def test_domain_classifier_accuracy_id_and_cache_files(clf, cache, digits):
    assert clf.accuracy > 0.95
    assert clf.id.startswith("domain-digits-") and len(clf.id) == len("domain-digits-") + 8
    assert clf.feature_dim == 64 and clf.has_probs and clf.n_classes == 10
    # the recorded accuracy is the test-split accuracy of the softmax head (recomputed here)
    pred = clf.probs(digits.test.x).argmax(1)
    assert clf.accuracy == pytest.approx(float((pred == digits.test.y).double().mean()), abs=1e-12)
    # written under <cache>/domain with a JSON sidecar, loadable without unpickling code
    assert clf.cache_path.parent == cache / "domain" and clf.cache_path.is_file()
    blob = torch.load(clf.cache_path, weights_only=True)
    assert set(blob) == {"state_dict", "meta"}
    side = json.loads(clf.cache_path.with_suffix(".json").read_text())
    assert side["test_accuracy"] == clf.accuracy and side["dataset_hash"] == digits.info.content_hash
    assert clf.info["test_accuracy"] == clf.accuracy


def test_domain_classifier_loads_from_cache_without_training(clf, cache, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("retrained although the weights are cached")

    monkeypatch.setattr(domain_mod, "train_domain_classifier", boom)
    again = get_extractor("domain:digits", cache_dir=cache, device="cpu")
    assert again.id == clf.id and again.accuracy == clf.accuracy
    x = torch.rand(5, 1, 8, 8)
    assert torch.equal(again.features(x), clf.features(x))


def test_domain_training_is_deterministic_and_seeded(clf, tmp_path, digits):
    rng_before = torch.random.get_rng_state()
    fresh = get_extractor("domain:digits", cache_dir=tmp_path / "a", device="cpu")
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # the caller's RNG is untouched
    assert fresh.id == clf.id and fresh.weights_hash == clf.weights_hash  # same seed, same weights
    # the seed reaches the weights (one short epoch each is enough to see it)
    x, y = digits.train.x[:256], digits.train.y[:256]
    w = [domain_mod.train_domain_classifier(x, y, 10, domain_mod.DomainClassifierConfig(epochs=1, seed=s))
         .state_dict()["fc2.weight"] for s in (0, 0, 1)]
    assert torch.equal(w[0], w[1]) and not torch.equal(w[0], w[2])


def test_domain_weights_cache_key_covers_config_seed_and_data(digits):
    key = domain_mod.weights_cache_key
    cfg = domain_mod.DomainClassifierConfig()
    binary = load_dataset("digits-binary").info
    k0 = key(digits.info, cfg)[0]
    assert key(digits.info, domain_mod.DomainClassifierConfig())[0] == k0
    others = {key(digits.info, domain_mod.DomainClassifierConfig(epochs=3))[0],
              key(digits.info, domain_mod.DomainClassifierConfig(seed=1))[0],
              key(digits.info, domain_mod.DomainClassifierConfig(width=8))[0],
              key(binary, cfg)[0]}
    assert k0 not in others and len(others) == 4
    # None fields resolve per image size, so spelling out the defaults gives the same key
    assert key(digits.info, domain_mod.DomainClassifierConfig(width=16, hidden=64))[0] == k0


def test_domain_classifier_rejects_unlabelled_or_point_data_and_bad_shapes(clf, cache):
    with pytest.raises(ValueError, match="needs a labelled image dataset"):
        get_extractor("domain:mixture-ring", cache_dir=cache)
    with pytest.raises(ValueError, match=r"takes images of shape \(1, 8, 8\).*got \(1, 28, 28\)"):
        extract(clf, torch.rand(3, 1, 28, 28))
    with pytest.raises(ValueError, match="weights' is only for inception-v3-compat"):
        get_extractor("domain:digits", cache_dir=cache, weights="x.pth")


def test_corrupt_cached_weights_are_retrained(clf, tmp_path, monkeypatch):
    import shutil

    target = tmp_path / "domain" / clf.cache_path.name
    target.parent.mkdir()
    shutil.copy(clf.cache_path, target)
    target.write_bytes(target.read_bytes()[:100])  # truncated, as after a crash outside atomic writes
    calls = []

    def quick_train(x, y, n_classes, config):  # the real weights, without spending seconds on training
        calls.append(len(x))
        return clf.model

    monkeypatch.setattr(domain_mod, "train_domain_classifier", quick_train)
    with pytest.warns(UserWarning, match="unreadable cached domain classifier"):
        again = get_extractor("domain:digits", cache_dir=tmp_path, device="cpu")
    assert calls and again.id == clf.id and again.cache_path == target
    assert torch.load(target, weights_only=True)["state_dict"].keys() == clf.model.state_dict().keys()


# ------------------------------------------------------------------------------------- extract


def test_extract_batch_size_independence_and_determinism(clf, digits):
    x = digits.test.x[:90]
    a = extract(clf, x, batch_size=7)
    b = extract(clf, x, batch_size=1000)
    assert a["features"].dtype == np.float64 and a["features"].shape == (len(x), 64)
    assert a["probs"].shape == (len(x), 10)
    # float32 convolutions may round differently per batch shape; nothing else may differ
    np.testing.assert_allclose(a["features"], b["features"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a["probs"], b["probs"], atol=1e-6)
    c = extract(clf, x, batch_size=7)
    assert np.array_equal(a["features"], c["features"]) and np.array_equal(a["probs"], c["probs"])
    np.testing.assert_allclose(a["probs"].sum(1), 1.0, atol=1e-12)


def test_extract_matches_the_extractor_and_reads_uint8(clf, digits):
    x = digits.test.x[:50]
    out = extract(clf, x)
    np.testing.assert_array_equal(out["features"], clf.features(x).double().numpy())
    u8 = (torch.rand(20, 1, 8, 8) * 255).round().to(torch.uint8)
    np.testing.assert_array_equal(extract(clf, u8)["features"], extract(clf, u8.float() / 255.0)["features"])


def test_extract_bad_input_messages(clf):
    x = torch.rand(40, 1, 8, 8)
    x[33, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN/Inf values \\(first in sample 33 of 40\\)"):
        extract(clf, x, batch_size=8)
    y = torch.rand(10, 1, 8, 8) * 2 - 1
    with pytest.raises(ValueError, match="images must lie in \\[0, 1\\]"):
        extract(clf, y)
    with pytest.raises(ValueError, match="takes images \\(N, C, H, W\\)"):
        extract(clf, torch.rand(10, 8, 8))
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        extract(clf, torch.rand(2, 1, 8, 8), batch_size=0)


def test_pixels_extractor_flattens_exactly():
    px = get_extractor("pixels")
    pts = np.random.default_rng(0).normal(size=(30, 2))  # float64 points stay float64-exact
    assert np.array_equal(extract(px, pts)["features"], pts)
    img = torch.rand(6, 3, 4, 4)
    out = extract(px, img, batch_size=4)
    assert np.array_equal(out["features"], img.reshape(6, -1).double().numpy()) and "probs" not in out
    assert px.feature_dim == 48 and not px.has_probs
    with pytest.raises(ValueError, match="no classifier head"):
        px.probs(img)


def test_unknown_extractor_suggests_names():
    with pytest.raises(ValueError, match="Did you mean: pixels"):
        get_extractor("pixel")
    assert {"domain:", "inception-v3-compat", "pixels"} <= set(EXTRACTORS.names())
    with pytest.raises(ValueError, match="needs a dataset name after the colon"):
        get_extractor("domain:")


# ---------------------------------------------------------------------------------- cache keys


def test_feature_cache_hits_and_keys(clf, tmp_path, digits):
    x = digits.test.x[:64]
    key = feature_cache_key(data_hash=digits.info.content_hash, split="test")
    first = extract(clf, x, cache_dir=tmp_path, cache_key=key)
    second = extract(clf, x, cache_dir=tmp_path, cache_key=key)
    assert not first["cached"] and second["cached"] and first["cache_path"] == second["cache_path"]
    assert np.array_equal(first["features"], second["features"]) and np.array_equal(first["probs"], second["probs"])
    # everything that changes features changes the file: split, extractor (weights hash), data content
    other_split = extract(clf, x, cache_dir=tmp_path, cache_key=feature_cache_key(
        data_hash=digits.info.content_hash, split="val"))
    px = extract(get_extractor("pixels"), x, cache_dir=tmp_path, cache_key=key)
    assert len({first["cache_path"], other_split["cache_path"], px["cache_path"]}) == 3
    h1 = extract(clf, x, cache_dir=tmp_path, cache_key=True)
    h2 = extract(clf, x.flip(0), cache_dir=tmp_path, cache_key=True)
    assert h1["cache_path"] != h2["cache_path"] and not h2["cached"]
    assert np.array_equal(h2["features"], extract(clf, x.flip(0))["features"])


def test_feature_cache_ignores_foreign_or_corrupt_files(clf, tmp_path):
    x = torch.rand(16, 1, 8, 8)
    out = extract(clf, x, cache_dir=tmp_path, cache_key="k")
    with open(out["cache_path"], "wb") as f:
        f.write(b"garbage")
    again = extract(clf, x, cache_dir=tmp_path, cache_key="k")
    assert not again["cached"] and np.array_equal(again["features"], out["features"])


def test_cache_root_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"
    assert cache_root(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("GENBENCH_CACHE")
    assert str(cache_root()).endswith(".cache/genbench")


# ---------------------------------------------------------------------------------- RunningStats


def test_running_stats_equal_np_cov_of_the_concatenation():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1001, 7)) @ rng.normal(size=(7, 7)) + 1e4  # a large mean: cancellation-prone
    rs = RunningStats()
    for b in np.array_split(x, [1, 2, 300, 301, 800]):
        rs.update(b)
    assert rs.n == 1001
    np.testing.assert_allclose(rs.mean, x.mean(0), rtol=1e-14)
    np.testing.assert_allclose(rs.cov, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-9)
    a, b = RunningStats().update(x[:400]), RunningStats().update(x[400:])
    np.testing.assert_allclose(a.merge(b).cov, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="batch has 3 features but earlier batches had 7"):
        rs.update(np.zeros((2, 3)))
    one = RunningStats().update(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        _ = one.cov


# ------------------------------------------------------------------------------ inception-v3-compat


def make_inception_weights(path, seed=0):
    """torch-fidelity's InceptionV3 architecture with seeded random weights, saved as a state dict.

    Built without any download: the constructor is given an (empty) in-memory weights file and
    its strict load is skipped; conv/fc weights are then re-drawn at a variance-preserving scale
    so that activations stay O(0.1) through the 94 layers (the default init shrinks them to 1e-8).
    """
    from unittest import mock

    import torch_fidelity.feature_extractor_inceptionv3 as tfi

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    with mock.patch.object(tfi, "load_state_dict_from_url", side_effect=AssertionError("download attempted")), \
            mock.patch.object(tfi.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd, *a, **k: None):
        net = tfi.FeatureExtractorInceptionV3("tmp", ["2048"], feature_extractor_weights_path=empty)
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.weight.data = torch.randn(m.weight.shape, generator=g) * (2.0 / m.weight[0].numel()) ** 0.5
        elif isinstance(m, torch.nn.Linear):
            m.weight.data = torch.randn(m.weight.shape, generator=g) / m.weight.shape[1] ** 0.5
            m.bias.data = torch.randn(m.bias.shape, generator=g)
    torch.save(net.state_dict(), path)
    return net


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("inception") / "weights-inception-test.pth"
    net = make_inception_weights(path)
    return path, net


def test_inception_compat_matches_torch_fidelity_on_identical_inputs(inception_weights, monkeypatch):
    import torch_fidelity.feature_extractor_inceptionv3 as tfi

    from genbench._io import hash_file

    path, net = inception_weights
    monkeypatch.setattr(tfi, "load_state_dict_from_url", lambda *a, **k: pytest.fail("download attempted"))
    ext = get_extractor("inception-v3-compat", weights=path, device="cpu")
    assert ext.id == f"inception-v3-compat-{hash_file(path)[:8]}"
    assert ext.feature_dim == 2048 and ext.n_classes == 1008 and ext.has_probs
    assert ext.format == "state-dict" and ext.info["format"] == "state-dict" and ext.info["has_probs"]
    torch.set_num_threads(1)  # one 299x299 forward each way; on 2 shared cores one thread is steadier
    grey = torch.rand(1, 1, 10, 12, generator=torch.Generator().manual_seed(0))
    out = extract(ext, grey)
    # the peer: torch-fidelity's own module on the uint8 RGB image (grey tiled, rounded to 0..255)
    u8 = (grey * 255).round().to(torch.uint8).repeat(1, 3, 1, 1)
    net.features_list = ["2048", "logits_unbiased"]
    pool3, logits = net(u8)
    np.testing.assert_array_equal(out["features"], pool3.double().numpy())
    # IS probabilities: softmax over all 1008 classes of pool3 @ W_fc^T, without the fc bias
    expected = torch.softmax(pool3.double() @ net.fc.weight.double().T, dim=1).numpy()
    np.testing.assert_allclose(out["probs"], expected, rtol=1e-5, atol=1e-9)
    assert out["probs"].shape == (1, 1008)


def test_inception_weights_from_env_and_missing_file_errors(inception_weights, monkeypatch, tmp_path):
    path, _ = inception_weights
    # the default cache is searched too (where `genbench fetch inception` writes): keep it empty here
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "default-cache"))
    monkeypatch.setenv("GENBENCH_INCEPTION_WEIGHTS", str(path))
    from genbench.features.inception import WEIGHTS_FILE, resolve_weights

    assert resolve_weights(None, tmp_path) == path
    monkeypatch.setenv("GENBENCH_INCEPTION_WEIGHTS", str(tmp_path / "nope.pth"))
    with pytest.raises(FileNotFoundError, match=r"nope\.pth .*from the \$GENBENCH_INCEPTION_WEIGHTS"):
        get_extractor("inception-v3-compat", cache_dir=tmp_path)
    monkeypatch.delenv("GENBENCH_INCEPTION_WEIGHTS")
    with pytest.raises(FileNotFoundError) as e:
        get_extractor("inception-v3-compat", cache_dir=tmp_path)
    msg = str(e.value)
    assert WEIGHTS_FILE in msg and "GENBENCH_INCEPTION_WEIGHTS" in msg and str(tmp_path / "weights") in msg
    assert "nothing is downloaded" in msg and "genbench fetch inception" in msg
    assert str(tmp_path / "default-cache" / "weights") in msg
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / WEIGHTS_FILE).write_bytes(path.read_bytes())
    assert resolve_weights(None, tmp_path) == tmp_path / "weights" / WEIGHTS_FILE


def test_inception_rejects_a_file_that_is_not_weights(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="(?s)not torch-fidelity's InceptionV3 weights.*or the TorchScript"):
        get_extractor("inception-v3-compat", weights=bad)


def test_features_package_does_not_import_torch_fidelity():
    code = ("import sys, genbench.features, genbench.features.inception, genbench.features.domain; "
            "print('torch_fidelity' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
