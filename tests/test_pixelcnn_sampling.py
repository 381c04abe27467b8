"""Fast (cached, Ramachandran et al. 2017) PixelCNN sampling against the naive pixel-by-pixel sampler.

Oracle: ``PixelCNN.sample(..., method="naive")``, which runs the whole network on the whole image
for every pixel. The fast sampler must return exactly its images for the same seed, and, the
reason it can, bit-identical logits at every pixel; checked over several seeds, 1- and
3-channel images, odd shapes and kernels, float64 weights and a batch that spans two chunks.
"""

from __future__ import annotations

import pytest
import torch

from baselines.pixelcnn import model as pixelcnn_model
from baselines.pixelcnn.config import PixelCNNConfig
from baselines.pixelcnn.config import default_config as pixelcnn_default_config
from baselines.pixelcnn.model import PixelCNN
from baselines.pixelcnn.nets import IncrementalState
from genbench.data import DatasetInfo


def fake_info(shape, levels):
    return DatasetInfo(name="fake", kind="image", shape=tuple(shape), value_range=(0.0, 1.0), n_classes=None,
                       content_hash="0", split_sizes={}, levels=levels)


def make_model(shape, levels, *, seed=0, channels=16, n_blocks=2, first_kernel=5, kernel=3, head=32, std=0.3):
    """A PixelCNN with spread-out random weights, so that its conditionals are far from one-hot
    (a near-deterministic model would make any two samplers agree)."""
    torch.manual_seed(seed)
    info = fake_info(shape, levels)
    model = PixelCNN(PixelCNNConfig(channels=channels, n_blocks=n_blocks, first_kernel=first_kernel, kernel=kernel,
                                    head=head), info)
    for p in model.parameters():
        torch.nn.init.normal_(p, 0.0, std)
    return model


CONFIGS = [
    pytest.param(dict(shape=(1, 8, 8), levels=17), id="1ch-8x8-L17"),
    pytest.param(dict(shape=(3, 6, 5), levels=8, first_kernel=3, n_blocks=3), id="3ch-6x5-L8"),
    pytest.param(dict(shape=(3, 4, 7), levels=256, first_kernel=7, kernel=5, channels=8, n_blocks=1),
                 id="3ch-4x7-L256"),
    pytest.param(dict(shape=(1, 5, 3), levels=2, n_blocks=0), id="1ch-5x3-L2-no-blocks"),
]


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_fast_sampler_gives_the_naive_samples(config, seed):
    model = make_model(**config)
    fast = model.sample(64, seed=seed)
    naive = model.sample(64, seed=seed, method="naive")
    assert torch.equal(fast, naive)
    # not a trivial agreement: the images vary, across samples and with the seed
    levels = config["levels"]
    assert len(torch.unique(fast)) >= min(levels, 3)
    assert not torch.equal(fast, model.sample(64, seed=seed + 1))


def test_fast_sampler_matches_at_the_default_digits_size():
    """The configuration the issue timed: digits' default architecture, 17 grey levels."""
    info = fake_info((1, 8, 8), 17)
    torch.manual_seed(3)
    model = PixelCNN(pixelcnn_default_config(info), info)
    for seed in (0, 7):
        assert torch.equal(model.sample(100, seed=seed), model.sample(100, seed=seed, method="naive"))


def test_fast_sampler_matches_across_chunks_and_in_float64(monkeypatch):
    # a small chunk, so a 50-image call runs as 4 chunks (the last one shorter)
    monkeypatch.setattr(pixelcnn_model, "_CHUNK", 16)
    model = make_model((2, 4, 4), 5, first_kernel=3)
    assert torch.equal(model.sample(50, seed=4), model.sample(50, seed=4, method="naive"))
    model = model.double()
    assert torch.equal(model.sample(50, seed=5), model.sample(50, seed=5, method="naive"))


@pytest.mark.parametrize("config", CONFIGS)
def test_cached_logits_are_bit_identical_to_the_full_pass(config):
    """The reason samples agree: at every pixel, on a random partly-drawn image, the cached
    computation gives the very bits of the full network's logits (no tolerance)."""
    model = make_model(**config).eval()
    c, h, w = config["shape"]
    levels = config["levels"]
    gen = torch.Generator().manual_seed(0)
    classes = torch.randint(0, levels, (32, c, h, w), generator=gen)
    x = model._net_input(classes)
    fill = float(model._net_input(torch.zeros((), dtype=torch.long)))
    with torch.no_grad():
        state = IncrementalState(model.net, 32, (c, h, w), fill)
        drawn = torch.zeros_like(classes)
        for i in range(h):
            for j in range(w):
                full = model.net(model._net_input(drawn))[:, :, :, i, j]
                cached = state.logits_at(i, j)
                assert torch.equal(cached, full), f"pixel ({i}, {j}): max diff {(cached - full).abs().max()}"
                drawn[:, :, i, j] = classes[:, :, i, j]
                state.set_pixel(i, j, x[:, :, i, j])


def test_fast_sampler_runs_no_full_pass_and_naive_runs_one_per_pixel():
    """What makes it fast: the fast sampler never calls the network's full forward pass; the
    naive one calls it once per pixel (H * W times)."""
    model = make_model((1, 4, 3), 4)
    calls = []
    model.net.register_forward_hook(lambda *_: calls.append(1))
    model.sample(10, seed=0)
    assert len(calls) == 0
    model.sample(10, seed=0, method="naive")
    assert len(calls) == 4 * 3


def test_sample_method_is_checked():
    model = make_model((1, 2, 2), 2)
    with pytest.raises(ValueError, match="method must be 'fast' or 'naive'"):
        model.sample(2, seed=0, method="cached")
    assert model.sample(0, seed=0, method="naive").shape == (0, 1, 2, 2)
