"""Dataset loaders: embedded digits, synthetic mixtures, and local files (IDX, CIFAR-10, folders, npz).

File-based loaders are tested on tiny files built here in the documented on-disk formats (the
oracle is the format specification, not the loader): IDX big-endian magic 2051/2049 with
big-endian dims, CIFAR-10 python batches (dict with b'data' (n, 3072) uint8 in R|G|B row-major
planes and b'labels').
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp

from genbench._registry import UnknownNameError
from genbench.data import DATASETS, DataFileError, DatasetInfo, load_dataset
from genbench.data.files import MNIST_FILES, read_idx

# ---------------------------------------------------------------------------------------------
# digits / digits-binary


def _rows_sorted(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Rows (image pixels + label) in lexicographic order: a canonical form of a multiset of examples."""
    rows = np.concatenate([x.reshape(len(x), -1), y[:, None].astype(x.dtype)], axis=1)
    return rows[np.lexsort(rows.T[::-1])]


def test_digits_shapes_range_levels_and_split_sizes():
    ds = load_dataset("digits")
    assert ds.info.shape == (1, 8, 8) and ds.info.kind == "image" and ds.info.n_classes == 10
    assert ds.info.levels == 17 and not ds.info.binary
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 1258, "val": 180, "test": 359}
    assert ds.info.split_sizes == {"train": 1258, "val": 180, "test": 359}
    x = torch.cat([ds.train.x, ds.val.x, ds.test.x]).numpy()
    assert x.dtype == np.float32 and x.shape == (1797, 1, 8, 8)
    assert x.min() == 0.0 and x.max() == 1.0
    # 17 grey levels 0..16 scaled by 1/16: every value times 16 is an integer, and all 17 occur
    assert np.array_equal(np.unique(np.round(x * 16)), np.arange(17))
    assert np.allclose(x * 16, np.round(x * 16), atol=1e-6)
    for s in ds.splits.values():
        assert s.y is not None and s.y.dtype == torch.int64 and set(s.y.unique().tolist()) <= set(range(10))


def test_digits_splits_partition_sklearn_digits():
    """train + val + test is exactly load_digits' 1797 examples, each once (multiset equality)."""
    from sklearn.datasets import load_digits

    ref = load_digits()
    ds = load_dataset("digits")
    x = torch.cat([ds.train.x, ds.val.x, ds.test.x]).numpy().astype(np.float64) * 16
    y = torch.cat([ds.train.y, ds.val.y, ds.test.y]).numpy()
    assert np.array_equal(_rows_sorted(np.round(x), y), _rows_sorted(ref.images.astype(np.float64), ref.target))
    # the splits hold different examples: every split's images differ from the other splits'
    # (compare by index: the split rule is a permutation, so no index lands in two splits)
    from genbench.data._base import seeded_split
    from genbench.data.embedded import FRACTIONS, SPLIT_SEED

    idx = seeded_split(1797, SPLIT_SEED, FRACTIONS)
    allidx = np.concatenate(list(idx.values()))
    assert len(allidx) == 1797 and len(np.unique(allidx)) == 1797
    for name, i in idx.items():
        assert np.array_equal(ds.split(name).y.numpy(), ref.target[i])
        assert np.allclose(ds.split(name).x.numpy()[:, 0] * 16, ref.images[i])


def test_digits_are_read_as_load_digits_reads_them_without_importing_sklearn(monkeypatch):
    """The CSV in scikit-learn's package folder, read without importing scikit-learn, gives load_digits'
    images and labels exactly; so does the fallback through load_digits itself."""
    import importlib.util
    import subprocess
    import sys

    from sklearn.datasets import load_digits

    from genbench.data.embedded import _digits_table

    ref = load_digits()
    want = np.column_stack([ref.data, ref.target])
    got = _digits_table()
    assert got.dtype == np.float64 and np.array_equal(got, want)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert np.array_equal(_digits_table(), want)
    code = ("import sys; from genbench.data import load_dataset; load_dataset('digits'); "
            "print('sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_digits_deterministic_and_hashes():
    a, b = load_dataset("digits"), load_dataset("digits")
    for k in ("train", "val", "test"):
        assert torch.equal(a.split(k).x, b.split(k).x) and torch.equal(a.split(k).y, b.split(k).y)
    assert a.info.content_hash == b.info.content_hash and len(a.info.content_hash) == 16
    bin1, bin2 = load_dataset("digits-binary"), load_dataset("digits-binary")
    assert bin1.info.content_hash == bin2.info.content_hash
    assert bin1.info.content_hash != a.info.content_hash
    assert torch.equal(bin1.train.x, bin2.train.x)


def test_digits_binary_is_a_bernoulli_draw_of_the_grey_levels():
    grey, binary = load_dataset("digits"), load_dataset("digits-binary")
    assert binary.info.levels == 2 and binary.info.binary and binary.info.shape == (1, 8, 8)
    for k in ("train", "val", "test"):
        g, b = grey.split(k).x.numpy(), binary.split(k).x.numpy()
        assert set(np.unique(b).tolist()) <= {0.0, 1.0}
        # same examples in the same order: labels agree; black stays black, white stays white
        assert torch.equal(grey.split(k).y, binary.split(k).y)
        assert (b[g == 0] == 0).all() and (b[g == 1] == 1).all()
    g = torch.cat([grey.train.x, grey.val.x, grey.test.x]).numpy()
    b = torch.cat([binary.train.x, binary.val.x, binary.test.x]).numpy()
    # E[b] = g; over 115k pixels the mean differs by a few 1e-3 at most (sd ~ 1.2e-3)
    assert abs(b.mean() - g.mean()) < 6e-3
    mid = (g > 0.3) & (g < 0.7)
    assert 0.3 < b[mid].mean() < 0.7 and 0 < b[mid].mean()


def test_dataset_info_round_trip():
    info = load_dataset("digits").info
    again = DatasetInfo.from_dict(info.to_dict())
    assert again == info and again.dim == 64


def test_unknown_split_names_available_ones():
    ds = load_dataset("digits")
    with pytest.raises(ValueError, match=r"no split 'all'.*train, val, test"):
        ds.split("all")


# ---------------------------------------------------------------------------------------------
# synthetic mixtures


def _scipy_mixture_logpdf(x: np.ndarray, centres: np.ndarray, std: float) -> np.ndarray:
    comps = np.stack([stats.multivariate_normal(mean=c, cov=std**2 * np.eye(2)).logpdf(x) for c in centres], axis=1)
    return logsumexp(comps, axis=1) - np.log(len(centres))


@pytest.mark.parametrize(
    "name, n_modes, std",
    [("mixture-ring", 8, 0.02), ("mixture-grid", 25, 0.05)],
)
def test_mixture_log_density_matches_scipy(name, n_modes, std):
    ds = load_dataset(name)
    assert ds.info.kind == "points" and ds.info.shape == (2,) and ds.info.n_classes == n_modes
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 20000, "val": 5000, "test": 5000}
    assert ds.n_modes == n_modes and ds.std == std
    if name == "mixture-ring":
        assert np.allclose(np.linalg.norm(ds.centres, axis=1), 2.0)
    else:
        assert sorted(set(ds.centres.ravel().tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    rng = np.random.default_rng(0)
    # points on the data, between modes, and far away (the log-sum-exp must not underflow to -inf)
    pts = np.concatenate([ds.test.x.numpy()[:200].astype(np.float64), rng.uniform(-5, 5, (100, 2)),
                          [[0.0, 0.0], [30.0, -30.0]]])
    ours = ds.log_density(pts)
    ref = _scipy_mixture_logpdf(pts, ds.centres, std)
    assert ours.dtype == np.float64 and np.isfinite(ours).all()
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-8)
    # tensors are accepted as well
    np.testing.assert_allclose(ds.log_density(torch.from_numpy(pts[:10])), ref[:10], rtol=1e-10)


def test_mixture_data_follow_the_mixture():
    ds = load_dataset("mixture-ring")
    x, y = ds.train.x.numpy().astype(np.float64), ds.train.y.numpy()
    # every point lies within a few std of its own component's centre
    dist = np.linalg.norm(x - ds.centres[y], axis=1)
    assert dist.max() < 6 * ds.std
    # equal weights: each of the 8 components has 1/8 of 20000 points, up to binomial noise
    counts = np.bincount(y, minlength=8)
    assert np.all(np.abs(counts - 2500) < 5 * np.sqrt(20000 * (1 / 8) * (7 / 8)))
    # sample() is seeded and draws from the same mixture
    s1, s2 = ds.sample(500, seed=3), ds.sample(500, seed=3)
    assert torch.equal(s1, s2) and not torch.equal(s1, ds.sample(500, seed=4))
    # closed form: modes far apart, so E[log p] = -(1 + log(2 pi std^2)) - log 8 (entropy of one 2-D Gaussian);
    # log p per point has sd 1 (chi-square with 2 dof, halved): the mean of 2000 has sd 0.022
    lp = ds.log_density(ds.sample(2000, seed=5))
    assert lp.mean() == pytest.approx(-(1 + np.log(2 * np.pi * ds.std**2)) - np.log(8), abs=0.12)
    assert load_dataset("mixture-ring").info.content_hash == ds.info.content_hash


# ---------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST IDX files


def idx_bytes(arr: np.ndarray, magic: int | None = None) -> bytes:
    """The IDX format: big-endian magic (0x0803 images / 0x0801 labels), big-endian uint32 dims, uint8 data."""
    arr = np.asarray(arr, dtype=np.uint8)
    if magic is None:
        magic = {3: 2051, 1: 2049}[arr.ndim]
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes()


def make_mnist_arrays(seed: int = 0, n_train: int = 12, n_test: int = 5, rows: int = 7, cols: int = 6):
    # rows != cols so that a transposed reader fails the comparison
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (n_train, rows, cols), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, rows, cols), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def write_mnist(folder: Path, arrays: dict[str, np.ndarray], *, gz: bool = False) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for key, stem in MNIST_FILES.items():
        data = idx_bytes(arrays[key])
        p = folder / (stem + (".gz" if gz else ""))
        p.write_bytes(gzip.compress(data) if gz else data)
        out[key] = p
    return out


def check_mnist_like(ds, arrays, name):
    n_train = len(arrays["train_images"])
    n_val = max(1, n_train // 6)  # tiny files: a sixth of the training file is validation
    assert ds.info.name == name and ds.info.levels == 256 and ds.info.n_classes == 10
    assert ds.info.shape == (1, 7, 6)
    want_x = arrays["train_images"][:, None].astype(np.float32) / 255
    np.testing.assert_array_equal(ds.train.x.numpy(), want_x[:-n_val])
    np.testing.assert_array_equal(ds.val.x.numpy(), want_x[-n_val:])
    np.testing.assert_array_equal(ds.train.y.numpy(), arrays["train_labels"][:-n_val])
    np.testing.assert_array_equal(ds.val.y.numpy(), arrays["train_labels"][-n_val:])
    np.testing.assert_array_equal(ds.test.x.numpy(), arrays["test_images"][:, None].astype(np.float32) / 255)
    np.testing.assert_array_equal(ds.test.y.numpy(), arrays["test_labels"])
    assert ds.train.y.dtype == torch.int64


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_mnist_from_root_argument(tmp_path, gz):
    arrays = make_mnist_arrays()
    write_mnist(tmp_path / "mnist", arrays, gz=gz)
    ds = load_dataset("mnist", root=tmp_path)
    check_mnist_like(ds, arrays, "mnist")
    assert ds.info.source == str(tmp_path / "mnist")


def test_mnist_raw_and_gz_give_the_same_dataset(tmp_path):
    arrays = make_mnist_arrays(seed=5)
    write_mnist(tmp_path / "a" / "mnist", arrays)
    write_mnist(tmp_path / "b" / "mnist", arrays, gz=True)
    ha = load_dataset("mnist", root=tmp_path / "a").info.content_hash
    hb = load_dataset("mnist", root=tmp_path / "b").info.content_hash
    assert ha == hb
    write_mnist(tmp_path / "c" / "mnist", make_mnist_arrays(seed=6))
    assert load_dataset("mnist", root=tmp_path / "c").info.content_hash != ha


def test_mnist_from_env_var_and_root_wins(tmp_path, monkeypatch):
    arrays = make_mnist_arrays(seed=1)
    write_mnist(tmp_path / "env" / "MNIST" / "raw", arrays)  # torchvision's layout
    monkeypatch.setenv("GENBENCH_DATA", str(tmp_path / "env"))
    check_mnist_like(load_dataset("mnist"), arrays, "mnist")
    # an explicit root takes precedence over the environment
    other = make_mnist_arrays(seed=2)
    write_mnist(tmp_path / "arg", other, gz=True)  # files directly in the root
    check_mnist_like(load_dataset("mnist", root=tmp_path / "arg"), other, "mnist")


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_fashion_mnist(tmp_path, monkeypatch, gz):
    arrays = make_mnist_arrays(seed=3)
    write_mnist(tmp_path / "fashion-mnist", arrays, gz=gz)
    check_mnist_like(load_dataset("fashion-mnist", root=tmp_path), arrays, "fashion-mnist")
    monkeypatch.setenv("GENBENCH_DATA", str(tmp_path))
    check_mnist_like(load_dataset("fashion-mnist"), arrays, "fashion-mnist")
    # the MNIST loader does not pick up Fashion-MNIST's folder
    with pytest.raises(DataFileError, match="mnist: missing"):
        load_dataset("mnist")


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_mnist_binary_is_a_static_binarisation_of_the_mnist_files(tmp_path, monkeypatch, gz):
    """mnist-binary: the mnist files and splits, each pixel one fixed Bernoulli(grey / 255) draw."""
    arrays = make_mnist_arrays(seed=7, n_train=30, n_test=9)
    arrays["test_images"][:, 0] = 0  # certain pixels: grey 0 -> 0, grey 255 -> 1
    arrays["test_images"][:, 1] = 255
    write_mnist(tmp_path / "mnist", arrays, gz=gz)
    monkeypatch.setenv("GENBENCH_DATA", str(tmp_path))
    grey, a, b = load_dataset("mnist"), load_dataset("mnist-binary"), load_dataset("mnist-binary")
    assert a.info.levels == 2 and a.info.binary and a.info.value_range == (0.0, 1.0)
    assert a.info.split_sizes == grey.info.split_sizes == {"train": 25, "val": 5, "test": 9}
    assert a.info.content_hash == b.info.content_hash != grey.info.content_hash
    assert a.info.source == str(tmp_path / "mnist")
    for s in ("train", "val", "test"):
        np.testing.assert_array_equal(a.split(s).x.numpy(), b.split(s).x.numpy())
        np.testing.assert_array_equal(a.split(s).y.numpy(), grey.split(s).y.numpy())
        assert set(np.unique(a.split(s).x.numpy())) <= {0.0, 1.0}
    xt = a.test.x.numpy()
    assert (xt[:, 0, 0] == 0).all() and (xt[:, 0, 1] == 1).all()
    # one draw per pixel, training file then t10k, from one generator with the documented seed
    from genbench.data.files import MNIST_BINARISE_SEED

    rng = np.random.default_rng(MNIST_BINARISE_SEED)
    x_tr = arrays["train_images"][:, None].astype(np.float32) / 255
    x_te = arrays["test_images"][:, None].astype(np.float32) / 255
    want_tr = (rng.random(x_tr.shape, dtype=np.float32) < x_tr).astype(np.float32)
    want_te = (rng.random(x_te.shape, dtype=np.float32) < x_te).astype(np.float32)
    np.testing.assert_array_equal(np.concatenate([a.train.x.numpy(), a.val.x.numpy()]), want_tr)
    np.testing.assert_array_equal(xt, want_te)


def test_read_idx_matches_format(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    p = tmp_path / "x-idx3-ubyte"
    p.write_bytes(b"\x00\x00\x08\x03" + b"\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00\x04" + a.tobytes())
    np.testing.assert_array_equal(read_idx(p), a)
    q = tmp_path / "y-idx1-ubyte.gz"
    q.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x03" + bytes([7, 8, 9])))
    np.testing.assert_array_equal(read_idx(q), [7, 8, 9])


def test_idx_wrong_magic(tmp_path):
    arrays = make_mnist_arrays()
    paths = write_mnist(tmp_path, arrays)
    bad = idx_bytes(arrays["train_images"], magic=2052)
    paths["train_images"].write_bytes(bad)
    with pytest.raises(DataFileError, match="wrong magic number 2052") as e:
        load_dataset("mnist", root=tmp_path)
    assert str(paths["train_images"]) in str(e.value)
    # little-endian header (a common mistake when writing IDX by hand)
    le = struct.pack("<I", 2051) + b"".join(struct.pack("<I", d) for d in arrays["train_images"].shape)
    paths["train_images"].write_bytes(le + arrays["train_images"].tobytes())
    with pytest.raises(DataFileError, match="magic"):
        load_dataset("mnist", root=tmp_path)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_idx_truncated(tmp_path, gz):
    arrays = make_mnist_arrays()
    paths = write_mnist(tmp_path, arrays, gz=gz)
    p = paths["test_images"]
    data = idx_bytes(arrays["test_images"])[:-10]
    if gz:
        # a gzip stream cut short, as left by an interrupted download
        p.write_bytes(gzip.compress(idx_bytes(arrays["test_images"]))[:-20])
    else:
        p.write_bytes(data)
    with pytest.raises(DataFileError, match="truncated") as e:
        load_dataset("mnist", root=tmp_path)
    assert str(p) in str(e.value)


def test_idx_truncated_header(tmp_path):
    p = tmp_path / "t-idx3-ubyte"
    p.write_bytes(struct.pack(">II", 2051, 3))  # magic and one of three dims
    with pytest.raises(DataFileError, match="truncated IDX header"):
        read_idx(p)
    p.write_bytes(b"\x00\x00")
    with pytest.raises(DataFileError, match="too short"):
        read_idx(p)


def test_idx_count_mismatch_names_both_files(tmp_path):
    arrays = make_mnist_arrays()
    arrays["train_labels"] = arrays["train_labels"][:-1]
    paths = write_mnist(tmp_path, arrays)
    with pytest.raises(DataFileError, match="12 images but .* has 11 labels") as e:
        load_dataset("mnist", root=tmp_path)
    assert str(paths["train_images"]) in str(e.value) and str(paths["train_labels"]) in str(e.value)


def test_idx_labels_file_in_place_of_images(tmp_path):
    arrays = make_mnist_arrays()
    paths = write_mnist(tmp_path, arrays)
    paths["test_images"].write_bytes(idx_bytes(arrays["test_labels"]))  # valid IDX, wrong kind
    with pytest.raises(DataFileError, match="2051") as e:
        load_dataset("mnist", root=tmp_path)
    assert str(paths["test_images"]) in str(e.value)


def test_idx_missing_files_named_with_where_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("GENBENCH_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataFileError) as e:
        load_dataset("mnist")
    msg = str(e.value)
    for stem in MNIST_FILES.values():
        assert stem in msg
    for d in (tmp_path / "nowhere" / "mnist", tmp_path / "nowhere" / "MNIST" / "raw", tmp_path / "nowhere"):
        assert str(d) in msg
    assert "GENBENCH_DATA" in msg and "yann.lecun.com" in msg
    # one file missing: only that one is named as missing
    paths = write_mnist(tmp_path / "some", make_mnist_arrays())
    paths["test_labels"].unlink()
    with pytest.raises(DataFileError) as e:
        load_dataset("fashion-mnist", root=tmp_path / "some")  # fashion looks in the root too
    missing = str(e.value).split("Looked in")[0]
    assert "t10k-labels-idx1-ubyte" in missing and "train-images" not in missing


# ---------------------------------------------------------------------------------------------
# CIFAR-10 python batches


def cifar_batch(images: np.ndarray, labels: np.ndarray) -> bytes:
    """A CIFAR-10 python batch: each row is 1024 red, 1024 green, 1024 blue values, row-major."""
    data = np.concatenate([images[:, c].reshape(len(images), 1024) for c in range(3)], axis=1)
    return pickle.dumps({b"batch_label": b"test", b"data": data, b"labels": [int(v) for v in labels],
                         b"filenames": [b"x.png"] * len(labels)}, protocol=2)


def write_cifar(folder: Path, n_per_batch: int = 4, seed: int = 0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = rng.integers(0, 256, (n_per_batch, 3, 32, 32), dtype=np.uint8)
        y = rng.integers(0, 10, n_per_batch)
        (folder / name).write_bytes(cifar_batch(x, y))
        batches[name] = (x, y)
    return batches


def test_cifar10_from_batches(tmp_path, monkeypatch):
    batches = write_cifar(tmp_path / "cifar-10-batches-py")
    ds = load_dataset("cifar10", root=tmp_path)
    x_tr = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)]).astype(np.float32) / 255
    y_tr = np.concatenate([batches[f"data_batch_{i}"][1] for i in range(1, 6)])
    n_val = 2  # a tenth of 20 training images
    np.testing.assert_array_equal(ds.train.x.numpy(), x_tr[:-n_val])
    np.testing.assert_array_equal(ds.val.x.numpy(), x_tr[-n_val:])
    np.testing.assert_array_equal(ds.train.y.numpy(), y_tr[:-n_val])
    np.testing.assert_array_equal(ds.test.x.numpy(), batches["test_batch"][0].astype(np.float32) / 255)
    np.testing.assert_array_equal(ds.test.y.numpy(), batches["test_batch"][1])
    assert ds.info.shape == (3, 32, 32) and ds.info.levels == 256 and ds.info.n_classes == 10
    # the layout, spelled out: data[0, 1] is the red value of row 0, column 1; data[0, 1024] green (0, 0)
    raw = pickle.loads((tmp_path / "cifar-10-batches-py" / "data_batch_1").read_bytes(), encoding="bytes")[b"data"]
    assert ds.train.x[0, 0, 0, 1].item() == pytest.approx(raw[0, 1] / 255)
    assert ds.train.x[0, 1, 0, 0].item() == pytest.approx(raw[0, 1024] / 255)
    assert ds.train.x[0, 2, 1, 0].item() == pytest.approx(raw[0, 2048 + 32] / 255)
    monkeypatch.setenv("GENBENCH_DATA", str(tmp_path))
    assert load_dataset("cifar10").info.content_hash == ds.info.content_hash


def test_cifar10_corrupt_batch(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    (folder / "data_batch_3").write_bytes(b"\x80\x02this is not a pickle")
    with pytest.raises(DataFileError, match="not a readable CIFAR-10 python batch") as e:
        load_dataset("cifar10", root=tmp_path)
    assert str(folder / "data_batch_3") in str(e.value)
    # a pickle of the wrong shape
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}))
    with pytest.raises(DataFileError, match=r"shape \(4, 100\)"):
        load_dataset("cifar10", root=tmp_path)
    # a pickle that is not a batch dict
    (folder / "data_batch_3").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(DataFileError, match="b'data' and b'labels'"):
        load_dataset("cifar10", root=tmp_path)


def test_cifar10_missing_batch(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    (folder / "test_batch").unlink()
    with pytest.raises(DataFileError) as e:
        load_dataset("cifar10", root=tmp_path)
    assert "test_batch" in str(e.value) and str(folder) in str(e.value) and "cs.toronto.edu" in str(e.value)
    missing = str(e.value).split("Looked in")[0]
    assert "data_batch" not in missing  # only what is actually missing is named
    with pytest.raises(DataFileError) as e:
        load_dataset("cifar10", root=tmp_path / "empty")
    assert all(f"data_batch_{i}" in str(e.value) for i in range(1, 6))


# ---------------------------------------------------------------------------------------------
# folder:PATH


def _png(path: Path, a: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)


def test_folder_with_class_subfolders(tmp_path):
    rng = np.random.default_rng(0)
    imgs = {}
    for cls in ("cat", "dog"):
        for i in range(3):
            a = rng.integers(0, 256, (5, 7), dtype=np.uint8)  # H=5, W=7
            _png(tmp_path / cls / f"{i}.png", a)
            imgs[(cls, i)] = a
    ds = load_dataset(f"folder:{tmp_path}")
    s = ds.split("all")
    assert s.x.shape == (6, 1, 5, 7) and ds.info.n_classes == 2 and ds.info.levels == 256
    # files in sorted order: cat/0..2 then dog/0..2; labels by sorted class folder
    want = np.stack([imgs[k] for k in sorted(imgs)])[:, None].astype(np.float32) / 255
    np.testing.assert_array_equal(s.x.numpy(), want)
    assert s.y.tolist() == [0, 0, 0, 1, 1, 1]
    assert ds.info.name == f"folder:{tmp_path}"


def test_folder_flat_rgb_unlabelled(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    _png(tmp_path / "a.png", a)
    _png(tmp_path / "b.png", a[::-1].copy())
    (tmp_path / "notes.txt").write_text("not an image")
    ds = load_dataset(f"folder:{tmp_path}")
    x = ds.split("all").x.numpy()
    assert x.shape == (2, 3, 4, 6) and ds.split("all").y is None and ds.info.n_classes is None
    np.testing.assert_array_equal(x[0], a.transpose(2, 0, 1).astype(np.float32) / 255)


def test_folder_16_bit_and_grey_alpha_pngs(tmp_path):
    from PIL import Image

    a16 = (np.arange(20, dtype=np.uint16).reshape(4, 5) * 3449)  # 0 .. 65531
    Image.fromarray(a16).save(tmp_path / "a.png")
    assert Image.open(tmp_path / "a.png").mode.startswith("I")  # really a 16-bit file
    x = load_dataset(f"folder:{tmp_path}").split("all").x.numpy()
    assert x.shape == (1, 1, 4, 5)
    # 16-bit grey levels scaled to [0, 1], to 8-bit precision (not clipped to white)
    np.testing.assert_allclose(x[0, 0], a16 / 65535, atol=1 / 510 + 1e-6)
    la = np.stack([np.arange(20, dtype=np.uint8).reshape(4, 5) * 10, np.full((4, 5), 255, np.uint8)], axis=-1)
    (tmp_path / "a.png").unlink()
    Image.fromarray(la, mode="LA").save(tmp_path / "b.png")
    x = load_dataset(f"folder:{tmp_path}").split("all").x.numpy()
    assert x.shape == (1, 1, 4, 5)  # grey with alpha is grey
    np.testing.assert_array_equal(x[0, 0], la[..., 0] / np.float32(255))


def test_folder_mixed_sizes_names_the_file_and_resize_fixes_it(tmp_path):
    _png(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    _png(tmp_path / "b.png", np.full((8, 8), 255, np.uint8))
    _png(tmp_path / "c.png", np.zeros((10, 6), np.uint8))
    with pytest.raises(DataFileError, match="image size 6x10 differs") as e:
        load_dataset(f"folder:{tmp_path}")
    assert str(tmp_path / "c.png") in str(e.value) and "resize" in str(e.value)
    ds = load_dataset(f"folder:{tmp_path}", resize=(4, 5))
    x = ds.split("all").x
    assert x.shape == (3, 1, 4, 5)
    # constant images stay constant under resizing
    assert torch.all(x[0] == 0) and torch.all(x[1] == 1)


def test_folder_errors(tmp_path):
    with pytest.raises(DataFileError, match="not a directory"):
        load_dataset(f"folder:{tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFileError, match="no images"):
        load_dataset(f"folder:{tmp_path / 'empty'}")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"not a png")
    with pytest.raises(DataFileError, match="cannot read image") as e:
        load_dataset(f"folder:{tmp_path / 'bad'}")
    assert "x.png" in str(e.value)
    with pytest.raises(ValueError, match="needs a path"):
        load_dataset("folder:")


# ---------------------------------------------------------------------------------------------
# npz:PATH


def test_npz_uint8_nhwc(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, (4, 6, 5, 3), dtype=np.uint8)
    np.savez(tmp_path / "s.npz", images=a, labels=np.arange(4))
    ds = load_dataset(f"npz:{tmp_path / 's.npz'}")
    x = ds.split("all").x.numpy()
    assert x.shape == (4, 3, 6, 5) and ds.info.levels == 256
    np.testing.assert_array_equal(x, a.transpose(0, 3, 1, 2).astype(np.float32) / 255)
    assert ds.split("all").y.tolist() == [0, 1, 2, 3]


def test_npz_float_nchw_and_grey_nhw(tmp_path):
    a = np.random.default_rng(1).random((5, 3, 4, 4)).astype(np.float64)
    np.savez(tmp_path / "f.npz", x=a)
    x = load_dataset(f"npz:{tmp_path / 'f.npz'}").split("all").x
    assert x.dtype == torch.float32 and x.shape == (5, 3, 4, 4)
    np.testing.assert_allclose(x.numpy(), a, rtol=1e-6)
    g = np.random.default_rng(2).random((6, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "g.npz", g)  # positional: arr_0
    ds = load_dataset(f"npz:{tmp_path / 'g.npz'}")
    assert ds.split("all").x.shape == (6, 1, 8, 8) and ds.info.kind == "image"
    np.testing.assert_array_equal(ds.split("all").x.numpy()[:, 0], g)
    # the content hash follows the content
    np.savez(tmp_path / "g2.npz", g * 0.5)
    assert load_dataset(f"npz:{tmp_path / 'g2.npz'}").info.content_hash != ds.info.content_hash


def test_npz_single_unknown_key_and_points(tmp_path):
    np.savez(tmp_path / "one.npz", whatever=np.zeros((3, 8, 8), np.uint8))
    assert load_dataset(f"npz:{tmp_path / 'one.npz'}").split("all").x.shape == (3, 1, 8, 8)
    pts = np.random.default_rng(0).normal(size=(10, 2)) * 5  # points are not range-checked
    np.savez(tmp_path / "pts.npz", samples=pts)
    ds = load_dataset(f"npz:{tmp_path / 'pts.npz'}")
    assert ds.info.kind == "points" and ds.info.value_range is None
    np.testing.assert_allclose(ds.split("all").x.numpy(), pts, rtol=1e-6)


def test_npz_nan_names_file(tmp_path):
    a = np.random.default_rng(0).random((5, 1, 4, 4))
    a[3, 0, 1, 2] = np.nan
    p = tmp_path / "nan.npz"
    np.savez(p, x=a)
    with pytest.raises(DataFileError, match=r"1 NaN/Inf values \(first in image 3\)") as e:
        load_dataset(f"npz:{p}")
    assert str(p) in str(e.value)


def test_npz_out_of_range_floats(tmp_path):
    p = tmp_path / "range.npz"
    np.savez(p, x=np.linspace(-1, 1, 5 * 16).reshape(5, 1, 4, 4))
    with pytest.raises(DataFileError, match=r"range over \[-1, 1\] but must lie in \[0, 1\]") as e:
        load_dataset(f"npz:{p}")
    assert str(p) in str(e.value)
    np.savez(p, x=np.full((2, 1, 4, 4), 255.0))  # 0..255 stored as float
    with pytest.raises(DataFileError, match="divide by 255"):
        load_dataset(f"npz:{p}")


def test_npz_ambiguous_keys_and_other_errors(tmp_path):
    p = tmp_path / "multi.npz"
    np.savez(p, a=np.zeros((2, 4, 4)), b=np.zeros((2, 4, 4)))
    with pytest.raises(DataFileError, match=r"no image array found.*'x'.*found keys \['a', 'b'\]"):
        load_dataset(f"npz:{p}")
    with pytest.raises(DataFileError, match="file not found"):
        load_dataset(f"npz:{tmp_path / 'missing.npz'}")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(DataFileError, match="not an .npz file: expected a zip archive"):
        load_dataset(f"npz:{tmp_path / 'junk.npz'}")
    (tmp_path / "torn.npz").write_bytes(b"PK\x03\x04torn")  # a zip that is not whole
    with pytest.raises(DataFileError, match="cannot read as .npz"):
        load_dataset(f"npz:{tmp_path / 'torn.npz'}")
    np.savez(p, x=np.zeros((2, 5, 4, 4)))
    with pytest.raises(DataFileError, match="channel axis"):
        load_dataset(f"npz:{p}")
    np.savez(p, x=np.zeros((3, 4, 4), np.uint8), y=np.arange(2))
    with pytest.raises(DataFileError, match="3 images but 2 labels"):
        load_dataset(f"npz:{p}")


# ---------------------------------------------------------------------------------------------
# registry


def test_unknown_dataset_suggests():
    with pytest.raises(UnknownNameError) as e:
        load_dataset("digts")
    msg = str(e.value)
    assert msg.startswith("Unknown dataset 'digts'. Did you mean: digits")
    assert "Available:" in msg and "mnist" in msg and "npz:" in msg
    assert isinstance(e.value, ValueError)  # the CLI turns ValueError into a clear message
    with pytest.raises(UnknownNameError, match="Did you mean: .*folder:"):
        load_dataset("foldr:/tmp/x")


def test_every_registered_dataset_is_tested_here():
    """A new dataset must come with a loader test in this file."""
    tested = {"digits", "digits-binary", "mixture-ring", "mixture-grid", "mnist", "mnist-binary", "fashion-mnist",
              "cifar10", "folder:", "npz:"}
    assert set(DATASETS.names()) == tested
