"""Where computation runs and how its randomness is seeded: one device resolver, one seeded-generator
helper and one eval-mode context, used by features, metrics, the harness and the baselines alike."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

DEVICE_NAMES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def available_devices() -> list[str]:
    """The devices this machine has, for messages (``["cpu"]``, ``["cpu", "cuda:0"]``)."""
    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append("mps")
    return out


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """The device to run on.

    ``"auto"`` or None: CUDA when available, else CPU. An explicit device must exist here: asking
    for CUDA on a machine without it, or for a name torch does not know (``"gpu"``), is a
    ValueError that lists what is available.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"unknown device {device!r}; use one of {', '.join(DEVICE_NAMES)} "
                         f"(available here: {', '.join(available_devices())}).") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} was asked for but CUDA is not available on this machine "
                         f"(available: {', '.join(available_devices())}); use device 'auto' or 'cpu'.")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {str(device)!r} does not exist (available: {', '.join(available_devices())}).")
    return dev


def seeded_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded with ``seed``: randomness comes in as an argument."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def example_generators(seed: int, i0: int, i1: int, *, stream: int | None = None,
                       device: str | torch.device = "cpu") -> list[torch.Generator]:
    """One generator per example index ``i0 <= i < i1``, keyed by (seed, [stream,] index), so that an
    example's draws do not depend on how examples are batched."""
    import numpy as np

    gens = []
    for i in range(i0, i1):
        key = [int(seed), i] if stream is None else [int(seed), int(stream), i]
        state = int(np.random.SeedSequence(key).generate_state(1, dtype=np.uint64)[0])
        if stream is not None:
            state &= (1 << 63) - 1  # device generators take a non-negative int64 seed
        gens.append(torch.Generator(device=device).manual_seed(state))
    return gens


@contextlib.contextmanager
def eval_mode(model: Any, *, grad: bool = False) -> Iterator[None]:
    """Run a module in eval mode (batch-norm statistics, no dropout), restoring its training mode
    afterwards; without gradients unless ``grad`` (HMC needs them). With ``grad`` the gradients are
    for the inputs only: the parameters are frozen meanwhile (``requires_grad`` restored afterwards),
    so no graph is kept for them and a frozen net may run in a faster equivalent form
    (:mod:`genbench._dense`). Objects that are not modules only get the gradient setting."""
    module = isinstance(model, torch.nn.Module)
    was = model.training if module else None
    frozen = [p for p in model.parameters() if p.requires_grad] if module and grad else []
    if module:
        model.eval()
    for p in frozen:
        p.requires_grad_(False)
    try:
        with torch.set_grad_enabled(grad):
            yield
    finally:
        for p in frozen:
            p.requires_grad_(True)
        if was is not None:
            model.train(was)


def _flushing_denormals() -> bool:
    """Whether this thread's CPU flushes subnormal floats to zero (read off a subnormal product,
    since torch has a setter and no getter)."""
    return bool((torch.tensor(1e-310, dtype=torch.float64) * 1.0).item() == 0.0)


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """Flush subnormal floats to zero on this thread's CPU (FTZ/DAZ) meanwhile, for numpy, scipy,
    scikit-learn and torch alike; the previous setting is restored afterwards.

    Subnormals (magnitudes below 2.2e-308 in float64, 1.2e-38 in float32) take a microcoded slow path
    on x86, often tens of times slower than normal arithmetic. EM on well-separated mixtures is full of
    them: responsibilities ``exp(log_resp)`` of -708 to -745 nats. They only ever meet sums of
    normal-sized terms, where adding them changes nothing, so the results are the same to the bit in
    the cases the tests check, while the GMM fits run about 1.4x faster. The setting is per thread: BLAS
    worker threads keep their own (the metrics run BLAS on one thread). A no-op where the CPU has no
    such mode."""
    before = _flushing_denormals()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(before)
