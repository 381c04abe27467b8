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
