"""The VAE: N(0, I) prior, diagonal-Gaussian encoder, discrete or Gaussian decoder, ELBO training.

Implements :class:`genbench.protocols.Generator`, :class:`~genbench.protocols.LikelihoodModel`
(``log_prob`` = ELBO, ``likelihood_kind = "lower-bound"``) and
:class:`~genbench.protocols.LatentVariableModel` (prior, decoder likelihood, encoder proposal),
so importance-sampled likelihoods (IWAE) run through the protocol.

Reference: Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import distributions as D

from baselines._nets import (
    broadcast_latents,
    local_generator,
    make_decoder,
    make_encoder,
    observation_model,
    sample_latent_model,
    scale_input,
)
from baselines.vae.config import VAEConfig
from genbench._runtime import eval_mode
from genbench.harness.base import StepContext, TrainableModel

LOG_2PI = math.log(2 * math.pi)


class VAE(TrainableModel):
    """Variational autoencoder.

    Parameters
    ----------
    config : :class:`VAEConfig`.
    info : the dataset's :class:`genbench.data.DatasetInfo` (shape, kind, levels, range).

    Examples
    --------
    >>> from genbench.data import load_dataset
    >>> info = load_dataset("digits").info
    >>> vae = VAE(VAEConfig(z_dim=4), info)
    >>> vae.sample(3, seed=0).shape
    torch.Size([3, 1, 8, 8])
    """

    family: ClassVar[str] = "vae"
    select_metric: ClassVar[str | None] = "val_elbo"
    select_higher_is_better: ClassVar[bool] = True
    likelihood_kind = "lower-bound"
    validation_info: ClassVar[dict[str, dict[str, Any]]] = {
        "val_elbo": {"higher_is_better": True, "kind": "lower-bound", "unit": "nats"},
        "val_rec": {"higher_is_better": False, "unit": "nats"},
        "val_kl": {"higher_is_better": False, "unit": "nats"},
    }

    def __init__(self, config: VAEConfig, info: Any) -> None:
        super().__init__(config, info)
        if info.kind == "points" and config.arch != "mlp":
            raise ValueError(f"points data need arch 'mlp'; got {config.arch!r}")
        self.obs = observation_model(config.decoder, info, min_std=config.min_std)
        self.shape = tuple(info.shape)
        self.z_dim = config.z_dim
        self.encoder = make_encoder(config.arch, self.shape, config.hidden, config.channels, 2 * config.z_dim)
        self.decoder = make_decoder(config.arch, config.z_dim, self.shape, config.hidden, config.channels,
                                    self.obs.n_params)

    # --- encoder / decoder ------------------------------------------------------------------

    def encode_params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x) = N(mu, diag(exp(logvar))): (mu, logvar), each (N, Z), float32."""
        h = self.encoder(scale_input(x, self.info)).float()
        mu, logvar = h.chunk(2, dim=1)
        # bounded log-variance: exp() of an unbounded output overflows early in training
        return mu, logvar.clamp(-12.0, 8.0)

    def decode_params(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder output (M, P, *shape) for latents (M, Z)."""
        return self.decoder(z)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior means (N, Z)."""
        return self.encode_params(x.to(self.device))[0]

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder means E[x|z] (N, *shape), in the data's range."""
        return self.obs.mean(self.decode_params(z.to(self.device)))

    # --- protocols --------------------------------------------------------------------------

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; 0, I) summed over latent dims: (..., N, Z) -> (..., N)."""
        return -0.5 * (z.float() ** 2 + LOG_2PI).sum(-1)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) summed over data dims; z (K, N, Z) or (N, Z) against x (N, ...) -> (K, N) or (N,)."""
        x = x.to(self.device)
        x_flat, z_flat, lead = broadcast_latents(x, z.to(self.device))
        return self.obs.log_prob(self.decode_params(z_flat), x_flat).view(*lead, x.shape[0])

    def proposal(self, x: torch.Tensor) -> D.Distribution:
        """The encoder q(z|x) = Independent(Normal(mu, sigma), 1), batch (N,), event (Z,)."""
        mu, logvar = self.encode_params(x.to(self.device))
        return D.Independent(D.Normal(mu, torch.exp(0.5 * logvar)), 1)

    def sample_prior(self, n: int, *, generator: torch.Generator) -> torch.Tensor:
        """z ~ N(0, I): (n, Z) drawn with ``generator`` on its device (AIS, genbench.metrics.likelihood.ais)."""
        return torch.randn((n, self.z_dim), generator=generator, device=generator.device)

    @torch.no_grad()
    def sample_observation(self, z: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        """x ~ p(x|z) for z (N, Z): (N, *shape), drawn with ``generator`` (on the model's device; BDMC)."""
        return self.obs.sample(self.decode_params(z.to(self.device)), generator)

    def elbo_terms(self, x: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(E_q log p(x|z) estimated with noise ``eps`` of shape (S, N, Z), KL(q || p)) per example."""
        mu, logvar = self.encode_params(x)
        z = mu + torch.exp(0.5 * logvar) * eps
        rec = self.log_likelihood(x, z).mean(0)
        # analytic KL between diagonal Gaussians: lower variance than a sampled one
        kl = 0.5 * (mu**2 + logvar.exp() - 1.0 - logvar).sum(1)
        return rec, kl

    @torch.no_grad()
    def log_prob(self, x: torch.Tensor, *, n_samples: int = 16, seed: int = 0, batch_size: int = 512) -> torch.Tensor:
        """The ELBO per example in nats: a lower bound on log p(x) (``likelihood_kind``).

        E_q[log p(x|z)] is estimated with ``n_samples`` draws from a generator seeded with
        ``seed`` (so the result is deterministic); the KL term is exact. For discrete decoders
        log p(x|z) is a log-probability of the data's grid values, comparable with exact
        discrete NLLs (PixelCNN, independent pixels).

        Returns
        -------
        (N,) float32 tensor on ``x``'s device.
        """
        with eval_mode(self):
            g = local_generator(seed, self.device)
            out = []
            for i in range(0, len(x), batch_size):
                xb = x[i:i + batch_size].to(self.device)
                eps = torch.randn((n_samples, len(xb), self.z_dim), generator=g, device=self.device)
                rec, kl = self.elbo_terms(xb, eps)
                out.append(rec - kl)
        return torch.cat(out).to(x.device)

    def sample(self, n: int, *, seed: int, batch_size: int = 1024) -> torch.Tensor:
        """n samples (n, *shape) on the CPU: the decoder mean or a decoder sample (``sample_mode``)."""
        return sample_latent_model(
            self, n, seed=seed, batch_size=batch_size, decode=self.decode_params,
            draw_z=lambda m, g: torch.randn((m, self.z_dim), generator=g, device=self.device))

    # --- training ---------------------------------------------------------------------------

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"model": torch.optim.Adam(self.parameters(), lr=self.config.lr)}

    def training_step(self, x: torch.Tensor, ctx: StepContext,
                      optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, float]:
        opt = optimizers["model"]
        opt.zero_grad(set_to_none=True)
        eps = torch.randn((1, len(x), self.z_dim), generator=ctx.generator, device=ctx.device)
        with ctx.autocast():
            rec, kl = self.elbo_terms(x, eps)
        warm = min(1.0, ctx.step / self.config.kl_warmup) if self.config.kl_warmup else 1.0
        loss = -(rec - self.config.beta * warm * kl).mean()
        loss.backward()
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.parameters(), self.config.grad_clip)
        opt.step()
        elbo = (rec - kl).mean()
        return {"loss": loss.item(), "neg_elbo": -elbo.item(), "kl": kl.mean().item()}

    @torch.no_grad()
    def validation_scores(self, x: torch.Tensor) -> dict[str, float]:
        # one posterior sample per example with the harness's fixed validation noise
        eps = torch.randn((1, len(x), self.z_dim), device=x.device)
        rec, kl = self.elbo_terms(x, eps)
        return {"val_elbo": (rec - kl).mean().item(), "val_rec": -rec.mean().item(), "val_kl": kl.mean().item()}
