"""A results store people can trust (issue 11): concurrent runs, damaged run folders, validation
before compute is spent, executor-independent numbers, one cache and one top-level API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from genbench.cli import main

REPO = Path(__file__).resolve().parent.parent


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


# ---------------------------------------------------------------------------------------------
# one top-level API


def test_every_top_level_name_resolves_and_star_import_works():
    code = ("import genbench\n"
            "for n in genbench.__all__: getattr(genbench, n)\n"
            "from genbench import *\n"
            "from genbench.runner import run_matrix as rm\n"
            "assert genbench.run_matrix is rm\n"
            "print(len(genbench.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    import genbench

    assert "run_matrix" in genbench.__all__ and "ResultsStore" in genbench.__all__
    assert set(genbench.__all__) <= set(dir(genbench))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        genbench.nope  # noqa: B018


# ---------------------------------------------------------------------------------------------
# npz: files


def test_npz_empty_array_and_non_npz_file_have_their_own_messages(tmp_path):
    from genbench.data import load_dataset
    from genbench.data.files import DataFileError

    empty = tmp_path / "empty.npz"
    np.savez(empty, x=np.zeros((0, 8, 8), np.uint8))
    with pytest.raises(DataFileError, match=r"empty\.npz: the array 'x' is empty \(shape \(0, 8, 8\)\)"):
        load_dataset(f"npz:{empty}")
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(DataFileError, match=r"notes\.npz: not an \.npz file: expected a zip archive") as e:
        load_dataset(f"npz:{text}")
    assert "pickled" not in str(e.value)
    npy = tmp_path / "arr.npz"
    with open(npy, "wb") as f:
        np.save(f, np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(DataFileError, match=r"found a \.npy array"):
        load_dataset(f"npz:{npy}")


# ---------------------------------------------------------------------------------------------
# damaged run folders


def _done_run(results: Path, run_id: str, value: float = 1.0):
    from genbench.results import MetricResult, Protocol
    from genbench.runs import RunFolder

    rf = RunFolder.open(results, run_id)
    m = MetricResult(metric="fid", value=value, protocol=Protocol("fid", space="test", n={"fake": 10}))
    rec = rf.write_result(status="done", metrics=[m], kind="cell", generator="g", dataset="digits", seed=0)
    return rf, rec


def _old_schema(rf) -> None:
    rec = json.loads(rf.result_path.read_text())
    for m in rec["metrics"]:
        del m["protocol_fields"]
    rf.result_path.write_text(json.dumps(rec))


def test_damaged_result_is_named_and_not_done(tmp_path):
    from genbench.runs import DamagedRunError

    rf, _ = _done_run(tmp_path, "a")
    assert rf.is_done() and rf.state() == ("done", "")
    text = rf.result_path.read_text()
    rf.result_path.write_text(text[: len(text) // 2])  # truncated
    with pytest.raises(DamagedRunError, match="not valid JSON") as e:
        rf.read_result()
    assert str(rf.result_path) in str(e.value) and "redone" in str(e.value)
    assert not rf.is_done() and rf.state()[0] == "damaged"
    rf2, _ = _done_run(tmp_path, "b")
    _old_schema(rf2)
    with pytest.raises(DamagedRunError, match="protocol_fields"):
        rf2.read_result()
    assert not rf2.is_done() and rf2.state()[0] == "damaged"


def test_rebuild_skips_and_reports_damaged_and_old_schema_folders(tmp_path):
    from genbench.store import ResultsStore

    for rid in ("a", "b", "c"):
        _done_run(tmp_path, rid)
    (tmp_path / "runs" / "b" / "result.json").write_text('{"run_id": "b", "sta')
    _old_schema(_done_run(tmp_path, "c")[0])
    store = ResultsStore(tmp_path)
    n = store.rebuild()
    assert n == 1 and sorted(n.skipped) == [str(tmp_path / "runs" / r) for r in ("b", "c")]
    assert [r["run_id"] for r in store.runs()] == ["a"]


# ---------------------------------------------------------------------------------------------
# two `genbench run` processes on one results directory

CONTROLS = """
name = "controls"
[[block]]
datasets = ["digits"]
generators = ["copycat", "heldout", "noisy-copycat", "independent-pixels"]
[block.evaluation]
n_samples = 300
extractor = "pixels"
families = ["quality", "likelihood"]
n_test = 60
gmm_components = [1, 2]
{extra}
"""

# heavy imports first, then wait for the go signal, so that both processes start their runs together
SYNCED_RUN = """
import sys, time
from pathlib import Path
import torch, genbench.cli, genbench.runner, genbench.evaluate, genbench.metrics.likelihood  # noqa
Path(sys.argv[1]).touch()
while not Path(sys.argv[2]).exists():
    time.sleep(0.01)
sys.exit(genbench.cli.main(sys.argv[3:]))
"""


def _controls(tmp_path: Path, extra: str = "") -> Path:
    p = tmp_path / "controls.toml"
    p.write_text(CONTROLS.format(extra=extra))
    return p


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "GENBENCH_PROGRESS": "0", "PYTHONUNBUFFERED": "1"}


def _done_count(results: Path, cell_id: str) -> int:
    return (results / "runs" / cell_id / "log.txt").read_text().count(": done in ")


@pytest.mark.timeout(600)
def test_two_run_processes_compute_each_cell_once(tmp_path):
    from genbench.matrix import load_matrix
    from genbench.store import ResultsStore

    mfile, res = _controls(tmp_path), tmp_path / "results"
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", SYNCED_RUN, str(tmp_path / f"ready{i}"), str(go), "run",
                               str(mfile), "--results", str(res)], env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(2)]
    try:
        import time

        deadline = time.time() + 240
        while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
            assert time.time() < deadline and all(p.poll() is None for p in procs), [p.poll() for p in procs]
            time.sleep(0.05)
        go.touch()
        outs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], outs
    cells = [c.cell_id for c in load_matrix(mfile).cells()]
    for cid in cells:  # computed exactly once, by one of the two
        assert _done_count(res, cid) == 1, (cid, outs)
    ran = [sum("): done in" in line for line in out.splitlines()) for out in outs]
    assert sum(ran) == len(cells), outs
    runs = ResultsStore(res).runs()
    assert sorted(r["run_id"] for r in runs) == sorted(cells) and {r["status"] for r in runs} == {"done"}


@pytest.mark.timeout(300)
def test_a_cell_locked_by_another_process_is_skipped_and_reported(tmp_path):
    from genbench.matrix import load_matrix
    from genbench.runs import RunFolder

    mfile, res = _controls(tmp_path), tmp_path / "results"
    cells = [c.cell_id for c in load_matrix(mfile).cells()]
    lock = RunFolder.open(res, cells[1]).try_lock()  # this test process "is computing" cell 1
    assert lock is not None and RunFolder(res / "runs" / cells[1]).is_locked()
    assert RunFolder(res / "runs" / cells[1]).state()[0] == "running"
    cmd = [sys.executable, "-m", "genbench", "run", str(mfile), "--results", str(res)]
    try:
        out = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=240)
    finally:
        lock.release()
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"running elsewhere (cell {cells[1]})" in out.stdout
    assert "3 run now, 0 already finished, 0 failed, 1 running elsewhere" in out.stdout
    assert not (res / "runs" / cells[1] / "result.json").exists()
    assert all(_done_count(res, c) == 1 for c in cells if c != cells[1])
    # the lock is gone with its holder: the next run computes the cell
    again = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=240)
    assert again.returncode == 0 and "1 run now, 3 already finished" in again.stdout, again.stdout
    assert _done_count(res, cells[1]) == 1


# ---------------------------------------------------------------------------------------------
# damaged run folders in a matrix run


@pytest.mark.timeout(300)
def test_damaged_and_old_schema_cells_are_named_and_redone_the_others_kept(tmp_path):
    from genbench.matrix import load_matrix
    from genbench.runner import run_matrix
    from genbench.store import ResultsStore

    m = load_matrix(_controls(tmp_path))
    res = tmp_path / "results"
    s1 = run_matrix(m, results=res)
    assert not s1.failed and len(s1.ran) == 4
    cells = [c.cell_id for c in m.cells()]
    truncated, old = (res / "runs" / cells[0] / "result.json"), res / "runs" / cells[2]
    text = truncated.read_text()
    truncated.write_text(text[: len(text) // 3])  # "Unterminated string ..."
    _old_schema(type("RF", (), {"result_path": old / "result.json"})())
    kept = {c: (res / "runs" / c / "result.json").stat().st_mtime_ns for c in (cells[1], cells[3])}
    s2 = run_matrix(m, results=res)
    assert sorted(s2.ran) == sorted([cells[0], cells[2]]) and sorted(s2.skipped) == sorted([cells[1], cells[3]])
    assert set(s2.damaged) == {str(truncated), str(old / "result.json")}
    assert "not valid JSON" in s2.damaged[str(truncated)] and "protocol_fields" in s2.damaged[str(old / "result.json")]
    assert f"DAMAGED (redone) {truncated}" in s2.describe()
    assert {c: (res / "runs" / c / "result.json").stat().st_mtime_ns for c in kept} == kept
    assert all(json.loads((res / "runs" / c / "result.json").read_text())["status"] == "done" for c in cells)
    assert {r["status"] for r in ResultsStore(res).runs()} == {"done"}


# ---------------------------------------------------------------------------------------------
# ls --runs and index --rebuild


def test_ls_runs_lists_each_run_with_its_state(tmp_path, capsys):
    from genbench.runs import RunFolder

    _done_run(tmp_path, "a-done")
    failed = RunFolder.open(tmp_path, "b-failed")
    failed.write_result(status="failed", error="ValueError: boom")
    bad, _ = _done_run(tmp_path, "c-damaged")
    bad.result_path.write_text("{")
    RunFolder.open(tmp_path, "d-unfinished").write_config({"x": 1})
    running = RunFolder.open(tmp_path, "e-running")
    lock = running.try_lock()
    try:
        rc, out, err = run_cli(capsys, "ls", "--runs", str(tmp_path))
    finally:
        lock.release()
    assert rc == 0, err
    states = {ln.split()[0]: ln.split()[1] for ln in out.splitlines()[1:-1]}
    assert states == {"a-done": "done", "b-failed": "failed", "c-damaged": "damaged",
                      "d-unfinished": "unfinished", "e-running": "running"}
    assert "ValueError: boom" in out and "not valid JSON" in out
    assert out.splitlines()[-1].strip() == "1 damaged, 1 done, 1 failed, 1 running, 1 unfinished"
    rc, out, err = run_cli(capsys, "ls", "--runs", str(tmp_path / "nothing"))
    assert rc == 2 and "no runs/ folder" in err


def test_index_rebuild_says_how_many_runs_and_which_folders_were_skipped(tmp_path, capsys):
    for rid in ("a", "b"):
        _done_run(tmp_path, rid)
    (tmp_path / "runs" / "b" / "result.json").write_text('{"run_id": "b", "sta')
    rc, out, err = run_cli(capsys, "index", "--rebuild", str(tmp_path))
    assert rc == 0, err
    assert "1 run(s) indexed, 1 folder(s) skipped." in out
    assert f"skipped {tmp_path / 'runs' / 'b'}: not valid JSON" in out
    from genbench.store import ResultsStore

    assert [r["run_id"] for r in ResultsStore(tmp_path).runs()] == ["a"]


# ---------------------------------------------------------------------------------------------
# validation before compute is spent


def _matrix(tmp_path: Path, *, datasets='["digits"]', generators='["copycat"]', evaluation="") -> Path:
    p = tmp_path / "m.toml"
    p.write_text(f'name = "v"\n[[block]]\ndatasets = {datasets}\ngenerators = [{generators.strip("[]")}]\n'
                 f"[block.evaluation]\nn_samples = 100\n{evaluation}\n")
    return p


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"evaluation": 'extractor = "inceptoin"'},
         "block[0].evaluation.extractor: unknown feature extractor 'inceptoin'. Did you mean: inception-v3-compat?"),
        ({"evaluation": 'extractor = "domain:digts"'}, "Unknown dataset 'digts'. Did you mean: digits"),
        ({"evaluation": "iwae_k = 0"}, "block[0].evaluation.iwae_k must be >= 1"),
        ({"evaluation": "iwae_k = -5"}, "block[0].evaluation.iwae_k must be >= 1"),
        ({"evaluation": "gmm_components = []"}, "block[0].evaluation.gmm_components: an empty grid fits no GMM"),
        ({"evaluation": "gmm_components = [0, 2]"}, "gmm_components: component counts must be >= 1"),
        ({"evaluation": "gmm_components = [200, 500]"}, "exceeds n_samples = 100"),
        ({"evaluation": 'device = "gpu"'}, "block[0].evaluation.device: unknown device 'gpu'. Did you mean: cuda?"),
        ({"generators": '{name = "vae", model = {z_dim = 0}}'},
         "block[0]: vae on digits: VAEConfig.z_dim: the latent dimension must be at least 1, got 0"),
        ({"generators": '{name = "aae", model = {z_dim = 0}}'}, "AAEConfig.z_dim: the latent dimension must be at"),
        ({"generators": '{name = "gan", model = {z_dim = 0}}'}, "GANConfig.z_dim: must be at least 1, got 0"),
        ({"generators": '{name = "vae", model = {hidden = []}}'}, "VAEConfig.hidden: expected one or more widths"),
        ({"generators": '{name = "pixelcnn", model = {kernel = 4}}'}, "PixelCNNConfig.kernel: masked kernels must"),
        ({"generators": '{name = "noisy-copycat", model = {noise_std = -0.1}}'},
         "NoisyCopycatConfig.noise_std: must be >= 0, got -0.1"),
        ({"generators": '{name = "vae", train = {steps = 0}}'}, "TrainConfig.steps must be >= 1; got 0"),
        ({"generators": '"pixelcnn"', "datasets": '["mixture-ring"]'},
         "generator 'pixelcnn' (pixelcnn) supports image data, but dataset 'mixture-ring' is 'points'"),
    ],
)
def test_validate_catches_what_would_fail_at_run_time(tmp_path, capsys, kwargs, message):
    p = _matrix(tmp_path, **kwargs)
    rc, out, err = run_cli(capsys, "validate", str(p))
    assert rc == 2 and out == "" and "Traceback" not in err, (out, err)
    assert message in err, err
    # `run` stops at the same check, before its first cell: nothing is created
    rc, out, err = run_cli(capsys, "run", str(p), "--results", str(tmp_path / "results"))
    assert rc == 2 and message in err and not (tmp_path / "results").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_without_cuda_fails_before_anything_is_created(tmp_path, capsys):
    p = _matrix(tmp_path, evaluation='device = "cuda"')
    for argv in (["validate", str(p)], ["run", str(p), "--results", str(tmp_path / "r")]):
        rc, out, err = run_cli(capsys, *argv)
        assert rc == 2 and "Traceback" not in err
        assert "'cuda' was asked for but CUDA is not available on this machine. Available: auto, cpu." in err, err
    for dev, msg in (("cuda", "CUDA is not available on this machine. Available: auto, cpu"),
                     ("gpu", "--device: unknown device 'gpu'. Did you mean: cuda?")):
        rc, out, err = run_cli(capsys, "train", "--generator", "vae", "--dataset", "digits", "--device", dev,
                               "--results", str(tmp_path / "r"))
        assert rc == 2 and msg in err, err
    rc, out, err = run_cli(capsys, "train", "--generator", "vae", "--train-set", "device=cuda",
                           "--results", str(tmp_path / "r"))
    assert rc == 2 and "--train-set device: 'cuda' was asked for but CUDA is not available" in err, err
    q = _matrix(tmp_path, generators='{name = "vae", train = {device = "cuda"}}')
    rc, out, err = run_cli(capsys, "run", str(q), "--results", str(tmp_path / "r"))
    assert rc == 2 and "block[0]: vae.train.device: 'cuda' was asked for" in err, err
    assert not (tmp_path / "r").exists()
    from genbench.matrix import load_matrix
    from genbench.runner import run_matrix

    with pytest.raises(ValueError, match="CUDA is not available"):
        run_matrix(load_matrix(p), results=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_a_valid_matrix_still_validates(tmp_path, capsys):
    p = _matrix(tmp_path, datasets='["digits", "mixture-ring"]',
                generators='"copycat", {name = "vae", label = "v2", model = {z_dim = 2}, train = {steps = 5}}',
                evaluation='extractor = "domain"\niwae_k = 4\ngmm_components = [1, 2]\ndevice = "cpu"')
    rc, out, err = run_cli(capsys, "validate", str(p))
    assert rc == 0 and "4 cell(s)" in out, err


# ---------------------------------------------------------------------------------------------
# the same cell, the same numbers, whatever the executor

GAN = """
name = "gan-threads"
[[block]]
datasets = ["digits"]
generators = [{name = "gan", label = "gan-short", train = {steps = 40, batch_size = 64}}]
[block.evaluation]
n_samples = 300
extractor = "pixels"
families = ["quality", "overfitting"]
"""


def _numbers(results: Path) -> dict[tuple[str, str], float]:
    """Every stored number except wall-clock timings (unit "s")."""
    from genbench.store import ResultsStore

    df = ResultsStore(results).to_frame()
    return {(r.cell_id, r.protocol): r.value for r in df.itertuples() if r.unit != "s"}


def test_a_cell_runs_with_its_own_thread_count_and_records_it(tmp_path):
    import torch

    from genbench.matrix import load_matrix
    from genbench.runner import run_matrix

    p = tmp_path / "m.toml"
    p.write_text('datasets = ["digits"]\ngenerators = ["copycat"]\n[evaluation]\nn_samples = 100\n'
                 'extractor = "pixels"\nfamilies = ["quality"]\n')
    q = tmp_path / "m3.toml"
    q.write_text(p.read_text() + "threads = 3\n")
    saved = torch.get_num_threads()
    torch.set_num_threads(2)  # what a plain local process would use on two cores
    try:
        for mfile, want in ((p, 1), (q, 3)):
            s = run_matrix(load_matrix(mfile), results=tmp_path / mfile.stem)
            rec = json.loads((tmp_path / mfile.stem / "runs" / s.ran[0] / "result.json").read_text())
            assert rec["provenance"]["threads"] == want
            assert torch.get_num_threads() == 2  # the caller's setting is restored
    finally:
        torch.set_num_threads(saved)


@pytest.mark.timeout(900)
def test_local_and_ray_give_identical_numbers_for_a_trained_gan(tmp_path):
    ray = pytest.importorskip("ray")
    import torch

    from genbench.matrix import load_matrix
    from genbench.runner import run_matrix

    p = tmp_path / "gan.toml"
    p.write_text(GAN)
    m = load_matrix(p)
    saved = torch.get_num_threads()
    torch.set_num_threads(2)  # the driver's own setting must not leak into the cell
    try:
        s_local = run_matrix(m, results=tmp_path / "local")
    finally:
        torch.set_num_threads(saved)
    s_ray = run_matrix(m, results=tmp_path / "ray", executor="ray", num_cpus=2)
    assert not ray.is_initialized()
    assert not s_local.failed and not s_ray.failed, (s_local.failed, s_ray.failed)
    a, b = _numbers(tmp_path / "local"), _numbers(tmp_path / "ray")
    assert a.keys() == b.keys() and any(k[1].startswith("fid@") for k in a) and len(a) > 5
    assert a == b  # bit-for-bit, not approximately
    for res in ("local", "ray"):
        rec = json.loads((tmp_path / res / "runs" / s_local.ran[0] / "result.json").read_text())
        assert rec["provenance"]["threads"] == 1
        assert not any(m["metric"] == "train_seconds" for m in rec["metrics"])
        assert rec["timings"]["train_s"] > 0  # wall-clock training time lives in the timings


# ---------------------------------------------------------------------------------------------
# Ray: an unreachable address, nothing to run


def _unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(120)
def test_unreachable_ray_address_fails_fast_with_a_clear_error(tmp_path, capsys):
    pytest.importorskip("ray")
    import time

    p = _controls(tmp_path)
    addr = f"127.0.0.1:{_unused_port()}"
    t0 = time.monotonic()
    rc, out, err = run_cli(capsys, "run", str(p), "--results", str(tmp_path / "r"), "--executor", "ray",
                           "--address", addr, "--connect-timeout", "5")
    assert time.monotonic() - t0 < 60
    assert rc == 2 and "Traceback" not in err
    assert f"cannot reach a Ray cluster at '{addr}' within 5 s" in err and "ray start --head" in err, err
    from genbench.runner import check_ray_address

    with pytest.raises(ValueError, match="expected HOST:PORT"):
        check_ray_address("127.0.0.1:http")


def test_ray_is_not_started_when_every_cell_is_done(tmp_path, monkeypatch):
    import types

    from genbench.matrix import load_matrix
    from genbench.runner import run_matrix

    m = load_matrix(_controls(tmp_path))
    first = run_matrix(m, results=tmp_path / "r")
    assert len(first.ran) == 4

    def no_init(*a, **k):
        raise AssertionError("ray.init called with nothing to run")

    monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace(init=no_init, is_initialized=lambda: False))
    again = run_matrix(m, results=tmp_path / "r", executor="ray", address="127.0.0.1:1")
    assert again.ran == [] and len(again.skipped) == 4


# ---------------------------------------------------------------------------------------------
# one cache, documented; a README that points only at what users have


def test_one_cache_root_honours_genbench_cache(tmp_path, monkeypatch):
    from genbench.features import cache_root

    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    assert cache_root(tmp_path / "explicit") == tmp_path / "explicit"
    monkeypatch.setenv("GENBENCH_CACHE", "")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "genbench"
    monkeypatch.delenv("GENBENCH_CACHE")
    assert cache_root() == tmp_path / "home" / ".cache" / "genbench"


def test_readme_documents_the_cache_and_run_tools_and_points_at_no_missing_files():
    text = (REPO / "README.md").read_text()
    assert "../" not in text, "the README must not point outside the package a user has"
    assert "$GENBENCH_CACHE" in text and "~/.cache/genbench" in text
    for phrase in ("genbench ls --runs", "genbench index --rebuild", "--connect-timeout", "ray stop",
                   "running elsewhere"):
        assert phrase in text, phrase
