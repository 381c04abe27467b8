"""The benchmark matrix: both executors agree, kill -9 resumes with every cell done once,
a failing cell leaves the others done."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genbench.config import ConfigError
from genbench.matrix import load_matrix, parse_matrix
from genbench.runner import run_matrix
from genbench.store import ResultsStore

TINY = """
name = "tiny"
[[block]]
datasets = ["digits"]
seeds = [0]
generators = ["copycat", "independent-pixels",
              {{name = "vae", label = "vae-tiny", train = {{steps = 30, batch_size = 64}}}}]
[block.evaluation]
n_samples = 300
families = ["quality", "likelihood", "overfitting", "coverage"]
iwae_k = 16
n_test = 60
threads = 1
{extra}
"""

FAILING_BLOCK = """
[[block]]
datasets = ["npz:{missing}"]
generators = ["copycat"]
"""


def _write(tmp_path: Path, extra: str = "") -> Path:
    p = tmp_path / "tiny.toml"
    p.write_text(TINY.format(extra=extra))
    return p


def _values(results: Path) -> dict[tuple[str, str], float]:
    """Every stored number except wall-clock timings (unit "s"), which no two runs share."""
    df = ResultsStore(results).to_frame()
    return {(r.cell_id, r.protocol): r.value for r in df.itertuples() if r.unit != "s"}


def test_cell_ids_are_deterministic_and_content_derived(tmp_path):
    m1 = load_matrix(_write(tmp_path))
    m2 = load_matrix(_write(tmp_path))
    assert [c.cell_id for c in m1.cells()] == [c.cell_id for c in m2.cells()]
    changed = parse_matrix({"datasets": ["digits"], "generators": ["copycat"], "seeds": [1]})
    same = parse_matrix({"datasets": ["digits"], "generators": ["copycat"], "seeds": [0]})
    assert changed.cells()[0].cell_id != same.cells()[0].cell_id
    assert len({c.cell_id for c in m1.cells()}) == 3


def test_bad_matrix_names_fail_before_running():
    with pytest.raises(ValueError, match="Did you mean: digits"):
        parse_matrix({"datasets": ["digts"], "generators": ["copycat"]})
    with pytest.raises(ValueError, match="Unknown generator 'vea'"):
        parse_matrix({"datasets": ["digits"], "generators": ["vea"]})
    with pytest.raises(ConfigError, match="unknown key 'stepz'"):
        parse_matrix({"datasets": ["digits"], "generators": [{"name": "vae", "train": {"stepz": 3}}]})


def test_default_matrix_lists_families_and_controls():
    m = load_matrix(None)
    names = {c.generator.name for c in m.cells()}
    assert {"vae", "gan", "pixelcnn", "aae", "copycat", "noisy-copycat", "heldout", "independent-pixels",
            "mixture-truth"} <= names
    assert {c.dataset for c in m.cells()} == {"digits", "mixture-ring", "mixture-grid"}


def test_local_run_is_resumable_and_a_failing_cell_leaves_others_done(tmp_path):
    missing = tmp_path / "nope.npz"
    m = load_matrix(_write(tmp_path, FAILING_BLOCK.format(missing=missing)))
    res = tmp_path / "results"
    s1 = run_matrix(m, results=res)
    assert len(s1.ran) == 4 and len(s1.failed) == 1
    (failed_id, err), = s1.failed.items()
    assert "nope.npz" in err and "not found" in err
    rows = {r["run_id"]: r for r in ResultsStore(res).runs()}
    assert {r["status"] for k, r in rows.items() if k != failed_id} == {"done"}
    assert rows[failed_id]["status"] == "failed"
    df = ResultsStore(res).to_frame()
    assert not df[df.run_id == failed_id].shape[0], "no sentinel numbers for a failed cell"
    protos = set(df.protocol)
    for metric in ("fid@", "kid@", "precision@", "parzen@", "copy-rate@"):
        assert any(p.startswith(metric) for p in protos), (metric, sorted(protos))
    # second invocation: finished cells are skipped, the failed one is retried (and fails again)
    before = {p: p.stat().st_mtime_ns for p in res.glob("runs/*/result.json")}
    s2 = run_matrix(m, results=res)
    assert sorted(s2.skipped) == sorted(k for k in rows if k != failed_id)
    assert s2.ran == [failed_id]
    after = {p: p.stat().st_mtime_ns for p in res.glob("runs/*/result.json")}
    assert all(after[p] == t for p, t in before.items() if failed_id not in str(p))


@pytest.mark.timeout(600)
def test_local_worker_processes_give_the_same_numbers_and_record_failures(tmp_path):
    missing = tmp_path / "nope.npz"
    m = load_matrix(_write(tmp_path, FAILING_BLOCK.format(missing=missing)))
    one, two = tmp_path / "one", tmp_path / "two"
    s1 = run_matrix(m, results=one, jobs=1)
    s2 = run_matrix(m, results=two, jobs=2)
    assert len(s2.ran) == 4 and list(s2.failed) == list(s1.failed) and "nope.npz" in next(iter(s2.failed.values()))
    a, b = _values(one), _values(two)
    assert a.keys() == b.keys() and len(a) > 20
    for k in a:
        assert a[k] == b[k], k  # same thread count and seeds in any process: the very same numbers
    with pytest.raises(ValueError, match="jobs must be a whole number >= 1"):
        run_matrix(m, results=two, jobs=0)


@pytest.mark.timeout(600)
def test_ray_executor_gives_the_same_numbers_as_local(tmp_path):
    pytest.importorskip("ray")
    m = load_matrix(_write(tmp_path))
    local, ray_res = tmp_path / "local", tmp_path / "ray"
    s_local = run_matrix(m, results=local)
    s_ray = run_matrix(m, results=ray_res, executor="ray", num_cpus=2)
    assert not s_local.failed and not s_ray.failed, (s_local.failed, s_ray.failed)
    a, b = _values(local), _values(ray_res)
    assert a.keys() == b.keys() and len(a) > 20
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-12), k


@pytest.mark.timeout(600)
def test_kill_minus_nine_then_restart_finishes_every_cell_exactly_once(tmp_path):
    mfile = _write(tmp_path)
    res = tmp_path / "results"
    env = {**os.environ, "GENBENCH_PROGRESS": "0", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "genbench", "run", str(mfile), "--results", str(res)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            done = [p for p in res.glob("runs/*/result.json") if json.loads(p.read_text())["status"] == "done"]
            if done:
                break
            if proc.poll() is not None:
                pytest.fail("run finished before it could be killed: " + proc.stdout.read().decode())
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    first = {p.parent.name: json.loads(p.read_text())["finished"] for p in res.glob("runs/*/result.json")}
    assert 1 <= len(first) < 3
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    runs = ResultsStore(res).runs()
    cells = {c.cell_id for c in load_matrix(mfile).cells()}
    assert {r["run_id"] for r in runs} == cells and {r["status"] for r in runs} == {"done"}
    for cid, finished in first.items():  # finished before the kill: not run again
        assert json.loads((res / "runs" / cid / "result.json").read_text())["finished"] == finished
    for cid in cells:  # every cell completed exactly once
        log = (res / "runs" / cid / "log.txt").read_text()
        assert log.count(": done in ") == 1, log


def test_metric_settings_reach_the_metrics_and_typos_fail_before_running(tmp_path):
    base = {"datasets": ["digits"], "generators": ["copycat"],
            "evaluation": {"n_samples": 400, "families": ["overfitting"], "threads": 1}}
    m = parse_matrix({**base, "evaluation": {**base["evaluation"], "settings": {
        "transform-copy-rate": {"max_samples": 100, "max_heldout": 200}}}})
    s = run_matrix(m, results=tmp_path / "r")
    assert not s.failed, s.failed
    df = ResultsStore(tmp_path / "r").to_frame()
    (proto,) = [p for p in df.protocol if p.startswith("transform-copy-rate")]
    assert "checked=100" in proto and "heldout_checked=200" in proto, proto
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) max_sample; transform-copy-rate takes"):
        parse_matrix({**base, "evaluation": {**base["evaluation"], "settings": {
            "transform-copy-rate": {"max_sample": 100}}}})
    with pytest.raises(ValueError, match="Unknown metric 'transform-copy'"):
        parse_matrix({**base, "evaluation": {**base["evaluation"], "settings": {"transform-copy": {}}}})
