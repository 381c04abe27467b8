"""BiGAN: a generator G(z), an encoder E(x), and a discriminator on the joint (x, z).

D tells (x, E(x)), x from the data, from (G(z), z), z from the prior; G and E together try to
fool it. At the optimum E inverts G (Donahue et al., Theorem 2), which makes E a learned
representation: the representation family probes it.

Reference: Donahue, Krähenbühl, Darrell, "Adversarial feature learning", ICLR 2017.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from baselines._nets import bn_mlp, dropout_mlp, local_generator, scale_input, value_range
from baselines.bigan.config import BiGANConfig
from genbench._runtime import eval_mode
from genbench.harness.base import StepContext, TrainableModel


class BiGAN(TrainableModel):
    """Bidirectional GAN on flattened images.

    Examples
    --------
    >>> from genbench.data import load_dataset
    >>> ds = load_dataset("digits")
    >>> m = BiGAN(BiGANConfig(z_dim=4), ds.info)
    >>> m.sample(3, seed=0).shape, m.encode(ds.test.x[:3]).shape
    (torch.Size([3, 1, 8, 8]), torch.Size([3, 4]))
    """

    family: ClassVar[str] = "bigan"

    def __init__(self, config: BiGANConfig, info: Any) -> None:
        super().__init__(config, info)
        if info.kind != "image":
            raise ValueError(f"bigan needs image data; {info.name} is {info.kind}")
        self.shape = tuple(info.shape)
        self.dim = math.prod(self.shape)
        self.z_dim = config.z_dim
        self.generator = bn_mlp(config.z_dim, config.hidden, self.dim)
        self.encoder = bn_mlp(self.dim, tuple(reversed(config.hidden)), config.z_dim)
        self.discriminator = dropout_mlp(self.dim + config.z_dim, config.d_hidden, 1, dropout=config.d_dropout)

    def _gen(self, z: torch.Tensor) -> torch.Tensor:
        lo, hi = value_range(self.info)
        return (lo + (hi - lo) * torch.sigmoid(self.generator(z))).view(len(z), *self.shape)

    def _enc(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(scale_input(x, self.info).flatten(1))

    def critic(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.discriminator(torch.cat([scale_input(x, self.info).flatten(1), z], 1)).squeeze(1)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """E(x), (N, Z). Call in eval mode (batch norm then uses its running statistics)."""
        return self._enc(x.to(self.device)).float()

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """G(z), (N, *shape), in the data's range."""
        return self._gen(z.to(self.device)).float()

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        b = (self.config.beta1, 0.999)
        return {"d": torch.optim.Adam(self.discriminator.parameters(), lr=self.config.lr, betas=b),
                "ge": torch.optim.Adam([*self.generator.parameters(), *self.encoder.parameters()],
                                       lr=self.config.lr, betas=b)}

    def training_step(self, x: torch.Tensor, ctx: StepContext,
                      optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, float]:
        z = torch.randn((len(x), self.z_dim), generator=ctx.generator, device=ctx.device)
        fake_x, enc_z = self._gen(z), self._enc(x)
        opt_d = optimizers["d"]
        opt_d.zero_grad(set_to_none=True)
        d_real, d_fake = self.critic(x, enc_z.detach()), self.critic(fake_x.detach(), z)
        loss_d = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        loss_d.backward()
        opt_d.step()
        opt = optimizers["ge"]
        opt.zero_grad(set_to_none=True)
        # non-saturating form with the labels swapped: G wants (G(z), z) called real, E wants
        # (x, E(x)) called fake (the paper's sec. 3.4 / ALI's practice)
        d_real, d_fake = self.critic(x, enc_z), self.critic(fake_x, z)
        loss_ge = (F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
                   + F.binary_cross_entropy_with_logits(d_real, torch.zeros_like(d_real)))
        loss_ge.backward()
        opt.step()
        return {"d": loss_d.item(), "ge": loss_ge.item()}

    @torch.no_grad()
    def sample(self, n: int, *, seed: int) -> torch.Tensor:
        """n samples G(z), z ~ N(0, I), (n, *shape) on the CPU."""
        with eval_mode(self):
            g = local_generator(seed, self.device)
            z = torch.randn((n, self.z_dim), generator=g, device=self.device)
            x = self._gen(z).float().cpu() if n else torch.empty((0, *self.shape))
        return x
