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


class IncrementalState:
    """Cached activations for sampling ``net`` one pixel at a time (Ramachandran et al. 2017).

    Every activation of :class:`PixelCNNNet` at pixel q depends only on pixels strictly before q
    in raster order (type A first, then type B and 1x1 layers keep "<= q" of the layer below).
    So when pixel q is about to be drawn, every layer's activations at earlier pixels are final:
    :meth:`logits_at` computes each layer at q alone and caches what later pixels read (the
    network input and the input of each block's masked convolution, zero-padded as
    ``padding=kernel // 2`` pads them). A whole image costs one forward pass instead of H * W.

    Exactness. Each output is computed by the same ``F.conv2d`` call on the same weights as in
    :meth:`PixelCNNNet.forward`, restricted to the one k x k input window it reads (a contiguous
    NCHW tensor with the full kernel, so the masked taps are there with weight 0, as in the full
    pass). Masked taps hold 0 here where the full pass has not-yet-final values; either way
    their product with the zero weight is an exact zero, which leaves a float sum unchanged (at
    most the sign of an exact 0 differs). The logits are therefore bit-identical to the full pass
    wherever the convolution backend accumulates an output position in an order that does not
    depend on the spatial size of its input, which oneDNN on CPU does (checked, logits and
    samples alike, by ``tests/test_pixelcnn_sampling.py``); other backends (cuDNN) may differ
    in the last bits.

    Parameters
    ----------
    net : PixelCNNNet
        The network (its parameters are read at construction, so build a new state after a step).
    n : int
        Images sampled together.
    shape : tuple (C, H, W)
    fill : float
        The network input of a not-yet-drawn pixel (the full pass sees class 0 there).
    """

    def __init__(self, net: PixelCNNNet, n: int, shape: tuple[int, int, int], fill: float) -> None:
        c, h, w = shape
        self.net = net
        self.first = _WindowConv(net.first, n, h, w)
        self.first.cache[self.first.pad:self.first.pad + h, self.first.pad:self.first.pad + w] = fill
        self.blocks = [(block.body[1], _WindowConv(block.body[3], n, h, w), block.body[5]) for block in net.blocks]

    def set_pixel(self, i: int, j: int, value: torch.Tensor) -> None:
        """Write the network input of pixel (i, j): ``value`` (n, C)."""
        self.first.write(i, j, value)

    def logits_at(self, i: int, j: int) -> torch.Tensor:
        """Logits (n, levels, C) of pixel (i, j); every earlier pixel must already be set."""
        h = self.first(i, j)  # (n, channels, 1, 1)
        for conv_in, masked, conv_out in self.blocks:
            masked.write(i, j, torch.relu(conv_in(torch.relu(h)))[:, :, 0, 0])
            h = h + conv_out(torch.relu(masked(i, j)))
        out = self.net.head(h)  # (n, C * levels, 1, 1)
        return out.view(len(out), self.net.in_channels, self.net.levels).transpose(1, 2)


class _WindowConv:
    """One masked convolution evaluated at one position at a time, from a cache of its input.

    The cache is position-major, (H + 2p, W + 2p, n, channels) with zero padding p = k // 2, so
    writing a pixel is one contiguous block. The window is gathered into a reused contiguous
    NCHW buffer (n, channels, k, k), copying only the taps the mask keeps; the masked taps stay
    0. (Slicing an NCHW cache, or permuting a window, copied 3-float rows and cost more than
    the convolution.) NCHW on purpose: the full pass convolves NCHW tensors, and a channels-last
    input could send oneDNN down a kernel with another summation order.
    """

    def __init__(self, conv: MaskedConv2d, n: int, h: int, w: int) -> None:
        k = conv.kernel_size[0]
        self.pad = k // 2
        self.bias = conv.bias
        # the same product forward() forms on every call, so the same bits
        self.weight = conv.weight * conv.mask
        like = conv.weight
        self.cache = like.new_zeros(h + 2 * self.pad, w + 2 * self.pad, n, conv.in_channels)
        self.buf = like.new_zeros(n, conv.in_channels, k, k)
        self.taps = [(a, b) for a in range(k) for b in range(k) if conv.mask[0, 0, a, b] != 0]

    def write(self, i: int, j: int, value: torch.Tensor) -> None:
        self.cache[self.pad + i, self.pad + j] = value

    def __call__(self, i: int, j: int) -> torch.Tensor:
        for a, b in self.taps:
            self.buf[:, :, a, b] = self.cache[i + a, j + b]
        return F.conv2d(self.buf, self.weight, self.bias)  # (n, out, 1, 1)
