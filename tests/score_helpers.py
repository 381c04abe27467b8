"""Generators for tests/test_score_external.py, importable by name as entry points (``score_helpers:...``)."""

from __future__ import annotations

import numpy as np
import torch

Z_DIM = 4


class TinyDecoder(torch.nn.Module):
    """Latents (N, 4) -> images (N, 1, 8, 8) in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(Z_DIM, 64)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.lin(z)).reshape(-1, 1, 8, 8)


def tiny_decoder(seed: int = 0) -> TinyDecoder:
    """A TinyDecoder with weights fixed by ``seed`` (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TinyDecoder().eval()


def untrained_decoder() -> TinyDecoder:
    """The module a state dict is loaded into: other weights than ``tiny_decoder()``."""
    return tiny_decoder(seed=123)


class PixelCategorical:
    """Independent categorical pixels over digits' 17 grey levels, fitted to the train split.

    A Generator and a LikelihoodModel with an exact likelihood (a probability mass over the levels):
    ``log_prob(x) = sum_pixels log p_pixel(round(16 x))``.
    """

    likelihood_kind = "exact"
    likelihood_space = "mass"

    def __init__(self) -> None:
        from genbench.data import load_dataset

        x = load_dataset("digits").train.x.reshape(-1, 64)
        levels = torch.round(x * 16).long()
        counts = torch.stack([torch.bincount(levels[:, j], minlength=17) for j in range(64)]).double() + 1.0
        self.log_p = torch.log(counts / counts.sum(1, keepdim=True))  # (64, 17)

    def sample(self, n: int, *, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(int(seed))
        lv = torch.multinomial(self.log_p.exp(), n, replacement=True, generator=g).T  # (n, 64)
        return (lv.float() / 16).reshape(n, 1, 8, 8)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        lv = torch.round(x.reshape(len(x), 64).double().cpu() * 16).long()
        return self.log_p.gather(1, lv.T).sum(0).to(torch.float64)


def pixel_categorical() -> PixelCategorical:
    return PixelCategorical()


def exact_loglik_oracle(x: torch.Tensor) -> float:
    """Mean exact log-likelihood of ``x`` under PixelCategorical, computed here with numpy."""
    m = PixelCategorical()
    lp = m.log_p.numpy()
    lv = np.rint(x.reshape(len(x), 64).numpy().astype(np.float64) * 16).astype(int)
    return float(np.mean([lp[np.arange(64), row].sum() for row in lv]))


def raising_factory():
    raise RuntimeError("the weights server is down")


def not_a_generator():
    return {"sample": "no"}


class Tanh:
    """Samples in [-1, 1]: the wrong range for images."""

    def sample(self, n: int, *, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.tanh(torch.randn(n, 1, 8, 8, generator=g) * 3)


class NaNs:
    def sample(self, n: int, *, seed: int) -> torch.Tensor:
        x = torch.full((n, 1, 8, 8), 0.5)
        x[n // 2, 0, 3, 3] = float("nan")
        return x


class Flat:
    def sample(self, n: int, *, seed: int) -> torch.Tensor:
        return torch.full((n, 64), 0.5)


class Uint8:
    def sample(self, n: int, *, seed: int) -> torch.Tensor:
        return torch.full((n, 1, 8, 8), 128, dtype=torch.uint8)


class Marker:
    """Unpickling this runs ``pathlib.Path(path).touch()``: a stand-in for any code a checkpoint could run."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.path),))


class LateNaN:
    """Good on the first small check batch, NaN in the full draw: fails after the run folder is being assembled."""

    def sample(self, n: int, *, seed: int) -> torch.Tensor:
        x = torch.full((n, 1, 8, 8), 0.5)
        if n > 8:
            x[-1] = float("nan")
        return x


class ShiftedCopies:
    """Training digits moved one pixel right (dx = +1): a copycat that plain nearest neighbours miss."""

    def __init__(self) -> None:
        from genbench.data import load_dataset

        self.train = load_dataset("digits").train.x

    def sample(self, n: int, *, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(int(seed))
        x = self.train[torch.randint(0, len(self.train), (n,), generator=g)]
        out = torch.zeros_like(x)
        out[..., 1:] = x[..., :-1]
        return out


def shifted_copies() -> ShiftedCopies:
    return ShiftedCopies()
