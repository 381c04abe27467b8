"""Run folders, atomic writes and the SQLite results store: crashes never leave a half result.

The crash tests kill a real subprocess in the middle of a write (``os._exit`` / SIGKILL, so no
cleanup code, ``finally`` or ``atexit`` runs) and check that the previous state is what a
reader sees afterwards.
"""

from __future__ import annotations

import json
import math
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from genbench import _io
from genbench._io import atomic_write, atomic_write_json, atomic_write_text, hash_arrays, read_json, to_json
from genbench.provenance import provenance
from genbench.results import SCHEMA_VERSION, MetricResult, Protocol
from genbench.runs import RunFolder, iter_run_folders, results_dir, safe_name
from genbench.store import STORE_NAME, ResultsStore


def metric(name: str, value: float, **kw) -> MetricResult:
    return MetricResult(metric=name, value=value, protocol=Protocol(name, space="test", n={"fake": 10}),
                        n={"real": 10, "fake": 10}, **kw)


def make_run(results: Path, run_id: str, values: dict[str, float], *, status: str = "done", **fields):
    rf = RunFolder.open(results, run_id)
    rf.write_config({"generator": "g", "dataset": "digits", "seed": 0})
    rec = rf.write_result(
        status=status, metrics=[metric(k, v, higher_is_better=k.endswith("score")) for k, v in values.items()],
        provenance={"seed": 0}, kind="train", generator=fields.pop("generator", "g"), dataset="digits",
        seed=fields.pop("seed", 0), **fields,
    )
    return rf, rec


def tmp_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# ---------------------------------------------------------------------------------------------
# run folders and records


def test_run_folder_write_and_read(tmp_path):
    rf, rec = make_run(tmp_path, "vae/digits s0", {"fid": 1.5, "is_score": 7.25}, cell_id="c1")
    assert rf.path == tmp_path / "runs" / "vae_digits_s0" and rf.run_id == "vae_digits_s0"
    assert safe_name("a b/c:d") == "a_b_c_d" and safe_name("gan (wgan)") == "gan_wgan"
    back = rf.read_result()
    assert back == json.loads(json.dumps(rec)) and back["status"] == "done" and back["cell_id"] == "c1"
    ms = [MetricResult.from_dict(m) for m in back["metrics"]]
    assert ms == [metric("fid", 1.5, higher_is_better=False), metric("is_score", 7.25, higher_is_better=True)]
    assert read_json(rf.config_path) == {"schema": SCHEMA_VERSION, "generator": "g", "dataset": "digits", "seed": 0}
    assert rf.is_done()
    rf.log("hello")
    rf.log("world")
    lines = rf.log_path.read_text().splitlines()
    assert [ln.split(" ", 1)[1] for ln in lines] == ["hello", "world"]
    assert rf.checkpoints.is_dir() and rf.artifacts.is_dir()
    assert [r.run_id for r in iter_run_folders(tmp_path)] == ["vae_digits_s0"]
    assert iter_run_folders(tmp_path / "nothing") == []


@pytest.mark.parametrize("run_id", ["..", ".", "", "///", "..."])
def test_run_id_cannot_escape_the_runs_folder(tmp_path, run_id):
    with pytest.raises(ValueError, match="no usable folder name"):
        RunFolder.open(tmp_path, run_id)
    assert not (tmp_path / "result.json").exists() and not (tmp_path / "runs" / "result.json").exists()
    for ok in ("../x", "../..", "a/../../b"):  # slashes never survive: always one folder inside runs/
        assert RunFolder.open(tmp_path, ok).path.parent == tmp_path / "runs"


def test_run_folder_status_and_unfinished(tmp_path):
    rf = RunFolder.open(tmp_path, "r1")
    assert rf.read_result() is None and not rf.is_done()
    rf.write_result(status="running")
    assert not rf.is_done()
    rf.write_result(status="failed", error="boom")
    assert rf.read_result()["error"] == "boom" and not rf.is_done()
    with pytest.raises(ValueError, match="status must be one of"):
        rf.write_result(status="finished")
    assert rf.read_result()["status"] == "failed"


def test_results_dir_env(tmp_path, monkeypatch):
    monkeypatch.delenv("GENBENCH_RESULTS", raising=False)
    assert results_dir() == Path("results")
    monkeypatch.setenv("GENBENCH_RESULTS", str(tmp_path))
    assert results_dir() == tmp_path and results_dir("x") == Path("x")


def test_metric_result_rejects_nan_and_inf():
    for bad in (float("nan"), float("inf"), -math.inf, np.float64("nan"), "1.0", None):
        with pytest.raises(ValueError, match="fid: value must be a finite number"):
            MetricResult(metric="fid", value=bad, protocol=Protocol("fid", space="x"))
    with pytest.raises(ValueError, match="kind must be one of"):
        MetricResult(metric="nll", value=1.0, protocol=Protocol("nll", space="x"), kind="guess")
    m = MetricResult(metric="fid", value=np.float64(2.5), protocol=Protocol("fid", space="x"), ci=(1.0, 3.0),
                     warnings=("w",))
    assert MetricResult.from_dict(json.loads(to_json(m.to_dict()))) == m


def test_nan_never_written_as_a_number(tmp_path):
    rf, _ = make_run(tmp_path, "r", {"fid": 1.0})
    before = rf.result_path.read_bytes()
    with pytest.raises(ValueError):
        rf.write_result(status="done", provenance={"loss": float("nan")})
    assert rf.result_path.read_bytes() == before and tmp_leftovers(rf.path) == []


def test_provenance_is_complete_and_serialisable(tmp_path):
    p = provenance(seed=3, device="cpu", note="x")
    assert p["seed"] == 3 and p["note"] == "x" and p["device"].startswith("cpu")
    assert {"genbench", "git_commit", "packages", "python", "platform", "time"} <= set(p)
    assert "numpy" in p["packages"] and p["packages"]["numpy"] == np.__version__
    assert p["git_commit"] is None or len(p["git_commit"].split("+")[0]) == 40
    rf = RunFolder.open(tmp_path, "p")
    rf.write_result(status="done", provenance=p)
    assert rf.read_result()["provenance"] == p


# ---------------------------------------------------------------------------------------------
# atomic writes


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "sub" / "f.json"
    atomic_write_json(p, {"a": 1})
    atomic_write_json(p, {"a": 2, "arr": np.arange(3), "x": np.float32(0.5), "p": Path("q")})
    assert read_json(p) == {"a": 2, "arr": [0, 1, 2], "x": 0.5, "p": "q"}
    assert tmp_leftovers(p.parent) == []


def test_atomic_write_file_mode_follows_umask(tmp_path):
    """Results are written like ordinary files (0666 & ~umask), not with mkstemp's private 0600."""
    old = os.umask(0o022)
    try:
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
        p = atomic_write_text(tmp_path / "atomic.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o644
    # replacing a file keeps the mode it was given
    os.chmod(p, 0o640)
    atomic_write_text(p, "y")
    assert stat.S_IMODE(p.stat().st_mode) == 0o640 and p.read_text() == "y"


def test_writer_raising_halfway_keeps_previous_file(tmp_path):
    p = tmp_path / "result.json"
    atomic_write_json(p, {"v": 1})

    def half(f):
        f.write(b'{"v": 2, "metr')
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(p, half)
    assert read_json(p) == {"v": 1} and tmp_leftovers(tmp_path) == []


@pytest.mark.parametrize("where", ["fsync", "replace"])
def test_run_result_interrupted_before_rename(tmp_path, monkeypatch, where):
    rf, rec1 = make_run(tmp_path, "r", {"fid": 1.0})
    before = rf.result_path.read_bytes()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_io.os, where, boom)
    with pytest.raises(OSError, match="No space left"):
        rf.write_result(status="done", metrics=[metric("fid", 99.0)])
    monkeypatch.undo()
    assert rf.result_path.read_bytes() == before
    assert rf.read_result() == json.loads(json.dumps(rec1))
    assert tmp_leftovers(rf.path) == []


def _run_child(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def test_process_killed_mid_write_keeps_previous_result(tmp_path):
    """A real crash: the child writes half a result.json temp file and is SIGKILLed before the rename."""
    rf, rec1 = make_run(tmp_path, "r", {"fid": 1.0})
    before = rf.result_path.read_bytes()
    child = _run_child(
        f"""
        import os, signal
        from genbench._io import atomic_write

        def half(f):
            f.write(b'{{"status": "done", "metrics": [')
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        atomic_write({str(rf.result_path)!r}, half)
        """,
        tmp_path,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert rf.result_path.read_bytes() == before and rf.is_done()
    # the torn temp file is a hidden .tmp the readers never look at
    left = tmp_leftovers(rf.path)
    assert len(left) == 1 and left[0].startswith(".result.json.")
    assert [r.run_id for r in iter_run_folders(tmp_path)] == ["r"]


# ---------------------------------------------------------------------------------------------
# the SQLite store


def snapshot(store: ResultsStore) -> tuple[list[dict], list[dict]]:
    runs = store.runs()
    for r in runs:
        r.pop("path", None)
    frame = store.to_frame().to_dict("records")
    return runs, frame


def test_store_put_and_query(tmp_path):
    store = ResultsStore(tmp_path)
    assert store.path == tmp_path / STORE_NAME
    rf, rec = make_run(tmp_path, "a", {"fid": 3.0, "is_score": 2.0}, cell_id="cell-a", matrix="m", note="extra")
    store.put(rec, path=rf.path)
    rows = store.runs()
    assert len(rows) == 1
    r = rows[0]
    assert (r["run_id"], r["status"], r["generator"], r["dataset"], r["seed"], r["cell_id"], r["matrix"]) == (
        "a", "done", "g", "digits", 0, "cell-a", "m")
    assert r["provenance"] == {"seed": 0} and r["extra"]["note"] == "extra" and r["path"] == str(rf.path)
    assert store.status("a") == "done" and store.status("zzz") is None
    assert store.runs(generator="g")[0]["run_id"] == "a" and store.runs(generator="h") == []
    # replacing a run replaces its metrics (no stale metric rows)
    _, rec2 = make_run(tmp_path, "a", {"fid": 4.0}, status="failed")
    store.put(rec2)
    df = store.to_frame()
    assert df[["run_id", "metric", "value"]].values.tolist() == [["a", "fid", 4.0]]
    assert store.status("a") == "failed"


def test_to_frame_is_tidy(tmp_path):
    store = ResultsStore(tmp_path)
    want = {"a": {"fid": 1.0, "kid": 0.5, "is_score": 9.0}, "b": {"fid": 2.0}, "c": {}}
    for i, (rid, vals) in enumerate(want.items()):
        store.put(make_run(tmp_path, rid, vals, seed=i)[1])
    df = store.to_frame()
    # one row per (run, metric); runs without metrics have no rows
    assert len(df) == 4
    assert not df.duplicated(["run_id", "protocol"]).any()
    got = {(r.run_id, r.metric): r.value for r in df.itertuples()}
    assert got == {(rid, k): v for rid, vals in want.items() for k, v in vals.items()}
    assert {"run_id", "generator", "dataset", "seed", "status", "metric", "protocol", "value", "std", "ci_low",
            "ci_high", "n", "estimator", "unit", "higher_is_better"} <= set(df.columns)
    row = df[(df.run_id == "a") & (df.metric == "is_score")].iloc[0]
    assert row.protocol == "is_score@test/n=10" and row.higher_is_better == 1 and json.loads(row.n) == {
        "real": 10, "fake": 10}
    assert df[df.run_id == "b"].seed.tolist() == [1]


def test_rebuild_reproduces_incremental_puts(tmp_path):
    store = ResultsStore(tmp_path)
    recs = [
        make_run(tmp_path, "a", {"fid": 1.0, "is_score": 3.0}, cell_id="ca")[1],
        make_run(tmp_path, "b", {"fid": 2.0}, status="failed", error="nan loss", seed=1)[1],
        make_run(tmp_path, "c", {"kid": 0.25}, generator="h", seed=2)[1],
    ]
    for rf, rec in zip(iter_run_folders(tmp_path), recs):
        store.put(rec, path=rf.path)
    RunFolder.open(tmp_path, "unfinished")  # no result.json: not indexed
    incremental = store.runs(), store.to_frame()
    assert store.rebuild() == 3
    assert store.runs() == incremental[0]
    assert store.to_frame().equals(incremental[1])
    # a deleted index comes back from the run folders
    for suffix in ("", "-wal", "-shm"):
        Path(str(store.path) + suffix).unlink(missing_ok=True)
    fresh = ResultsStore(tmp_path)
    assert fresh.runs() == []
    assert fresh.rebuild() == 3
    assert fresh.runs() == incremental[0] and fresh.to_frame().equals(incremental[1])
    assert sorted(p.name for p in tmp_path.iterdir()) in (["index.sqlite", "runs"],
                                                          ["index.sqlite", "index.sqlite-shm", "index.sqlite-wal",
                                                           "runs"])


def test_rebuild_drops_runs_whose_folder_is_gone(tmp_path):
    store = ResultsStore(tmp_path)
    for rid in ("a", "b"):
        rf, rec = make_run(tmp_path, rid, {"fid": 1.0})
        store.put(rec, path=rf.path)
    import shutil

    shutil.rmtree(tmp_path / "runs" / "b")
    assert store.rebuild() == 1
    assert [r["run_id"] for r in store.runs()] == ["a"]


def test_rebuild_skips_a_corrupt_result_names_it_and_indexes_the_others(tmp_path):
    store = ResultsStore(tmp_path)
    rf, rec = make_run(tmp_path, "a", {"fid": 1.0})
    store.put(rec, path=rf.path)
    before = snapshot(store)
    bad = make_run(tmp_path, "b", {"fid": 2.0})[0]
    store.put(bad.read_result(), path=bad.path)
    bad.result_path.write_text('{"run_id": "b", "status": ')  # hand-edited / written by a foreign tool
    n = store.rebuild()
    assert n == 1 and list(n.skipped) == [str(bad.path)] and "not valid JSON" in n.skipped[str(bad.path)]
    assert snapshot(store) == before
    assert sorted(p.name for p in tmp_path.iterdir() if "rebuild" in p.name) == []


CRASH_CHILD = """
import os, signal, sys
from genbench import store as S
from genbench.results import MetricResult, Protocol

mode = sys.argv[1]
st = S.ResultsStore(sys.argv[2])
orig = S.ResultsStore._put

def crashing_put(self, con, record, path):
    # delete the old metrics and replace the runs row, then die before the metric rows and the commit
    con.execute("DELETE FROM metrics WHERE run_id = ?", (record["run_id"],))
    con.execute("INSERT OR REPLACE INTO runs (run_id, status) VALUES (?, ?)", (record["run_id"], "done"))
    assert con.in_transaction
    sys.stdout.write("in transaction\\n")
    sys.stdout.flush()
    if mode == "exit":
        os._exit(3)
    os.kill(os.getpid(), signal.SIGKILL)

S.ResultsStore._put = crashing_put
m = MetricResult(metric="fid", value=123.0, protocol=Protocol("fid", space="test", n={"fake": 10})).to_dict()
st.put({"run_id": sys.argv[3], "status": "done", "metrics": [m]})
print("not reached")
"""


@pytest.mark.parametrize("mode", ["exit", "sigkill"])
@pytest.mark.parametrize("target", ["existing", "new"])
def test_store_survives_process_killed_mid_transaction(tmp_path, mode, target):
    store = ResultsStore(tmp_path)
    for rid, v in (("a", 1.0), ("b", 2.0)):
        rf, rec = make_run(tmp_path, rid, {"fid": v, "kid": v / 10})
        store.put(rec, path=rf.path)
    before = snapshot(store)
    run_id = "a" if target == "existing" else "z"
    child = subprocess.run([sys.executable, "-c", CRASH_CHILD, mode, str(tmp_path), run_id], capture_output=True,
                           text=True, timeout=60)
    assert child.stdout == "in transaction\n", child.stderr
    assert child.returncode == (3 if mode == "exit" else -signal.SIGKILL)
    # a new process (a new store object) sees exactly the previous state, and can write
    again = ResultsStore(tmp_path)
    assert snapshot(again) == before
    rf, rec = make_run(tmp_path, "c", {"fid": 5.0})
    again.put(rec, path=rf.path)
    assert [r["run_id"] for r in again.runs()] == ["a", "b", "c"]
    assert again.rebuild() == 3


def test_put_that_raises_rolls_back(tmp_path):
    """An error inside a put (a record missing a metric value) leaves the run as it was."""
    store = ResultsStore(tmp_path)
    rf, rec = make_run(tmp_path, "a", {"fid": 1.0, "kid": 0.1})
    store.put(rec, path=rf.path)
    before = snapshot(store)
    broken = dict(rec, metrics=[rec["metrics"][0], {"metric": "kid", "protocol": "kid@x"}])
    with pytest.raises(KeyError):
        store.put(broken)
    assert snapshot(store) == before


def test_hash_arrays_is_content_based():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert hash_arrays(a) == hash_arrays(a.copy()) == hash_arrays(np.asfortranarray(a))
    assert hash_arrays(a) != hash_arrays(a.reshape(3, 2))  # same bytes, other shape
    assert hash_arrays(a) != hash_arrays(a.astype(np.float64))
    assert hash_arrays(a) != hash_arrays(a, extra="x") and hash_arrays(a, None) != hash_arrays(a)


WRITER_CHILD = """
import sys
from genbench.store import ResultsStore
from genbench.results import MetricResult, Protocol

st = ResultsStore(sys.argv[1])
for i in range(int(sys.argv[3])):
    m = MetricResult(metric="fid", value=float(i), protocol=Protocol("fid", space="test", n={"fake": 10})).to_dict()
    st.put({"run_id": f"{sys.argv[2]}-{i:03d}", "status": "done", "metrics": [m]})
"""


def test_concurrent_writers_from_several_processes(tmp_path):
    """Executors write from several worker processes at once: no put is lost, none fails with 'locked'."""
    ResultsStore(tmp_path)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER_CHILD, str(tmp_path), w, "25"], stderr=subprocess.PIPE,
                              text=True) for w in ("w1", "w2", "w3")]
    errs = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errs
    store = ResultsStore(tmp_path)
    assert len(store.runs()) == 75
    df = store.to_frame()
    assert len(df) == 75 and sorted(df[df.run_id.str.startswith("w2")].value) == [float(i) for i in range(25)]


def test_empty_store_frame(tmp_path):
    df = ResultsStore(tmp_path).to_frame()
    assert len(df) == 0 and {"run_id", "metric", "protocol", "value"} <= set(df.columns)
