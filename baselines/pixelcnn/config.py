"""Configuration of the PixelCNN family (van den Oord et al. 2016, "Pixel recurrent neural networks")."""

from __future__ import annotations

from dataclasses import dataclass

from genbench.config import ConfigError


@dataclass(frozen=True)
class PixelCNNConfig:
    """Architecture and optimiser of a PixelCNN with a softmax over grey levels.

    Attributes
    ----------
    channels : width of the residual stream (2h in the paper's residual block).
    n_blocks : residual blocks: 1x1 conv to ``channels // 2`` -> masked ``kernel`` x ``kernel``
        conv (type B) -> 1x1 conv back, each preceded by ReLU, added to the stream.
    first_kernel : size of the first, type-A masked convolution (7 in the paper).
    kernel : size of the type-B masked convolutions inside the blocks.
    head : width of the two-layer 1x1 output head.
    levels : number of classes per sub-pixel; None takes the dataset's ``info.levels``
        (2 binary, 17 digits, 256 8-bit). Data x in [0, 1] is class round(x * (levels - 1)).
    lr : Adam learning rate.
    grad_clip : clip the global gradient norm to this value (None: no clipping).
    """

    channels: int = 64
    n_blocks: int = 4
    first_kernel: int = 7
    kernel: int = 3
    head: int = 128
    levels: int | None = None
    lr: float = 1e-3
    grad_clip: float | None = 1.0

    def __post_init__(self) -> None:
        for name in ("channels", "first_kernel", "kernel", "head"):
            if getattr(self, name) < 1:
                raise ConfigError(f"PixelCNNConfig.{name}: must be at least 1, got {getattr(self, name)}")
        if self.n_blocks < 0:
            raise ConfigError(f"PixelCNNConfig.n_blocks: must be non-negative, got {self.n_blocks}")
        if self.channels < 2:
            raise ConfigError(f"PixelCNNConfig.channels: must be at least 2 (blocks use channels // 2), "
                              f"got {self.channels}")
        for name in ("first_kernel", "kernel"):
            if getattr(self, name) % 2 == 0:
                raise ConfigError(f"PixelCNNConfig.{name}: masked kernels must be odd (centred), "
                                  f"got {getattr(self, name)}")
        if self.levels is not None and self.levels < 2:
            raise ConfigError(f"PixelCNNConfig.levels: must be at least 2, got {self.levels}")


def default_config(info) -> PixelCNNConfig:
    """Sizes per dataset: digits 8x8 (seconds on CPU), MNIST 28x28, CIFAR-10 32x32.

    The MNIST and CIFAR-10 sizes are smaller than the paper's fifteen-layer PixelCNN and
    untuned: documented starting points, constructed and stepped in tests but not trained there.
    """
    _, h, w = info.shape
    if max(h, w) <= 8:
        return PixelCNNConfig(channels=64, n_blocks=4, first_kernel=7, kernel=3, head=128, lr=2e-3)
    if info.shape[0] == 1:
        return PixelCNNConfig(channels=128, n_blocks=7, first_kernel=7, kernel=3, head=256)
    return PixelCNNConfig(channels=256, n_blocks=12, first_kernel=7, kernel=3, head=512, lr=3e-4)


def default_train(info) -> dict:
    """Harness TrainConfig overrides: step budget and batch size per dataset."""
    _, h, _ = info.shape
    if h <= 8:
        # digits: 1500 steps of 32 (38 epochs); validation NLL stops improving about here
        return {"steps": 1500, "batch_size": 32}
    if info.shape[0] == 1:
        return {"steps": 20000, "batch_size": 64}
    return {"steps": 100000, "batch_size": 32}
