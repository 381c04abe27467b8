"""Quality after the default budget on ``digits``: the VAE and the AAE must clearly beat the
independent-pixels control, in likelihood (same discrete units, same test images) and in how
often an independent judge recognises their samples as digits.

Measured here (seed 0, one CPU core): VAE test ELBO -94.2 nats, AAE test IWAE-64 about -96,
independent pixels exact test NLL 107.5 nats; recognition rates VAE ~0.2, AAE ~0.2,
independent pixels ~0.02, real test digits ~0.58.
"""

from __future__ import annotations

import pytest
import torch
from quality_utils import recognition_rate

from genbench.harness import build_generator, train


@pytest.fixture(scope="module")
def independent_pixels(digits):
    ip, _ = build_generator("independent-pixels", digits, seed=0)
    return ip, recognition_rate(ip.sample(1000, seed=1))


def check_recognisable(model, independent_pixels) -> None:
    _, rate_ip = independent_pixels
    rate = recognition_rate(model.sample(1000, seed=1))
    assert rate > max(0.1, 4 * rate_ip), f"recognition rate {rate:.3f} vs independent pixels {rate_ip:.3f}"


def test_vae_beats_independent_pixels(digits, independent_pixels):
    res = train("vae", digits, seed=0, run=None)
    assert res.finished and res.selected == "best"
    ip, _ = independent_pixels
    elbo = res.model.log_prob(digits.test.x).mean().item()  # lower bound, nats
    nll_ip = -ip.log_prob(digits.test.x).mean().item()  # exact, nats
    assert elbo > -nll_ip + 5, f"VAE test ELBO {elbo:.2f} vs independent pixels -{nll_ip:.2f}"
    check_recognisable(res.model, independent_pixels)


def test_aae_beats_independent_pixels(digits, independent_pixels):
    res = train("aae", digits, seed=0, run=None)
    assert res.finished and res.selected == "best"
    ip, _ = independent_pixels
    torch.manual_seed(0)
    iwae = res.model.iwae(digits.test.x, 64).mean().item()  # lower bound in expectation, nats
    nll_ip = -ip.log_prob(digits.test.x).mean().item()
    assert iwae > -nll_ip + 3, f"AAE test IWAE-64 {iwae:.2f} vs independent pixels -{nll_ip:.2f}"
    check_recognisable(res.model, independent_pixels)
