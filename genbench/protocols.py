"""The protocols every generator, likelihood model and feature extractor is used through.

The evaluation layer never sees a concrete model class: it is given an object that satisfies
one of these protocols (checked structurally, so a user's own model needs no base class).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

LikelihoodKind = Literal["exact", "lower-bound"]


@runtime_checkable
class Generator(Protocol):
    """Draws samples in the dataset's value range and shape.

    ``sample(n, seed=s)`` returns a float tensor of shape (n, *data_shape), e.g. (n, 1, 8, 8)
    with values in [0, 1] for ``digits`` or (n, 2) for the 2-D mixtures. Same seed, same
    samples.
    """

    def sample(self, n: int, *, seed: int) -> torch.Tensor: ...


@runtime_checkable
class LikelihoodModel(Protocol):
    """Per-example log-likelihoods, in nats, with a declared kind.

    ``likelihood_kind`` is ``"exact"`` (e.g. PixelCNN) or ``"lower-bound"`` (e.g. an ELBO).
    ``log_prob(x)`` returns a tensor of shape (N,).
    """

    likelihood_kind: LikelihoodKind

    def log_prob(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class LatentVariableModel(Protocol):
    """A model p(x, z) = p(z) p(x|z) with a proposal q(z|x), enough for importance sampling.

    - ``prior_log_prob(z)``: (K, N, Z) or (N, Z) -> log p(z) summed over latent dims.
    - ``log_likelihood(x, z)``: log p(x|z) summed over data dims; ``z`` may carry leading
      sample dims (K, N, Z) that broadcast against ``x`` of shape (N, ...).
    - ``proposal(x)``: a ``torch.distributions.Distribution`` over z for each x, with
      batch shape (N,) and event shape (Z,) (e.g. ``Independent(Normal(mu, sigma), 1)``).
    """

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor: ...

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor: ...

    def proposal(self, x: torch.Tensor) -> torch.distributions.Distribution: ...


@runtime_checkable
class Autoencoder(Protocol):
    """Optional: models with an encoder and a decoder."""

    def encode(self, x: torch.Tensor) -> torch.Tensor: ...

    def decode(self, z: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class FeatureExtractor(Protocol):
    """Maps images (N, C, H, W) in [0, 1] to features (N, d), and optionally class logits.

    ``id`` names the extractor and everything that changes its output (weights hash, resize),
    so that caches and protocol names can be keyed by it.
    """

    id: str
    feature_dim: int

    def features(self, x: torch.Tensor) -> torch.Tensor: ...
