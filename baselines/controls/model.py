"""Control generators: real data replayed, perturbed, held out, or from simple known densities.

They calibrate the metrics: a memorisation metric must flag ``copycat`` and pass ``heldout``;
a quality metric must rank ``heldout`` (and ``mixture-truth``) above ``independent-pixels``.
Every ``sample(n, *, seed)`` is deterministic and returns a float32 CPU tensor (n, *shape).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from baselines._nets import levels_of, value_range
from genbench._runtime import seeded_generator


def _generator(seed: int) -> torch.Generator:
    return seeded_generator(seed)


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ValueError(f"n must be a non-negative integer; got {n!r}")


class ReplayGenerator:
    """Samples real examples of one split, always without replacement: a replay control never
    repeats an example (repeated points have k-NN radius 0 and would turn the control into a few
    atoms, reading recall 0 and an inflated FID). It holds at most the split's size
    (``max_samples``); asking for more is an error that says so.

    Attributes
    ----------
    x : the split's examples (N, *shape).
    split : its name.
    last_indices : indices into ``x`` of the most recent ``sample`` call (for copy diagnostics).
    """

    def __init__(self, x: torch.Tensor, *, split: str, info: Any, name: str) -> None:
        if len(x) == 0:
            raise ValueError(f"{name}: split {split!r} of {info.name} is empty.")
        self.x = x.float()
        self.split = split
        self.info = info
        self.name = name
        self.last_indices: torch.Tensor | None = None

    @property
    def max_samples(self) -> int:
        """The most samples this control can give without repeating one (the split's size)."""
        return len(self.x)

    def indices(self, n: int, g: torch.Generator) -> torch.Tensor:
        m = len(self.x)
        if n > m:
            raise ValueError(f"{self.name} replays the {self.split!r} split of {self.info.name}, which has {m} "
                             f"examples; {n} were asked for. A replay control never repeats an example: ask for at "
                             f"most {m} (the evaluation caps controls at max_samples and says so).")
        return torch.randperm(m, generator=g)[:n]

    def sample(self, n: int, *, seed: int) -> torch.Tensor:
        _check_n(n)
        idx = self.indices(n, _generator(seed))
        self.last_indices = idx
        return self.x[idx].clone()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.info.name}/{self.split}, n={len(self.x)})"


class NoisyReplayGenerator(ReplayGenerator):
    """Replayed examples plus Gaussian noise of std ``noise_std``, clipped to the value range
    (images; points are not clipped)."""

    def __init__(self, x: torch.Tensor, *, split: str, info: Any, name: str, noise_std: float) -> None:
        super().__init__(x, split=split, info=info, name=name)
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0; got {noise_std}")
        self.noise_std = float(noise_std)

    def sample(self, n: int, *, seed: int) -> torch.Tensor:
        _check_n(n)
        g = _generator(seed)
        idx = self.indices(n, g)
        self.last_indices = idx
        x = self.x[idx] + self.noise_std * torch.randn(self.x[idx].shape, generator=g)
        if self.info.kind != "points":
            x = x.clamp(*value_range(self.info))
        return x


class IndependentPixels:
    """Each value drawn independently from its marginal in the training split.

    Images: per pixel a categorical over the ``levels`` grid values in the value range
    (continuous images are treated as 8-bit, 256 levels), with add-``alpha`` smoothing; its
    ``log_prob`` is the exact discrete log-probability of the grid value nearest each input value,
    so it shares units with PixelCNN's exact NLL and the VAE's discrete ELBO.
    Points: an independent Gaussian per dimension; ``log_prob`` is its exact log-density.

    Implements :class:`genbench.protocols.Generator` and
    :class:`~genbench.protocols.LikelihoodModel` (``likelihood_kind = "exact"``).
    """

    likelihood_kind = "exact"

    def __init__(self, x: torch.Tensor, info: Any, *, alpha: float = 1.0) -> None:
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0; got {alpha}")
        self.info = info
        self.shape = tuple(info.shape)
        x = x.double().flatten(1)
        if info.kind == "points":
            self.mean = x.mean(0)
            # maximum-likelihood std; a floor keeps a constant dimension from giving log(0)
            self.std = x.std(0, unbiased=False).clamp(min=1e-6)
            return
        self.levels = levels_of(info)
        self.lo, self.hi = value_range(info)
        k = self._index(x)
        counts = torch.zeros(x.shape[1], self.levels, dtype=torch.float64)
        counts.scatter_add_(1, k.T, torch.ones_like(k.T, dtype=torch.float64))
        counts += alpha
        if (counts.sum(1) == 0).any():
            raise ValueError("alpha = 0 needs at least one training example")
        self.log_probs = torch.log(counts / counts.sum(1, keepdim=True))  # (D, levels)

    def _index(self, x: torch.Tensor) -> torch.Tensor:
        k = torch.round((x - self.lo) / (self.hi - self.lo) * (self.levels - 1))
        return k.clamp(0, self.levels - 1).long()

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) in nats per example, (N,) float64."""
        xf = torch.as_tensor(x).detach().cpu().double().flatten(1)
        if self.info.kind == "points":
            z = (xf - self.mean) / self.std
            return (-0.5 * z**2 - torch.log(self.std) - 0.5 * math.log(2 * math.pi)).sum(1)
        k = self._index(xf)  # (N, D)
        return self.log_probs.T.gather(0, k).sum(1)

    def sample(self, n: int, *, seed: int) -> torch.Tensor:
        _check_n(n)
        g = _generator(seed)
        if self.info.kind == "points":
            z = torch.randn((n, len(self.mean)), generator=g, dtype=torch.float64)
            return (self.mean + self.std * z).float().view(n, *self.shape)
        if n == 0:
            return torch.empty((0, *self.shape))
        p = self.log_probs.exp()  # (D, levels)
        k = torch.multinomial(p, n, replacement=True, generator=g).T  # (n, D)
        x = self.lo + k.double() * (self.hi - self.lo) / (self.levels - 1)
        return x.float().view(n, *self.shape)


class MixtureTruth:
    """Samples from, and the exact log-density of, a synthetic mixture's true distribution.

    Implements :class:`genbench.protocols.Generator` and
    :class:`~genbench.protocols.LikelihoodModel` (``likelihood_kind = "exact"``).
    """

    likelihood_kind = "exact"

    def __init__(self, dataset: Any) -> None:
        if not hasattr(dataset, "log_density") or not hasattr(dataset, "centres"):
            raise ValueError(
                f"mixture-truth needs a synthetic mixture dataset (mixture-ring, mixture-grid); "
                f"{dataset.info.name!r} has no known density."
            )
        self.dataset = dataset
        self.info = dataset.info

    def sample(self, n: int, *, seed: int) -> torch.Tensor:
        _check_n(n)
        return self.dataset.sample(n, seed=seed).float()

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """True log p(x) in nats per example, (N,) float64."""
        return torch.from_numpy(self.dataset.log_density(x))
