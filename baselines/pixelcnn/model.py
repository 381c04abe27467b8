"""The PixelCNN family: an autoregressive model with an exact, discrete log-likelihood.

p(x) = prod_i p(x_i | x_<i) over pixels i in raster order, each pixel's C channels
independent given the previous pixels, each sub-pixel a softmax over ``levels`` grey levels.
Implements :class:`genbench.protocols.Generator` and :class:`genbench.protocols.LikelihoodModel`
(``likelihood_kind = "exact"``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from baselines.pixelcnn.config import PixelCNNConfig
from baselines.pixelcnn.nets import IncrementalState, PixelCNNNet
from genbench._runtime import eval_mode, seeded_generator
from genbench.harness.base import StepContext, TrainableModel

_CHUNK = 1024
_GRID_TOL = 1e-3


class PixelCNN(TrainableModel):
    """A residual PixelCNN over discrete grey levels.

    Parameters
    ----------
    config : PixelCNNConfig
        Architecture and optimiser settings.
    info : genbench.data.DatasetInfo
        An image dataset (C, H, W) with values in [0, 1] on a grid of ``info.levels`` levels
        (or ``config.levels``); the model is rebuilt from these alone.

    Notes
    -----
    Data x in [0, 1] is class ``round(x * (levels - 1))``; samples are ``class / (levels - 1)``.
    ``log_prob`` is the exact discrete log-probability in nats of each image (no
    dequantisation; for 8-bit data the PixelCNN papers' bits/dim is ``-log_prob / (D ln 2)``
    of exactly this quantity). ``validation_scores`` gives ``val_nll``, the mean exact NLL in
    nats per example, lower is better; it is the checkpoint-selection metric. The plain
    (non-gated) PixelCNN has the "blind spot" of van den Oord et al. (2016b): some pixels above
    and to the right are outside its receptive field; the likelihood stays exact regardless.

    Examples
    --------
    >>> from genbench.data import load_dataset
    >>> from baselines.pixelcnn.config import default_config
    >>> ds = load_dataset("digits")
    >>> model = PixelCNN(default_config(ds.info), ds.info)
    >>> model.log_prob(ds.test.x[:3]).shape
    torch.Size([3])
    """

    family = "pixelcnn"
    select_metric = "val_nll"
    select_higher_is_better = False
    likelihood_kind = "exact"

    def __init__(self, config: PixelCNNConfig, info) -> None:
        super().__init__(config, info)
        if info.kind != "image" or len(info.shape) != 3:
            raise ValueError(f"PixelCNN models images (C, H, W); {info.name!r} is {info.kind} data of shape "
                             f"{tuple(info.shape)}.")
        levels = config.levels if config.levels is not None else info.levels
        if levels is None:
            raise ValueError(
                f"PixelCNN needs discrete data, but dataset {info.name!r} declares no number of grey levels; "
                "set the model config's levels (e.g. levels = 256 for 8-bit images)."
            )
        self.levels = int(levels)
        self.shape = tuple(info.shape)
        self.net = PixelCNNNet(self.shape[0], self.levels, config.channels, config.n_blocks,
                               config.first_kernel, config.kernel, config.head)

    # -- discretisation -------------------------------------------------------------------
    def to_classes(self, x: torch.Tensor) -> torch.Tensor:
        """Values in [0, 1] (N, C, H, W) -> integer classes round(x * (levels - 1)), int64."""
        return torch.round(x * (self.levels - 1)).clamp_(0, self.levels - 1).long()

    def _net_input(self, classes: torch.Tensor) -> torch.Tensor:
        # in the weights' dtype, so that a model cast with .double() runs end to end in float64
        return classes.to(self.net.first.weight.dtype) * (2.0 / (self.levels - 1)) - 1.0

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Conditional logits: (N, C, H, W) in [0, 1] -> (N, levels, C, H, W).

        ``logits(x)[:, :, c, i, j]`` parameterises p(x_{c,i,j} | pixels before (i, j) in raster
        order) and does not depend on pixel (i, j) or any later pixel of ``x``.
        """
        return self.net(self._net_input(self.to_classes(x)))

    def _nll(self, x: torch.Tensor) -> torch.Tensor:
        classes = self.to_classes(x)
        logits = self.net(self._net_input(classes))
        if logits.dtype != torch.float64:
            logits = logits.float()  # the softmax in at least float32, also under bf16 autocast
        return F.cross_entropy(logits, classes, reduction="none").flatten(1).sum(1)

    # -- protocols -------------------------------------------------------------------------
    def _check(self, x: torch.Tensor) -> None:
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"PixelCNN expects images of shape (N, {', '.join(map(str, self.shape))}); "
                             f"got {tuple(x.shape)}.")
        if x.numel() == 0:
            return
        if not torch.isfinite(x).all():
            raise ValueError("x has NaN or Inf values; PixelCNN scores images in [0, 1].")
        lo, hi = float(x.min()), float(x.max())
        if lo < -_GRID_TOL or hi > 1 + _GRID_TOL:
            raise ValueError(f"x has values outside [0, 1] (min {lo:.4g}, max {hi:.4g}); rescale "
                             "(e.g. uint8 / 255) before scoring.")
        scaled = x * (self.levels - 1)
        off = float((scaled - torch.round(scaled)).abs().max())
        if off > _GRID_TOL * (self.levels - 1):
            raise ValueError(
                f"x is not on the {self.levels}-level grid k / {self.levels - 1} (largest offset "
                f"{off / (self.levels - 1):.3g}); an exact discrete likelihood needs undequantised data."
            )

    @torch.no_grad()
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) in nats per image.

        Parameters
        ----------
        x : tensor (N, C, H, W), values k / (levels - 1) in [0, 1].

        Returns
        -------
        tensor (N,), float32 on x's device: sum over all sub-pixels of log p(x_i | x_<i).
        """
        self._check(x)
        dev = self.device
        outs = [-self._nll(x[i:i + _CHUNK].to(dev)) for i in range(0, len(x), _CHUNK)]
        return torch.cat(outs).to(x.device) if outs else torch.empty(0, device=x.device)

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"model": torch.optim.Adam(self.parameters(), lr=self.config.lr)}

    def training_step(self, x: torch.Tensor, ctx: StepContext,
                      optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, float]:
        """One maximum-likelihood step on batch ``x`` (N, C, H, W).

        Returns
        -------
        dict of float: ``loss``, the batch-mean NLL in nats per example, and ``bits_per_dim``.
        The step needs no randomness, so ``ctx.generator`` is unused.
        """
        opt = optimizers["model"]
        with ctx.autocast():
            nll = self._nll(x).mean()
        # optimise per dimension so that the learning rate means the same at 8x8 and 32x32x3
        loss = nll / math.prod(self.shape)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.parameters(), self.config.grad_clip)
        opt.step()
        nll_f = float(nll.detach())
        return {"loss": nll_f, "bits_per_dim": nll_f / (math.prod(self.shape) * math.log(2))}

    @torch.no_grad()
    def validation_scores(self, x: torch.Tensor) -> dict[str, float]:
        """``{"val_nll": mean exact NLL in nats per example}`` (lower is better)."""
        return {"val_nll": float(-self.log_prob(x).mean())}

    @torch.no_grad()
    def sample(self, n: int, *, seed: int, method: str = "fast") -> torch.Tensor:
        """``n`` images (n, C, H, W) in [0, 1] on the level grid, as a float32 CPU tensor.

        Pixel by pixel in raster order: each pixel's C sub-pixels are drawn together from their
        conditionals by inverse-CDF on uniforms drawn up front on the CPU from
        ``torch.Generator().manual_seed(seed)``, so a seed gives the same images on every device.

        Parameters
        ----------
        n : int
            Number of images.
        seed : int
            Seed of the uniforms; the only randomness.
        method : {"fast", "naive"}
            ``"fast"`` (default) computes each layer once per pixel from cached activations
            (Ramachandran et al. 2017, "Fast generation for convolutional autoregressive
            models"): one network pass per image in all, ~H * W times less arithmetic.
            ``"naive"`` runs the whole network on the whole image for every pixel (H * W passes),
            the reference the fast method is tested against. On CPU both give bit-identical
            logits and so the same images for the same seed (see
            :class:`baselines.pixelcnn.nets.IncrementalState`).

        Examples
        --------
        >>> from genbench.data import load_dataset
        >>> from baselines.pixelcnn.config import default_config
        >>> ds = load_dataset("digits")
        >>> model = PixelCNN(default_config(ds.info), ds.info)
        >>> torch.equal(model.sample(4, seed=0), model.sample(4, seed=0, method="naive"))
        True
        """
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}.")
        chunk_fn = {"fast": self._sample_chunk_fast, "naive": self._sample_chunk_naive}.get(method)
        if chunk_fn is None:
            raise ValueError(f"method must be 'fast' or 'naive', got {method!r}.")
        gen = seeded_generator(seed)
        u = torch.rand(n, *self.shape, generator=gen, dtype=torch.float64)
        with eval_mode(self):
            outs = [chunk_fn(u[i:i + _CHUNK]) for i in range(0, n, _CHUNK)]
        return torch.cat(outs) if outs else torch.empty(0, *self.shape)

    def _draw(self, logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Inverse-CDF draw of each sub-pixel: logits (n, L, C), uniforms (n, C) -> classes (n, C).

        Both samplers call this one function, so equal logits give equal classes."""
        cdf = torch.softmax(logits.double(), dim=1).cumsum(dim=1)  # (n, L, C)
        k = (cdf < u[:, None, :]).sum(dim=1)  # classes whose CDF is below u
        return k.clamp_(max=self.levels - 1)

    def _sample_chunk_naive(self, u: torch.Tensor) -> torch.Tensor:
        dev = self.device
        u = u.to(dev)
        _, h, w = self.shape
        classes = torch.zeros(len(u), *self.shape, dtype=torch.long, device=dev)
        for i in range(h):
            for j in range(w):
                # later pixels are still 0 here; the masks guarantee they do not matter
                logits = self.net(self._net_input(classes))[:, :, :, i, j]  # (n, L, C)
                classes[:, :, i, j] = self._draw(logits, u[:, :, i, j])
        return (classes.float() / (self.levels - 1)).cpu()

    def _sample_chunk_fast(self, u: torch.Tensor) -> torch.Tensor:
        dev = self.device
        u = u.to(dev)
        _, h, w = self.shape
        classes = torch.zeros(len(u), *self.shape, dtype=torch.long, device=dev)
        # undrawn pixels enter the network as class 0, exactly as in the naive pass
        fill = float(self._net_input(torch.zeros((), dtype=torch.long, device=dev)))
        state = IncrementalState(self.net, len(u), self.shape, fill)
        for i in range(h):
            for j in range(w):
                k = self._draw(state.logits_at(i, j), u[:, :, i, j])
                classes[:, :, i, j] = k
                state.set_pixel(i, j, self._net_input(k))
        return (classes.float() / (self.levels - 1)).cpu()
