"""Unit tests of the GAN and PixelCNN reference families (baselines/gan, baselines/pixelcnn).

Oracles: Adam's own step counters (d_steps), a re-computation of D on the same batch and noise
(recorded D(x) / D(G(z))), autograd (the PixelCNN receptive field) and full enumeration of a
tiny image space (the PixelCNN likelihood sums to one).
"""

from __future__ import annotations

import copy
import itertools
import math

import pytest
import torch

from baselines.gan.config import GANConfig
from baselines.gan.config import default_config as gan_default_config
from baselines.gan.model import GAN
from baselines.pixelcnn.config import PixelCNNConfig
from baselines.pixelcnn.config import default_config as pixelcnn_default_config
from baselines.pixelcnn.model import PixelCNN
from genbench.config import ConfigError, from_dict
from genbench.data import DatasetInfo
from genbench.harness.base import StepContext
from genbench.protocols import Generator, LikelihoodModel

LOSSES = ("minimax", "non-saturating", "wgan-gp", "lsgan")
CPU = torch.device("cpu")


def fake_info(shape, *, levels=256, kind="image", name="fake"):
    return DatasetInfo(name=name, kind=kind, shape=tuple(shape), value_range=(0.0, 1.0) if kind == "image" else None,
                       n_classes=None, content_hash="0", split_sizes={}, levels=levels if kind == "image" else None)


def grid_images(n, shape, levels, seed=0):
    """Random images (n, *shape) on the levels-grid k / (levels - 1)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, levels, (n, *shape), generator=g).float() / (levels - 1)


def run_steps(model, batches, *, seed=0):
    """Call training_step on each batch the way the harness does; returns the list of loss dicts."""
    opts = model.configure_optimizers()
    gen = torch.Generator().manual_seed(seed)
    model.train()
    return [model.training_step(x, StepContext(i + 1, CPU, amp=False, generator=gen), opts)
            for i, x in enumerate(batches)]


def params_copy(module):
    return [p.detach().clone() for p in module.parameters()]


def changed(before, module):
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))





# ---------------------------------------------------------------------------------------------
# GAN
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("dataset", ["digits", "ring"])
def test_gan_each_loss_trains_a_few_steps_without_nan(loss, dataset, request):
    ds = request.getfixturevalue(dataset)
    torch.manual_seed(0)
    model = GAN(GANConfig(**{**gan_default_config(ds.info).__dict__, "loss": loss}), ds.info)
    g0, d0 = params_copy(model.g), params_copy(model.d)
    x = ds.train.x
    logs = run_steps(model, [x[i * 32:(i + 1) * 32] for i in range(4)])
    expected = {"loss_d", "loss_g", "d_real", "d_fake"} | ({"gp"} if loss == "wgan-gp" else set())
    for row in logs:
        assert set(row) == expected
        assert all(isinstance(v, float) and math.isfinite(v) for v in row.values()), row
        if loss in ("minimax", "non-saturating"):  # recorded as probabilities
            assert 0.0 <= row["d_real"] <= 1.0 and 0.0 <= row["d_fake"] <= 1.0
    assert changed(g0, model.g) and changed(d0, model.d), "both G and D must be updated"
    s = model.sample(16, seed=0)
    assert torch.isfinite(s).all()


@pytest.mark.parametrize("loss", ["non-saturating", "wgan-gp", "lsgan"])
def test_gan_records_d_of_real_and_fake_batches(loss, digits):
    """d_real / d_fake equal D on the real batch and on G(z) for the step's own noise (as
    probabilities for the non-saturating loss, raw outputs otherwise), before D's update."""
    torch.manual_seed(1)
    model = GAN(GANConfig(loss=loss, width=16, stages=2, z_dim=8), digits.info)
    x = digits.train.x[:32]
    ref = copy.deepcopy(model).train()
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        z = torch.randn(32, 8, generator=torch.Generator().manual_seed(5))  # the step's first draw
        out_real = ref.d(2 * x - 1)
        out_fake = ref.d(ref.g(z))
    if loss == "non-saturating":
        out_real, out_fake = torch.sigmoid(out_real), torch.sigmoid(out_fake)
    opts = model.configure_optimizers()
    logs = model.training_step(x, StepContext(1, CPU, amp=False, generator=gen), opts)
    assert logs["d_real"] == pytest.approx(float(out_real.mean()), abs=1e-5)
    assert logs["d_fake"] == pytest.approx(float(out_fake.mean()), abs=1e-5)


def test_gan_discriminator_learns_to_separate(digits):
    """With G frozen (lr_g = 0), D's recorded probabilities move apart: D(x) up, D(G(z)) down."""
    torch.manual_seed(0)
    model = GAN(GANConfig(width=16, z_dim=8, lr_g=0.0, lr_d=1e-3), digits.info)
    logs = run_steps(model, [digits.train.x[:64]] * 30)
    assert logs[-1]["d_real"] > 0.8 and logs[-1]["d_fake"] < 0.2
    assert logs[0]["d_real"] < 0.7 and logs[0]["d_fake"] > 0.3


@pytest.mark.parametrize("k", [1, 3])
def test_gan_d_steps_is_honoured(k, digits):
    model = GAN(GANConfig(width=8, z_dim=4, d_steps=k), digits.info)
    opts = model.configure_optimizers()
    gen = torch.Generator().manual_seed(0)
    for step in (1, 2):
        model.training_step(digits.train.x[:16], StepContext(step, CPU, amp=False, generator=gen), opts)
    d_counts = {int(s["step"]) for s in opts["d"].state.values()}
    g_counts = {int(s["step"]) for s in opts["g"].state.values()}
    assert d_counts == {2 * k} and g_counts == {2}


def test_gan_d_steps_draw_fresh_noise_each_time(digits):
    """k discriminator steps consume k noise draws (plus one for G), so the generator stream moves on."""
    model = GAN(GANConfig(width=8, z_dim=4, d_steps=3), digits.info)
    gen = torch.Generator().manual_seed(0)
    opts = model.configure_optimizers()
    model.training_step(digits.train.x[:16], StepContext(1, CPU, amp=False, generator=gen), opts)
    ref = torch.Generator().manual_seed(0)
    for _ in range(4):
        torch.randn(16, 4, generator=ref)
    assert torch.equal(torch.rand(5, generator=gen), torch.rand(5, generator=ref))


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_gan_image_configs_sample_in_range_and_shape(shape):
    info = fake_info(shape)
    torch.manual_seed(0)
    model = GAN(gan_default_config(info), info)
    run_steps(model, [grid_images(4, shape, 256)])
    s = model.sample(5, seed=3)
    assert s.shape == (5, *shape) and s.dtype == torch.float32
    assert torch.isfinite(s).all() and s.min() >= 0.0 and s.max() <= 1.0
    assert s.std() > 0  # not a constant image
    assert model.training, "sample() must restore the training mode"


def test_gan_points_samples_are_2d(ring):
    model = GAN(gan_default_config(ring.info), ring.info)
    s = model.sample(7, seed=0)
    assert s.shape == (7, 2) and torch.isfinite(s).all()


@pytest.mark.parametrize("dataset", ["digits", "ring"])
def test_gan_same_seed_same_samples(dataset, request):
    ds = request.getfixturevalue(dataset)
    torch.manual_seed(0)
    model = GAN(gan_default_config(ds.info), ds.info)
    run_steps(model, [ds.train.x[:32]] * 2)
    state = torch.get_rng_state()
    a, b, c = model.sample(20, seed=7), model.sample(20, seed=7), model.sample(20, seed=8)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.get_rng_state(), state), "sample() must not touch the global RNG"
    assert model.sample(0, seed=0).shape == (0, *ds.info.shape)


def test_gan_rebuilds_from_config_and_info(digits):
    torch.manual_seed(0)
    model = GAN(gan_default_config(digits.info), digits.info)
    run_steps(model, [digits.train.x[:32]] * 2)
    clone = GAN(model.config, digits.info)
    clone.load_state_dict(model.state_dict())
    assert torch.equal(model.sample(10, seed=1), clone.sample(10, seed=1))


def test_gan_is_a_generator_without_likelihood(digits):
    model = GAN(gan_default_config(digits.info), digits.info)
    assert isinstance(model, Generator) and not isinstance(model, LikelihoodModel)
    assert model.select_metric is None and model.validation_scores(digits.val.x) == {}


def test_gan_config_validation():
    with pytest.raises(ConfigError, match="loss"):
        GANConfig(loss="hinge")
    with pytest.raises(ConfigError, match="d_steps"):
        GANConfig(d_steps=0)
    cfg = from_dict(GANConfig, {"loss": "wgan-gp", "d_steps": 5})
    assert cfg.resolved_d_norm == "layer" and GANConfig().resolved_d_norm == "batch"
    with pytest.raises(ValueError, match="divisible"):
        GAN(GANConfig(stages=3), fake_info((1, 28, 28)))


def test_wgan_gp_critic_has_no_batch_statistics(digits):
    """The gradient penalty is per example, so the default WGAN-GP critic must not mix examples:
    its output for one image is the same alone or in a batch."""
    model = GAN(GANConfig(loss="wgan-gp", width=8), digits.info).train()
    x = 2 * digits.train.x[:8] - 1
    with torch.no_grad():
        assert torch.allclose(model.d(x)[:1], model.d(x[:1]), atol=1e-6)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.d.modules())


# ---------------------------------------------------------------------------------------------
# PixelCNN
# ---------------------------------------------------------------------------------------------

def tiny_pixelcnn(shape, levels, *, seed=0, channels=8, n_blocks=2, first_kernel=3, kernel=3, head=16):
    torch.manual_seed(seed)
    info = fake_info(shape, levels=levels)
    return PixelCNN(PixelCNNConfig(channels=channels, n_blocks=n_blocks, first_kernel=first_kernel, kernel=kernel,
                                   head=head), info)


@pytest.mark.parametrize("shape,first_kernel", [((1, 5, 5), 5), ((3, 4, 4), 3), ((2, 3, 6), 7)])
def test_pixelcnn_output_depends_only_on_earlier_pixels(shape, first_kernel):
    """Autograd on a random input: the logits at pixel p (all channels) have zero gradient with
    respect to every channel of pixels >= p in raster order, and a non-zero gradient with respect
    to its left neighbour (or, in the first column, the pixel above)."""
    c, h, w = shape
    model = tiny_pixelcnn(shape, 4, first_kernel=first_kernel)
    x = torch.randn(1, c, h, w, dtype=torch.float64, requires_grad=True)
    net = model.net.double()
    for p in range(h * w):
        i, j = divmod(p, w)
        (grad,) = torch.autograd.grad(net(x)[0, :, :, i, j].sum(), x)
        g = grad[0].abs().sum(0).flatten()  # (H*W,) summed over channels
        assert torch.all(g[p:] == 0), f"logits at pixel {p} depend on pixels {torch.nonzero(g[p:]).flatten() + p}"
        if p > 0:
            q = p - 1 if j > 0 else p - w
            assert g[q] > 0, f"logits at pixel {p} ignore their neighbour {q}"


def test_pixelcnn_masks_and_layers():
    model = tiny_pixelcnn((1, 4, 4), 2, first_kernel=5, n_blocks=1)
    assert model.net.first.mask_type == "A"
    assert model.net.first.mask[0, 0, 2].tolist() == [1, 1, 0, 0, 0]
    inner = [m for m in model.net.modules() if getattr(m, "mask_type", None) == "B"]
    assert len(inner) == 1 and inner[0].mask[0, 0, 1].tolist() == [1, 1, 0]


@pytest.mark.parametrize("shape,levels", [((1, 2, 2), 2), ((1, 1, 3), 3), ((2, 1, 2), 2)])
def test_pixelcnn_likelihood_sums_to_one_over_all_images(shape, levels):
    """Enumerate every image of a tiny space (2^4 binary 2x2 images, ...): exp(logsumexp log p) == 1."""
    model = tiny_pixelcnn(shape, levels)
    for p in model.parameters():  # a sharper, clearly non-uniform distribution than the default init
        torch.nn.init.normal_(p, 0.0, 0.5)
    d = math.prod(shape)
    images = torch.tensor(list(itertools.product(range(levels), repeat=d)), dtype=torch.float32)
    images = (images / (levels - 1)).view(-1, *shape)
    assert len(images) == levels**d
    lp = model.log_prob(images)
    assert lp.shape == (levels**d,)
    assert abs(float(torch.logsumexp(lp.double(), 0).exp()) - 1.0) < 1e-5
    assert float(lp.max() - lp.min()) > 0.5, "the test distribution should be far from uniform"


def test_pixelcnn_is_an_exact_likelihood_model(digits):
    model = PixelCNN(pixelcnn_default_config(digits.info), digits.info)
    assert isinstance(model, LikelihoodModel) and isinstance(model, Generator)
    assert model.likelihood_kind == "exact" and model.levels == 17
    assert model.select_metric == "val_nll" and model.select_higher_is_better is False
    lp = model.log_prob(digits.test.x[:5])
    assert lp.shape == (5,) and torch.all(lp < 0)
    # an untrained model is near uniform over 17 levels: about 64 ln 17 nats
    assert float(-lp.mean()) == pytest.approx(64 * math.log(17), rel=0.1)
    scores = model.validation_scores(digits.val.x[:10])
    assert scores["val_nll"] == pytest.approx(float(-model.log_prob(digits.val.x[:10]).mean()), rel=1e-6)


def test_pixelcnn_classes_follow_levels():
    model = tiny_pixelcnn((1, 2, 2), 17)
    x = torch.tensor([0.0, 1 / 16, 0.5, 1.0]).view(1, 1, 2, 2)
    assert model.to_classes(x).flatten().tolist() == [0, 1, 8, 16]


def test_pixelcnn_log_prob_rejects_bad_input():
    model = tiny_pixelcnn((1, 2, 2), 5)
    with pytest.raises(ValueError, match="grid"):
        model.log_prob(torch.full((1, 1, 2, 2), 0.1))  # 0.1 * 4 = 0.4: between levels (dequantised data)
    with pytest.raises(ValueError, match="outside"):
        model.log_prob(torch.full((1, 1, 2, 2), 1.5))
    with pytest.raises(ValueError, match="shape"):
        model.log_prob(torch.zeros(1, 1, 3, 3))
    with pytest.raises(ValueError, match="levels"):
        PixelCNN(PixelCNNConfig(), fake_info((1, 4, 4), levels=None))
    with pytest.raises(ValueError, match="image"):
        PixelCNN(PixelCNNConfig(), fake_info((2,), kind="points"))
    with pytest.raises(ConfigError, match="odd"):
        PixelCNNConfig(kernel=4)


def test_pixelcnn_training_lowers_nll(digits):
    torch.manual_seed(0)
    model = PixelCNN(PixelCNNConfig(channels=32, n_blocks=2, head=64), digits.info)
    before = float(-model.log_prob(digits.val.x).mean())
    x = digits.train.x
    logs = run_steps(model, [x[(i % 19) * 64:(i % 19 + 1) * 64] for i in range(40)])
    after = float(-model.log_prob(digits.val.x).mean())
    assert all(math.isfinite(r["loss"]) for r in logs)
    assert logs[-1]["bits_per_dim"] == pytest.approx(logs[-1]["loss"] / (64 * math.log(2)))
    assert after < before - 40, (before, after)


@pytest.mark.parametrize("shape,levels", [((1, 8, 8), 17), ((1, 28, 28), 256), ((3, 32, 32), 256)])
def test_pixelcnn_default_configs_construct_and_step(shape, levels):
    """The documented MNIST / CIFAR-10 sizes build and take a training step on fake data of that shape."""
    info = fake_info(shape, levels=levels)
    model = PixelCNN(pixelcnn_default_config(info), info)
    logs = run_steps(model, [grid_images(2, shape, levels)])
    assert math.isfinite(logs[0]["loss"])
    assert model.log_prob(grid_images(2, shape, levels, seed=1)).shape == (2,)


@pytest.mark.parametrize("shape,levels", [((1, 8, 8), 17), ((1, 28, 28), 256), ((3, 32, 32), 256), ((1, 4, 4), 2)])
def test_pixelcnn_samples_on_the_level_grid(shape, levels):
    """Pixel-by-pixel sampling (a tiny net, so 32x32 takes 1024 cheap passes)."""
    model = tiny_pixelcnn(shape, levels, channels=4, n_blocks=1, head=8)
    s = model.sample(3, seed=0)
    assert s.shape == (3, *shape) and s.dtype == torch.float32
    assert s.min() >= 0.0 and s.max() <= 1.0
    k = s * (levels - 1)
    assert torch.equal(k, torch.round(k))
    assert model.training
    # every sample is scoreable, with a finite exact likelihood
    assert torch.isfinite(model.log_prob(s)).all()


def test_pixelcnn_same_seed_same_samples():
    model = tiny_pixelcnn((1, 5, 5), 17)
    state = torch.get_rng_state()
    a, b, c = model.sample(8, seed=11), model.sample(8, seed=11), model.sample(8, seed=12)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.get_rng_state(), state)
    assert model.sample(0, seed=0).shape == (0, 1, 5, 5)


def test_pixelcnn_samples_follow_the_model():
    """On a 1x1x2 binary space (4 images), empirical sample frequencies match exp(log_prob)."""
    model = tiny_pixelcnn((1, 1, 2), 2)
    for p in model.parameters():
        torch.nn.init.normal_(p, 0.0, 0.5)
    images = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=torch.float32).view(4, 1, 1, 2)
    probs = model.log_prob(images).exp()
    s = model.sample(4000, seed=0).view(-1, 2)
    freq = torch.stack([((s == img.view(2)).all(1)).float().mean() for img in images])
    # binomial standard error at n=4000 is at most 0.008; 4 sigma
    assert torch.allclose(freq, probs, atol=0.032), (freq, probs)


def test_pixelcnn_rebuilds_from_config_and_info(digits):
    model = PixelCNN(PixelCNNConfig(channels=16, n_blocks=1), digits.info)
    clone = PixelCNN(model.config, digits.info)
    clone.load_state_dict(model.state_dict())
    x = digits.test.x[:4]
    assert torch.equal(model.log_prob(x), clone.log_prob(x))


# ---------------------------------------------------------------------------------------------
# registration
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,kinds,cls", [("gan", ("image", "points"), GAN), ("pixelcnn", ("image",), PixelCNN)])
def test_registered_specs_build_untrained_models(name, kinds, cls, digits):
    from genbench.generators import get_generator_spec

    spec = get_generator_spec(name)
    assert spec.trained and spec.dataset_kinds == kinds
    cfg = spec.config_for(digits.info)
    assert isinstance(cfg, spec.config_cls)
    model = spec.build(cfg, digits)
    assert isinstance(model, cls) and model.family == name
    train = spec.default_train(digits.info)
    assert set(train) == {"steps", "batch_size"} and train["steps"] > 0
