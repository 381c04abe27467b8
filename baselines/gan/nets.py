"""Generator and discriminator networks: DCGAN-style convnets for images, MLPs for points.

The conv nets follow the guidelines of Radford, Metz & Chintala (2016), "Unsupervised
representation learning with deep convolutional GANs", section 3: strided (transposed)
convolutions instead of pooling, batchnorm in G and D except G's output and D's input layers,
ReLU in G with a Tanh output, LeakyReLU(0.2) in D, weights initialised from N(0, 0.02).
"""

from __future__ import annotations

import torch
from torch import nn

from genbench._dense import Folded, FoldedForward, fold_affine


def dcgan_init(module: nn.Module) -> None:
    """DCGAN initialisation: conv/linear weights ~ N(0, 0.02), norm scales ~ N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def _norm2d(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        # GroupNorm with one group normalises each example over (C, H, W): layer norm, with a
        # per-channel affine; it keeps examples independent, which the gradient penalty needs
        return nn.GroupNorm(1, channels)
    return nn.Identity()


class DCGANGenerator(nn.Module):
    """z (N, z_dim) -> images (N, C, H, W) in (-1, 1).

    Project-and-reshape to (width * 2**(stages-1), H / 2**stages, W / 2**stages), then
    ``stages`` transposed convolutions (kernel 4, stride 2, padding 1) that each double the
    resolution and halve the channels; the last one maps to C channels followed by Tanh.
    """

    def __init__(self, z_dim: int, shape: tuple[int, int, int], width: int, stages: int) -> None:
        super().__init__()
        c, h, w = shape
        self.top = width * 2 ** (stages - 1)
        self.h0, self.w0 = h // 2**stages, w // 2**stages
        self.project = nn.Linear(z_dim, self.top * self.h0 * self.w0, bias=False)
        layers: list[nn.Module] = [nn.BatchNorm2d(self.top), nn.ReLU(True)]
        ch = self.top
        for _ in range(stages - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, c, 4, 2, 1), nn.Tanh()]  # output layer: no batchnorm
        self.body = nn.Sequential(*layers)
        self.z_dim = z_dim
        self._folded = FoldedForward()

    def _fold(self) -> Folded | None:
        return fold_affine([self.project, nn.Unflatten(1, (self.top, self.h0, self.w0)), *self.body], (self.z_dim,))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # frozen in eval mode (sampling, AIS): a small net runs as dense matrices, about 3x faster on a CPU at 8x8
        folded = self._folded.current(self, self._fold)
        if folded is not None:
            return folded(z)
        return self.body(self.project(z).view(len(z), self.top, self.h0, self.w0))


class DCGANDiscriminator(nn.Module):
    """Images (N, C, H, W) in [-1, 1] -> logits / critic values (N,).

    ``stages`` strided convolutions (kernel 4, stride 2, padding 1) doubling the channels from
    ``width``; no normalisation after the input layer; a linear read-out of the final maps
    (instead of DCGAN's final conv) so that odd base sizes such as 7x7 work.
    """

    def __init__(self, shape: tuple[int, int, int], width: int, stages: int, norm: str) -> None:
        super().__init__()
        c, h, w = shape
        layers: list[nn.Module] = [nn.Conv2d(c, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        ch = width
        for _ in range(stages - 1):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=norm == "none"), _norm2d(norm, ch * 2),
                       nn.LeakyReLU(0.2, True)]
            ch *= 2
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(ch * (h // 2**stages) * (w // 2**stages), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x).flatten(1)).squeeze(1)


class MLPGenerator(nn.Module):
    """z (N, z_dim) -> points (N, D): ReLU hidden layers and a linear output (points are unbounded)."""

    def __init__(self, z_dim: int, dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        d_in = z_dim
        for _ in range(layers):
            mods += [nn.Linear(d_in, hidden), nn.ReLU(True)]
            d_in = hidden
        mods.append(nn.Linear(d_in, dim))
        self.body = nn.Sequential(*mods)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


class MLPDiscriminator(nn.Module):
    """Points (N, D) -> logits / critic values (N,): LeakyReLU(0.2) hidden layers, no normalisation.

    Without batchnorm each example's output depends on that example alone, which both the
    gradient penalty and small-batch evaluation need.
    """

    def __init__(self, dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        d_in = dim
        for _ in range(layers):
            mods += [nn.Linear(d_in, hidden), nn.LeakyReLU(0.2, True)]
            d_in = hidden
        mods.append(nn.Linear(d_in, 1))
        self.body = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).squeeze(1)
