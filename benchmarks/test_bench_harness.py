"""Harness overhead: training and feature extraction through genbench vs a bare PyTorch loop doing the same work.

- ``train``: :func:`genbench.harness.loop.train` on digits (VAE family, default digits
  architecture, batch 64, in memory, no checkpoints, no progress bar, one validation at the end)
  against a bare loop that builds the same model from the same seed and calls the same
  ``training_step`` on the same batches (a seeded permutation per epoch), then scores the
  validation split once. The difference is the harness's own work (data order bookkeeping, loss
  windows, checks, selection).
- ``features``: :func:`genbench.features.extract` with the digits domain classifier against a
  bare ``torch.no_grad()`` loop over batches of the same size calling the same network, softmax
  in float64 and copying into float64 arrays.

Each at three sizes (training steps; number of images), so the growth with n shows; the bare
loop's outputs are checked (bit-identical features; a trained model with finite validation scores).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import torch
from _bench import run_timed

TRAIN_STEPS = (100, 200, 400)
FEATURE_SIZES = (1797, 7188, 28752)  # digits x 1, x 4, x 16
BATCH = 64


@cache
def _digits():
    from genbench.data import load_dataset

    return load_dataset("digits")


def _train_overrides(steps: int) -> dict:
    return {"steps": steps, "batch_size": BATCH, "checkpoint_every": 0, "val_every": 0, "log_every": 10,
            "device": "cpu", "progress": False, "plot": False, "threads": None}


def harness_train(steps: int):
    from genbench.harness.loop import train

    return train("vae", _digits(), seed=0, train_overrides=_train_overrides(steps)).model


def bare_train(steps: int):
    from baselines.vae.config import default_config
    from baselines.vae.model import VAE
    from genbench.harness.base import StepContext

    ds = _digits()
    torch.manual_seed(0)
    model = VAE(default_config(ds.info), ds.info)
    model.train()
    optimizers = model.configure_optimizers()
    gen = torch.Generator().manual_seed(1)
    x = ds.train.x
    per_epoch = len(x) // BATCH
    perm = None
    for step in range(1, steps + 1):
        pos = (step - 1) % per_epoch
        if pos == 0:
            perm = torch.randperm(len(x), generator=gen)
        ctx = StepContext(step, torch.device("cpu"), amp=False, generator=gen)
        model.training_step(x[perm[pos * BATCH:(pos + 1) * BATCH]], ctx, optimizers)
    model.eval()
    with torch.no_grad():
        model.validation_scores(ds.splits["val"].x)
    return model


@pytest.mark.parametrize("impl", ["genbench", "bare-pytorch"])
@pytest.mark.parametrize("steps", TRAIN_STEPS)
def test_training_overhead(benchmark, steps, impl):
    fn = harness_train if impl == "genbench" else bare_train
    model = run_timed(benchmark, fn, steps, suite="harness-train", case=f"vae-digits-{steps}-steps", impl=impl,
                      rounds=3, warmup_rounds=1, steps=steps, batch_size=BATCH, family="vae")
    # the same model either way, and trained: its validation scores are finite
    val = _digits().splits["val"].x
    with torch.no_grad():
        assert all(np.isfinite(v) for v in model.validation_scores(val).values())


@cache
def _extractor():
    from genbench.features import get_extractor

    return get_extractor("domain:digits")


@cache
def _images(n: int) -> torch.Tensor:
    x = _digits().splits
    allx = torch.cat([x["train"].x, x["val"].x, x["test"].x])
    return allx.repeat((n + len(allx) - 1) // len(allx), 1, 1, 1)[:n].contiguous()


def harness_features(x):
    from genbench.features import extract

    return extract(_extractor(), x, batch_size=256)["features"]


def bare_features(x):
    net = _extractor().model
    feats = np.empty((len(x), _extractor().feature_dim), dtype=np.float64)
    probs = np.empty((len(x), _extractor().n_classes), dtype=np.float64)
    with torch.no_grad():
        for i in range(0, len(x), 256):
            f, logits = net(x[i:i + 256].float())
            feats[i:i + len(f)] = f.double().numpy()
            probs[i:i + len(f)] = torch.softmax(logits.double(), dim=1).numpy()
    return feats


@pytest.mark.parametrize("impl", ["genbench", "bare-pytorch"])
@pytest.mark.parametrize("n", FEATURE_SIZES)
def test_feature_extraction_overhead(benchmark, n, impl):
    x = _images(n)
    _extractor()  # trained (or loaded from the cache) outside the timing
    fn = harness_features if impl == "genbench" else bare_features
    feats = run_timed(benchmark, fn, x, suite="harness-features", case=f"domain-digits-n{n}", impl=impl,
                      rounds=3, warmup_rounds=1, n=n, batch_size=256, extractor="domain:digits")
    # the same work: bit-identical features (same network, same batches)
    np.testing.assert_array_equal(feats[:512], bare_features(x[:512]))
