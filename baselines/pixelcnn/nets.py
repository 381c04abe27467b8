"""Masked convolutions and the residual PixelCNN network.

Masks after van den Oord et al. (2016), "Pixel recurrent neural networks", section 3.4 and
figure 5 (residual block), restricted to spatial masking: the output at pixel i (raster order)
sees every channel of pixels < i and nothing else, so the C channels of a pixel are modelled
as conditionally independent given the previous pixels (the paper's R -> G -> B channel masks
are not used). That is a simpler but valid autoregressive factorisation, so the likelihood is
still exact. Conditioning on whole previous pixels follows PixelCNN++ (Salimans et al. 2017),
which however still couples the channels within a pixel; here they are independent given the past.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def causal_mask(kernel: int, mask_type: str) -> torch.Tensor:
    """The (kernel, kernel) spatial mask: rows above the centre, and the centre row left of the
    centre; type ``"B"`` also keeps the centre itself, type ``"A"`` does not."""
    m = torch.zeros(kernel, kernel)
    c = kernel // 2
    m[:c, :] = 1.0
    m[c, :c] = 1.0
    if mask_type == "B":
        m[c, c] = 1.0
    return m


class MaskedConv2d(nn.Conv2d):
    """A same-padded convolution whose kernel is multiplied by a causal mask on every call.

    Multiplying inside ``forward`` (instead of zeroing the weights once) keeps the masked
    weights out of the gradient path, so no optimiser step or weight decay can revive them.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, mask_type: str) -> None:
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
        super().__init__(in_channels, out_channels, kernel, padding=kernel // 2)
        self.mask_type = mask_type
        self.register_buffer("mask", causal_mask(kernel, mask_type)[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class ResidualBlock(nn.Module):
    """ReLU -> 1x1 (c -> c/2) -> ReLU -> masked k x k type B (c/2 -> c/2) -> ReLU -> 1x1 (c/2 -> c), plus input."""

    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        h = channels // 2
        self.body = nn.Sequential(
            nn.ReLU(), nn.Conv2d(channels, h, 1),
            nn.ReLU(), MaskedConv2d(h, h, kernel, "B"),
            nn.ReLU(), nn.Conv2d(h, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class PixelCNNNet(nn.Module):
    """Images (N, C, H, W) scaled to [-1, 1] -> logits (N, levels, C, H, W).

    One type-A masked convolution, ``n_blocks`` residual blocks, and a two-layer 1x1 head.
    The 1x1 convolutions mix channels only within a position, so they keep causality.
    """

    def __init__(self, in_channels: int, levels: int, channels: int, n_blocks: int, first_kernel: int,
                 kernel: int, head: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.levels = levels
        self.first = MaskedConv2d(in_channels, channels, first_kernel, "A")
        self.blocks = nn.Sequential(*[ResidualBlock(channels, kernel) for _ in range(n_blocks)])
        self.head = nn.Sequential(
            nn.ReLU(), nn.Conv2d(channels, head, 1),
            nn.ReLU(), nn.Conv2d(head, in_channels * levels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.blocks(self.first(x)))
        n, _, h, w = out.shape
        # (N, C*L, H, W) -> (N, L, C, H, W): classes on dim 1, as F.cross_entropy expects
        return out.view(n, self.in_channels, self.levels, h, w).transpose(1, 2)
