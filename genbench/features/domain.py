"""``domain:<dataset>``: a small CNN classifier trained by genbench on the dataset's labelled train split.

Its softmax gives the Inception Score's p(y|x) and its penultimate layer the FID/KID/PR
features: the established practice for MNIST-like data, where ImageNet's Inception sees
out-of-domain images. Training is deterministic from a seed (on CPU, bit-for-bit for a given
torch build and thread count), and the weights are cached on disk under a key built from the
dataset's content hash and the architecture / training config, so that every later run loads
them. The held-out (test split) accuracy is recorded with the weights and with every result
that uses them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genbench._io import atomic_torch_save, atomic_write_json, hash_arrays, hash_text
from genbench._runtime import seeded_generator
from genbench.features._base import Extractor, cache_root, resolve_device

# bump when the architecture or the training procedure changes: it is part of the cache key
ARCH_VERSION = "domain-cnn-v3"


@dataclass(frozen=True)
class DomainClassifierConfig:
    """Architecture and training of the domain classifier (every field is part of the cache key).

    ``width`` / ``hidden`` ``None``: 16 / 64 for images up to 16 pixels high (digits), else 32 / 128.
    ``epochs=None`` picks enough epochs for about 1500 optimiser steps, between 3 and 30.
    """

    width: int | None = None
    hidden: int | None = None
    epochs: int | None = None
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0

    def n_epochs(self, n_train: int) -> int:
        if self.epochs is not None:
            return int(self.epochs)
        steps_per_epoch = math.ceil(n_train / self.batch_size)
        return max(3, min(30, math.ceil(1500 / steps_per_epoch)))

    def resolved(self, height: int) -> DomainClassifierConfig:
        """This config with ``width`` and ``hidden`` fixed for images of the given height."""
        small = height <= 16
        return dataclasses.replace(self, width=self.width or (16 if small else 32),
                                   hidden=self.hidden or (64 if small else 128))


class DomainCNN(nn.Module):
    """conv-conv-(pool)-conv-pool-adaptive-pool-fc(hidden)-fc(classes) for 8x8 to 32x32 inputs.

    Images (N, C, H, W) in [0, 1]; ``forward`` returns (features (N, hidden), logits (N, classes)),
    the features being the penultimate layer's pre-activations, centred and scaled by constants
    fixed from the train split (see ``forward`` and ``set_feature_normalisation``).
    """

    def __init__(self, in_channels: int, n_classes: int, *, height: int, width: int = 16, hidden: int = 64):
        super().__init__()
        c1, c2 = width, 2 * width
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, c1, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c1, c1, 3, padding=1), nn.ReLU(),
        ]
        if height >= 16:  # 28x28 / 32x32: one more halving so the pooled map stays informative
            layers.append(nn.MaxPool2d(2))
        layers += [nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(4)]
        self.body = nn.Sequential(*layers)
        self.fc1 = nn.Linear(c2 * 16, hidden)
        self.fc2 = nn.Linear(hidden, n_classes)
        # fixed affine read-out of the features, set from the train split after training (see
        # set_feature_normalisation); buffers, so they are in the state dict and the weights hash
        self.register_buffer("feat_mean", torch.zeros(hidden))
        self.register_buffer("feat_scale", torch.ones(()))

    @torch.no_grad()
    def set_feature_normalisation(self, x: torch.Tensor, batch: int = 1024) -> None:
        """Centre features on their train-split mean and scale them to unit mean variance per dimension.

        KID's kernel (x.y/d + 1)^3 is designed for features whose x.y/d is O(1) (as Inception's
        pool3 is); raw pre-activations here reach ~60, where the cubic kernel is dominated by a
        few large products and KID's variance explodes. One shift and one scalar keep FID's
        geometry (FID scales by 1/scale^2) and leave precision/recall and density/coverage unchanged.
        """
        self.feat_mean.zero_()
        self.feat_scale.fill_(1.0)
        f = torch.cat([self(x[i:i + batch])[0].double() for i in range(0, len(x), batch)])
        self.feat_mean.copy_(f.mean(0).float())
        self.feat_scale.fill_(float(f.var(0).mean().sqrt()))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x * 2.0 - 1.0).flatten(1)  # centre [0, 1] inputs
        # features before the ReLU: units that never fire would be zero-variance dimensions after
        # it (a singular covariance for FID); before it the layer is a full-rank linear map
        pre = self.fc1(h)
        return (pre - self.feat_mean) / self.feat_scale, self.fc2(torch.relu(pre))


def _accuracy(model: DomainCNN, x: torch.Tensor, y: torch.Tensor, batch: int = 1024) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += int((model(x[i:i + batch])[1].argmax(1) == y[i:i + batch]).sum())
    return correct / max(1, len(x))


def train_domain_classifier(x: torch.Tensor, y: torch.Tensor, n_classes: int,
                            config: DomainClassifierConfig) -> DomainCNN:
    """Train the CNN on (x, y) on CPU, deterministically from ``config.seed``.

    The global torch RNG is left as it was: initialisation runs under ``fork_rng`` and the data
    order comes from a private generator. Training runs on one thread: the weights are then the
    same whatever the caller's thread count, and these small convolutions run faster that way
    (measured here: 4.6 ms/step on one thread, 90 ms/step on two busy cores).
    """
    config = config.resolved(x.shape[2])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(x, y, n_classes, config)
    finally:
        torch.set_num_threads(threads)


def _train(x: torch.Tensor, y: torch.Tensor, n_classes: int, config: DomainClassifierConfig) -> DomainCNN:
    assert config.width is not None and config.hidden is not None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = DomainCNN(x.shape[1], n_classes, height=x.shape[2], width=config.width, hidden=config.hidden)
    gen = seeded_generator(config.seed)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    epochs = config.n_epochs(len(x))
    steps = epochs * math.ceil(len(x) / config.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), config.batch_size):
            idx = perm[i:i + config.batch_size]
            loss = loss_fn(model(x[idx])[1], y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    model.set_feature_normalisation(x)
    return model


def _weights_hash(state_dict: dict[str, torch.Tensor]) -> str:
    keys = sorted(state_dict)
    return hash_arrays(*(state_dict[k] for k in keys), extra="|".join(keys))


def _safe(name: str) -> str:
    s = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return s if len(s) <= 40 else s[:24] + "-" + hash_text(name)[:8]


class DomainClassifier(Extractor):
    """The trained classifier as a feature extractor.

    Attributes
    ----------
    accuracy : float
        Accuracy on the dataset's test split (held out from training).
    val_accuracy : float or None
        Accuracy on the validation split, where the dataset has one.
    weights_hash : str
        Hash of the trained weights; ``id`` is ``domain-<dataset>-<h>`` with ``h`` the first 8
        digits of a hash of the weights hash and the architecture version.
    cache_path : Path
        The cached weights file.
    """

    resize = "none"
    max_batch = 1024
    has_probs = True

    def __init__(self, dataset: str, model: DomainCNN, meta: dict[str, Any], cache_path: Path,
                 device: torch.device):
        self.dataset = dataset
        self.model = model.to(device).eval()
        self.device = device
        self.meta = meta
        self.cache_path = cache_path
        self.weights_hash = meta["weights_hash"]
        self.accuracy = float(meta["test_accuracy"])
        self.val_accuracy = meta.get("val_accuracy")
        self.feature_dim = int(meta["config"]["hidden"])
        self.n_classes = int(meta["n_classes"])
        self.input_shape = tuple(meta["input_shape"])
        # the id hashes the weights and the architecture version: the same weights read out at
        # another layer are other features
        self.id = f"domain-{_safe(dataset)}-{hash_text(ARCH_VERSION + ':' + self.weights_hash)[:8]}"

    @property
    def info(self) -> dict[str, Any]:
        return {"id": self.id, "kind": "domain classifier", "dataset": self.dataset,
                "dataset_hash": self.meta["dataset_hash"], "test_accuracy": self.accuracy,
                "val_accuracy": self.val_accuracy, "weights_hash": self.weights_hash,
                "config": self.meta["config"], "arch": self.meta["arch"]}

    def _nets(self) -> list[torch.nn.Module]:
        return [self.model]

    @torch.no_grad()
    def features_and_probs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.check_input_shape(tuple(x.shape[1:]))
        feats, logits = self.model(x.to(self.device, torch.float32))
        # softmax in float64 so that IS matches a float64 log-softmax of the same logits
        return feats, torch.softmax(logits.double(), dim=1)

    def __repr__(self) -> str:
        return f"<DomainClassifier {self.id} test accuracy {self.accuracy:.4f}>"


def _load_cached(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        sd, meta = blob["state_dict"], json.loads(blob["meta"])
        if _weights_hash(sd) != meta["weights_hash"]:
            raise ValueError("weights do not match their recorded hash")
        return sd, meta
    except Exception as e:  # a corrupt or foreign file: say so and retrain over it
        warnings.warn(f"{path}: unreadable cached domain classifier ({type(e).__name__}: {e}); retraining.",
                      stacklevel=3)
        return None


def weights_cache_key(info: Any, config: DomainClassifierConfig) -> tuple[str, dict[str, Any]]:
    """Cache key of trained weights: the dataset's name and content hash, shape and classes, the
    (resolved) architecture / training config and the architecture version; and its material."""
    material = {"arch": ARCH_VERSION, "config": dataclasses.asdict(config.resolved(info.shape[1])),
                "dataset": info.name, "dataset_hash": info.content_hash, "shape": list(info.shape),
                "n_classes": info.n_classes}
    return hash_text(json.dumps(material, sort_keys=True)), material


def build_domain_classifier(dataset: str, *, device: str | torch.device | None = None,
                            cache_dir: str | os.PathLike | None = None, seed: int = 0,
                            config: DomainClassifierConfig | None = None, **load_options: Any) -> DomainClassifier:
    """Load the cached classifier for ``dataset`` or train and cache it.

    Parameters
    ----------
    dataset : str
        A labelled image dataset with ``train`` and ``test`` splits (``digits``, ``mnist``,
        ``cifar10``, ...), loaded with :func:`genbench.data.load_dataset`.
    device : str, optional
        Where features are computed (training always runs on CPU, for determinism).
    cache_dir : path, optional
        Cache root (else $GENBENCH_CACHE, else ~/.cache/genbench); weights go to
        ``<root>/domain/<dataset>-<key>.pt`` with a JSON sidecar, written atomically.
    seed : int
        Training seed (part of the cache key).
    config : DomainClassifierConfig, optional
        Architecture / training; its ``seed`` is replaced by ``seed``.

    Examples
    --------
    >>> clf = build_domain_classifier("digits", cache_dir="/tmp/genbench-doc-cache")  # doctest: +SKIP
    >>> clf.accuracy > 0.95  # doctest: +SKIP
    True
    """
    from genbench.data import load_dataset

    ds = load_dataset(dataset, **load_options)
    info = ds.info
    if info.kind != "image" or not info.n_classes:
        raise ValueError(
            f"domain:{dataset} needs a labelled image dataset; {dataset!r} is kind={info.kind!r} with "
            f"n_classes={info.n_classes}. Use the 'pixels' extractor (or inception-v3-compat for RGB images)."
        )
    for s in ("train", "test"):
        if s not in ds.splits or ds.splits[s].y is None:
            raise ValueError(
                f"domain:{dataset} trains on the labelled 'train' split and reports accuracy on 'test'; {dataset!r} "
                f"has splits {', '.join(ds.splits)} and needs a labelled {s!r} split. Use a labelled dataset with "
                "train and test splits, or 'pixels'."
            )
    config = dataclasses.replace(config or DomainClassifierConfig(), seed=int(seed)).resolved(info.shape[1])
    key, key_material = weights_cache_key(info, config)
    path = cache_root(cache_dir) / "domain" / f"{_safe(info.name)}-{key}.pt"
    loaded = _load_cached(path)
    if loaded is not None:
        sd, meta = loaded
        model = DomainCNN(info.shape[0], info.n_classes, height=info.shape[1], width=config.width,
                          hidden=config.hidden)
        model.load_state_dict(sd)
    else:
        train, test = ds.split("train"), ds.split("test")
        model = train_domain_classifier(train.x, train.y, info.n_classes, config)
        sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
        val = ds.splits.get("val")
        meta = {
            **key_material,
            "key": key,
            "input_shape": list(info.shape),
            "weights_hash": _weights_hash(sd),
            "test_accuracy": _accuracy(model, test.x, test.y),
            "val_accuracy": _accuracy(model, val.x, val.y) if val is not None and val.y is not None else None,
            "train_accuracy": _accuracy(model, train.x, train.y),
            "n_train": len(train), "n_test": len(test), "epochs": config.n_epochs(len(train)),
            "torch": torch.__version__,
        }
        # meta travels as a JSON string: torch.load(weights_only=True) accepts it and it stays exact
        atomic_torch_save(path, {"state_dict": sd, "meta": json.dumps(meta, sort_keys=True)})
        atomic_write_json(path.with_suffix(".json"), meta)
    return DomainClassifier(info.name, model, meta, path, resolve_device(device))
