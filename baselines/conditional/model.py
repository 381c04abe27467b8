"""Class-conditional generators: the conditional GAN and the conditional VAE, plus conditional replay controls.

The harness feeds training steps images only. A conditional family needs each image's class, so
it keeps a label table of its training split, keyed by the image's content (a fixed random
projection of its values), built from the dataset at construction and stored with the weights
(so a checkpoint still rebuilds the model alone); :meth:`LabelTable.lookup` fails loudly on an
image that is not in the table.

``sample(n, *, seed, labels=None)`` draws samples of the requested classes (default: balanced,
``arange(n) % n_classes``).

References: Mirza & Osindero, "Conditional generative adversarial nets", 2014; Sohn, Lee, Yan,
"Learning structured output representation using deep conditional generative models", NeurIPS 2015.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from baselines._nets import (
    bn_mlp,
    dropout_mlp,
    local_generator,
    mlp,
    observation_model,
    scale_input,
    value_range,
)
from baselines.conditional.config import CGANConfig, CVAEConfig
from genbench._runtime import eval_mode
from genbench.harness.base import StepContext, TrainableModel


def balanced_labels(n: int, n_classes: int) -> torch.Tensor:
    """``arange(n) % n_classes``: the default request, every class equally often."""
    return torch.arange(n) % n_classes


def _check_labels(labels: Any, n: int, n_classes: int) -> torch.Tensor:
    y = balanced_labels(n, n_classes) if labels is None else torch.as_tensor(labels).long().reshape(-1)
    if len(y) != n:
        raise ValueError(f"labels has {len(y)} entries for n={n} samples")
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}; got {int(y.min())}..{int(y.max())}")
    return y


class LabelTable(nn.Module):
    """The classes of a training split, keyed by image content, as buffers (saved with the weights)."""

    def __init__(self, info: Any, dataset: Any) -> None:
        super().__init__()
        n = int(info.split_sizes.get("train", 0))
        d = math.prod(info.shape)
        g = torch.Generator().manual_seed(0)
        self.register_buffer("proj", torch.randn(d, generator=g, dtype=torch.float64), persistent=False)
        self.register_buffer("keys", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("labels", torch.zeros(n, dtype=torch.long))
        if "train" in getattr(dataset, "splits", {}):
            tr = dataset.split("train")
            k = self.key(tr.x)
            order = torch.argsort(k)
            self.keys.copy_(k[order])
            self.labels.copy_(tr.y.long()[order])

    def key(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), -1).double().to(self.proj.device) @ self.proj

    def lookup(self, x: torch.Tensor) -> torch.Tensor:
        """The training labels of images ``x`` (N,); raises if an image is not in the training split."""
        k = self.key(x)
        i = torch.searchsorted(self.keys, k).clamp(max=len(self.keys) - 1)
        j = (i - 1).clamp(min=0)
        i = torch.where((self.keys[j] - k).abs() < (self.keys[i] - k).abs(), j, i)
        if not torch.allclose(self.keys[i], k, rtol=0, atol=1e-6 * (1 + k.abs().max().item())):
            raise ValueError("a training batch holds an image that is not in the training split the label table was "
                             "built from; conditional families train on the dataset's own train split")
        return self.labels[i]


class _Conditional(TrainableModel):
    def __init__(self, config: Any, info: Any, dataset: Any) -> None:
        super().__init__(config, info)
        if info.kind != "image" or not info.n_classes:
            raise ValueError(f"conditional families need labelled image data; {info.name} has none")
        self.n_classes = int(info.n_classes)
        self.shape = tuple(info.shape)
        self.dim = math.prod(self.shape)
        self.table = LabelTable(info, dataset)

    def onehot(self, y: torch.Tensor) -> torch.Tensor:
        return F.one_hot(y.to(self.device), self.n_classes).float()


class CGAN(_Conditional):
    """Conditional GAN on flattened images: G(z, y) -> x in the data range, D(x, y) -> logit.

    Examples
    --------
    >>> from genbench.data import load_dataset
    >>> ds = load_dataset("digits")
    >>> CGAN(CGANConfig(), ds.info, ds).sample(4, seed=0, labels=[0, 1, 2, 3]).shape
    torch.Size([4, 1, 8, 8])
    """

    family: ClassVar[str] = "cgan"
    validation_info: ClassVar[dict[str, dict[str, Any]]] = {"val_d_acc": {"higher_is_better": None}}

    def __init__(self, config: CGANConfig, info: Any, dataset: Any = None) -> None:
        super().__init__(config, info, dataset)
        # G: batch-normalised ReLU layers (as DCGAN's generator); D: LeakyReLU with dropout, as Mirza &
        # Osindero's discriminator (dropout 0.5 there): without them the MLP discriminator wins on
        # digits within a few hundred steps and G's sigmoid saturates
        self.generator = bn_mlp(config.z_dim + self.n_classes, config.g_hidden, self.dim)
        self.discriminator = dropout_mlp(self.dim + self.n_classes, config.d_hidden, 1, dropout=config.d_dropout)

    def generate(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        lo, hi = value_range(self.info)
        out = torch.sigmoid(self.generator(torch.cat([z, self.onehot(y)], 1)))
        return (lo + (hi - lo) * out).view(len(z), *self.shape)

    def critic(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.discriminator(torch.cat([scale_input(x, self.info).flatten(1), self.onehot(y)], 1)).squeeze(1)

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        b = (self.config.beta1, 0.999)
        return {"g": torch.optim.Adam(self.generator.parameters(), lr=self.config.lr, betas=b),
                "d": torch.optim.Adam(self.discriminator.parameters(), lr=self.config.lr, betas=b)}

    def training_step(self, x: torch.Tensor, ctx: StepContext,
                      optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, float]:
        y = self.table.lookup(x)
        n, g = len(x), ctx.generator
        z = torch.randn((n, self.config.z_dim), generator=g, device=ctx.device)
        # fake samples ask for the real batch's classes: the class marginal of the data
        fake = self.generate(z, y)
        opt_d = optimizers["d"]
        opt_d.zero_grad(set_to_none=True)
        d_real, d_fake = self.critic(x, y), self.critic(fake.detach(), y)
        loss_d = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        loss_d.backward()
        opt_d.step()
        opt_g = optimizers["g"]
        opt_g.zero_grad(set_to_none=True)
        d_gen = self.critic(fake, y)
        # the non-saturating generator loss (Goodfellow et al. 2014, sec. 3)
        loss_g = F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))
        loss_g.backward()
        opt_g.step()
        return {"d": loss_d.item(), "g": loss_g.item()}

    @torch.no_grad()
    def sample(self, n: int, *, seed: int, labels: Any = None) -> torch.Tensor:
        """n samples (n, *shape) on the CPU of classes ``labels`` (default balanced)."""
        y = _check_labels(labels, n, self.n_classes)
        with eval_mode(self):
            g = local_generator(seed, self.device)
            z = torch.randn((n, self.config.z_dim), generator=g, device=self.device)
            x = self.generate(z, y).float().cpu() if n else torch.empty((0, *self.shape))
        return x


class CVAE(_Conditional):
    """Conditional VAE on flattened images with a discrete (or Gaussian) decoder, as the VAE's.

    Examples
    --------
    >>> from genbench.data import load_dataset
    >>> ds = load_dataset("digits")
    >>> CVAE(CVAEConfig(), ds.info, ds).sample(3, seed=0).shape
    torch.Size([3, 1, 8, 8])
    """

    family: ClassVar[str] = "cvae"
    select_metric: ClassVar[str | None] = "val_elbo"
    select_higher_is_better: ClassVar[bool] = True
    validation_info: ClassVar[dict[str, dict[str, Any]]] = {
        "val_elbo": {"higher_is_better": True, "kind": "lower-bound", "unit": "nats"}}

    def __init__(self, config: CVAEConfig, info: Any, dataset: Any = None) -> None:
        super().__init__(config, info, dataset)
        self.obs = observation_model(config.decoder, info)
        self.z_dim = config.z_dim
        self.encoder = mlp(self.dim + self.n_classes, config.hidden, 2 * config.z_dim)
        self.decoder = mlp(config.z_dim + self.n_classes, tuple(reversed(config.hidden)), self.obs.n_params * self.dim)

    def decode_params(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.decoder(torch.cat([z, self.onehot(y)], 1)).view(len(z), self.obs.n_params, *self.shape)

    def elbo(self, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """One-sample ELBO per example (N,), with the analytic KL to N(0, I)."""
        h = self.encoder(torch.cat([scale_input(x, self.info).flatten(1), self.onehot(y)], 1))
        mu, logvar = h.chunk(2, 1)
        logvar = logvar.clamp(-12.0, 8.0)
        z = mu + torch.exp(0.5 * logvar) * eps
        rec = self.obs.log_prob(self.decode_params(z, y), x)
        return rec - 0.5 * (mu**2 + logvar.exp() - 1.0 - logvar).sum(1)

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"model": torch.optim.Adam(self.parameters(), lr=self.config.lr)}

    def training_step(self, x: torch.Tensor, ctx: StepContext,
                      optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, float]:
        y = self.table.lookup(x)
        opt = optimizers["model"]
        opt.zero_grad(set_to_none=True)
        eps = torch.randn((len(x), self.z_dim), generator=ctx.generator, device=ctx.device)
        loss = -self.elbo(x, y, eps).mean()
        loss.backward()
        opt.step()
        return {"neg_elbo": loss.item()}

    @torch.no_grad()
    def validation_scores(self, x: torch.Tensor) -> dict[str, float]:
        # validation images are not in the training label table: score them under their most
        # likely class (the max over classes of the ELBO, a bound on max_y log p(x | y))
        eps = torch.randn((len(x), self.z_dim), device=x.device)
        per_class = torch.stack([self.elbo(x, torch.full((len(x),), c, dtype=torch.long), eps)
                                 for c in range(self.n_classes)])
        return {"val_elbo": per_class.max(0).values.mean().item()}

    @torch.no_grad()
    def sample(self, n: int, *, seed: int, labels: Any = None) -> torch.Tensor:
        """n decoder means (n, *shape) on the CPU for z ~ N(0, I) and classes ``labels`` (default balanced)."""
        y = _check_labels(labels, n, self.n_classes)
        with eval_mode(self):
            g = local_generator(seed, self.device)
            z = torch.randn((n, self.z_dim), generator=g, device=self.device)
            x = self.obs.mean(self.decode_params(z, y)).float().cpu() if n else torch.empty((0, *self.shape))
        return x


class ConditionalReplay:
    """Replays images of a data split of the requested class (a control; not trained).

    With ``shuffle_labels`` the split's labels are first permuted (seeded by ``seed``), so the
    image returned for class c is an image of a random class: conditional accuracy at chance,
    image quality of real data.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, info: Any, *, split: str, shuffle_labels: bool,
                 seed: int = 0) -> None:
        self.x, self.info, self.split = x, info, split
        self.n_classes = int(info.n_classes)
        y = y.long()
        if shuffle_labels:
            y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))]
        self.by_class = [torch.nonzero(y == c).squeeze(1) for c in range(self.n_classes)]

    def sample(self, n: int, *, seed: int, labels: Any = None) -> torch.Tensor:
        """For each requested class, images of that class in a seeded random order (repeating only once
        a class's images are used up)."""
        y = _check_labels(labels, n, self.n_classes)
        g = torch.Generator().manual_seed(int(seed))
        out = torch.empty((n, *self.x.shape[1:]))
        for c in range(self.n_classes):
            want = torch.nonzero(y == c).squeeze(1)
            if not len(want):
                continue
            pool = self.by_class[c]
            if not len(pool):
                raise ValueError(f"class {c} has no examples in the {self.split} split to replay")
            reps = math.ceil(len(want) / len(pool))
            idx = torch.cat([pool[torch.randperm(len(pool), generator=g)] for _ in range(reps)])[: len(want)]
            out[want] = self.x[idx].float()
        return out
