"""Dataset records and the dataset registry."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genbench._io import hash_arrays
from genbench._registry import Registry


def _load_builtin() -> None:
    from genbench.data import embedded, files, mixtures  # noqa: F401  (registers on import)


DATASETS: Registry[Any] = Registry("dataset", loader=_load_builtin)
register_dataset = DATASETS.register

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is: enough to rebuild a model for it and to name a protocol.

    ``shape`` is the per-example shape: (C, H, W) for images, (D,) for points.
    ``kind`` is ``"image"`` or ``"points"``. ``levels`` is the number of distinct values per
    pixel for discrete data (2 for binary, 17 for digits, 256 for 8-bit images), else None.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    value_range: tuple[float, float] | None
    n_classes: int | None
    content_hash: str
    split_sizes: dict[str, int]
    split_seed: int | None = None
    split_rule: str = ""
    levels: int | None = None
    source: str = ""

    @property
    def dim(self) -> int:
        return int(np.prod(self.shape))

    @property
    def binary(self) -> bool:
        return self.levels == 2

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        d["value_range"] = list(self.value_range) if self.value_range is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetInfo:
        d = dict(d)
        d["shape"] = tuple(d["shape"])
        if d.get("value_range") is not None:
            d["value_range"] = tuple(d["value_range"])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class Split:
    """One split: ``x`` float32 (N, *shape), ``y`` int64 (N,) or None."""

    x: torch.Tensor
    y: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class Dataset:
    """A loaded dataset: its info and its splits (``train``, ``val``, ``test``, or ``all``)."""

    info: DatasetInfo
    splits: dict[str, Split] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.info.name

    def split(self, name: str) -> Split:
        if name not in self.splits:
            raise ValueError(
                f"Dataset {self.name!r} has no split {name!r}; it has: {', '.join(self.splits)}."
            )
        return self.splits[name]

    @property
    def train(self) -> Split:
        return self.split("train")

    @property
    def val(self) -> Split:
        return self.split("val")

    @property
    def test(self) -> Split:
        return self.split("test")


def make_dataset(
    name: str,
    kind: str,
    splits: dict[str, tuple[np.ndarray, np.ndarray | None]],
    *,
    value_range: tuple[float, float] | None,
    n_classes: int | None,
    split_seed: int | None = None,
    split_rule: str = "",
    levels: int | None = None,
    source: str = "",
    cls: type[Dataset] = Dataset,
    **kwargs: Any,
) -> Dataset:
    """Build a Dataset from numpy splits, computing the content hash over all of them."""
    arrays: list[Any] = []
    tsplits: dict[str, Split] = {}
    for sname, (x, y) in splits.items():
        x = np.ascontiguousarray(x, dtype=np.float32)
        arrays += [x, y]
        tsplits[sname] = Split(
            torch.from_numpy(x), torch.from_numpy(np.asarray(y, dtype=np.int64)) if y is not None else None
        )
    first = next(iter(tsplits.values()))
    info = DatasetInfo(
        name=name,
        kind=kind,
        shape=tuple(first.x.shape[1:]),
        value_range=value_range,
        n_classes=n_classes,
        content_hash=hash_arrays(*arrays, extra=name + "|" + ",".join(splits)),
        split_sizes={k: len(v) for k, v in tsplits.items()},
        split_seed=split_seed,
        split_rule=split_rule,
        levels=levels,
        source=source,
    )
    return cls(info=info, splits=tsplits, **kwargs)


def seeded_split(n: int, seed: int, fractions: tuple[float, float]) -> dict[str, np.ndarray]:
    """Deterministic permutation split into train / val / test index arrays.

    ``fractions`` = (val_fraction, test_fraction); the rest is train.
    """
    perm = np.random.default_rng(seed).permutation(n)
    n_val, n_test = round(n * fractions[0]), round(n * fractions[1])
    return {
        "train": np.sort(perm[n_val + n_test :]),
        "val": np.sort(perm[:n_val]),
        "test": np.sort(perm[n_val : n_val + n_test]),
    }


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Where local data files are read from: the argument, else $GENBENCH_DATA, else ./data."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("GENBENCH_DATA")
    return Path(env).expanduser() if env else Path("data")


def load_dataset(name: str, *, root: str | os.PathLike | None = None, **options: Any) -> Dataset:
    """Load a dataset by name (``digits``, ``mnist``, ``folder:PATH``, ``npz:PATH``, ...).

    Examples
    --------
    >>> ds = load_dataset("digits")
    >>> ds.train.x.shape[1:]
    torch.Size([1, 8, 8])
    """
    entry = DATASETS.entry(name)
    if entry.name.endswith(":"):
        arg = name.split(":", 1)[1]
        if not arg:
            raise ValueError(f"{entry.name} needs a path after the colon, e.g. {entry.name}samples.npz")
        return entry.obj(arg, **options)
    return entry.obj(root=root, **options)
