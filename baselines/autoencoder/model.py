"""Deterministic autoencoders as generators (plain, sparse, contractive; codes modelled by a GMM) and
the denoising autoencoder sampled as a Markov chain.

An autoencoder has a decoder but no prior: to generate, a density must be put on its codes. Here a
Gaussian mixture is fitted to the codes of the training data (its component count chosen on the
validation codes by held-out log-likelihood), and samples are decoded draws from it, the recipe of
Ghosh et al. 2020 ("From variational to deterministic autoencoders", ex-post density estimation).
The denoising autoencoder needs no such density: its corruption-reconstruction chain is itself a
sampler (Bengio, Yao, Alain, Vincent, "Generalized denoising auto-encoders as generative models",
NeurIPS 2013).

References: Rifai, Vincent, Muller, Glorot, Bengio, "Contractive auto-encoders", ICML 2011;
Ng, "Sparse autoencoder", CS294A lecture notes, 2011 (sparsity penalties on the code).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from torch.func import jacrev, vmap

from baselines._nets import local_generator, make_decoder, make_encoder, observation_model, scale_input, value_range
from baselines.autoencoder.config import AEConfig, DAEConfig
from genbench._runtime import eval_mode
from genbench.harness.base import StepContext, TrainableModel


class _Autoencoder(TrainableModel):
    """Encoder, decoder, observation model and the ring buffer of training examples."""

    select_metric: ClassVar[str | None] = "val_rec"
    select_higher_is_better: ClassVar[bool] = False

    def __init__(self, config: Any, info: Any, *, bank: int) -> None:
        super().__init__(config, info)
        if info.kind == "points" and config.arch != "mlp":
            raise ValueError(f"points data need arch 'mlp'; got {config.arch!r}")
        self.obs = observation_model(config.decoder, info, min_std=config.min_std)
        self.shape = tuple(info.shape)
        self.z_dim = config.z_dim
        self.encoder = make_encoder(config.arch, self.shape, config.hidden, config.channels, config.z_dim)
        self.decoder = make_decoder(config.arch, config.z_dim, self.shape, config.hidden, config.channels,
                                    self.obs.n_params)
        n_bank = min(bank, int(info.split_sizes.get("train", bank))) if bank else 0
        self.register_buffer("bank", torch.zeros((n_bank, *self.shape)))
        self.register_buffer("bank_count", torch.zeros((), dtype=torch.long))
        self.register_buffer("steps_taken", torch.zeros((), dtype=torch.long))

    def _enc(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(scale_input(x, self.info)).float()

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes (N, Z) of data (N, *shape)."""
        return self._enc(x.to(self.device))

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder means E[x|z] (N, *shape) in the data's range."""
        return self.obs.mean(self.decoder(z.to(self.device)))

    @torch.no_grad()
    def _remember(self, x: torch.Tensor) -> None:
        """Write a training batch into the ring buffer (the oldest examples are overwritten)."""
        self.steps_taken += 1
        n = len(self.bank)
        if not n:
            return
        pos = int(self.bank_count) % n
        idx = (torch.arange(len(x), device=x.device) + pos) % n
        self.bank[idx[-n:]] = x[-n:].to(self.bank.dtype)
        self.bank_count += len(x)

    def bank_examples(self) -> torch.Tensor:
        return self.bank[: min(int(self.bank_count), len(self.bank))]

    def _step(self, loss: torch.Tensor, opt: torch.optim.Optimizer) -> None:
        loss.backward()
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.parameters(), self.config.grad_clip)
        opt.step()

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"model": torch.optim.Adam(self.parameters(), lr=self.config.lr)}

    def _mode(self) -> str:
        mode = self.config.sample_mode
        return ("sample" if self.info.kind == "points" else "mean") if mode == "auto" else mode


def encoder_jacobian(encoder: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The Jacobian of ``encoder`` at each example: (N, Z, *x.shape[1:]), differentiable in the weights.

    ``torch.func.vmap(jacrev(f))`` over the batch: exact, one reverse pass per code dimension.
    """
    def one(xi: torch.Tensor) -> torch.Tensor:
        return encoder(xi.unsqueeze(0)).squeeze(0)

    return vmap(jacrev(one))(x)


class Autoencoder(_Autoencoder):
    """A deterministic autoencoder (plain, sparse or contractive) that samples through a GMM on its codes.

    Parameters
    ----------
    config : :class:`AEConfig`.
    info : the dataset's :class:`genbench.data.DatasetInfo`.

    Examples
    --------
    >>> from genbench.data import load_dataset
    >>> ds = load_dataset("digits")
    >>> ae = Autoencoder(AEConfig(z_dim=4), ds.info)
    >>> ae.encode(ds.test.x[:3]).shape
    torch.Size([3, 4])
    """

    family: ClassVar[str] = "ae"
    validation_info: ClassVar[dict[str, dict[str, Any]]] = {
        "val_rec": {"higher_is_better": False, "unit": "nats"},
        "val_code_ll": {"higher_is_better": True, "unit": "nats"},
        "gmm_components": {"higher_is_better": None},
    }

    def __init__(self, config: AEConfig, info: Any) -> None:
        super().__init__(config, info, bank=config.bank_size)
        if config.variant not in ("plain", "sparse", "contractive"):
            raise ValueError(f"variant must be plain, sparse or contractive; got {config.variant!r}")
        if not config.gmm_components or min(config.gmm_components) < 1:
            raise ValueError(f"gmm_components must be a non-empty grid of counts >= 1; got {config.gmm_components}")
        k, z = max(config.gmm_components), config.z_dim
        self.register_buffer("gmm_k", torch.zeros((), dtype=torch.long))  # 0: no GMM fitted yet
        self.register_buffer("gmm_weights", torch.zeros(k))
        self.register_buffer("gmm_means", torch.zeros(k, z))
        self.register_buffer("gmm_chol", torch.zeros(k, z, z))
        self._gmm_round: tuple[int, dict[int, Any], dict[int, float], int] | None = None

    # --- training ---------------------------------------------------------------------------

    def penalty(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The variant's regulariser per example (N,): 0, ``|z|_1`` or ``||J_f(x)||_F^2``."""
        c = self.config
        if c.variant == "sparse":
            return c.sparse_weight * z.abs().sum(1)
        if c.variant == "contractive":
            jac = encoder_jacobian(self.encoder, scale_input(x, self.info))
            return c.contractive_weight * jac.pow(2).flatten(1).sum(1)
        return torch.zeros(len(x), device=x.device)

    def training_step(self, x: torch.Tensor, ctx: StepContext,
                      optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, float]:
        self._remember(x)
        opt = optimizers["model"]
        opt.zero_grad(set_to_none=True)
        with ctx.autocast():
            z = self._enc(x)
            rec = -self.obs.log_prob(self.decoder(z), x)
            pen = self.penalty(x, z)
        loss = (rec + pen).mean()
        self._step(loss, opt)
        return {"loss": loss.item(), "rec": rec.mean().item(), "penalty": pen.mean().item()}

    # --- the code density -------------------------------------------------------------------

    def _candidates(self) -> dict[int, Any]:
        """GMMs fitted to the codes of the stored training examples, one per grid count."""
        from sklearn.mixture import GaussianMixture

        codes = self.encode(self.bank_examples()).double().cpu().numpy()
        out = {}
        for k in sorted(set(self.config.gmm_components)):
            if k <= len(codes):
                out[k] = GaussianMixture(k, covariance_type="full", reg_covar=self.config.gmm_reg, random_state=0,
                                         n_init=1, max_iter=200).fit(codes)
        return out

    def _set_gmm(self, gmm: Any) -> None:
        k = gmm.n_components
        self.gmm_k.fill_(k)
        self.gmm_weights.zero_()
        self.gmm_weights[:k] = torch.as_tensor(gmm.weights_, dtype=torch.float32)
        self.gmm_means.zero_()
        self.gmm_means[:k] = torch.as_tensor(gmm.means_, dtype=torch.float32)
        self.gmm_chol.zero_()
        self.gmm_chol[:k] = torch.as_tensor(np.linalg.cholesky(gmm.covariances_), dtype=torch.float32)

    @torch.no_grad()
    def fit_code_density(self, x_val: torch.Tensor) -> tuple[int, float]:
        """Fit the grid of GMMs to the training codes and keep the count best on the validation codes.

        Called on each validation batch: the candidates are fitted once per validation round (keyed
        by the step), the held-out log-likelihoods are summed over the round's batches, and after
        each batch the count with the best mean so far is written into the buffers, so after the
        last batch the choice rests on every validation code. Returns (count, mean log-likelihood
        of this batch's codes under the chosen GMM).
        """
        step = int(self.steps_taken)
        if self._gmm_round is None or self._gmm_round[0] != step:
            self._gmm_round = (step, self._candidates(), {}, 0)
        _, cands, sums, n = self._gmm_round
        if not cands:
            raise RuntimeError("no training examples stored yet to fit the code GMM")
        codes = self.encode(x_val).double().cpu().numpy()
        ll = {k: g.score_samples(codes) for k, g in cands.items()}
        for k, v in ll.items():
            sums[k] = sums.get(k, 0.0) + float(v.sum())
        self._gmm_round = (step, cands, sums, n + len(codes))
        best = max(sums, key=lambda k: (sums[k], -k))
        self._set_gmm(cands[best])
        return best, float(ll[best].mean())

    def sample_codes(self, n: int, generator: torch.Generator) -> torch.Tensor:
        k = int(self.gmm_k)
        if k == 0:
            raise RuntimeError("this autoencoder has no code GMM yet: it is fitted at validation, so train it with a "
                               "validation split (TrainConfig.val_every > 0)")
        comp = torch.multinomial(self.gmm_weights[:k], n, replacement=True, generator=generator)
        eps = torch.randn((n, self.z_dim), generator=generator, device=self.device)
        return self.gmm_means[comp] + (self.gmm_chol[comp] @ eps.unsqueeze(-1)).squeeze(-1)

    @torch.no_grad()
    def sample(self, n: int, *, seed: int, batch_size: int = 1024) -> torch.Tensor:
        """n samples (n, *shape) on the CPU: z from the code GMM, then the decoder mean (or a draw)."""
        with eval_mode(self):
            g = local_generator(seed, self.device)
            out = []
            for i in range(0, n, batch_size):
                params = self.decoder(self.sample_codes(min(batch_size, n - i), g))
                x = self.obs.mean(params) if self._mode() == "mean" else self.obs.sample(params, g)
                out.append(x.float().cpu())
        return torch.cat(out) if out else torch.empty((0, *self.shape))

    @torch.no_grad()
    def validation_scores(self, x: torch.Tensor) -> dict[str, float]:
        rec = -self.obs.log_prob(self.decoder(self._enc(x)), x).mean().item()
        k, ll = self.fit_code_density(x)
        return {"val_rec": rec, "val_code_ll": ll, "gmm_components": float(k)}


class DenoisingAutoencoder(_Autoencoder):
    """A denoising autoencoder whose samples are states of its corruption-reconstruction Markov chain.

    Parameters
    ----------
    config : :class:`DAEConfig`.
    info : the dataset's :class:`genbench.data.DatasetInfo`.

    Examples
    --------
    >>> from genbench.data import load_dataset
    >>> dae = DenoisingAutoencoder(DAEConfig(burn_in=2, thin=1, chains=2), load_dataset("digits").info)
    >>> dae.sample(3, seed=0).shape
    torch.Size([3, 1, 8, 8])
    """

    family: ClassVar[str] = "dae"
    validation_info: ClassVar[dict[str, dict[str, Any]]] = {"val_rec": {"higher_is_better": False, "unit": "nats"}}

    def __init__(self, config: DAEConfig, info: Any) -> None:
        super().__init__(config, info, bank=config.bank_size if config.chain_start == "data" else 0)
        if config.noise_std <= 0 or config.chains < 1 or config.burn_in < 0 or config.thin < 1:
            raise ValueError("DAEConfig needs noise_std > 0, chains >= 1, burn_in >= 0 and thin >= 1; got "
                             f"{config.noise_std}, {config.chains}, {config.burn_in}, {config.thin}")

    def corrupt(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """C(x~ | x): additive Gaussian noise (std ``noise_std`` times the data range), clipped to the range."""
        if self.info.kind == "points":
            return x + self.config.noise_std * torch.randn(x.shape, generator=generator, device=x.device)
        lo, hi = value_range(self.info)
        noise = torch.randn(x.shape, generator=generator, device=x.device)
        return (x + self.config.noise_std * (hi - lo) * noise).clamp(lo, hi)

    def reconstruct_params(self, x_tilde: torch.Tensor) -> torch.Tensor:
        """Parameters of P(x | x~), (N, P, *shape)."""
        return self.decoder(self._enc(x_tilde))

    def training_step(self, x: torch.Tensor, ctx: StepContext,
                      optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, float]:
        self._remember(x)
        opt = optimizers["model"]
        opt.zero_grad(set_to_none=True)
        x_tilde = self.corrupt(x, ctx.generator)
        with ctx.autocast():
            loss = -self.obs.log_prob(self.reconstruct_params(x_tilde), x).mean()
        self._step(loss, opt)
        return {"loss": loss.item()}

    @torch.no_grad()
    def validation_scores(self, x: torch.Tensor) -> dict[str, float]:
        # the harness seeds the global RNG identically at every validation: the same corruptions
        return {"val_rec": -self.obs.log_prob(self.reconstruct_params(self.corrupt(x, None)), x).mean().item()}

    def _start(self, m: int, g: torch.Generator) -> torch.Tensor:
        if self.config.chain_start == "data":
            bank = self.bank_examples()
            if not len(bank):
                raise RuntimeError("chain_start='data' but no training examples are stored yet")
            return bank[torch.randint(0, len(bank), (m,), generator=g, device=self.device)].clone()
        if self.info.kind == "points":
            return torch.randn((m, *self.shape), generator=g, device=self.device)
        lo, hi = value_range(self.info)
        return lo + (hi - lo) * torch.rand((m, *self.shape), generator=g, device=self.device)

    @torch.no_grad()
    def sample(self, n: int, *, seed: int) -> torch.Tensor:
        """n states of ``min(n, chains)`` parallel chains, after ``burn_in`` steps, every ``thin`` steps.

        Each step corrupts the state and draws the next from P(x | x~); a kept sample is the
        reconstruction mean E[x | x~] of that step (or the state itself, per ``sample_mode``).
        Chain c's j-th kept sample is sample ``j * chains + c``. Returns (n, *shape) on the CPU.
        """
        with eval_mode(self):
            g = local_generator(seed, self.device)
            c = min(n, self.config.chains)
            out: list[torch.Tensor] = []
            if c:
                per_chain = math.ceil(n / c)
                x = self._start(c, g)
                for t in range(1, self.config.burn_in + (per_chain - 1) * self.config.thin + 2):
                    params = self.reconstruct_params(self.corrupt(x, g))
                    x = self.obs.sample(params, g)
                    if t > self.config.burn_in and (t - 1 - self.config.burn_in) % self.config.thin == 0:
                        out.append((self.obs.mean(params) if self._mode() == "mean" else x).float().cpu())
        return torch.cat(out)[:n] if out else torch.empty((0, *self.shape))
