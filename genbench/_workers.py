"""Worker processes of the local executor: forked from a server that has imported what cells use.

Every cell imports torch, ``torch._dynamo`` (torch loads it on the first optimizer a process makes),
scipy, scikit-learn and matplotlib: about 4.5 s a process on one core of the 2-core test machine.
With ``spawn`` each worker paid that itself, while the other core was running a cell. Here
multiprocessing's fork server imports them once (:mod:`genbench._preload`), started by
:func:`prestart` before the driver loads the matrix, so that its imports run beside the driver's
own; each worker is then a fork of it, with the modules already in memory.

Not a plain ``fork`` of the driver: a forked child of a process with torch threads running can
deadlock. The fork server runs no torch operation, so it has one thread when it forks (tests check).
Where the platform has no fork server (Windows), workers are spawned as before.

A worker is forked from the server as the server was when it started, so :func:`call` first
takes the driver's current environment variables, working directory and ``sys.path``, as a spawned
worker would have: a cell sees the same settings whichever way its process was started.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable
from typing import Any

# "__main__" first, as multiprocessing's own default: a script's top-level registrations (of a
# generator, say) happen in the workers too, as under spawn
PRELOAD = ("__main__", "genbench._preload")


def context() -> Any:
    """The multiprocessing context for cell workers: a fork server with :data:`PRELOAD`, else spawn."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(PRELOAD))  # no effect once the server runs (it has them then)
    return ctx


def prestart() -> None:
    """Start the fork server now and return at once: it imports :data:`PRELOAD` while the caller goes on.

    Harmless when no worker is made after all: the server only imports, and ends with this process.
    """
    if context().get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def snapshot() -> tuple[dict[str, str], str, list[str]]:
    """What :func:`call` restores in the worker: environment variables, working directory and ``sys.path``."""
    return dict(os.environ), os.getcwd(), list(sys.path)


def call(driver: tuple[dict[str, str], str, list[str]], fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a worker, after taking the driver's settings from :func:`snapshot`.

    The local executor submits ``call(snapshot(), execute_cell, cell, root)`` for each cell.
    """
    environ, cwd, path = driver
    if dict(os.environ) != environ:
        os.environ.clear()
        os.environ.update(environ)
    if os.getcwd() != cwd:
        os.chdir(cwd)
    sys.path[:] = path
    return fn(*args)
