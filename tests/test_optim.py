"""FlatAdam (genbench.harness.optim) against torch.optim.Adam, its peer: the same update to the bit.

The flat update is only worth having if it changes nothing: every comparison here is exact
(``torch.equal``), on parameters of awkward sizes (vector tails), on gradients of very different
magnitudes, through checkpoints in both directions, on the fallback path, and on the trained
weights of the families the default matrix trains.
"""

from __future__ import annotations

import io

import pytest
import torch

import genbench.harness.loop as loop
from genbench.data import load_dataset
from genbench.harness import train
from genbench.harness.optim import FlatAdam, flat_optimizers

SHAPES = [(3,), (17,), (33, 5), (1000,), (4097,), (7, 7, 3), (1,), (129, 31)]
SETTINGS = [{"lr": 1e-3, "betas": (0.5, 0.999)}, {"lr": 3e-3}, {"lr": 1e-4, "betas": (0.0, 0.9), "eps": 1e-6},
            {"lr": 2e-4, "weight_decay": 1e-2}]


def _params(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g).requires_grad_() for s in SHAPES]


def _grads(steps: int, seed: int = 1) -> list[list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(s, generator=g) * 10.0 ** int(torch.randint(-12, 4, (1,), generator=g)) for s in SHAPES]
            for _ in range(steps)]


def _run(opt: torch.optim.Optimizer, params: list[torch.Tensor], grads: list[list[torch.Tensor]]) -> None:
    for gs in grads:
        for p, gr in zip(params, gs):
            p.grad = gr.clone()
        opt.step()


def _assert_same(pa, pb, oa, ob) -> None:
    for a, b in zip(pa, pb):
        assert torch.equal(a, b)
    sa, sb = oa.state_dict()["state"], ob.state_dict()["state"]
    assert sa.keys() == sb.keys()
    for i in sa:
        assert sa[i].keys() == sb[i].keys()
        for k in sa[i]:
            assert torch.equal(sa[i][k], sb[i][k]), (i, k)
            assert sa[i][k].shape == sb[i][k].shape and sa[i][k].dtype == sb[i][k].dtype


@pytest.mark.parametrize("settings", SETTINGS, ids=["gan", "default", "wgan", "decay"])
def test_flat_adam_equals_adam_to_the_bit(settings):
    grads = _grads(150)
    pa, pb = _params(), _params()
    oa, ob = torch.optim.Adam(pa, **settings), FlatAdam(pb, **settings)
    _run(oa, pa, grads)
    _run(ob, pb, grads)
    assert not ob._standard  # the flat path ran
    _assert_same(pa, pb, oa, ob)


def test_checkpoints_move_between_flat_adam_and_adam():
    """Adam's state loaded into FlatAdam (a checkpoint written before it existed) and FlatAdam's into Adam
    both continue exactly as an uninterrupted Adam."""
    grads = _grads(120)
    ref_p = _params()
    ref = torch.optim.Adam(ref_p, lr=1e-3, betas=(0.5, 0.999))
    _run(ref, ref_p, grads)

    for first, second in ((torch.optim.Adam, FlatAdam), (FlatAdam, torch.optim.Adam)):
        p = _params()
        opt = first(p, lr=1e-3, betas=(0.5, 0.999))
        _run(opt, p, grads[:50])
        buf = io.BytesIO()
        torch.save({"params": [t.detach() for t in p], "opt": opt.state_dict()}, buf)
        buf.seek(0)
        saved = torch.load(buf, weights_only=True)
        q = [t.clone().requires_grad_() for t in saved["params"]]
        opt2 = second(q, lr=1e-3, betas=(0.5, 0.999))
        opt2.load_state_dict(saved["opt"])
        _run(opt2, q, grads[50:])
        _assert_same(ref_p, q, ref, opt2)
        if second is FlatAdam:
            assert not opt2._standard


def test_a_parameter_without_gradient_falls_back_to_adam():
    """A step where some parameter has no gradient must leave that parameter's moments alone, as Adam
    does: FlatAdam hands that step, and every later one, to torch's own update."""
    grads = _grads(40)
    for gs in grads[20:25]:
        gs[2] = None
    pa, pb = _params(), _params()
    oa, ob = torch.optim.Adam(pa, lr=1e-3), FlatAdam(pb, lr=1e-3)
    for opt, ps in ((oa, pa), (ob, pb)):
        for gs in grads:
            for p, gr in zip(ps, gs):
                p.grad = None if gr is None else gr.clone()
            opt.step()
    assert ob._standard
    _assert_same(pa, pb, oa, ob)


def test_flat_optimizers_replaces_plain_adam_only():
    p = [torch.zeros(3, requires_grad=True)]
    sgd = torch.optim.SGD(p, lr=0.1)
    amsgrad = torch.optim.Adam(p, lr=0.1, amsgrad=True)
    out = flat_optimizers({"a": torch.optim.Adam(p, lr=0.1, betas=(0.5, 0.9)), "s": sgd, "m": amsgrad})
    assert type(out["a"]) is FlatAdam and out["a"].defaults["betas"] == (0.5, 0.9)
    assert out["s"] is sgd and out["m"] is amsgrad  # amsgrad: kept as it is, whatever FlatAdam would do
    p[0].grad = torch.ones(3)
    out["m"].step()
    assert out["m"].state_dict()["state"][0].keys() >= {"max_exp_avg_sq"}


@pytest.mark.parametrize("family,dataset,steps", [("gan", "mixture-ring", 40), ("vae", "digits", 30),
                                                  ("aae", "digits", 30), ("pixelcnn", "digits", 6)])
def test_families_train_to_the_same_weights_with_flat_adam(monkeypatch, family, dataset, steps):
    """What the default matrix trains, with the harness's FlatAdam and with plain Adam: the same weights to
    the bit (the GAN's two optimizers, the VAE's gradient clipping, the AAE's optimizers sharing its
    encoder, PixelCNN's convolutions)."""
    ds = load_dataset(dataset)
    over = {"steps": steps, "progress": False, "plot": False, "val_every": 10}
    flat = train(family, ds, seed=0, train_overrides=over).model.state_dict()
    monkeypatch.setattr(loop, "flat_optimizers", lambda optimizers: optimizers)
    plain = train(family, ds, seed=0, train_overrides=over).model.state_dict()
    assert flat.keys() == plain.keys()
    for k in flat:
        assert torch.equal(flat[k], plain[k]), k
