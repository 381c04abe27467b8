"""Common tests over every registered generator (ours and any other family that registers).

Trained families: a few harness steps on each dataset kind they support, then shape and range
of samples, seeded determinism, the protocols they claim, checkpoint reload and exact resume.
Controls: shape, range and determinism straight from the dataset. Plus: nothing in baselines/
was left unregistered.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import pkgutil
import re
from importlib.metadata import entry_points

import pytest
import torch

import baselines
from genbench.data import load_dataset
from genbench.generators import ENTRY_POINT_GROUP, GENERATORS
from genbench.harness import (
    TrainableModel,
    TrainConfig,
    build_generator,
    load_model,
    read_checkpoint,
    resolve_configs,
    train,
)
from genbench.protocols import Generator, LatentVariableModel, LikelihoodModel
from genbench.runs import RunFolder

NAMES = GENERATORS.names()
TRAINED = [n for n in NAMES if GENERATORS.get(n).trained]
CONTROLS = [n for n in NAMES if not GENERATORS.get(n).trained]
DATASETS = {"image": "digits", "points": "mixture-ring"}
# bit-for-bit claims are CPU claims (ARCHITECTURE.md): pin the device even where CUDA exists
TINY = {"steps": 4, "batch_size": 16, "checkpoint_every": 2, "val_every": 2, "log_every": 1, "val_max": 32,
        "plot": False, "device": "cpu"}


def cases(names: list[str]) -> list[tuple[str, str]]:
    return [(n, DATASETS[k]) for n in names for k in GENERATORS.get(n).dataset_kinds if k in DATASETS]


@pytest.fixture(scope="module")
def datasets():
    return {name: load_dataset(name) for name in DATASETS.values()}


def check_samples(x: torch.Tensor, ds, n: int) -> None:
    assert isinstance(x, torch.Tensor) and x.dtype == torch.float32
    assert tuple(x.shape) == (n, *ds.info.shape)
    assert torch.isfinite(x).all()
    if ds.info.value_range is not None:
        lo, hi = ds.info.value_range
        assert x.min() >= lo - 1e-6 and x.max() <= hi + 1e-6


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# --- registry -----------------------------------------------------------------------------------


def test_every_baselines_subpackage_registers_a_generator():
    subpackages = [m.name for m in pkgutil.iter_modules(baselines.__path__) if m.ispkg and not m.name.startswith("_")]
    assert {"vae", "aae", "controls"} <= set(subpackages)
    owners = {GENERATORS.get(n).config_cls.__module__.split(".")[1] for n in NAMES
              if GENERATORS.get(n).config_cls.__module__.startswith("baselines.")}
    for sub in subpackages:
        assert callable(importlib.import_module(f"baselines.{sub}").register), sub
        assert sub in owners, f"baselines/{sub} registers no generator"
    assert {"vae", "aae", "copycat", "noisy-copycat", "heldout", "independent-pixels", "mixture-truth"} <= set(NAMES)
    assert any(ep.value == "baselines:register_all" for ep in entry_points(group=ENTRY_POINT_GROUP))


@pytest.mark.parametrize("name", NAMES)
def test_spec_is_complete(name, datasets):
    spec = GENERATORS.get(name)
    assert spec.name == name and spec.description
    assert dataclasses.is_dataclass(spec.config_cls) and spec.config_cls.__dataclass_params__.frozen
    assert set(spec.dataset_kinds) <= {"image", "points"}
    for kind in spec.dataset_kinds:
        info = datasets[DATASETS[kind]].info
        assert isinstance(spec.config_for(info), spec.config_cls)
        if spec.trained:
            model_config, tc = resolve_configs(spec, info)  # default_train keys are TrainConfig fields
            assert isinstance(tc, TrainConfig) and tc.steps >= 1
            assert model_config == spec.config_for(info)


# --- trained families ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "dataset"), cases(TRAINED))
def test_trains_samples_saves_and_reloads(name, dataset, datasets, tmp_path):
    ds = datasets[dataset]
    res = train(name, ds, seed=0, run=RunFolder.open(tmp_path, "r"), train_overrides=TINY)
    model = res.model
    assert isinstance(model, TrainableModel) and isinstance(model, Generator)
    assert res.finished and res.steps == 4 and not model.training
    assert all(math.isfinite(v) for v in res.final_losses.values()) and res.final_losses
    x = model.sample(16, seed=1)
    check_samples(x, ds, 16)
    assert torch.equal(x, model.sample(16, seed=1))
    assert not torch.equal(x, model.sample(16, seed=2))
    assert model.sample(0, seed=1).shape == (0, *ds.info.shape)
    # the selected checkpoint rebuilds the returned model from the file alone
    path = res.checkpoints["best" if res.selected == "best" else "last"]
    reloaded = load_model(path)
    assert type(reloaded) is type(model)
    assert_same_state(state(reloaded), state(model))
    assert torch.equal(reloaded.sample(16, seed=1), x)
    assert read_checkpoint(res.checkpoints["last"])["finished"]


@pytest.mark.parametrize(("name", "dataset"), cases(TRAINED))
def test_claimed_protocols_hold(name, dataset, datasets):
    ds = datasets[dataset]
    model = train(name, ds, seed=0, run=None, train_overrides=TINY).model
    x = ds.test.x[:8]
    if isinstance(model, LikelihoodModel):
        assert model.likelihood_kind in ("exact", "lower-bound")
        lp = model.log_prob(x)
        assert lp.shape == (8,) and torch.isfinite(lp).all()
        # discrete data scored as discrete probabilities (not a density option): log p <= 0
        if ds.info.levels is not None and getattr(getattr(model, "obs", None), "kind", "discrete") == "discrete":
            assert (lp <= 1e-4).all()
    if isinstance(model, LatentVariableModel):
        with torch.no_grad():
            q = model.proposal(x)
            z = q.sample((3,))
            assert q.batch_shape == (8,) and z.shape[:2] == (3, 8) and len(q.event_shape) == 1
            assert model.prior_log_prob(z).shape == (3, 8)
            ll = model.log_likelihood(x, z)
            assert ll.shape == (3, 8) and torch.isfinite(ll).all()
            assert torch.allclose(model.log_likelihood(x, z[1]), ll[1], atol=1e-4)


@pytest.mark.parametrize(("name", "dataset"), cases(TRAINED))
def test_same_seed_same_weights_and_exact_resume(name, dataset, datasets, tmp_path):
    ds = datasets[dataset]
    a = train(name, ds, seed=0, run=RunFolder.open(tmp_path, "a"), train_overrides=TINY)
    b = train(name, ds, seed=0, run=None, train_overrides=TINY)
    assert_same_state(state(a.model), state(b.model))
    run = RunFolder.open(tmp_path, "resumed")
    part = train(name, ds, seed=0, run=run, train_overrides=TINY, stop_at=2)
    assert not part.finished
    resumed = train(name, ds, seed=0, run=run, train_overrides=TINY)
    assert resumed.resumed_from == 2
    assert_same_state(read_checkpoint(a.checkpoints["last"])["model"],
                      read_checkpoint(resumed.checkpoints["last"])["model"])
    assert_same_state(state(a.model), state(resumed.model))


# --- controls -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "dataset"), cases(CONTROLS))
def test_control_samples_shape_range_and_determinism(name, dataset, datasets):
    ds = datasets[dataset]
    gen, info = build_generator(name, ds, seed=0)
    assert isinstance(gen, Generator) and info["trained"] is False and info["generator"] == name
    x = gen.sample(64, seed=5)
    check_samples(x, ds, 64)
    assert torch.equal(x, gen.sample(64, seed=5))
    assert not torch.equal(x, gen.sample(64, seed=6))
    n_big = len(ds.train) + 7  # more than any split holds
    cap = getattr(gen, "max_samples", None)
    if cap is None:
        check_samples(gen.sample(n_big, seed=0), ds, n_big)
    else:  # a replay control never repeats an example: more than its split is an error that says so
        with pytest.raises(ValueError, match="never repeats an example"):
            gen.sample(n_big, seed=0)
        check_samples(gen.sample(cap, seed=0), ds, cap)
    assert gen.sample(0, seed=0).shape == (0, *ds.info.shape)
    if isinstance(gen, LikelihoodModel):
        lp = gen.log_prob(ds.test.x[:16])
        assert gen.likelihood_kind in ("exact", "lower-bound")
        assert lp.shape == (16,) and torch.isfinite(lp).all()


PARTIAL = [(n, k) for n in NAMES for k in DATASETS if k not in GENERATORS.get(n).dataset_kinds]


@pytest.mark.parametrize(("name", "kind"), PARTIAL)
def test_unsupported_dataset_kind_is_a_clear_error(name, kind, datasets):
    spec = GENERATORS.get(name)
    with pytest.raises(ValueError, match=re.escape(f"supports {', '.join(spec.dataset_kinds)} data")):
        build_generator(name, datasets[DATASETS[kind]], seed=0, train_overrides=TINY)
