"""Shared building blocks of the reference families: networks, observation models, size classes.

Networks
    :func:`mlp` (vectors, 2-D points, flattened images), :class:`ConvEncoder` and
    :class:`ConvDecoder` (images whose height and width divide by 4: 8x8 digits, 28x28 MNIST,
    32x32 CIFAR-10, with 1 or 3 channels).

Observation models p(x | decoder output)
    How a decoder's output becomes a likelihood, a mean and a sample. The VAE and the AAE share
    them, so their log-likelihoods are in the same units:

    - :class:`Bernoulli` for binary data (``levels == 2``);
    - :class:`Categorical`: a softmax over the dataset's ``levels`` grey values per pixel, a
      *discrete* probability, directly comparable with PixelCNN's and independent-pixels'
      exact NLL (the default for few levels, e.g. 17 for ``digits``);
    - :class:`DiscretisedLogistic`: the PixelCNN++ bins (Salimans et al. 2017), a discrete
      probability with two parameters per pixel (the default for 256-level images);
    - :class:`Gaussian`: a density (continuous data, e.g. 2-D points; for images an option whose
      numbers are densities and must not share a column with discrete probabilities).

All observation models take decoder parameters of shape (M, P, *shape) (P parameters per data
value) and data of shape (M, *shape), and return per-example values summed over data dims.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# --- size classes ---------------------------------------------------------------------------


def size_class(info: Any) -> str:
    """Which default sizing a dataset gets: ``"points"``, ``"small"`` (<= 16x16, e.g. digits),
    ``"medium"`` (<= 28x28 grey, e.g. MNIST) or ``"large"`` (CIFAR-10 and bigger)."""
    if info.kind == "points":
        return "points"
    c, h, w = info.shape
    if h * w <= 16 * 16:
        return "small"
    if h * w <= 28 * 28 and c == 1:
        return "medium"
    return "large"


def value_range(info: Any) -> tuple[float, float]:
    return tuple(info.value_range) if info.value_range is not None else (0.0, 1.0)  # type: ignore[return-value]


def levels_of(info: Any) -> int:
    """Discrete levels per value; continuous image data are treated as 8-bit (256 levels)."""
    return int(info.levels) if info.levels else 256


# --- networks -------------------------------------------------------------------------------


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, *, act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear layers with ``act`` between them (none after the last)."""
    dims = [in_dim, *hidden]
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), act()]
    layers.append(nn.Linear(dims[-1], out_dim))
    return nn.Sequential(*layers)


def bn_mlp(in_dim: int, hidden: Sequence[int], out_dim: int) -> nn.Sequential:
    """Linear, batch-norm and ReLU per hidden layer, then a linear output (DCGAN-style MLP generators)."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_dim, h), nn.BatchNorm1d(h), nn.ReLU()]
        in_dim = h
    return nn.Sequential(*layers, nn.Linear(in_dim, out_dim))


def dropout_mlp(in_dim: int, hidden: Sequence[int], out_dim: int, *, dropout: float) -> nn.Sequential:
    """Linear, LeakyReLU(0.2) and dropout per hidden layer, then a linear output (MLP discriminators)."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_dim, h), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
        in_dim = h
    return nn.Sequential(*layers, nn.Linear(in_dim, out_dim))


def _check_conv_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    if len(shape) != 3 or shape[1] % 4 or shape[2] % 4:
        raise ValueError(
            f"the convolutional nets need images (C, H, W) with H and W divisible by 4; got {tuple(shape)}. "
            "Use arch='mlp' for other shapes."
        )
    return int(shape[0]), int(shape[1]), int(shape[2])


class ConvEncoder(nn.Module):
    """(N, C, H, W) -> (N, out_dim): two stride-2 4x4 convolutions, then a linear layer.

    8x8 -> 2x2, 28x28 -> 7x7, 32x32 -> 8x8 before the linear layer.
    """

    def __init__(self, shape: Sequence[int], channels: Sequence[int], out_dim: int) -> None:
        super().__init__()
        c, h, w = _check_conv_shape(shape)
        c1, c2 = channels
        self.net = nn.Sequential(
            nn.Conv2d(c, c1, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(c1, c2, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(c2 * (h // 4) * (w // 4), out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvDecoder(nn.Module):
    """(N, in_dim) -> (N, P, C, H, W): a linear layer to (c2, H/4, W/4), then two stride-2
    transposed convolutions; ``n_params`` (P) outputs per data value."""

    def __init__(self, in_dim: int, shape: Sequence[int], channels: Sequence[int], n_params: int) -> None:
        super().__init__()
        c, h, w = _check_conv_shape(shape)
        c1, c2 = channels
        self.shape = (c, h, w)
        self.n_params = n_params
        self.fc = nn.Sequential(nn.Linear(in_dim, c2 * (h // 4) * (w // 4)), nn.ReLU())
        self.net = nn.Sequential(
            nn.ConvTranspose2d(c2, c1, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(c1, c1, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(c1, n_params * c, 3, 1, 1),
        )
        self._c2 = c2

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        c, h, w = self.shape
        y = self.fc(z).view(len(z), self._c2, h // 4, w // 4)
        return self.net(y).view(len(z), self.n_params, c, h, w)


class MLPDecoder(nn.Module):
    """(N, in_dim) -> (N, P, *shape) through an MLP."""

    def __init__(self, in_dim: int, hidden: Sequence[int], shape: Sequence[int], n_params: int) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.n_params = n_params
        self.net = mlp(in_dim, hidden, n_params * math.prod(self.shape))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(len(z), self.n_params, *self.shape)


class MLPEncoder(nn.Module):
    """(N, *shape) -> (N, out_dim): flatten, then an MLP."""

    def __init__(self, shape: Sequence[int], hidden: Sequence[int], out_dim: int) -> None:
        super().__init__()
        self.net = mlp(math.prod(shape), hidden, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


def make_encoder(arch: str, shape: Sequence[int], hidden: Sequence[int], channels: Sequence[int],
                 out_dim: int) -> nn.Module:
    if arch == "mlp":
        return MLPEncoder(shape, hidden, out_dim)
    if arch == "conv":
        return ConvEncoder(shape, channels, out_dim)
    raise ValueError(f"arch must be 'mlp' or 'conv', got {arch!r}")


def make_decoder(arch: str, in_dim: int, shape: Sequence[int], hidden: Sequence[int], channels: Sequence[int],
                 n_params: int) -> nn.Module:
    if arch == "mlp":
        return MLPDecoder(in_dim, tuple(reversed(hidden)), shape, n_params)
    if arch == "conv":
        return ConvDecoder(in_dim, shape, channels, n_params)
    raise ValueError(f"arch must be 'mlp' or 'conv', got {arch!r}")


def scale_input(x: torch.Tensor, info: Any) -> torch.Tensor:
    """Network input: images mapped from their value range to [-1, 1]; points unchanged."""
    if info.kind == "points":
        return x
    lo, hi = value_range(info)
    return (x - lo) * (2.0 / (hi - lo)) - 1.0


# --- observation models ---------------------------------------------------------------------


class ObservationModel:
    """p(x | theta) for decoder outputs theta of shape (M, P, *shape).

    ``kind`` is ``"discrete"`` (a probability of the data's grid values, <= 1) or ``"density"``.
    """

    name = ""
    n_params = 1
    kind = "discrete"

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x | params) summed over data dims: (M,), float32."""
        raise NotImplementedError

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """E[x | params], shape (M, *shape)."""
        raise NotImplementedError

    def sample(self, params: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


def _sum_data_dims(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).sum(1)


class Bernoulli(ObservationModel):
    """Binary data in {lo, hi}: one logit per value."""

    name = "bernoulli"

    def __init__(self, lo: float = 0.0, hi: float = 1.0) -> None:
        self.lo, self.hi = lo, hi

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        logits = params[:, 0].float()
        target = ((x - self.lo) / (self.hi - self.lo)).float()
        return -_sum_data_dims(F.binary_cross_entropy_with_logits(logits, target, reduction="none"))

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return self.lo + (self.hi - self.lo) * torch.sigmoid(params[:, 0].float())

    def sample(self, params: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        p = torch.sigmoid(params[:, 0].float())
        return self.lo + (self.hi - self.lo) * (torch.rand(p.shape, generator=generator, device=p.device) < p).float()


class Categorical(ObservationModel):
    """``levels`` equally spaced values in [lo, hi]; a softmax over them per data value.

    The value of x is rounded to the nearest level, so data on the grid are scored exactly.
    """

    name = "categorical"

    def __init__(self, levels: int, lo: float = 0.0, hi: float = 1.0) -> None:
        self.levels, self.lo, self.hi = levels, lo, hi
        self.n_params = levels

    def index(self, x: torch.Tensor) -> torch.Tensor:
        k = torch.round((x - self.lo) / (self.hi - self.lo) * (self.levels - 1))
        return k.clamp(0, self.levels - 1).long()

    def values(self, device: torch.device) -> torch.Tensor:
        return torch.linspace(self.lo, self.hi, self.levels, device=device)

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(params.float(), dim=1)
        return _sum_data_dims(logp.gather(1, self.index(x).unsqueeze(1)).squeeze(1))

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(params.float(), dim=1)
        v = self.values(p.device).view(1, -1, *([1] * (p.dim() - 2)))
        return (p * v).sum(1)

    def sample(self, params: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        p = torch.softmax(params.float(), dim=1)
        flat = p.movedim(1, -1).reshape(-1, self.levels)
        k = torch.multinomial(flat, 1, generator=generator).view(p.movedim(1, -1).shape[:-1])
        return self.values(p.device)[k]


class DiscretisedLogistic(ObservationModel):
    """The PixelCNN++ discretised logistic (Salimans et al. 2017, eq. 2).

    P(x = v_k) = sigma((v_k + h - mu) / s) - sigma((v_k - h - mu) / s) with half bin width
    h = (hi - lo) / (2 (levels - 1)); the first and last bins extend to -inf and +inf, so the
    probabilities of the ``levels`` grid values sum to 1. Parameters: (mu, log s) per value.
    Adapted from the numerically stable form in openai/pixel-cnn (``discretized_mix_logistic_loss``).
    """

    name = "logistic"
    n_params = 2

    def __init__(self, levels: int, lo: float = 0.0, hi: float = 1.0) -> None:
        self.levels, self.lo, self.hi = levels, lo, hi
        self.half = (hi - lo) / (2 * (levels - 1))

    def _loc_logscale(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu = params[:, 0].float()
        # log s >= -7: a bin of width 1/255 is then several scales wide at most, keeping the
        # difference of sigmoids well conditioned
        log_s = params[:, 1].float().clamp(min=-7.0)
        return mu, log_s

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mu, log_s = self._loc_logscale(params)
        x = x.float()
        centred = x - mu
        inv_s = torch.exp(-log_s)
        plus_in = inv_s * (centred + self.half)
        min_in = inv_s * (centred - self.half)
        log_cdf_plus = plus_in - F.softplus(plus_in)  # log sigma(plus_in), for the lowest bin
        log_one_minus_cdf_min = -F.softplus(min_in)  # log (1 - sigma(min_in)), for the highest bin
        cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
        mid_in = inv_s * centred
        # where the bin probability underflows, use the density at the centre times the bin width
        log_pdf_mid = mid_in - log_s - 2.0 * F.softplus(mid_in) + math.log(2 * self.half)
        inner = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)), log_pdf_mid)
        lp = torch.where(x < self.lo + self.half, log_cdf_plus,
                         torch.where(x > self.hi - self.half, log_one_minus_cdf_min, inner))
        return _sum_data_dims(lp)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        # the location, clamped to the range: the exact mean of the binned distribution would need
        # all ``levels`` bin probabilities per value (256 x the image), for a visually identical image
        mu, _ = self._loc_logscale(params)
        return mu.clamp(self.lo, self.hi)

    def sample(self, params: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        mu, log_s = self._loc_logscale(params)
        u = torch.rand(mu.shape, generator=generator, device=mu.device).clamp(1e-5, 1 - 1e-5)
        x = mu + torch.exp(log_s) * (torch.log(u) - torch.log1p(-u))
        k = torch.round((x - self.lo) / (self.hi - self.lo) * (self.levels - 1)).clamp(0, self.levels - 1)
        return self.lo + k * (self.hi - self.lo) / (self.levels - 1)


class Gaussian(ObservationModel):
    """A diagonal Gaussian density with a per-value (mean, log std) output; std >= ``min_std``.

    ``clip`` (lo, hi) clips means and samples to the data range (images); the density itself is
    not truncated, so for images these are density values, not probabilities.
    """

    name = "gaussian"
    n_params = 2
    kind = "density"

    def __init__(self, min_std: float = 1e-3, clip: tuple[float, float] | None = None) -> None:
        self.log_min_std = math.log(min_std)
        self.clip = clip

    def _mean_logstd(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # softplus floor: smooth, and the std can never collapse below min_std (no NaN from a
        # heteroscedastic decoder shrinking its variance onto a point)
        raw = params[:, 1].float()
        log_std = self.log_min_std + F.softplus(raw - self.log_min_std)
        return params[:, 0].float(), log_std.clamp(max=5.0)

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mu, log_std = self._mean_logstd(params)
        lp = -0.5 * ((x.float() - mu) * torch.exp(-log_std)) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
        return _sum_data_dims(lp)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        mu = params[:, 0].float()
        return mu.clamp(*self.clip) if self.clip else mu

    def sample(self, params: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        mu, log_std = self._mean_logstd(params)
        x = mu + torch.exp(log_std) * torch.randn(mu.shape, generator=generator, device=mu.device)
        return x.clamp(*self.clip) if self.clip else x


DECODERS = ("auto", "bernoulli", "categorical", "logistic", "gaussian")


def resolve_decoder(choice: str, info: Any) -> str:
    """``"auto"``: Gaussian for points, Bernoulli for binary images, categorical up to 32 levels,
    discretised logistic above (256-level images)."""
    if choice not in DECODERS:
        raise ValueError(f"decoder must be one of {', '.join(DECODERS)}; got {choice!r}")
    if info.kind == "points":
        if choice not in ("auto", "gaussian"):
            raise ValueError(f"points data need decoder 'gaussian' (or 'auto'); got {choice!r}")
        return "gaussian"
    if choice != "auto":
        if choice == "bernoulli" and info.levels != 2:
            raise ValueError(f"decoder 'bernoulli' needs binary data (levels 2); {info.name} has levels {info.levels}")
        return choice
    levels = levels_of(info)
    if levels == 2:
        return "bernoulli"
    return "categorical" if levels <= 32 else "logistic"


def observation_model(choice: str, info: Any, *, min_std: float = 1e-3) -> ObservationModel:
    name = resolve_decoder(choice, info)
    if name == "gaussian":
        return Gaussian(min_std, clip=None if info.kind == "points" else value_range(info))
    lo, hi = value_range(info)
    if name == "bernoulli":
        return Bernoulli(lo, hi)
    if name == "categorical":
        return Categorical(levels_of(info), lo, hi)
    return DiscretisedLogistic(levels_of(info), lo, hi)


def broadcast_latents(x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
    """Flatten latents (..., N, Z) and repeat x (N, ...) to match: returns (x_flat, z_flat, lead).

    ``lead`` is the leading sample shape (e.g. (K,)) to reshape per-example results back to
    (*lead, N).
    """
    n = x.shape[0]
    if z.shape[-2] != n:
        raise ValueError(f"z must have shape (..., N, Z) with N = {n} matching x; got {tuple(z.shape)}")
    lead = tuple(z.shape[:-2])
    reps = math.prod(lead)
    x_flat = x.unsqueeze(0).expand(reps, *x.shape).reshape(reps * n, *x.shape[1:])
    return x_flat, z.reshape(reps * n, z.shape[-1]), lead


def local_generator(seed: int, device: torch.device | str) -> torch.Generator:
    """A seeded torch.Generator on ``device`` (sampling never touches the global RNG)."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


@torch.no_grad()
def sample_latent_model(model: Any, n: int, *, seed: int, batch_size: int,
                        draw_z: Callable[[int, torch.Generator], torch.Tensor],
                        decode: Callable[[torch.Tensor], Any]) -> torch.Tensor:
    """Ancestral samples of a latent-variable model, shared by the VAE and the AAE.

    ``draw_z(m, g)`` draws m latents from the prior with generator ``g``; ``decode(z)`` gives
    the observation model's parameters. ``model.config.sample_mode`` picks the decoder mean or a
    decoder draw (``"auto"``: the mean for images, a draw for points). Returns (n, *shape) float32
    on the CPU, deterministic in ``seed``; the model's train/eval mode is restored.
    """
    was_training = model.training
    model.eval()
    mode = model.config.sample_mode
    if mode == "auto":
        mode = "sample" if model.info.kind == "points" else "mean"
    g = local_generator(seed, model.device)
    out = []
    for i in range(0, n, batch_size):
        params = decode(draw_z(min(batch_size, n - i), g))
        out.append((model.obs.mean(params) if mode == "mean" else model.obs.sample(params, g)).float().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty((0, *model.shape))
