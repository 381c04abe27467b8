"""AIS throughput: examples per second per 1,000 intermediate distributions, CPU and CUDA.

Cases: a 5-D probabilistic PCA (the test oracle; per-step overhead dominates) and the default
digits VAE (8-D latent, 2x128 MLP decoder, 64 pixels with 17-level categorical outputs; the
model's cost dominates), 16 chains and 10 leapfrog steps (Wu et al. 2017). The peer is the
floor that any HMC-based AIS must pay: the same number of ``log_likelihood`` + gradient
evaluations on the same (chains, examples, Z) latents, with no sampler around them; the ratio
of the two is genbench's overhead.

Throughput is ``n_examples * (n_steps / 1000) / seconds`` and is recorded in ``extra_info``
(``examples_per_s_per_1k_steps``): the time of a full 1,000-step schedule for N examples is
``N / throughput`` seconds.

Run: ``.venv/bin/python -m pytest benchmarks/test_bench_ais.py -m "" --benchmark-group-by=param:case``
"""

from __future__ import annotations

import math

import pytest
import torch
from _bench import run_timed

from genbench.metrics.likelihood.ais import ais_log_likelihood

N_CHAINS, LEAPFROG = 16, 10
# (n_examples, n_steps) per case: seconds each on one CPU core
CASES = {"ppca-d5-z2": (32, 20), "vae-digits-z8": (32, 10)}


class _PPCA:
    def __init__(self, device: torch.device) -> None:
        g = torch.Generator().manual_seed(0)
        self.W = torch.randn(5, 2, generator=g).to(device)
        self.b = torch.randn(5, generator=g).to(device)

    def prior_log_prob(self, z):
        return -0.5 * (z**2 + math.log(2 * math.pi)).sum(-1)

    def log_likelihood(self, x, z):
        return -0.5 * ((x - z @ self.W.T - self.b) ** 2).sum(-1) / 0.25

    def sample_prior(self, n, *, generator):
        return torch.randn(n, 2, generator=generator, device=generator.device)


def _model(case: str, device: torch.device):
    if case.startswith("ppca"):
        m = _PPCA(device)
        x = (torch.randn(CASES[case][0], 2) @ m.W.cpu().T + m.b.cpu()).to(device)
        return m, x
    from baselines.vae.config import default_config
    from baselines.vae.model import VAE
    from genbench.data import load_dataset

    ds = load_dataset("digits")
    vae = VAE(default_config(ds.info), ds.info).to(device)
    return vae, ds.test.x[: CASES[case][0]]


def _grad_floor(model, x: torch.Tensor, n_steps: int, device: torch.device) -> None:
    """n_steps * leapfrog gradient evaluations of log p(z) + log p(x|z): the sampler-free floor."""
    xb = x.to(device)
    z0 = torch.randn(N_CHAINS, len(x), model.sample_prior(1, generator=torch.Generator(device=device)).shape[-1],
                     device=device)
    if isinstance(model, torch.nn.Module):
        model.eval()
    for _ in range((n_steps - 1) * LEAPFROG):
        z = z0.detach().requires_grad_(True)
        lp = model.log_likelihood(xb, z) + model.prior_log_prob(z)
        (g,) = torch.autograd.grad(lp.sum(), z)
        z0 = z0 + 1e-3 * g.detach()
    if device.type == "cuda":
        torch.cuda.synchronize()


def _ais(model, x: torch.Tensor, n_steps: int, device: torch.device) -> None:
    ais_log_likelihood(model, x, n_steps=n_steps, n_chains=N_CHAINS, leapfrog=LEAPFROG, batch_size=len(x),
                       device=device, seed=0)
    if device.type == "cuda":
        torch.cuda.synchronize()


IMPLS = {"genbench-ais": _ais, "grad-floor": _grad_floor}
DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda", marks=[pytest.mark.gpu,
                                           pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("case", list(CASES))
def test_ais_throughput(benchmark, case, impl, device):
    dev = torch.device(device)
    n, n_steps = CASES[case]
    if dev.type == "cuda":
        n, n_steps = 4 * n, 2 * n_steps  # keep the GPU busy enough to measure it
    model, x = _model(case, dev)
    x = x[:n] if len(x) >= n else x.repeat(math.ceil(n / len(x)), *([1] * (x.ndim - 1)))[:n]
    # the suite's one thread budget (benchmarks/conftest.py), like every other suite
    run_timed(benchmark, IMPLS[impl], model, x, n_steps, dev, suite="ais", case=f"{case}-{device}", impl=impl,
              rounds=2, device=device, n_examples=n, n_steps=n_steps, n_chains=N_CHAINS, leapfrog=LEAPFROG)
    seconds = benchmark.stats.stats.min
    benchmark.extra_info["examples_per_s_per_1k_steps"] = n * (n_steps / 1000) / seconds
    assert seconds > 0
