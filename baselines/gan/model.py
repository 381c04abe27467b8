"""The GAN family: a generator and a discriminator trained by the harness with four losses.

Implements :class:`genbench.protocols.Generator` only: a GAN has no likelihood. Losses follow
Goodfellow et al. (2014) (minimax and non-saturating), Gulrajani et al. (2017) (WGAN-GP) and
Mao et al. (2017) (LSGAN, a=0, b=1, c=1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from baselines.gan.config import GANConfig
from baselines.gan.nets import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator, dcgan_init
from genbench._runtime import eval_mode, seeded_generator
from genbench.harness.base import StepContext, TrainableModel

_SAMPLE_CHUNK = 1024


class GAN(TrainableModel):
    """A GAN for images (DCGAN-style nets) or 2-D points (MLPs).

    Parameters
    ----------
    config : GANConfig
        Loss, architecture and optimiser settings.
    info : genbench.data.DatasetInfo
        The dataset's shape, kind and value range; the model is rebuilt from these alone.

    Notes
    -----
    ``training_step`` returns ``loss_d``, ``loss_g``, ``d_real`` and ``d_fake`` (plus ``gp`` for
    WGAN-GP). ``d_real`` / ``d_fake`` are batch means of D on real data and on G(z) from the
    last discriminator step: probabilities sigmoid(logit) for ``minimax`` and
    ``non-saturating``; raw outputs for ``wgan-gp`` (critic values, unbounded) and ``lsgan``
    (regression outputs aiming at 1 for real and 0 for fake). Images travel through the nets in
    [-1, 1]; samples come back in the dataset's value range. No validation score: there is no
    cheap criterion that tracks GAN sample quality, so ``select_metric`` is None and the
    harness keeps the last checkpoint.

    Examples
    --------
    >>> from genbench.data import load_dataset
    >>> from baselines.gan.config import default_config
    >>> ds = load_dataset("digits")
    >>> model = GAN(default_config(ds.info), ds.info)
    >>> model.sample(4, seed=0).shape
    torch.Size([4, 1, 8, 8])
    """

    family = "gan"
    select_metric = None

    def __init__(self, config: GANConfig, info) -> None:
        super().__init__(config, info)
        self.shape = tuple(info.shape)
        if info.kind == "points":
            self.g = MLPGenerator(config.z_dim, self.shape[0], config.hidden, config.mlp_layers)
            self.d = MLPDiscriminator(self.shape[0], config.hidden, config.mlp_layers)
            self.lo, self.hi = None, None
        elif info.kind == "image":
            if len(self.shape) != 3:
                raise ValueError(f"GAN: image data must have shape (C, H, W); {info.name!r} has {self.shape}.")
            c, h, w = self.shape
            f = 2**config.stages
            if h % f or w % f:
                raise ValueError(
                    f"GAN: {h}x{w} images are not divisible by 2**stages = {f}; choose stages so that "
                    f"H and W are (e.g. stages=2 for 8x8 or 28x28, stages=3 for 32x32)."
                )
            self.g = DCGANGenerator(config.z_dim, self.shape, config.width, config.stages)
            self.d = DCGANDiscriminator(self.shape, config.width, config.stages, config.resolved_d_norm)
            dcgan_init(self)
            self.lo, self.hi = info.value_range if info.value_range is not None else (0.0, 1.0)
        else:
            raise ValueError(f"GAN supports image and points data, not kind {info.kind!r} ({info.name!r}).")

    # -- value-range mapping: nets see [-1, 1] for images, raw coordinates for points --------
    def _to_net(self, x: torch.Tensor) -> torch.Tensor:
        if self.lo is None:
            return x
        return (x - self.lo) * (2.0 / (self.hi - self.lo)) - 1.0

    def _from_net(self, y: torch.Tensor) -> torch.Tensor:
        if self.lo is None:
            return y
        # clamp: tanh in float32 reaches exactly +-1, but (y + 1) * scale may round past hi
        return ((y + 1.0) * (0.5 * (self.hi - self.lo)) + self.lo).clamp(self.lo, self.hi)

    @property
    def z_dim(self) -> int:
        """Latent dimension; z ~ N(0, I) (read by genbench.metrics.likelihood.ais.GaussianObservationModel)."""
        return self.config.z_dim

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """G(z) in data space: (N, z_dim) -> (N, *shape)."""
        return self._from_net(self.g(z))

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        betas = (c.beta1, c.beta2)
        return {
            "g": torch.optim.Adam(self.g.parameters(), lr=c.lr_g, betas=betas),
            "d": torch.optim.Adam(self.d.parameters(), lr=c.lr_d, betas=betas),
        }

    def _noise(self, n: int, ctx: StepContext, device: torch.device) -> torch.Tensor:
        z = torch.randn(n, self.config.z_dim, generator=ctx.generator, device=ctx.generator.device)
        return z.to(device)

    def _d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        loss = self.config.loss
        if loss in ("minimax", "non-saturating"):
            # -log D(x) - log(1 - D(G(z))) with D = sigmoid(logit), in the stable softplus form
            return F.softplus(-real).mean() + F.softplus(fake).mean()
        if loss == "lsgan":
            return 0.5 * ((real - 1.0) ** 2).mean() + 0.5 * (fake**2).mean()
        return fake.mean() - real.mean()  # wgan-gp, penalty added by the caller

    def _g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        loss = self.config.loss
        if loss == "minimax":
            return -F.softplus(fake).mean()  # log(1 - D(G(z))) = -softplus(logit)
        if loss == "non-saturating":
            return F.softplus(-fake).mean()  # -log D(G(z))
        if loss == "lsgan":
            return 0.5 * ((fake - 1.0) ** 2).mean()
        return -fake.mean()

    def _gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """E[(||grad_x D(x_hat)||_2 - 1)^2] at random interpolates of real and fake (net space)."""
        n = len(real)
        eps = torch.rand(n, *([1] * (real.dim() - 1)), generator=ctx.generator, device=ctx.generator.device)
        eps = eps.to(real.device)
        x_hat = (eps * real + (1.0 - eps) * fake).requires_grad_(True)
        out = self.d(x_hat).float()
        (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
        return ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()

    def _readout(self, out: torch.Tensor) -> float:
        if self.config.loss in ("minimax", "non-saturating"):
            return float(torch.sigmoid(out).mean())
        return float(out.mean())

    def training_step(self, x: torch.Tensor, ctx: StepContext,
                      optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, float]:
        """``d_steps`` discriminator updates then one generator update on batch ``x`` (N, *shape).

        Returns
        -------
        dict of float: ``loss_d``, ``loss_g``, ``d_real``, ``d_fake`` and, for WGAN-GP, ``gp``
        (see the class notes for what ``d_real`` / ``d_fake`` mean per loss).
        """
        opt_g, opt_d = optimizers["g"], optimizers["d"]
        real = self._to_net(x)
        n = len(x)
        logs: dict[str, float] = {}
        self.d.requires_grad_(True)
        for _ in range(self.config.d_steps):
            with torch.no_grad():
                fake = self.g(self._noise(n, ctx, x.device))
            with ctx.autocast():
                # real and fake pass D separately, as in DCGAN, so batchnorm sees pure batches
                out_real = self.d(real).float()
                out_fake = self.d(fake).float()
            loss_d = self._d_loss(out_real, out_fake)
            if self.config.loss == "wgan-gp":
                gp = self._gradient_penalty(real, fake, ctx)
                loss_d = loss_d + self.config.gp_weight * gp
                logs["gp"] = float(gp.detach())
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        logs.update(loss_d=float(loss_d.detach()), d_real=self._readout(out_real.detach()),
                    d_fake=self._readout(out_fake.detach()))

        # generator step: D's parameters are frozen so that no gradient is accumulated for them
        self.d.requires_grad_(False)
        with ctx.autocast():
            out = self.d(self.g(self._noise(n, ctx, x.device))).float()
        loss_g = self._g_loss(out)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        self.d.requires_grad_(True)
        logs["loss_g"] = float(loss_g.detach())
        return logs

    @torch.no_grad()
    def sample(self, n: int, *, seed: int) -> torch.Tensor:
        """``n`` samples (n, *shape) as a float32 CPU tensor, deterministic in ``seed``.

        z is drawn on the CPU from ``torch.Generator().manual_seed(seed)``, so the same seed
        gives the same latents on every device; G runs in eval mode (batchnorm running
        statistics), so a sample does not depend on ``n`` or on the other samples.
        """
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}.")
        gen = seeded_generator(seed)
        z = torch.randn(n, self.config.z_dim, generator=gen)
        with eval_mode(self):
            dev = self.device
            outs = [self.generate(z[i:i + _SAMPLE_CHUNK].to(dev)).float().cpu() for i in range(0, n, _SAMPLE_CHUNK)]
        return torch.cat(outs) if outs else torch.empty(0, *self.shape)
