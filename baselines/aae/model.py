"""The adversarial autoencoder: reconstruction plus a discriminator that matches the aggregate
posterior to the prior.

Each training step has the paper's two phases on one batch: (1) reconstruction (encoder and
decoder minimise -log p(x|z)), (2) regularisation (the discriminator learns to tell prior
samples from codes; the encoder, as its generator, learns to fool it).

The encoder defines q(z|x) = N(enc(x), sigma_q^2 I) with a fixed, documented sigma_q
(``AAEConfig.proposal_std``): the "Gaussian posterior" variant of Makhzani et al. (sec. 2). It
is used in training, and as the proposal of importance sampling, so that
:class:`genbench.protocols.LatentVariableModel` (prior, decoder likelihood, proposal) gives
likelihood estimates through the same code path as the VAE.

Reference: Makhzani, Shlens, Jaitly, Goodfellow, Frey, "Adversarial Autoencoders", 2015.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import distributions as D
from torch import nn

from baselines._nets import (
    broadcast_latents,
    make_decoder,
    make_encoder,
    mlp,
    observation_model,
    sample_latent_model,
    scale_input,
)
from baselines.aae.config import AAEConfig
from genbench.harness.base import StepContext, TrainableModel

LOG_2PI = math.log(2 * math.pi)


class AAE(TrainableModel):
    """Adversarial autoencoder with an N(0, I) or mixture-of-Gaussians prior.

    Examples
    --------
    >>> from genbench.data import load_dataset
    >>> aae = AAE(AAEConfig(z_dim=4), load_dataset("digits").info)
    >>> aae.sample(3, seed=0).shape
    torch.Size([3, 1, 8, 8])
    """

    family: ClassVar[str] = "aae"
    select_metric: ClassVar[str | None] = "val_iwae"
    select_higher_is_better: ClassVar[bool] = True
    validation_info: ClassVar[dict[str, dict[str, Any]]] = {
        "val_iwae": {"higher_is_better": True, "kind": "lower-bound", "unit": "nats"},
        "val_rec": {"higher_is_better": False, "unit": "nats"},
    }

    def __init__(self, config: AAEConfig, info: Any) -> None:
        super().__init__(config, info)
        if info.kind == "points" and config.arch != "mlp":
            raise ValueError(f"points data need arch 'mlp'; got {config.arch!r}")
        if config.proposal_std <= 0:
            raise ValueError(f"proposal_std must be > 0; got {config.proposal_std}")
        self.obs = observation_model(config.decoder, info, min_std=config.min_std)
        self.shape = tuple(info.shape)
        self.z_dim = config.z_dim
        self.sigma_q = float(config.proposal_std)
        self.encoder = make_encoder(config.arch, self.shape, config.hidden, config.channels, config.z_dim)
        self.decoder = make_decoder(config.arch, config.z_dim, self.shape, config.hidden, config.channels,
                                    self.obs.n_params)
        self.discriminator = mlp(config.z_dim, config.disc_hidden, 1, act=lambda: nn.LeakyReLU(0.2))
        if config.prior == "mog":
            a = 2 * math.pi * torch.arange(config.mog_components) / config.mog_components
            means = torch.zeros(config.mog_components, config.z_dim)
            means[:, 0] = config.mog_radius * torch.cos(a)
            if config.z_dim > 1:
                means[:, 1] = config.mog_radius * torch.sin(a)
            # derived from the config: not part of the state dict
            self.register_buffer("mog_means", means, persistent=False)

    # --- prior ------------------------------------------------------------------------------

    def prior_sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        dev = self.device
        eps = torch.randn((n, self.z_dim), generator=generator, device=dev)
        if self.config.prior == "normal":
            return eps
        c = torch.randint(0, self.config.mog_components, (n,), generator=generator, device=dev)
        return self.mog_means[c] + self.config.mog_std * eps

    def sample_prior(self, n: int, *, generator: torch.Generator) -> torch.Tensor:
        """z ~ p(z): (n, Z) drawn with ``generator`` on its device (AIS, genbench.metrics.likelihood.ais)."""
        dev = generator.device
        eps = torch.randn((n, self.z_dim), generator=generator, device=dev)
        if self.config.prior == "normal":
            return eps
        c = torch.randint(0, self.config.mog_components, (n,), generator=generator, device=dev)
        return self.mog_means.to(dev)[c] + self.config.mog_std * eps

    @torch.no_grad()
    def sample_observation(self, z: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        """x ~ p(x|z) for z (N, Z): (N, *shape), drawn with ``generator`` (on the model's device; BDMC)."""
        return self.obs.sample(self.decoder(z.to(self.device)), generator)

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) summed over latent dims: (..., N, Z) -> (..., N)."""
        z = z.float()
        if self.config.prior == "normal":
            return -0.5 * (z**2 + LOG_2PI).sum(-1)
        s = self.config.mog_std
        d2 = ((z.unsqueeze(-2) - self.mog_means) ** 2).sum(-1)  # (..., N, C)
        log_comp = -0.5 * d2 / s**2 - self.z_dim * (math.log(s) + 0.5 * LOG_2PI)
        return torch.logsumexp(log_comp, -1) - math.log(self.config.mog_components)

    # --- encoder / decoder / protocols ------------------------------------------------------

    def _enc(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(scale_input(x, self.info)).float()

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The deterministic code enc(x) (the proposal's mean), (N, Z)."""
        return self._enc(x.to(self.device))

    def decode_params(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder output (M, P, *shape) for latents (M, Z)."""
        return self.decoder(z)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder means E[x|z] (N, *shape)."""
        return self.obs.mean(self.decoder(z.to(self.device)))

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) summed over data dims; z (K, N, Z) or (N, Z) against x (N, ...)."""
        x = x.to(self.device)
        x_flat, z_flat, lead = broadcast_latents(x, z.to(self.device))
        return self.obs.log_prob(self.decoder(z_flat), x_flat).view(*lead, x.shape[0])

    def proposal(self, x: torch.Tensor) -> D.Distribution:
        """q(z|x) = Independent(Normal(enc(x), sigma_q), 1), sigma_q = ``config.proposal_std``."""
        mu = self._enc(x.to(self.device))
        return D.Independent(D.Normal(mu, torch.full_like(mu, self.sigma_q)), 1)

    @torch.no_grad()
    def iwae(self, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Importance-weighted bound log (1/k) sum_i p(x, z_i) / q(z_i|x), z_i ~ q(z|x): (N,)."""
        q = self.proposal(x)
        eps = torch.randn((k, len(x), self.z_dim), generator=generator, device=self.device)
        z = q.base_dist.loc + self.sigma_q * eps
        log_w = self.log_likelihood(x, z) + self.prior_log_prob(z) - q.log_prob(z)
        return torch.logsumexp(log_w, 0) - math.log(k)

    def sample(self, n: int, *, seed: int, batch_size: int = 1024) -> torch.Tensor:
        """n samples (n, *shape) on the CPU: z ~ p(z), then the decoder mean or a decoder sample."""
        return sample_latent_model(self, n, seed=seed, batch_size=batch_size, draw_z=self.prior_sample,
                                   decode=self.decoder)

    # --- training ---------------------------------------------------------------------------

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        ae_params = [*self.encoder.parameters(), *self.decoder.parameters()]
        return {
            "ae": torch.optim.Adam(ae_params, lr=c.lr),
            # beta1 = 0.5 for the adversarial phase, the usual choice for GAN-style games
            "d": torch.optim.Adam(self.discriminator.parameters(), lr=c.adv_lr, betas=(0.5, 0.999)),
            "g": torch.optim.Adam(self.encoder.parameters(), lr=c.adv_lr, betas=(0.5, 0.999)),
        }

    def _clip(self, params: Any) -> None:
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(list(params), self.config.grad_clip)

    def training_step(self, x: torch.Tensor, ctx: StepContext,
                      optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, float]:
        n, g = len(x), ctx.generator
        # (1) reconstruction through the noisy code z ~ q(z|x)
        opt = optimizers["ae"]
        opt.zero_grad(set_to_none=True)
        eps = torch.randn((n, self.z_dim), generator=g, device=ctx.device)
        with ctx.autocast():
            z = self._enc(x) + self.sigma_q * eps
            rec = -self.obs.log_prob(self.decoder(z), x).mean()
        rec.backward()
        self._clip([*self.encoder.parameters(), *self.decoder.parameters()])
        opt.step()

        # (2a) discriminator: prior samples are "real", codes are "fake"
        z_prior = self.prior_sample(n, g)
        eps = torch.randn((n, self.z_dim), generator=g, device=ctx.device)
        opt_d = optimizers["d"]
        opt_d.zero_grad(set_to_none=True)
        with ctx.autocast():
            with torch.no_grad():
                z_fake = self._enc(x) + self.sigma_q * eps
            d_real, d_fake = self.discriminator(z_prior).float(), self.discriminator(z_fake).float()
            loss_d = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                      + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        loss_d.backward()
        self._clip(self.discriminator.parameters())
        opt_d.step()

        # (2b) encoder as generator: make codes look like prior samples
        opt_g = optimizers["g"]
        opt_g.zero_grad(set_to_none=True)
        with ctx.autocast():
            d_gen = self.discriminator(self._enc(x) + self.sigma_q * eps).float()
            loss_g = F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))
        loss_g.backward()
        self._clip(self.encoder.parameters())
        opt_g.step()
        # the generator pass left gradients in the discriminator; they are discarded (set_to_none
        # at the next discriminator step), never applied
        return {"rec": rec.item(), "d": loss_d.item(), "g": loss_g.item()}

    @torch.no_grad()
    def validation_scores(self, x: torch.Tensor) -> dict[str, float]:
        eps = torch.randn((len(x), self.z_dim), device=x.device)
        rec = -self.obs.log_prob(self.decoder(self._enc(x) + self.sigma_q * eps), x).mean()
        return {"val_iwae": self.iwae(x, self.config.val_k).mean().item(), "val_rec": rec.item()}
