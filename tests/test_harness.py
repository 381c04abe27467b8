"""The training harness: seeding, exact resume, checkpoints, NaN guard, selection, curves, runs."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from genbench._progress import progress_enabled
from genbench._registry import Entry
from genbench.generators import GENERATORS, GeneratorSpec
from genbench.harness import (
    CheckpointError,
    NonFiniteLossError,
    StepContext,
    TrainableModel,
    TrainConfig,
    Trainer,
    build_generator,
    load_model,
    read_checkpoint,
    train,
    train_run,
)
from genbench.harness.base import higher_is_better
from genbench.harness.runner import training_metrics
from genbench.harness.runtime import resolve_device
from genbench.runs import RunFolder
from genbench.store import ResultsStore

# --- toy families, registered only for the duration of a test -------------------------------


@dataclass(frozen=True)
class ToyConfig:
    lr: float = 1e-2
    nan_at: int = 0  # return a NaN loss at this step (0: never)


class Toy(TrainableModel):
    """A linear denoising autoencoder that uses every random stream the harness controls:
    data order, ctx.generator (input noise), the global RNG (dropout) and Adam state."""

    family = "test-toy"
    select_metric = "val_mse_score"
    select_higher_is_better = True

    def __init__(self, config: ToyConfig, info) -> None:
        super().__init__(config, info)
        d = info.dim
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(d, 8), nn.Dropout(0.2), nn.Linear(8, d))

    def configure_optimizers(self):
        return {"model": torch.optim.Adam(self.parameters(), lr=self.config.lr)}

    def training_step(self, x, ctx: StepContext, optimizers):
        opt = optimizers["model"]
        opt.zero_grad()
        noise = 0.1 * torch.randn(x.shape, generator=ctx.generator, device=ctx.device)
        with ctx.autocast():
            loss = ((self.net(x + noise) - x.flatten(1)) ** 2).mean()
        loss.backward()
        opt.step()
        if self.config.nan_at and ctx.step == self.config.nan_at:
            return {"loss": float("nan")}
        return {"loss": loss.item()}

    @torch.no_grad()
    def validation_scores(self, x):
        return {"val_mse_score": -((self.net(x) - x.flatten(1)) ** 2).mean().item()}

    @torch.no_grad()
    def sample(self, n, *, seed):
        g = torch.Generator().manual_seed(seed)
        return self.net(torch.rand((n, *self.info.shape), generator=g)).clamp(0, 1).view(n, *self.info.shape)


@dataclass(frozen=True)
class WalkerConfig:
    peak: int = 6


class Walker(TrainableModel):
    """w moves by exactly +1 per step; the validation score -(w - peak)^2 peaks at step ``peak``."""

    family = "test-walker"
    select_metric = "val_score"

    def __init__(self, config: WalkerConfig, info) -> None:
        super().__init__(config, info)
        self.w = nn.Parameter(torch.zeros(()))

    def configure_optimizers(self):
        return {"model": torch.optim.SGD(self.parameters(), lr=1.0)}

    def training_step(self, x, ctx, optimizers):
        optimizers["model"].zero_grad()
        (-self.w).backward()
        optimizers["model"].step()
        return {"w": self.w.item()}

    @torch.no_grad()
    def validation_scores(self, x):
        return {"val_score": -float((self.w - self.config.peak) ** 2)}

    def sample(self, n, *, seed):
        return torch.full((n, *self.info.shape), 0.5)


@pytest.fixture
def toy_families(monkeypatch):
    GENERATORS.names()  # load the real families first, so the loader does not run later
    for name, cls, cfg in (("test-toy", Toy, ToyConfig), ("test-walker", Walker, WalkerConfig)):
        spec = GeneratorSpec(name=name, config_cls=cfg, build=lambda c, ds, cls=cls: cls(c, ds.info),
                             default_train=lambda info: {"steps": 12, "batch_size": 32, "checkpoint_every": 5,
                                                         "val_every": 4, "log_every": 2, "plot": False,
                                                         "device": "cpu"})
        monkeypatch.setitem(GENERATORS._entries, name, Entry(name, spec, "test family", {"trained": True}))



def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


TINY_VAE = {"z_dim": 2, "hidden": [16]}
# bit-for-bit claims are CPU claims (ARCHITECTURE.md): pin the device even where CUDA exists
TINY_TRAIN = {"steps": 12, "batch_size": 32, "checkpoint_every": 5, "val_every": 4, "log_every": 2, "plot": False,
              "device": "cpu"}


# --- seeding -----------------------------------------------------------------------------------


def test_same_seed_gives_identical_weights_and_other_seed_differs(toy_families, digits):
    a = train("test-toy", digits, seed=3, run=None)
    torch.randn(100)  # disturb the global RNG between runs: the harness must re-seed everything
    b = train("test-toy", digits, seed=3, run=None)
    c = train("test-toy", digits, seed=4, run=None)
    assert_same_weights(weights(a.model), weights(b.model))
    assert not torch.equal(weights(a.model)["net.1.weight"], weights(c.model)["net.1.weight"])
    assert a.final_losses == b.final_losses


def test_vae_same_seed_identical_weights(digits):
    kw = dict(model_overrides=TINY_VAE, train_overrides=TINY_TRAIN)
    a = train("vae", digits, seed=0, run=None, **kw)
    b = train("vae", digits, seed=0, run=None, **kw)
    assert_same_weights(weights(a.model), weights(b.model))
    assert torch.equal(a.model.sample(8, seed=1), b.model.sample(8, seed=1))


# --- exact resume ------------------------------------------------------------------------------


def test_resume_after_stop_matches_uninterrupted(toy_families, digits, tmp_path):
    full = train("test-toy", digits, seed=0, run=RunFolder.open(tmp_path, "full"))
    part_run = RunFolder.open(tmp_path, "part")
    part = train("test-toy", digits, seed=0, run=part_run, stop_at=7)
    assert not part.finished and part.steps == 7
    assert read_checkpoint(part_run.checkpoints / "last.pt")["step"] == 7
    resumed = train("test-toy", digits, seed=0, run=part_run)
    assert resumed.finished and resumed.resumed_from == 7
    assert_same_weights(weights(full.model), weights(resumed.model))
    ck_full = read_checkpoint(full.checkpoints["last"])
    ck_res = read_checkpoint(resumed.checkpoints["last"])
    assert_same_weights(ck_full["model"], ck_res["model"])
    assert ck_full["optimizers"]["model"]["state"][0]["exp_avg"].equal(
        ck_res["optimizers"]["model"]["state"][0]["exp_avg"])
    assert (full.selected_step, full.selected_scores) == (resumed.selected_step, resumed.selected_scores)
    assert full.curves.read_text() == resumed.curves.read_text()


def test_resume_after_crash_matches_uninterrupted(toy_families, digits, tmp_path):
    full = train("test-toy", digits, seed=1, run=RunFolder.open(tmp_path, "full"))

    def crash(step, losses):
        if step == 8:
            raise KeyboardInterrupt

    run = RunFolder.open(tmp_path, "crashed")
    with pytest.raises(KeyboardInterrupt):
        train("test-toy", digits, seed=1, run=run, on_step=crash)
    assert read_checkpoint(run.checkpoints / "last.pt")["step"] == 5  # checkpoint_every 5
    resumed = train("test-toy", digits, seed=1, run=run)
    assert resumed.resumed_from == 5
    assert_same_weights(weights(full.model), weights(resumed.model))


def test_vae_resume_matches_uninterrupted(digits, tmp_path):
    kw = dict(model_overrides=TINY_VAE, train_overrides=TINY_TRAIN)
    full = train("vae", digits, seed=0, run=RunFolder.open(tmp_path, "a"), **kw)
    run = RunFolder.open(tmp_path, "b")
    train("vae", digits, seed=0, run=run, stop_at=6, **kw)
    resumed = train("vae", digits, seed=0, run=run, **kw)
    assert_same_weights(read_checkpoint(full.checkpoints["last"])["model"],
                        read_checkpoint(resumed.checkpoints["last"])["model"])
    assert_same_weights(weights(full.model), weights(resumed.model))


def test_finished_run_is_loaded_not_retrained(toy_families, digits, tmp_path):
    run = RunFolder.open(tmp_path, "r")
    first = train("test-toy", digits, seed=0, run=run)
    calls = []
    again = train("test-toy", digits, seed=0, run=run, on_step=lambda s, l: calls.append(s))
    assert calls == [] and again.resumed_from == first.steps and again.finished
    assert_same_weights(weights(first.model), weights(again.model))
    assert again.selected_step == first.selected_step


def test_checkpoint_of_other_config_is_an_error_not_overwritten(toy_families, digits, tmp_path):
    run = RunFolder.open(tmp_path, "r")
    train("test-toy", digits, seed=0, run=run, stop_at=5)
    before = (run.checkpoints / "last.pt").read_bytes()
    with pytest.raises(ValueError, match=r"model_config\.lr: 0\.01 -> 0\.5"):
        train("test-toy", digits, seed=0, run=run, model_overrides={"lr": 0.5})
    with pytest.raises(ValueError, match="seed: 0 -> 1"):
        train("test-toy", digits, seed=1, run=run)
    assert (run.checkpoints / "last.pt").read_bytes() == before


# --- checkpoints -------------------------------------------------------------------------------


def test_checkpoint_loads_weights_only_and_rebuilds_alone(digits, tmp_path):
    res = train("vae", digits, seed=0, run=RunFolder.open(tmp_path, "r"), model_overrides=TINY_VAE,
                train_overrides=TINY_TRAIN)
    for kind in ("last", "best"):
        raw = torch.load(res.checkpoints[kind], weights_only=True)  # raises on any pickled class
        assert raw["family"] == "vae" and raw["model_config"]["z_dim"] == 2
        assert raw["dataset_info"]["content_hash"] == digits.info.content_hash
    model = load_model(res.checkpoints["best"])
    assert not model.training and model.checkpoint["step"] == res.selected_step
    assert_same_weights(weights(model), weights(res.model))
    # a fresh process with nothing but the file path
    out = tmp_path / "s.pt"
    # same thread count as here: float sums are bit-identical only for the same reduction order
    code = ("import sys, torch; torch.set_num_threads(1); from genbench.harness import load_model; "
            "torch.save(load_model(sys.argv[1]).sample(5, seed=2), sys.argv[2])")
    subprocess.run([sys.executable, "-c", code, str(res.checkpoints["best"]), str(out)], check=True, timeout=120)
    assert torch.equal(torch.load(out, weights_only=True), res.model.sample(5, seed=2))


def test_foreign_files_are_clear_checkpoint_errors(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="x.pt"):
        load_model(tmp_path / "x.pt")
    torch.save({"model": {}}, tmp_path / "y.pt")
    with pytest.raises(CheckpointError, match="not a genbench checkpoint"):
        load_model(tmp_path / "y.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing.pt")


# --- non-finite losses -------------------------------------------------------------------------


def test_nonfinite_loss_names_the_step_and_keeps_last_good_checkpoint(toy_families, digits, tmp_path):
    run = RunFolder.open(tmp_path, "r")
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at step 7 \(loss=nan\)") as ei:
        train("test-toy", digits, seed=0, run=run, model_overrides={"nan_at": 7})
    err = ei.value
    assert err.step == 7 and err.checkpoint_step == 5 and err.checkpoint == run.checkpoints / "last.pt"
    ck = read_checkpoint(err.checkpoint)
    assert ck["step"] == 5 and not ck["finished"]
    assert all(torch.isfinite(v).all() for v in ck["model"].values())
    assert "non-finite loss at step 7" in run.log_path.read_text()


def test_nonfinite_loss_before_any_checkpoint(toy_families, digits):
    with pytest.raises(NonFiniteLossError, match="no checkpoint had been written yet"):
        train("test-toy", digits, seed=0, run=None, model_overrides={"nan_at": 2})


# --- selection ---------------------------------------------------------------------------------


def test_selection_keeps_best_and_last_and_records_which(toy_families, digits, tmp_path):
    res = train("test-walker", digits, seed=0, run=RunFolder.open(tmp_path, "r"),
                train_overrides={"val_every": 2, "steps": 10})
    assert res.selected == "best" and res.selected_step == 6 and res.select_metric == "val_score"
    assert res.selected_scores == {"val_score": 0.0} and res.final_scores == {"val_score": -16.0}
    assert res.model.w.item() == 6.0
    assert read_checkpoint(res.checkpoints["best"])["model"]["w"].item() == 6.0
    assert read_checkpoint(res.checkpoints["last"])["model"]["w"].item() == 10.0
    assert load_model(res.checkpoints["last"]).w.item() == 10.0


def test_selection_in_memory_and_off(toy_families, digits):
    res = train("test-walker", digits, seed=0, run=None, train_overrides={"val_every": 2, "steps": 10})
    assert (res.selected, res.selected_step, res.model.w.item()) == ("best", 6, 6.0)
    off = train("test-walker", digits, seed=0, run=None, train_overrides={"val_every": 2, "steps": 10,
                                                                           "select_on": None})
    assert (off.selected, off.selected_step, off.model.w.item()) == ("last", 10, 10.0)
    with pytest.raises(ValueError, match="select_on 'nope' is not a validation score"):
        train("test-walker", digits, seed=0, run=None, train_overrides={"select_on": "nope"})


# --- the Trainer's named steps ----------------------------------------------------------------


@pytest.mark.parametrize(("select_on", "best_step"), [("val_score", 2), ("val_nll", 1)])
def test_select_keeps_the_best_by_direction(toy_families, digits, select_on, best_step):
    # val_score is the walker's select_metric (higher-better); val_nll is lower-better by its name
    t = Trainer("test-walker", digits, seed=0, train_overrides={"select_on": select_on})
    kept = []
    for step, score in enumerate([-3.0, -1.0, -2.0, math.nan, -1.0], start=1):
        t.st.step = step
        with torch.no_grad():
            t.model.w.fill_(step)  # the weights say which step they are from
        kept.append(t.select({select_on: score}))
    # a NaN never wins, and a tie keeps the earlier step
    assert kept == ([True, True, False, False, False] if select_on == "val_score" else [True] + [False] * 4)
    assert (t.st.best_step, t.st.best_score) == (best_step, [-3.0, -1.0][best_step - 1])
    assert [r["step"] for r in t.st.val_rows] == [1, 2, 3, 4, 5]
    assert t.selected_weights(finished=False)[:2] == ("last", 5) and t.model.w.item() == 5.0
    assert t.selected_weights(finished=True) == ("best", best_step, {select_on: [-3.0, -1.0][best_step - 1]})
    assert t.model.w.item() == best_step


def test_select_writes_best_pt_only_on_improvement(toy_families, digits, tmp_path):
    t = Trainer("test-walker", digits, seed=0, run=RunFolder.open(tmp_path, "r"))
    for step, score in ((1, -4.0), (2, -9.0)):
        t.st.step = step
        with torch.no_grad():
            t.model.w.fill_(step)
        t.select({"val_score": score})
    ck = read_checkpoint(t.best_path)
    assert (ck["step"], ck["model"]["w"].item(), ck["scores"]) == (1, 1.0, {"val_score": -4.0})
    assert t.best_mem is None  # on disk, not a second copy in memory


def test_validate_is_a_size_weighted_mean_and_leaves_the_rng_alone(toy_families, digits):
    # 180 validation examples in batches of 7: a plain mean of batch means would overweight the last 5
    t = Trainer("test-toy", digits, seed=0, train_overrides={"val_batch_size": 7})
    t.model.eval()
    with torch.no_grad():
        whole = t.model.validation_scores(digits.splits["val"].x)
    t.model.train()
    cpu, step = torch.get_rng_state(), t.step_gen.get_state()
    scores = t.validate()
    assert scores["val_mse_score"] == pytest.approx(whole["val_mse_score"], rel=1e-6)
    assert t.validate() == scores  # same weights, same scores
    assert t.model.training
    assert torch.equal(torch.get_rng_state(), cpu) and torch.equal(t.step_gen.get_state(), step)


def test_resumed_trainer_continues_at_the_right_step(toy_families, digits, tmp_path):
    # batches of 512 of 1258 examples: two per epoch, so step 7 opens a new epoch after the resume
    kw = dict(seed=0, train_overrides={"batch_size": 512})
    run = RunFolder.open(tmp_path, "r")
    train("test-toy", digits, run=run, stop_at=6, **kw)
    # the named steps alone, without validation or checkpoints in between, are the same training
    fresh = Trainer("test-toy", digits, **kw)
    for _ in range(6):
        fresh.train_step(fresh.next_batch())
    global_rng = torch.get_rng_state()  # the dropout stream, process-wide: building a trainer resets it
    resumed = Trainer("test-toy", digits, run=run, **kw)
    assert resumed.resumed_from == 6 and (resumed.st.step, resumed.st.epoch, resumed.st.pos) == (6, 2, 2)
    assert torch.equal(torch.get_rng_state(), global_rng)
    assert torch.equal(resumed.step_gen.get_state(), fresh.step_gen.get_state())
    assert_same_weights(weights(fresh.model), weights(resumed.model))
    x = resumed.next_batch()
    assert torch.equal(x, fresh.next_batch()) and resumed.st.epoch == 3
    losses = resumed.train_step(x)
    torch.set_rng_state(global_rng)
    assert fresh.train_step(x) == losses and resumed.st.step == fresh.st.step == 7
    assert_same_weights(weights(fresh.model), weights(resumed.model))  # Adam's state was restored too


def test_train_step_guard_does_not_count_the_bad_step(toy_families, digits):
    t = Trainer("test-toy", digits, seed=0, model_overrides={"nan_at": 2})
    t.train_step(t.next_batch())
    with pytest.raises(NonFiniteLossError, match="step 2"):
        t.train_step(t.next_batch())
    assert t.st.step == 1 and len(t.st.rows) == 0 and t.st.window_count == 1


def test_one_direction_rule_for_selection_and_results(digits):
    class Model:
        select_metric, select_higher_is_better = "val_bpd", False
        validation_info = {"val_kl_score": {"higher_is_better": False}}

    m = Model()
    expected = {"val_kl_score": False,  # declared per key: wins over the name
                "val_bpd": False, "val_nll": False, "train_loss": False, "val_fid_distance": False,
                "val_mse_score": True, "val_elbo": True, "val_iwae_k5": True,
                "val_other": None}  # nothing says: no direction is recorded
    assert {k: higher_is_better(m, k) for k in expected} == expected
    Model.select_metric, Model.select_higher_is_better = "val_mse_score", False  # the family's word wins
    assert higher_is_better(m, "val_mse_score") is False
    # the recorded results carry the same directions
    res = SimpleNamespace(model=m, selected_scores={k: 1.0 for k in expected}, selected="best", selected_step=1,
                          final_losses={}, train_config={"val_max": None, "log_every": 1}, steps=1,
                          train_seconds=1.0, device="cpu")
    recorded = {r.metric: r.higher_is_better for r in training_metrics(res, digits) if r.metric != "train_seconds"}
    assert recorded == {**expected, "val_mse_score": False}


# --- curves and progress ----------------------------------------------------------------------


def test_curves_csv_and_png_are_written(toy_families, digits, tmp_path):
    res = train("test-toy", digits, seed=0, run=RunFolder.open(tmp_path, "r"), train_overrides={"plot": True})
    rows = list(csv.DictReader(res.curves.open()))
    assert list(rows[0]) == ["step", "loss", "val_mse_score"]
    assert [int(r["step"]) for r in rows] == [2, 4, 6, 8, 10, 12]
    assert [r["val_mse_score"] != "" for r in rows] == [False, True, False, True, False, True]
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    assert float(rows[-1]["loss"]) == pytest.approx(res.final_losses["loss"])
    assert res.curves_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_progress_switches(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("GENBENCH_PROGRESS", "0")
    assert progress_enabled(None) is False
    assert progress_enabled(True) is True
    monkeypatch.setenv("GENBENCH_PROGRESS", "1")
    monkeypatch.setenv("CI", "true")
    assert progress_enabled(None) is False
    monkeypatch.delenv("CI")
    monkeypatch.setattr(sys, "stderr", open(__file__))  # a file, not a TTY
    assert progress_enabled(None) is False


def test_train_config_validation():
    with pytest.raises(ValueError, match="steps must be >= 1"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="Did you mean: batch_size"):
        TrainConfig().with_({"batchsize": 3})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_without_cuda_is_a_clear_error():
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(ValueError, match=r"CUDA is not available on this machine \(available: cpu"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match=r"unknown device 'gpu'; use one of auto, cpu, cuda"):
        resolve_device("gpu")


# --- entry points: build_generator, train_run ---------------------------------------------------


def test_build_generator_controls_and_trained(toy_families, digits, tmp_path):
    gen, info = build_generator("copycat", digits, seed=0)
    assert info == {"generator": "copycat", "trained": False, "config": {"split": "train"}}
    assert gen.sample(4, seed=0).shape == (4, 1, 8, 8)
    run = RunFolder.open(tmp_path, "r")
    model, info = build_generator("test-toy", digits, seed=0, run=run)
    assert info["trained"] and info["training"]["finished"] and info["training"]["steps"] == 12
    # wall-clock training time is a training fact, not a metric row
    assert {str(m.protocol) for m in info["metrics"]} == {"val-mse-score@digits/n=180/ref=val",
                                                          "train-loss@digits/window=last"}
    assert info["training"]["train_seconds"] > 0
    assert info["artifacts"] == {"checkpoint_last": "checkpoints/last.pt", "checkpoint_best": "checkpoints/best.pt",
                                 "curves": "artifacts/curves.csv"}
    again, info2 = build_generator("test-toy", digits, seed=0, run=run)
    assert info2["training"]["resumed_from"] == 12  # loaded, not retrained
    assert_same_weights(weights(model), weights(again))


def test_train_run_writes_run_folder_and_store_row(tmp_path):
    rec = train_run("vae", "digits", seed=0, results_dir=tmp_path, model_overrides=TINY_VAE,
                    train_overrides=TINY_TRAIN)
    assert rec["status"] == "done" and rec["run_id"].startswith("train-vae-digits-s0-")
    run = RunFolder(tmp_path / "runs" / rec["run_id"])
    assert rec["path"] == str(run.path)
    assert json.loads(run.config_path.read_text())["model_config"]["z_dim"] == 2
    assert {**run.read_result(), "path": str(run.path)} == rec
    assert set(rec["artifacts"]) == {"checkpoint_last", "checkpoint_best", "curves"}
    by_metric = {m["metric"]: m for m in rec["metrics"]}
    elbo = by_metric["val_elbo"]
    assert elbo["protocol"] == "val-elbo@digits/n=180/ref=val" and elbo["kind"] == "lower-bound"
    assert elbo["higher_is_better"] is True and elbo["n"] == {"val": 180}
    assert elbo["value"] == pytest.approx(rec["training"]["selected_scores"]["val_elbo"])
    assert "train_seconds" not in by_metric and rec["training"]["train_seconds"] > 0
    assert rec["provenance"]["seed"] == 0 and "torch" in rec["provenance"]["packages"]
    for rel in rec["artifacts"].values():
        assert (run.path / rel).is_file()
    rows = ResultsStore(tmp_path).runs(run_id=rec["run_id"])
    assert len(rows) == 1 and rows[0]["status"] == "done" and rows[0]["generator"] == "vae"
    # same call again: the finished record, no retraining
    assert train_run("vae", "digits", seed=0, results_dir=tmp_path, model_overrides=TINY_VAE,
                     train_overrides=TINY_TRAIN) == rec
    other = train_run("vae", "digits", seed=1, results_dir=tmp_path, model_overrides=TINY_VAE,
                      train_overrides=TINY_TRAIN)
    assert other["run_id"] != rec["run_id"]


def test_train_run_failure_is_recorded_and_reraised(toy_families, tmp_path):
    with pytest.raises(NonFiniteLossError):
        train_run("test-toy", "digits", seed=0, results_dir=tmp_path, model_overrides={"nan_at": 3})
    (row,) = ResultsStore(tmp_path).runs(generator="test-toy")
    assert row["status"] == "failed" and "NonFiniteLossError: non-finite loss at step 3" in row["error"]
    rec = RunFolder(tmp_path / "runs" / row["run_id"]).read_result()
    assert rec["status"] == "failed" and "step 3" in rec["error"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_with_bf16_autocast(digits, tmp_path):
    res = train("vae", digits, seed=0, run=RunFolder.open(tmp_path, "r"), model_overrides=TINY_VAE,
                train_overrides={**TINY_TRAIN, "amp": True}, device="cuda")
    assert res.device.startswith("cuda") and res.finished
    assert all(math.isfinite(v) for v in res.final_losses.values())
    assert load_model(res.checkpoints["last"]).sample(4, seed=0).shape == (4, 1, 8, 8)


def test_threads_apply_during_training_and_are_restored(toy_families, digits):
    torch.set_num_threads(2)
    seen = []
    train("test-toy", digits, seed=0, run=None, train_overrides={"threads": 1, "steps": 3},
          on_step=lambda s, l: seen.append(torch.get_num_threads()))
    assert seen == [1, 1, 1] and torch.get_num_threads() == 2
