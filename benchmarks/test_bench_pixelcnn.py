"""PixelCNN sampling: the cached sampler (Ramachandran et al. 2017) against the naive full-pass sampler.

Digits' default PixelCNN (8x8, 17 grey levels, 64 channels, 4 residual blocks; weights from a
fixed seed: the cost does not depend on training). ``genbench`` is ``sample(n, seed=0)`` (the
default, cached method); ``naive`` is ``sample(n, seed=0, method="naive")``, one full network
pass per pixel. The fast sampler runs at 256, 1,024 and 10,000 images (the protocol's sample
count); the naive one, ~60x slower, at 256 and 1,024 only. Where both run, their images are
checked to be identical.
"""

from __future__ import annotations

from functools import cache

import pytest
import torch
from _bench import run_timed

CASES = {"n256": 256, "n1024": 1024, "n10000": 10_000}


@cache
def _model():
    from baselines.pixelcnn.config import default_config
    from baselines.pixelcnn.model import PixelCNN
    from genbench.data import load_dataset

    info = load_dataset("digits").info
    torch.manual_seed(0)
    return PixelCNN(default_config(info), info)


@cache
def _fast(n: int) -> torch.Tensor:
    return _model().sample(n, seed=0)


@pytest.mark.parametrize("impl", ["genbench", "naive"])
@pytest.mark.parametrize("case", list(CASES))
def test_pixelcnn_sampling(benchmark, case, impl):
    n = CASES[case]
    if impl == "naive" and n > 1024:
        pytest.skip("the naive sampler takes minutes at this size; its growth is linear (see n256, n1024)")
    model = _model()
    method = "fast" if impl == "genbench" else "naive"
    out = run_timed(benchmark, lambda: model.sample(n, seed=0, method=method), suite="pixelcnn-sampling",
                    case=case, impl=impl, rounds=3 if impl == "genbench" and n <= 1024 else 1, n=n,
                    method=method, shape=list(model.shape), levels=model.levels, config="default digits")
    benchmark.extra_info["images_per_s"] = n / benchmark.stats.stats.median
    assert out.shape == (n, 1, 8, 8)
    if n <= 1024:
        assert torch.equal(out, _fast(n))
