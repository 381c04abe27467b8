"""Datasets read from local files: MNIST / Fashion-MNIST IDX, CIFAR-10 python batches,
image folders (``folder:PATH``) and arrays (``npz:PATH``).

Nothing here downloads: a missing file is an error that names the file, where it was looked
for and where it can be obtained.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from genbench.data._base import Dataset, data_root, make_dataset, register_dataset

IDX_MAGIC = {2049: 1, 2051: 3}  # labels: 1-D; images: 3-D (n, rows, cols), both uint8

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
SOURCES = {
    "mnist": "http://yann.lecun.com/exdb/mnist/ (or any mirror of the four IDX files)",
    "fashion-mnist": "https://github.com/zalandoresearch/fashion-mnist (data/fashion)",
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar.html ('CIFAR-10 python version')",
}
# Validation conventions: MNIST-like: the last 10,000 of the 60,000 training images (the split of
# Goodfellow et al.'s Parzen code); CIFAR-10: the last 5,000 of the 50,000 training images.
MNIST_VAL = 10000
CIFAR_VAL = 5000
#: the fixed seed of ``mnist-binary``'s static binarisation (as ``digits-binary`` uses one)
MNIST_BINARISE_SEED = 1234


class DataFileError(ValueError):
    """A data file that is missing, corrupt or inconsistent (the message names the file)."""


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (raw or .gz): big-endian magic, dims, then uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DataFileError(f"{path}: cannot read IDX file ({e}); the file may be truncated or not gzip.") from e
    if len(data) < 8:
        raise DataFileError(f"{path}: file is {len(data)} bytes, too short for an IDX header.")
    magic = int.from_bytes(data[0:4], "big")
    if magic not in IDX_MAGIC:
        raise DataFileError(
            f"{path}: wrong magic number {magic} (expected 2049 for labels or 2051 for images); "
            "is this an MNIST IDX file?"
        )
    ndim = IDX_MAGIC[magic]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFileError(f"{path}: truncated IDX header.")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = int(np.prod(dims))
    if len(data) - header != expected:
        raise DataFileError(
            f"{path}: header promises {expected} bytes of data for shape {tuple(dims)} but the file holds "
            f"{len(data) - header}; the file is truncated or corrupt, download it again."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _find(dirs: list[Path], stem: str) -> Path | None:
    for d in dirs:
        for cand in (d / stem, d / f"{stem}.gz"):
            if cand.is_file():
                return cand
    return None


def _missing(name: str, files: list[str], dirs: list[Path]) -> DataFileError:
    where = ", ".join(str(d) for d in dirs)
    return DataFileError(
        f"{name}: missing file(s) {', '.join(files)}. Looked in: {where}. Put them in one of these folders "
        f"(set GENBENCH_DATA or data_dir to choose the root). They can be obtained from {SOURCES[name]}."
    )


def _load_idx_dataset(name: str, subdirs: list[str], root: Any, *, binarise_seed: int | None = None,
                      files_name: str | None = None) -> Dataset:
    """An MNIST-like dataset from its four IDX files (looked for as ``files_name``, default ``name``).

    With ``binarise_seed``, static binarisation: every pixel of every image is replaced once by a
    Bernoulli draw with its grey level (0..1) as probability, from one generator seeded with
    ``binarise_seed``, drawn over the 60,000 training-file images (in file order) and then the
    10,000 test images, so the splits are the same images as the grey dataset's.
    """
    files_name = files_name or name
    base = data_root(root)
    dirs = [base / s for s in subdirs] + [base]
    found = {k: _find(dirs, stem) for k, stem in MNIST_FILES.items()}
    missing = [MNIST_FILES[k] + "[.gz]" for k, p in found.items() if p is None]
    if missing:
        raise _missing(files_name, missing, dirs)
    arr = {k: read_idx(p) for k, p in found.items() if p is not None}
    for part in ("train", "test"):
        xi, yi = arr[f"{part}_images"], arr[f"{part}_labels"]
        # a valid IDX file of the wrong kind (labels where images belong, or the reverse)
        for key, want, magic in ((f"{part}_images", 3, 2051), (f"{part}_labels", 1, 2049)):
            if arr[key].ndim != want:
                raise DataFileError(
                    f"{found[key]}: expected an IDX {'image' if want == 3 else 'label'} file (magic {magic}, "
                    f"{want}-D) but it holds a {arr[key].ndim}-D array; the files may be swapped or misnamed."
                )
        if len(xi) != len(yi):
            raise DataFileError(
                f"{found[f'{part}_images']}: {len(xi)} images but {found[f'{part}_labels']} has {len(yi)} labels; "
                "the image and label files do not belong together."
            )
    x_tr = arr["train_images"][:, None].astype(np.float32) / 255.0
    y_tr = arr["train_labels"].astype(np.int64)
    x_te = arr["test_images"][:, None].astype(np.float32) / 255.0
    n_val = MNIST_VAL if len(x_tr) > 2 * MNIST_VAL else max(1, len(x_tr) // 6)
    rule = f"train = training file minus its last {n_val}; val = those last {n_val}; test = t10k"
    levels = 256
    if binarise_seed is not None:
        rng = np.random.default_rng(binarise_seed)
        x_tr = (rng.random(x_tr.shape, dtype=np.float32) < x_tr).astype(np.float32)
        x_te = (rng.random(x_te.shape, dtype=np.float32) < x_te).astype(np.float32)
        levels = 2
        rule += (f"; static binarisation with seed {binarise_seed}: pixel ~ Bernoulli(grey / 255), one draw "
                 "per pixel, training file then t10k")
    splits = {
        "train": (x_tr[:-n_val], y_tr[:-n_val]),
        "val": (x_tr[-n_val:], y_tr[-n_val:]),
        "test": (x_te, arr["test_labels"].astype(np.int64)),
    }
    return make_dataset(
        name, "image", splits, value_range=(0.0, 1.0), n_classes=10, levels=levels,
        split_rule=rule, source=str(found["train_images"].parent),
    )


@register_dataset("mnist", description="MNIST 28x28 from the four IDX files under $GENBENCH_DATA[/mnist]",
                  kind="image")
def load_mnist(root: Any = None) -> Dataset:
    return _load_idx_dataset("mnist", ["mnist", "MNIST/raw"], root)


@register_dataset("mnist-binary", description="MNIST statically binarised: pixel ~ Bernoulli(grey level), one "
                  f"fixed draw (seed {MNIST_BINARISE_SEED}); the mnist files and splits", kind="image")
def load_mnist_binary(root: Any = None) -> Dataset:
    return _load_idx_dataset("mnist-binary", ["mnist", "MNIST/raw"], root, binarise_seed=MNIST_BINARISE_SEED,
                             files_name="mnist")


@register_dataset("fashion-mnist", description="Fashion-MNIST 28x28 from IDX files under "
                  "$GENBENCH_DATA/fashion-mnist", kind="image")
def load_fashion(root: Any = None) -> Dataset:
    return _load_idx_dataset("fashion-mnist", ["fashion-mnist", "FashionMNIST/raw"], root)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
    except Exception as e:  # unpickling errors come in many types
        raise DataFileError(f"{path}: not a readable CIFAR-10 python batch ({type(e).__name__}: {e}).") from e
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        raise DataFileError(f"{path}: expected a pickled dict with b'data' and b'labels' (CIFAR-10 python version).")
    x = np.asarray(d[b"data"], dtype=np.uint8)
    y = np.asarray(d[b"labels"], dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != 3072 or len(x) != len(y):
        raise DataFileError(
            f"{path}: data has shape {x.shape} with {len(y)} labels; expected (n, 3072) uint8 and n labels."
        )
    return x.reshape(-1, 3, 32, 32), y


@register_dataset("cifar10", description="CIFAR-10 32x32x3 from the python batches in "
                  "$GENBENCH_DATA/cifar-10-batches-py", kind="image")
def load_cifar10(root: Any = None) -> Dataset:
    base = data_root(root)
    dirs = [base / "cifar-10-batches-py", base / "cifar10", base]
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    present = {d: [n for n in names if (d / n).is_file()] for d in dirs}
    d = max(dirs, key=lambda k: len(present[k]))  # the first folder holding the most batches
    if len(present[d]) < len(names):
        # name only what is missing from the most complete folder (or all six if none has any)
        raise _missing("cifar10", [n for n in names if n not in present[d]], dirs)
    tr = [_read_cifar_batch(d / n) for n in names[:5]]
    x_tr = np.concatenate([t[0] for t in tr]).astype(np.float32) / 255.0
    y_tr = np.concatenate([t[1] for t in tr])
    x_te, y_te = _read_cifar_batch(d / "test_batch")
    n_val = CIFAR_VAL if len(x_tr) > 2 * CIFAR_VAL else max(1, len(x_tr) // 10)
    splits = {
        "train": (x_tr[:-n_val], y_tr[:-n_val]),
        "val": (x_tr[-n_val:], y_tr[-n_val:]),
        "test": (x_te.astype(np.float32) / 255.0, y_te),
    }
    return make_dataset(
        "cifar10", "image", splits, value_range=(0.0, 1.0), n_classes=10, levels=256,
        split_rule=f"train = data_batch_1..5 minus the last {n_val}; val = those {n_val}; test = test_batch",
        source=str(d),
    )


def images_from_array(a: np.ndarray, source: str) -> tuple[np.ndarray, int | None]:
    """Normalise an image array to float32 NCHW in [0, 1]; returns (x, levels).

    Accepted: uint8 in 0..255 or float in [0, 1]; (N, H, W), (N, C, H, W) or (N, H, W, C) with
    C in {1, 3}; also (N, D) point sets (returned as float32 unchanged, no range check).
    """
    a = np.asarray(a)
    if a.ndim == 2:
        x = a.astype(np.float32)
        if not np.isfinite(x).all():
            raise DataFileError(f"{source}: {int((~np.isfinite(x)).sum())} NaN/Inf values in the point array.")
        return x, None
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4:
        raise DataFileError(f"{source}: expected images (N, H, W), (N, C, H, W) or (N, H, W, C); got shape {a.shape}.")
    if a.shape[1] in (1, 3):
        pass
    elif a.shape[-1] in (1, 3):
        a = a.transpose(0, 3, 1, 2)
    else:
        raise DataFileError(
            f"{source}: cannot tell the channel axis of shape {a.shape}; expected 1 or 3 channels in axis 1 (NCHW) "
            "or the last axis (NHWC)."
        )
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a, dtype=np.float32) / 255.0, 256
    if a.dtype.kind not in "fiu":
        raise DataFileError(f"{source}: unsupported dtype {a.dtype}; use uint8 0..255 or float 0..1.")
    x = a.astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        first = int(np.argmax(bad.reshape(len(x), -1).any(axis=1)))
        raise DataFileError(f"{source}: {int(bad.sum())} NaN/Inf values (first in image {first}).")
    if x.min() < 0 or x.max() > 1:
        raise DataFileError(
            f"{source}: float values range over [{x.min():.4g}, {x.max():.4g}] but must lie in [0, 1]; "
            "store uint8 0..255 or divide by 255."
        )
    return x, None


NPZ_KEYS = ("x", "images", "samples", "arr_0")


@register_dataset("npz:", description="npz:PATH - an image array (uint8 0..255 or float 0..1, NCHW or NHWC; "
                  "key x/images/samples/arr_0, optional y/labels)", kind="image")
def load_npz(path: str, **_: Any) -> Dataset:
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataFileError(f"npz:{path}: file not found (looked at {p.resolve()}).")
    with open(p, "rb") as f:
        head = f.read(6)
    if not head.startswith(b"PK"):
        # np.load on a non-zip file tries .npy, then pickle, and reports "pickled (object) data"
        what = "a .npy array (use numpy.savez to wrap it)" if head.startswith(b"\x93NUMPY") else (
            "an empty file" if not head else f"a file starting with {head!r}")
        raise DataFileError(f"{p}: not an .npz file: expected a zip archive written by numpy.savez or "
                            f"savez_compressed, found {what}. Save the samples with np.savez(path, x=images).")
    try:
        with np.load(p, allow_pickle=False) as z:
            keys = list(z.keys())
            key = next((k for k in NPZ_KEYS if k in keys), keys[0] if len(keys) == 1 else None)
            if key is None:
                raise DataFileError(f"{p}: no image array found; name it one of {NPZ_KEYS} (found keys {keys}).")
            a = z[key]
            y = next((z[k] for k in ("y", "labels") if k in keys), None)
    except DataFileError:
        raise
    except Exception as e:
        raise DataFileError(f"{p}: cannot read as .npz ({type(e).__name__}: {e}).") from e
    if a.size == 0:
        raise DataFileError(f"{p}: the array {key!r} is empty (shape {a.shape}); expected at least one image "
                            "(N >= 1) of shape (H, W), (C, H, W) or (H, W, C).")
    x, levels = images_from_array(a, str(p))
    if y is not None and len(y) != len(x):
        raise DataFileError(f"{p}: {len(x)} images but {len(y)} labels.")
    return make_dataset(
        f"npz:{path}", "points" if x.ndim == 2 else "image", {"all": (x, y)},
        value_range=None if x.ndim == 2 else (0.0, 1.0), n_classes=None, levels=levels,
        split_rule="one split 'all'", source=str(p),
    )


IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp"}


@register_dataset("folder:", description="folder:PATH - PNG/JPEG images of one size (or resize=HxW); "
                  "subfolders become labels", kind="image")
def load_folder(path: str, *, resize: tuple[int, int] | None = None, grayscale: bool | None = None,
                **_: Any) -> Dataset:
    from PIL import Image

    p = Path(path).expanduser()
    if not p.is_dir():
        raise DataFileError(f"folder:{path}: not a directory ({p.resolve()}).")
    files = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise DataFileError(f"folder:{path}: no images ({', '.join(sorted(IMAGE_EXTS))}) found under {p}.")
    classes = sorted({f.parent.relative_to(p).as_posix() for f in files})
    labelled = len(classes) > 1
    imgs, ys, size0 = [], [], None
    for f in files:
        try:
            with Image.open(f) as im:
                im.load()
                mode = im.mode
                if grayscale is None:
                    grayscale = mode in ("L", "1", "I", "I;16", "I;16B", "I;16L", "LA")
                if mode in ("I", "I;16", "I;16B", "I;16L"):
                    # 16-bit grey: Pillow's convert("L") clips at 255 instead of scaling; map 0..65535 to
                    # 0..255 (the usual /257 down-conversion) so the image keeps its grey levels
                    a16 = np.asarray(im, dtype=np.float64)
                    im = Image.fromarray(np.clip(np.round(a16 / 257.0), 0, 255).astype(np.uint8))
                im = im.convert("L" if grayscale else "RGB")
                if resize is not None:
                    im = im.resize((resize[1], resize[0]), Image.BILINEAR)
                elif size0 is None:
                    size0 = (im.size, f)
                elif im.size != size0[0]:
                    raise DataFileError(
                        f"{f}: image size {im.size[0]}x{im.size[1]} differs from {size0[1]} "
                        f"({size0[0][0]}x{size0[0][1]}); pass resize=(H, W) to resize all images."
                    )
                a = np.asarray(im, dtype=np.uint8)
        except DataFileError:
            raise
        except Exception as e:
            raise DataFileError(f"{f}: cannot read image ({type(e).__name__}: {e}).") from e
        imgs.append(a if a.ndim == 3 else a[:, :, None])
        ys.append(classes.index(f.parent.relative_to(p).as_posix()))
    x = np.stack(imgs).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    return make_dataset(
        f"folder:{path}", "image", {"all": (x, np.array(ys) if labelled else None)},
        value_range=(0.0, 1.0), n_classes=len(classes) if labelled else None, levels=256,
        split_rule="one split 'all', files in sorted order", source=str(p),
    )


