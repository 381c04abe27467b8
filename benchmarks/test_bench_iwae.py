"""Importance-sampled log-likelihood (IWAE bound, k=5000) of a digits VAE: throughput and where time goes.

:func:`genbench.metrics.likelihood.importance_sampled_log_likelihood` at the published k=5000 on
digits test images, with the VAE family's default digits architecture (weights from a fixed seed;
the cost does not depend on training). Recorded per case:

- ``examples_per_s``: test points per second (the protocol's 1,000 points take 1000 / that);
- ``share_network_forward``: the share of the wall time spent inside the encoder and decoder
  ``nn.Module`` forward passes, measured by forward pre/post hooks (``time.perf_counter``; on CPU
  the ops are synchronous); ``share_model_calls``: the share inside the model's protocol methods
  (``log_likelihood``, ``prior_log_prob``, ``proposal``), i.e. the forward passes plus the
  observation model's log-density. The rest is the estimator's own work (noise generation,
  log-weights, the streaming logsumexp).

Scaled down: 1,000 points x 5,000 draws take 40 s to 90 s on one core of the machines measured so far
(24 and 11 examples per second; digits has only 359 test images anyway), so the cases are 16, 32 and
64 test points, which also shows that time grows linearly in n.
"""

from __future__ import annotations

import time
from functools import cache

import numpy as np
import pytest
import torch
from _bench import run_timed

from genbench.metrics.likelihood import importance_sampled_log_likelihood

K = 5000
CASES = {f"n{n}-k{K}": n for n in (16, 32, 64)}


@cache
def _setup():
    from baselines.vae.config import default_config
    from baselines.vae.model import VAE
    from genbench.data import load_dataset

    ds = load_dataset("digits")
    torch.manual_seed(0)
    model = VAE(default_config(ds.info), ds.info)
    return model, ds.test.x


class _Timers:
    """Wall time inside the encoder/decoder forward passes and inside the protocol methods."""

    def __init__(self, model) -> None:
        self.forward = 0.0
        self.calls = 0.0
        self._start: dict[int, float] = {}
        self._handles = []
        for net in (model.encoder, model.decoder):
            self._handles.append(net.register_forward_pre_hook(self._pre))
            self._handles.append(net.register_forward_hook(self._post))
        self.model = model
        for name in ("log_likelihood", "prior_log_prob", "proposal"):
            setattr(model, name, self._timed(getattr(model, name)))

    def _pre(self, module, args) -> None:
        self._start[id(module)] = time.perf_counter()

    def _post(self, module, args, out) -> None:
        self.forward += time.perf_counter() - self._start.pop(id(module))

    def _timed(self, fn):
        def run(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.calls += time.perf_counter() - t0

        return run

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        for name in ("log_likelihood", "prior_log_prob", "proposal"):
            del self.model.__dict__[name]  # back to the class's methods


@pytest.mark.parametrize("case", list(CASES))
def test_importance_sampling_throughput(benchmark, case):
    n = CASES[case]
    model, x_test = _setup()
    x = x_test[:n]
    timers = _Timers(model)
    try:
        t0 = time.perf_counter()
        est = run_timed(benchmark, importance_sampled_log_likelihood, model, x, suite="iwae", case=case,
                        impl="genbench", rounds=1, n_test=n, k=K, model="vae default digits (mlp z=8)")
        wall = time.perf_counter() - t0
    finally:
        timers.close()
    benchmark.extra_info.update(
        examples_per_s=n / benchmark.stats.stats.median,
        share_network_forward=timers.forward / wall,
        share_model_calls=timers.calls / wall,
        forward_timing="forward pre/post hooks on encoder and decoder; wall time of the one timed round",
    )
    assert np.isfinite(est.log_likelihood).all() and len(est.log_likelihood) == n
    # a lower bound of log p(x) for 64 discrete pixels is below 0
    assert (est.log_likelihood < 0).all()
