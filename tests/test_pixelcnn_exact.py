"""PixelCNN's exact NLL equals the chain rule evaluated one pixel at a time.

The oracle is the definition of the autoregressive likelihood: for each pixel i in raster
order, feed the image with pixels >= i unknown (zeroed, or replaced by noise), read the
conditional for pixel i, and sum log p(x_i | x_<i). ``log_prob`` computes all conditionals in
one masked pass; any leak of future pixels, a wrong class mapping, or a wrong sum breaks the
equality. Float64 models, so the comparison is of the maths, not of float32 rounding.
"""

from __future__ import annotations

import pytest
import torch

from baselines.pixelcnn.config import PixelCNNConfig, default_config
from baselines.pixelcnn.model import PixelCNN
from genbench.data import DatasetInfo, load_dataset


def make_model(shape, levels, *, seed=0, **cfg):
    info = DatasetInfo(name="tiny", kind="image", shape=shape, value_range=(0.0, 1.0), n_classes=None,
                       content_hash="0", split_sizes={}, levels=levels)
    torch.manual_seed(seed)
    model = PixelCNN(PixelCNNConfig(**{"channels": 8, "n_blocks": 2, "first_kernel": 3, "head": 16, **cfg}), info)
    for p in model.parameters():  # sharper conditionals than the default init, so errors show
        torch.nn.init.normal_(p, 0.0, 0.3)
    return model.double().eval()


@torch.no_grad()
def chain_rule_log_prob(model, x, *, fill):
    """sum_i log p(x_i | x_<i), one pixel at a time, hiding pixels >= i behind ``fill``.

    x : (1, C, H, W) on the level grid; fill : "zero" or "noise" (random levels).
    """
    _, c, h, w = x.shape
    levels = model.levels
    classes = torch.round(x * (levels - 1)).long()
    g = torch.Generator().manual_seed(123)
    total = torch.zeros((), dtype=torch.float64)
    for p in range(h * w):
        i, j = divmod(p, w)
        seen = x.clone().view(1, c, h * w)
        if fill == "zero":
            seen[:, :, p:] = 0.0
        else:
            seen[:, :, p:] = torch.randint(0, levels, (1, c, h * w - p), generator=g).double() / (levels - 1)
        logits = model.logits(seen.view(1, c, h, w))[0, :, :, i, j]  # (levels, C)
        logp = torch.log_softmax(logits.double(), dim=0)
        total = total + logp.gather(0, classes[0, :, i, j].view(1, c)).sum()
    return total


@pytest.mark.parametrize("fill", ["zero", "noise"])
@pytest.mark.parametrize("shape,levels", [((1, 3, 3), 2), ((1, 4, 4), 5), ((3, 3, 4), 4)])
def test_exact_nll_equals_sum_of_one_pixel_conditionals(shape, levels, fill):
    model = make_model(shape, levels)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, levels, (3, *shape), generator=g).double() / (levels - 1)
    lp = model.log_prob(x)
    for k in range(len(x)):
        ref = chain_rule_log_prob(model, x[k:k + 1], fill=fill)
        assert abs(float(lp[k]) - float(ref)) < 1e-5, (k, float(lp[k]), float(ref))


def test_exact_nll_on_a_digit_with_the_default_architecture():
    """The default digits architecture (7x7 type-A first layer, 17 levels) on real digits."""
    ds = load_dataset("digits")
    torch.manual_seed(0)
    model = PixelCNN(default_config(ds.info), ds.info).double().eval()
    x = ds.test.x[:2].double()
    lp = model.log_prob(x)
    for k in range(2):
        assert abs(float(lp[k]) - float(chain_rule_log_prob(model, x[k:k + 1], fill="noise"))) < 1e-5


def test_float32_log_prob_matches_the_float64_chain_rule():
    """The float32 path used in practice agrees with the float64 oracle to float32 accuracy."""
    model = make_model((1, 4, 4), 17)
    x = torch.randint(0, 17, (2, 1, 4, 4), generator=torch.Generator().manual_seed(2)).double() / 16
    ref = [float(chain_rule_log_prob(model, x[k:k + 1], fill="zero")) for k in range(2)]
    lp32 = model.float().log_prob(x.float())
    assert lp32.dtype == torch.float32
    assert torch.allclose(lp32.double(), torch.tensor(ref, dtype=torch.float64), rtol=1e-5, atol=1e-4)


def test_a_leaky_mask_is_detected():
    """Guard on the oracle: with type B in place of type A in the first layer, pixel i sees itself,
    and the one-pass NLL no longer equals the chain rule (nor sums to one)."""
    model = make_model((1, 3, 3), 3)
    model.net.first.mask[0, 0, 1, 1] = 1.0  # turn the type-A mask into type B
    x = torch.randint(0, 3, (1, 1, 3, 3), generator=torch.Generator().manual_seed(0)).double() / 2
    assert abs(float(model.log_prob(x)[0]) - float(chain_rule_log_prob(model, x, fill="noise"))) > 1e-3
