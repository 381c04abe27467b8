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
