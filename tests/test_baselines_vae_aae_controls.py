"""Family-specific tests of the VAE, the AAE, their observation models, and the controls.

Oracles: exhaustive sums over every value of tiny discrete data (a probability must sum to 1),
numerical quadrature of the marginal likelihood over a 1-D latent (the ELBO must lie below it,
importance sampling must converge to it), empirical frequencies and scipy's normal density.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats

from baselines._nets import (
    Bernoulli,
    Categorical,
    DiscretisedLogistic,
    Gaussian,
    observation_model,
    resolve_decoder,
)
from baselines.aae import AAE, AAEConfig
from baselines.controls import IndependentPixels, MixtureTruth
from baselines.vae import VAE, VAEConfig
from genbench.data import Dataset, DatasetInfo, Split, load_dataset
from genbench.evaluate import draw_samples
from genbench.harness import build_generator
from genbench.protocols import Autoencoder, Generator, LatentVariableModel, LikelihoodModel


def tiny_info(shape=(1, 1, 2), levels=3, kind="image", value_range=(0.0, 1.0)) -> DatasetInfo:
    return DatasetInfo(name="tiny", kind=kind, shape=shape, value_range=value_range, n_classes=None,
                       content_hash="0", split_sizes={}, levels=levels)


def grid(levels: int, d: int, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    """Every point of a d-value grid with ``levels`` values each: (levels**d, d)."""
    v = np.linspace(lo, hi, levels)
    return torch.tensor(list(itertools.product(v, repeat=d)), dtype=torch.float32)




# --- observation models ---------------------------------------------------------------------------


@pytest.mark.parametrize(("obs", "levels"), [
    (Bernoulli(), 2), (Categorical(5), 5), (DiscretisedLogistic(5), 5), (DiscretisedLogistic(256), 256),
])
def test_discrete_observation_models_sum_to_one(obs, levels):
    d = 2 if levels < 256 else 1
    xs = grid(levels, d).view(-1, 1, 1, d)
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        params = torch.randn((1, obs.n_params, 1, 1, d), generator=g)
        if isinstance(obs, DiscretisedLogistic):
            params[:, 0] = torch.rand((1, 1, d), generator=g)  # locations inside the range
            params[:, 1] = -4 * torch.rand((1, 1, d), generator=g)  # scales from 1/55 to 1
        lp = obs.log_prob(params.expand(len(xs), *params.shape[1:]), xs)
        assert (lp <= 1e-6).all()
        assert torch.logsumexp(lp.double(), 0).exp().item() == pytest.approx(1.0, abs=1e-5)


def test_categorical_mean_and_sample_follow_the_softmax():
    obs = Categorical(4)
    params = torch.tensor([2.0, 0.0, -1.0, 1.0]).view(1, 4, 1)
    p = torch.softmax(params.view(4), 0)
    assert obs.mean(params).item() == pytest.approx((p * torch.linspace(0, 1, 4)).sum().item(), abs=1e-6)
    s = obs.sample(params.expand(20000, 4, 1), torch.Generator().manual_seed(0))
    freq = torch.stack([(s == v).float().mean() for v in torch.linspace(0, 1, 4)])
    assert torch.allclose(freq, p, atol=0.015)


def test_gaussian_observation_is_normal_density():
    obs = Gaussian(min_std=1e-3)
    params = torch.tensor([[[0.3, -1.0], [-1.0, 0.5]]])  # mean (0.3, -1), raw log-std (-1, 0.5)
    x = torch.tensor([[0.1, 0.2]])
    mu, log_std = obs._mean_logstd(params)
    expected = stats.norm.logpdf([0.1, 0.2], loc=mu[0].numpy(), scale=np.exp(log_std[0].numpy())).sum()
    assert obs.log_prob(params, x).item() == pytest.approx(expected, rel=1e-5)
    assert torch.exp(obs._mean_logstd(torch.full((1, 2, 1), -50.0))[1]).item() == pytest.approx(1e-3, rel=1e-5)


def test_decoder_choice_by_data(digits, ring):
    assert resolve_decoder("auto", digits.info) == "categorical"
    assert resolve_decoder("auto", load_dataset("digits-binary").info) == "bernoulli"
    assert resolve_decoder("auto", ring.info) == "gaussian"
    assert resolve_decoder("auto", tiny_info(levels=256)) == "logistic"
    assert resolve_decoder("auto", tiny_info(levels=None)) == "logistic"  # continuous images: 8-bit bins
    assert observation_model("gaussian", digits.info).kind == "density"
    with pytest.raises(ValueError, match="needs binary data"):
        resolve_decoder("bernoulli", digits.info)
    with pytest.raises(ValueError, match="points data need decoder 'gaussian'"):
        resolve_decoder("categorical", ring.info)


# --- marginal likelihood by quadrature over a 1-D latent -------------------------------------------


def sharpen(model, factor: float = 6.0) -> None:
    """Make p(x|z) depend strongly on z (a fresh decoder is nearly flat in z, which would make
    every bound trivially tight)."""
    with torch.no_grad():
        model.decoder.net[0].weight.mul_(factor)


def exact_log_marginal(model, x: torch.Tensor) -> torch.Tensor:
    """log p(x) = log int p(x|z) p(z) dz on a fine grid of z in [-10, 10] (trapezoid-free: the
    integrand is smooth and negligible at the ends)."""
    zs = torch.linspace(-10, 10, 8001).view(-1, 1, 1).expand(-1, len(x), 1)
    dz = 20 / 8000
    with torch.no_grad():
        joint = model.log_likelihood(x, zs).double() + model.prior_log_prob(zs).double()
    return torch.logsumexp(joint, 0) + math.log(dz)


def importance_sampled(model, x: torch.Tensor, k: int, seed: int = 0) -> torch.Tensor:
    """The IWAE estimate through the LatentVariableModel protocol only."""
    torch.manual_seed(seed)
    with torch.no_grad():
        q = model.proposal(x)
        z = q.sample((k,))
        log_w = model.log_likelihood(x, z) + model.prior_log_prob(z) - q.log_prob(z)
    return torch.logsumexp(log_w.double(), 0) - math.log(k)


def test_vae_elbo_is_below_the_exact_marginal_and_iwae_converges():
    torch.manual_seed(0)
    vae = VAE(VAEConfig(z_dim=1, hidden=(16,)), tiny_info())
    sharpen(vae)
    xs = grid(3, 2).view(-1, 1, 1, 2)
    exact = exact_log_marginal(vae, xs)
    assert exact.exp().sum().item() == pytest.approx(1.0, abs=1e-4)  # a distribution over all 9 values
    elbo = vae.log_prob(xs, n_samples=4000).double()
    assert (elbo <= exact + 0.01).all()
    assert (exact - elbo).max() > 0.05  # the bound is not trivially tight here
    iwae = importance_sampled(vae, xs, k=5000)
    assert (iwae - exact).abs().max() < 0.03
    assert (iwae >= elbo - 0.01).all()


def test_vae_elbo_matches_its_monte_carlo_definition():
    """log_prob = E_q[log p(x|z)] - KL(q || p) with the analytic KL; check against a pure
    sample average of log p(x|z) + log p(z) - log q(z|x) through the protocol."""
    torch.manual_seed(1)
    vae = VAE(VAEConfig(z_dim=3, hidden=(16,)), tiny_info(shape=(1, 2, 2), levels=5))
    x = grid(5, 4)[::37].view(-1, 1, 2, 2)
    with torch.no_grad():
        q = vae.proposal(x)
        z = q.sample((20000,))
        mc = (vae.log_likelihood(x, z) + vae.prior_log_prob(z) - q.log_prob(z)).mean(0)
    assert torch.allclose(vae.log_prob(x, n_samples=20000), mc, atol=0.05)


def test_vae_log_prob_is_deterministic_and_a_discrete_bound(digits):
    vae = VAE(VAEConfig(z_dim=4), digits.info)
    x = digits.test.x[:20]
    a = vae.log_prob(x, seed=3)
    assert a.shape == (20,) and torch.equal(a, vae.log_prob(x, seed=3))
    assert not torch.equal(a, vae.log_prob(x, seed=4))
    assert (a < 0).all()
    assert vae.likelihood_kind == "lower-bound"


def test_aae_importance_sampling_converges_to_the_exact_marginal():
    for prior in ("normal", "mog"):
        torch.manual_seed(0)
        aae = AAE(AAEConfig(z_dim=1, hidden=(16,), prior=prior, proposal_std=1.0, mog_radius=2.0), tiny_info())
        sharpen(aae, 3.0)
        xs = grid(3, 2).view(-1, 1, 1, 2)
        exact = exact_log_marginal(aae, xs)
        assert exact.exp().sum().item() == pytest.approx(1.0, abs=1e-4)
        iwae = importance_sampled(aae, xs, k=20000)
        assert (iwae - exact).abs().max() < 0.05, prior
        assert (aae.iwae(xs, 20000).double() - exact).abs().max() < 0.05, prior


def test_aae_mixture_prior_is_a_density_and_matches_its_sampler():
    aae = AAE(AAEConfig(z_dim=2, prior="mog", mog_components=6, mog_radius=3.0, mog_std=0.4), tiny_info())
    g = torch.linspace(-6, 6, 601)
    zz = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).view(-1, 2)
    mass = aae.prior_log_prob(zz).double().exp().sum().item() * (12 / 600) ** 2
    assert mass == pytest.approx(1.0, abs=1e-3)
    s = aae.prior_sample(30000, torch.Generator().manual_seed(0))
    assert s.mean(0).abs().max() < 0.05
    assert s.norm(dim=1).mean().item() == pytest.approx(3.0, abs=0.1)
    # the sampler's mixture components sit where the density's do
    assert aae.prior_log_prob(aae.mog_means).min() > aae.prior_log_prob(torch.zeros(1, 2)).max() + 5


def test_aae_proposal_width_is_the_configured_sigma_q(digits):
    aae = AAE(AAEConfig(proposal_std=0.3), digits.info)
    q = aae.proposal(digits.test.x[:5])
    assert torch.allclose(q.base_dist.scale, torch.full((5, 8), 0.3))
    assert torch.allclose(q.base_dist.loc, aae.encode(digits.test.x[:5]))


# --- protocols, shapes, sampling modes -----------------------------------------------------------


def test_protocols_are_satisfied(digits, ring):
    vae = VAE(VAEConfig(), digits.info)
    aae = AAE(AAEConfig(), digits.info)
    for m in (vae, aae):
        assert isinstance(m, Generator) and isinstance(m, LatentVariableModel) and isinstance(m, Autoencoder)
    assert isinstance(vae, LikelihoodModel)
    assert not isinstance(aae, LikelihoodModel)  # its likelihood goes through importance sampling
    ip, _ = build_generator("independent-pixels", digits, seed=0)
    truth, _ = build_generator("mixture-truth", ring, seed=0)
    copy, _ = build_generator("copycat", digits, seed=0)
    assert isinstance(ip, LikelihoodModel) and ip.likelihood_kind == "exact"
    assert isinstance(truth, LikelihoodModel) and truth.likelihood_kind == "exact"
    assert isinstance(copy, Generator) and not isinstance(copy, LikelihoodModel)


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("cls", [VAE, AAE])
def test_conv_variants_handle_image_sizes(cls, shape):
    levels = 17 if shape[1] == 8 else 256
    cfg_cls = VAEConfig if cls is VAE else AAEConfig
    model = cls(cfg_cls(arch="conv", z_dim=4, channels=(8, 16)), tiny_info(shape=shape, levels=levels))
    x = torch.rand(3, *shape)
    z = model.encode(x)
    assert z.shape == (3, 4)
    assert model.decode(z).shape == (3, *shape)
    assert model.log_likelihood(x, z.expand(2, 3, 4)).shape == (2, 3)
    s = model.sample(2, seed=0)
    assert s.shape == (2, *shape) and 0 <= s.min() and s.max() <= 1


def test_conv_needs_sizes_divisible_by_4():
    with pytest.raises(ValueError, match="divisible by 4"):
        VAE(VAEConfig(arch="conv"), tiny_info(shape=(1, 10, 10), levels=17))


def test_sample_modes(digits, ring):
    levels = torch.linspace(0, 1, 17)

    def on_grid(x):
        return torch.isclose(x.reshape(-1, 1), levels).any(1).all().item()

    mean = VAE(VAEConfig(sample_mode="mean"), digits.info).sample(50, seed=0)
    drawn = VAE(VAEConfig(sample_mode="sample"), digits.info).sample(50, seed=0)
    assert not on_grid(mean) and on_grid(drawn)  # means fall between grey levels, draws on them
    # "auto": decoder means for images, decoder draws for points (their noise is the distribution)
    for ds, auto_is_mean in ((digits, True), (ring, False)):
        auto = VAE(VAEConfig(z_dim=2), ds.info)
        as_mean = VAE(VAEConfig(z_dim=2, sample_mode="mean"), ds.info)
        as_mean.load_state_dict(auto.state_dict())
        assert torch.equal(auto.sample(20, seed=1), as_mean.sample(20, seed=1)) == auto_is_mean


# --- controls --------------------------------------------------------------------------------------


def tiny_dataset(x: torch.Tensor, info: DatasetInfo) -> Dataset:
    return Dataset(info=info, splits={"train": Split(x)})


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_independent_pixels_is_exact_on_a_two_pixel_case(alpha):
    info = tiny_info(levels=3)
    x = torch.tensor([[0, 0], [0, 0.5], [1, 0.5], [0.5, 0.5], [1, 1], [0, 0.5]]).view(-1, 1, 1, 2)
    ip, _ = build_generator("independent-pixels", tiny_dataset(x, info), seed=0, model_overrides={"alpha": alpha})
    xs = grid(3, 2).view(-1, 1, 1, 2)
    lp = ip.log_prob(xs)
    assert lp.exp().sum().item() == pytest.approx(1.0, abs=1e-12)
    # oracle: smoothed empirical frequencies per pixel, multiplied
    k = torch.round(x.view(-1, 2) * 2).long()
    freq = np.stack([(np.bincount(k[:, j].numpy(), minlength=3) + alpha) / (len(k) + 3 * alpha) for j in range(2)])
    kq = torch.round(xs.view(-1, 2) * 2).long().numpy()
    with np.errstate(divide="ignore"):
        expected = np.log(freq[0, kq[:, 0]]) + np.log(freq[1, kq[:, 1]])
    assert np.allclose(lp.numpy(), expected)


def test_independent_pixels_samples_follow_the_marginals(digits):
    ip, _ = build_generator("independent-pixels", digits, seed=0)
    s = ip.sample(20000, seed=0)
    assert torch.isclose(s.reshape(-1, 1), torch.linspace(0, 1, 17)).any(1).all()  # on the 17-level grid
    freq = torch.stack([(torch.round(s * 16) == k).float().mean(0) for k in range(17)], -1).view(64, 17)
    assert torch.allclose(freq.double(), ip.log_probs.exp(), atol=0.015)
    # its test NLL is the exact discrete number the VAE's ELBO is compared against
    assert 100 < -ip.log_prob(digits.test.x).mean().item() < 115


def test_independent_pixels_points_are_independent_gaussians(ring):
    ip, _ = build_generator("independent-pixels", ring, seed=0)
    x = ring.train.x.double().numpy()
    mu, sd = x.mean(0), x.std(0)
    expected = stats.norm.logpdf(ring.test.x.numpy(), mu, sd).sum(1)
    assert np.allclose(ip.log_prob(ring.test.x).numpy(), expected, rtol=1e-9)
    s = ip.sample(50000, seed=0).double()
    assert np.allclose(s.mean(0).numpy(), mu, atol=0.03) and np.allclose(s.std(0).numpy(), sd, atol=0.03)


def test_copycat_replays_training_images_without_replacement(digits):
    cc, _ = build_generator("copycat", digits, seed=0)
    n = len(digits.train)
    s = cc.sample(n, seed=0)
    idx = cc.last_indices
    assert len(set(idx.tolist())) == n  # every training image exactly once
    assert torch.equal(s, digits.train.x[idx])
    # a replay control never repeats an example: more than the split is an error that says so ...
    assert cc.max_samples == n
    with pytest.raises(ValueError, match=f"has {n} examples; {n + 100} were asked for.*never repeats"):
        cc.sample(n + 100, seed=0)
    # ... and the evaluation caps it at the split, drawing once so that no example repeats
    capped = draw_samples(cc, 10000, seed=3, dataset=digits)
    assert len(capped) == n and len(np.unique(capped.reshape(n, -1).numpy(), axis=0)) == len(
        np.unique(digits.train.x.reshape(n, -1).numpy(), axis=0))


def test_noisy_copycat_adds_the_documented_noise(digits, ring):
    nc, _ = build_generator("noisy-copycat", digits, seed=0)
    s = nc.sample(1000, seed=0)
    base = digits.train.x[nc.last_indices]
    interior = (base > 0.3) & (base < 0.7)  # far from the clipping bounds
    resid = (s - base)[interior]
    assert resid.std().item() == pytest.approx(0.05, rel=0.1) and abs(resid.mean().item()) < 0.01
    assert s.min() >= 0 and s.max() <= 1
    npts, _ = build_generator("noisy-copycat", ring, seed=0, model_overrides={"noise_std": 0.5})
    p = npts.sample(5000, seed=0)
    assert (p - ring.train.x[npts.last_indices]).std().item() == pytest.approx(0.5, rel=0.05)  # not clipped


def test_heldout_draws_from_the_val_split(digits):
    ho, info = build_generator("heldout", digits, seed=0)
    assert info["config"]["split"] == "val"
    s = ho.sample(100, seed=0)
    assert torch.equal(s, digits.val.x[ho.last_indices]) and len(set(ho.last_indices.tolist())) == 100
    with pytest.raises(ValueError, match="has 180 examples; 500 were asked for"):
        ho.sample(500, seed=0)  # more than the 180 val images: never with replacement
    test_ho, _ = build_generator("heldout", digits, seed=0, model_overrides={"split": "test"})
    assert torch.equal(test_ho.sample(10, seed=0), digits.test.x[test_ho.last_indices])
    with pytest.raises(ValueError, match="has no split 'nope'"):
        build_generator("heldout", digits, seed=0, model_overrides={"split": "nope"})


def test_mixture_truth_is_the_true_density(ring, digits):
    mt, _ = build_generator("mixture-truth", ring, seed=0)
    x = ring.test.x[:100]
    assert np.array_equal(mt.log_prob(x).numpy(), ring.log_density(x))
    s = mt.sample(5000, seed=3)
    # samples of the truth score like held-out real data under the true density
    assert mt.log_prob(s).mean().item() == pytest.approx(mt.log_prob(ring.test.x).mean().item(), abs=0.1)
    with pytest.raises(ValueError, match="no known density"):
        MixtureTruth(digits)
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        IndependentPixels(digits.train.x, digits.info, alpha=-1)


@pytest.mark.parametrize("name", ["vae", "aae"])
@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_binary_digits_train_with_a_bernoulli_decoder(name, arch):
    from genbench.harness import train

    ds = load_dataset("digits-binary")
    res = train(name, ds, seed=0, run=None, model_overrides={"arch": arch},
                train_overrides={"steps": 3, "batch_size": 16, "val_max": 16, "plot": False})
    model = res.model
    assert isinstance(model.obs, Bernoulli)
    z = model.proposal(ds.test.x[:4]).sample((2,))
    ll = model.log_likelihood(ds.test.x[:4], z)
    assert ll.shape == (2, 4) and (ll <= 0).all()
    assert res.select_metric in res.selected_scores
