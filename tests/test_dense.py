"""Folded dense forms of frozen nets (genbench._dense): the same function as the layers, used only where no
gradient can reach the weights."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from genbench._dense import FoldedForward, fold_affine
from genbench._runtime import eval_mode


def _randomise_norms(net: nn.Module) -> None:
    g = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.weight.shape, generator=g))
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=g))


def _nets():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(5, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 16, bias=False),
                        nn.LeakyReLU(0.2), nn.Tanh(), nn.Linear(16, 3))
    deconv = nn.Sequential(nn.Linear(6, 32 * 2 * 2, bias=False), nn.Unflatten(1, (32, 2, 2)), nn.BatchNorm2d(32),
                           nn.ReLU(), nn.ConvTranspose2d(32, 8, 4, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                           nn.ConvTranspose2d(8, 2, 4, 2, 1), nn.Sigmoid())
    conv = nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 4, 3, 2, 1), nn.BatchNorm2d(4), nn.ELU(),
                         nn.Conv2d(4, 6, 3, 1, 1, groups=2), nn.Flatten(), nn.Linear(6 * 4 * 4, 2))
    return [(mlp, (5,)), (deconv, (6,)), (conv, (64,))]


@pytest.mark.parametrize("which", [0, 1, 2])
def test_folded_net_equals_its_layers_with_input_gradients(which):
    net, shape = _nets()[which]
    _randomise_norms(net)
    net.eval()
    folded = fold_affine(list(net), shape)
    assert folded is not None
    x = torch.randn(7, *shape, dtype=torch.float64, requires_grad=True)
    net, folded = net.double(), fold_affine(list(net.double()), shape)
    y, yf = net(x), folded(x)
    assert yf.shape == y.shape
    torch.testing.assert_close(yf, y, rtol=1e-12, atol=1e-12)
    w = torch.randn(y.shape, dtype=torch.float64)
    (g,) = torch.autograd.grad((y * w).sum(), x)
    (gf,) = torch.autograd.grad((yf * w).sum(), x)
    torch.testing.assert_close(gf, g, rtol=1e-12, atol=1e-12)


def test_fold_refuses_unknown_layers_and_large_maps():
    assert fold_affine([nn.Linear(4, 4), nn.Dropout(0.1), nn.Linear(4, 2)], (4,)) is None
    assert fold_affine([nn.ReLU(), nn.Linear(4, 2)], (4,)) is None  # nothing to fold the activation into
    assert fold_affine([nn.Linear(64, 64)], (64,), max_entries=1000) is None
    assert fold_affine([nn.Unflatten(1, (64, 7, 7)), nn.ConvTranspose2d(64, 32, 4, 2, 1)], (64 * 49,),
                       max_entries=1 << 16) is None


def _gan_generator():
    from baselines.gan.nets import DCGANGenerator

    torch.manual_seed(1)
    g = DCGANGenerator(8, (1, 8, 8), 8, 2)
    _randomise_norms(g)
    return g.eval()


def _layers(g, z):
    return g.body(g.project(z).view(len(z), g.top, g.h0, g.w0))


def test_gan_generator_runs_folded_only_when_no_gradient_can_reach_its_weights():
    g = _gan_generator()
    z = torch.randn(20, 8)
    calls = []
    real_current = FoldedForward.current

    def spy(self, module, build):
        out = real_current(self, module, build)
        calls.append(out is not None)
        return out

    FoldedForward.current = spy
    try:
        with torch.no_grad():
            y = g(z)  # sampling: folded
        torch.testing.assert_close(y, _layers(g, z).detach(), rtol=1e-5, atol=1e-6)
        y = g(z)  # gradients on and the weights require them (e.g. inverting a GAN): the layers
        y.sum().backward()
        assert g.project.weight.grad is not None
        g.train()
        with torch.no_grad():
            g(z)  # training mode: the layers (batch statistics)
        g.eval()
        zz = z.clone().requires_grad_(True)
        with eval_mode(g, grad=True):  # AIS: gradients for the latents only, weights frozen: folded
            (gz,) = torch.autograd.grad(g(zz).sum(), zz)
            assert not any(p.requires_grad for p in g.parameters())
        assert all(p.requires_grad for p in g.parameters())  # restored
        (gz_layers,) = torch.autograd.grad(_layers(g, zz).sum(), zz)
        torch.testing.assert_close(gz, gz_layers, rtol=1e-5, atol=1e-6)
    finally:
        FoldedForward.current = real_current
    assert calls == [True, False, False, True]


def test_folded_form_follows_the_weights():
    g = _gan_generator()
    z = torch.randn(5, 8)
    with torch.no_grad():
        before = g(z)
        g.body[0].running_mean.add_(0.3)  # a buffer changed in place
        torch.testing.assert_close(g(z), _layers(g, z), rtol=1e-5, atol=1e-6)
        g.load_state_dict({k: v * 1.1 if v.is_floating_point() else v for k, v in g.state_dict().items()})
        torch.testing.assert_close(g(z), _layers(g, z), rtol=1e-5, atol=1e-6)
        g.project.weight = nn.Parameter(torch.zeros_like(g.project.weight))  # a parameter replaced
        torch.testing.assert_close(g(z), _layers(g, z), rtol=1e-5, atol=1e-6)
        h = copy.deepcopy(g)
        h.project.weight.normal_()
        torch.testing.assert_close(h(z), _layers(h, z), rtol=1e-5, atol=1e-6)
        assert not torch.equal(h(z), g(z)) and not torch.equal(before, g(z))
