"""The local executor's worker processes (genbench._workers): forked from a fork server that has the
modules cells use, single-threaded when it forks, and running each cell with the driver's settings.

Functions sent to the workers are builtins or genbench's own, which the fork server can unpickle
whatever its ``sys.path``."""

from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor

import pytest

from genbench import _preload, _workers

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; fork server on Linux")


@pytest.fixture(scope="module")
def pool():
    _workers.prestart()
    with ProcessPoolExecutor(max_workers=1, mp_context=_workers.context()) as p:
        yield p


def test_workers_come_from_a_single_threaded_fork_server_with_the_cells_modules(pool):
    assert _workers.context().get_start_method() == "forkserver"
    server = pool.submit(os.getppid).result(timeout=120)
    assert server != os.getpid()  # the worker's parent is the fork server, not this process
    # one thread in the server (forking a process with threads running can deadlock the child)
    assert len(os.listdir(f"/proc/{server}/task")) == 1
    loaded = pool.submit(eval, f"[m for m in {list(_preload.MODULES)!r} if m not in __import__('sys').modules]")
    assert loaded.result(timeout=60) == []  # imported before the worker ran anything
    assert pool.submit(eval, "__import__('threading').active_count()").result(timeout=60) == 1


def test_a_worker_runs_with_the_drivers_environment_directory_and_path(pool, tmp_path, monkeypatch):
    pool.submit(os.getpid).result(timeout=120)  # the server has started before the settings change
    monkeypatch.setenv("GENBENCH_WORKER_PROBE", "set after the fork server started")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    driver = _workers.snapshot()
    # without the snapshot the worker has the server's settings: this test can tell the difference
    assert pool.submit(os.getenv, "GENBENCH_WORKER_PROBE").result(timeout=60) is None
    assert pool.submit(os.getcwd).result(timeout=60) != str(tmp_path)
    assert pool.submit(_workers.call, driver, os.getenv, "GENBENCH_WORKER_PROBE").result(timeout=60) == \
        "set after the fork server started"
    assert pool.submit(_workers.call, driver, os.getcwd).result(timeout=60) == str(tmp_path)
    assert pool.submit(_workers.call, driver, eval, "__import__('sys').path").result(timeout=60)[0] == \
        str(tmp_path / "plugins")


def test_a_module_that_fails_to_import_is_left_to_the_cell():
    # the server must start whatever this installation lacks: the cell that needs it reports the error
    assert _preload.load(("genbench_no_such_module", "json")) == ["genbench_no_such_module"]
    assert _preload.load() == []  # every module of the list imports here
