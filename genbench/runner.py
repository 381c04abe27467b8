"""Running a benchmark matrix: resumable, with a local or a Ray executor.

The driver alone writes ``result.json`` and the results store; workers (in-process or Ray
tasks) train/load, sample and evaluate one cell each and return a plain-dict record. A cell is
finished when its run folder holds a ``result.json`` with status ``done``: a second invocation
skips those, and a run killed midway (Ctrl-C or kill -9) continues where it stopped, training
resuming from the cell's last checkpoint.

Two ``genbench run`` processes on one results directory share the work instead of repeating it:
a cell is computed only by the process holding its run folder's lock
(:meth:`genbench.runs.RunFolder.try_lock`); the other skips it and reports it as running
elsewhere. A damaged run folder (unreadable ``result.json``) is reported by path and redone.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from genbench._progress import progress
from genbench.matrix import Cell, Matrix, check_devices
from genbench.provenance import now_iso, provenance
from genbench.results import RunRecord
from genbench.runs import DamagedRunError, RunFolder, RunLock, results_dir, safe_name
from genbench.store import ResultsStore

log = logging.getLogger("genbench.run")

EXECUTORS = ("local", "ray")
#: seconds to wait for a Ray cluster given by --address to answer before giving up
RAY_CONNECT_TIMEOUT = 15.0


@dataclass
class RunSummary:
    matrix: str
    results: Path
    store_path: Path
    total: int
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    elsewhere: list[str] = field(default_factory=list)
    damaged: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def describe(self) -> str:
        first = (f"matrix {self.matrix!r}: {self.total} cells; {len(self.ran)} run now, {len(self.skipped)} already "
                 f"finished, {len(self.failed)} failed")
        if self.elsewhere:
            first += f", {len(self.elsewhere)} running elsewhere"
        lines = [first + f" ({self.seconds:.0f} s)."]
        for path, why in self.damaged.items():
            lines.append(f"  DAMAGED (redone) {path}: {why}")
        for cid in self.elsewhere:
            lines.append(f"  RUNNING ELSEWHERE {cid}: another process holds its lock; run again when it ends")
        for cid, err in self.failed.items():
            lines.append(f"  FAILED {cid}: {err}")
        lines.append(f"results store: {self.store_path}")
        lines.append(f"run folders:   {self.results / 'runs'}")
        return "\n".join(lines)


def execute_cell(cell_dict: dict[str, Any], root: str) -> dict[str, Any]:
    """Train (or load), sample and evaluate one cell; return its record. Never raises for cell errors.

    Runs in a worker (in-process or a Ray task). It writes the cell's config, checkpoints and
    artifacts into its run folder, but not ``result.json``: the driver commits that. Torch, and the
    BLAS and OpenMP pools numpy, scipy and scikit-learn use, run with the cell's own thread count
    (``evaluation.threads``, default 1) whatever the executor, restored afterwards: the numbers do not
    depend on where the cell ran, and cells side by side do not oversubscribe the cores.
    """
    import torch
    from threadpoolctl import threadpool_limits

    cell = Cell.from_dict(cell_dict)
    saved = torch.get_num_threads()
    torch.set_num_threads(cell.evaluation.cell_threads)
    try:
        with threadpool_limits(limits=cell.evaluation.cell_threads):
            return _execute_cell(cell, root)
    finally:
        torch.set_num_threads(saved)


def _execute_cell(cell: Cell, root: str) -> dict[str, Any]:
    import torch

    rf = RunFolder.open(root, cell.cell_id)
    rf.write_config(cell.to_dict())
    base = RunRecord(run_id=cell.cell_id, status="running", cell_id=cell.cell_id, kind="cell", matrix=cell.matrix,
                     generator=cell.generator.display, family=cell.generator.name, dataset=cell.dataset,
                     seed=cell.seed, config=cell.to_dict(), started=now_iso())
    t0 = time.perf_counter()
    rf.log(f"cell {cell.cell_id}: start ({cell.generator.display} on {cell.dataset}, seed {cell.seed})")
    try:
        from genbench.evaluate import evaluate_cell

        out = evaluate_cell(cell, rf)
        rec = replace(base, status="done", metrics=out.metrics, artifacts=out.artifacts, control=out.control,
                      timings={**out.timings, "total_s": time.perf_counter() - t0},
                      provenance=provenance(seed=cell.seed, device=out.device, threads=torch.get_num_threads()))
        rf.log(f"cell {cell.cell_id}: done in {time.perf_counter() - t0:.1f} s, {len(out.metrics)} metrics")
        return rec.to_dict()  # plain data: a Ray task's return value crosses processes
    except Exception as e:  # a failing cell is recorded, and the run carries on
        tb = traceback.format_exc()
        rf.log(f"cell {cell.cell_id}: FAILED\n{tb}")
        return replace(base, status="failed", error=f"{type(e).__name__}: {e}", traceback=tb,
                       timings={"total_s": time.perf_counter() - t0},
                       provenance=provenance(seed=cell.seed, threads=torch.get_num_threads())).to_dict()


def _commit(root: Path, store: ResultsStore, record: dict[str, Any]) -> None:
    rf = RunFolder.open(root, record["run_id"])
    rec = rf.commit(RunRecord.from_dict(record))  # the run folder is the source of truth: write it first
    store.put(rec, path=rf.path)


Claim = Callable[[Cell], bool]


def _failed_record(c: Cell, error: str) -> dict[str, Any]:
    """The record of a cell whose worker died (out of memory, killed) before it could return one."""
    return {"run_id": c.cell_id, "cell_id": c.cell_id, "kind": "cell", "matrix": c.matrix,
            "generator": c.generator.display, "family": c.generator.name, "dataset": c.dataset, "seed": c.seed,
            "config": c.to_dict(), "status": "failed", "error": error, "metrics": []}


def default_jobs(cells: list[Cell]) -> int:
    """Cells to run at once on this machine: its CPUs over the cells' torch threads (2 on 2 cores with
    the default 1 thread per cell), 1 when a GPU is present (cells would share it) or when only one
    cell is left."""
    import torch

    if torch.cuda.is_available() or len(cells) < 2:
        return 1
    threads = max((c.evaluation.cell_threads for c in cells), default=1)
    return max(1, min(len(cells), (os.cpu_count() or 1) // threads))


def longest_first(cells: list[Cell]) -> list[Cell]:
    """Cells in the order to start them: trained generators before controls (which only sample and
    evaluate, seconds each), matrix order otherwise. With several workers the short cells then fill the
    gaps at the end instead of one long cell running alone (longest-processing-time-first scheduling).
    """
    from genbench.generators import get_generator_spec

    def trained(c: Cell) -> bool:
        try:
            return bool(get_generator_spec(c.generator.name).trained)
        except Exception:  # an unknown family fails in its cell, with its own message
            return True

    return sorted(cells, key=lambda c: not trained(c))


def _local(cells: list[Cell], root: Path, *, claim: Claim, jobs: int = 1, **_: Any) -> Iterator[dict[str, Any]]:
    """Cells in this process one by one (``jobs=1``), or in ``jobs`` worker processes at once.

    Each cell is claimed just before it starts, so two ``genbench run`` processes split the cells
    between them. A cell's numbers do not depend on the process it ran in: torch runs with the
    cell's own thread count, and every random stream is derived from the cell's seed.
    """
    if jobs <= 1:
        for c in cells:
            if claim(c):
                yield execute_cell(c.to_dict(), str(root))
        return
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from genbench import _workers

    todo = list(cells)
    running: dict[Any, Cell] = {}
    # forked from a fork server that has imported what cells use (genbench._workers), not from this process:
    # a forked child of a process with torch threads running can deadlock
    with ProcessPoolExecutor(max_workers=jobs, mp_context=_workers.context()) as pool:
        while todo or running:
            while todo and len(running) < jobs:
                c = todo.pop(0)
                if claim(c):
                    running[pool.submit(_workers.call, _workers.snapshot(), execute_cell, c.to_dict(), str(root))] = c
            if not running:
                continue
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in done:
                c = running.pop(fut)
                try:
                    yield fut.result()
                except BrokenProcessPool as e:  # a worker died: this cell failed, the others are still recorded
                    yield _failed_record(c, f"worker process died: {e}")
                except Exception as e:
                    yield _failed_record(c, f"worker failed: {type(e).__name__}: {e}")


def _split_address(address: str) -> tuple[str, int] | None:
    """(host, port) of a Ray address (``HOST:PORT`` or ``ray://HOST:PORT``), or None for ``auto``."""
    a = address.split("://", 1)[-1]
    if a in ("auto", "local") or ":" not in a:
        return None
    host, _, port = a.rpartition(":")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise ValueError(f"Ray address {address!r}: expected HOST:PORT (e.g. 10.0.0.5:6379) or ray://HOST:PORT.") \
            from None


def check_ray_address(address: str, *, timeout: float = RAY_CONNECT_TIMEOUT) -> None:
    """Fail within ``timeout`` seconds, saying what to do, if nothing listens at ``address``.

    ``ray.init(address=...)`` itself retries an unreachable cluster for a long time (it hung with
    no message), and it has no timeout argument (ray-project/ray#46863), so the port is probed first.
    """
    hp = _split_address(address)
    if hp is None:
        return
    try:
        with socket.create_connection(hp, timeout=timeout):
            pass
    except OSError as e:
        raise RuntimeError(
            f"cannot reach a Ray cluster at {address!r} within {timeout:.0f} s ({type(e).__name__}: {e}). Start one "
            "there with `ray start --head --port=PORT`, check the address and firewall, or leave --address out to "
            "start a local Ray instance."
        ) from e


def _ray(cells: list[Cell], root: Path, *, claim: Claim, address: str | None = None, num_cpus: int | None = None,
         connect_timeout: float = RAY_CONNECT_TIMEOUT) -> Iterator[dict[str, Any]]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # otherwise Ray reports usage to a public address
    try:
        import ray
    except ImportError as e:
        raise RuntimeError("the ray executor needs Ray: pip install 'genbench[ray]'") from e
    # the driver claims every cell it submits (all are submitted at once); nothing claimed, no Ray
    cells = [c for c in cells if claim(c)]
    if not cells:
        return
    started = False
    if address:
        check_ray_address(address, timeout=connect_timeout)
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, _node_ip_address="127.0.0.1", include_dashboard=False,
                 log_to_driver=False)
        started = True
    try:
        resources = ray.cluster_resources()
        gpus = 1 if resources.get("GPU", 0) >= 1 else 0
        most = max(c.evaluation.cell_threads for c in cells)
        if most > resources.get("CPU", 0):  # such a task would wait forever for its CPUs
            raise RuntimeError(f"cells ask for {most} threads (evaluation.threads) but the Ray cluster has "
                               f"{resources.get('CPU', 0):g} CPUs; lower evaluation.threads or give Ray more CPUs "
                               "(--num-cpus).")
        need_cuda = sorted({c.evaluation.device for c in cells if c.evaluation.device.startswith("cuda")})
        if need_cuda and not gpus:
            raise RuntimeError(f"cells ask for device {', '.join(need_cuda)} but the Ray cluster at "
                               f"{address or 'localhost'} has no GPU; use device 'auto' or 'cpu', or add GPU nodes.")
        task = ray.remote(execute_cell)
        pending = {}
        for c in cells:
            want_gpu = gpus if c.evaluation.device == "auto" or c.evaluation.device.startswith("cuda") else 0
            # as many CPUs as the cell's torch threads, so that cells do not oversubscribe a node
            ref = task.options(num_cpus=c.evaluation.cell_threads, num_gpus=want_gpu, max_retries=0).remote(
                c.to_dict(), str(root))
            pending[ref] = c
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for r in ready:
                c = pending.pop(r)
                try:
                    yield ray.get(r)
                except Exception as e:  # the worker itself died (OOM, killed)
                    yield _failed_record(c, f"worker failed: {type(e).__name__}: {e}")
    finally:
        if started:
            ray.shutdown()


_EXECUTORS: dict[str, Callable[..., Iterator[dict[str, Any]]]] = {"local": _local, "ray": _ray}


def run_matrix(
    matrix: Matrix,
    *,
    results: str | os.PathLike | None = None,
    executor: str = "local",
    address: str | None = None,
    num_cpus: int | None = None,
    retry_failed: bool = True,
    progress_bar: bool | None = None,
    connect_timeout: float = RAY_CONNECT_TIMEOUT,
    jobs: int | None = 1,
) -> RunSummary:
    """Run every unfinished cell of ``matrix`` and index the results.

    Parameters
    ----------
    matrix : from :func:`genbench.matrix.load_matrix`.
    results : results directory (default ``$GENBENCH_RESULTS`` or ``./results``).
    executor : ``"local"`` (this machine: in-process, or ``jobs`` worker processes) or ``"ray"`` (one Ray
        task per cell).
    jobs : cells at once with the local executor (None: :func:`default_jobs`, the CPUs over the cells'
        threads); the numbers are the same for any value.
    address : an existing Ray cluster; without it a local Ray instance is started and shut down.
    retry_failed : re-run cells whose last attempt failed.
    connect_timeout : seconds to wait for the Ray cluster at ``address`` before giving up.

    Returns
    -------
    RunSummary, whose ``failed`` maps cell ids to errors, ``elsewhere`` lists cells another process
    was computing (skipped), and ``damaged`` maps damaged run folders (redone) to what was wrong.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"Unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}.")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ValueError(f"jobs must be a whole number >= 1 (cells at once) or None for the default; got {jobs!r}.")
    if executor == "local" or not address:
        check_devices(matrix)  # before anything is created; a remote cluster's GPUs are checked on connecting
    t0 = time.perf_counter()
    root = results_dir(results).resolve()
    store = ResultsStore(root)
    cells = matrix.cells()
    summary = RunSummary(matrix.name, root, store.path, len(cells))
    locks: dict[str, RunLock] = {}

    def finished(c: Cell) -> bool:
        """Whether ``c`` needs no computing; records it in the summary if so."""
        folder = root / "runs" / safe_name(c.cell_id)
        try:
            rec = RunFolder(folder).read_result() if folder.exists() else None
        except DamagedRunError as e:
            if str(e.path) not in summary.damaged:
                summary.damaged[str(e.path)] = e.problem
                log.warning("%s: damaged run result (%s); redoing this cell", e.path, e.problem)
            return False
        if rec is None or not (rec.get("status") == "done" or (rec.get("status") == "failed" and not retry_failed)):
            return False
        if store.status(c.cell_id) != rec.get("status"):  # killed between folder write and index
            store.put(rec, path=folder)
        summary.skipped.append(c.cell_id)
        if rec.get("status") == "failed":
            summary.failed[c.cell_id] = rec.get("error") or "failed"
        return True

    def claim(c: Cell) -> bool:
        """Take the cell's lock; False (and why, in the summary) when it must not be computed here."""
        lock = RunFolder.open(root, c.cell_id).try_lock()
        if lock is None:
            summary.elsewhere.append(c.cell_id)
            msg = f"{c.generator.display} on {c.dataset} (seed {c.seed}): running elsewhere (cell {c.cell_id})"
            log.info(msg)
            bar.write(msg) if not bar.disable else print(msg, flush=True)
            bar.update(1)
            return False
        if finished(c):  # another process finished it after this one looked
            lock.release()
            bar.update(1)
            return False
        locks[c.cell_id] = lock
        return True

    todo = longest_first([c for c in cells if not finished(c)])
    bar = progress(total=len(cells), initial=len(summary.skipped), desc=f"matrix {matrix.name}", unit="cell",
                   enabled=progress_bar)
    log.info("matrix %s: %d cells, %d to run", matrix.name, len(cells), len(todo))
    try:
        kwargs: dict[str, Any] = {"claim": claim}
        if executor == "ray":
            kwargs.update(address=address, num_cpus=num_cpus, connect_timeout=connect_timeout)
        else:
            kwargs.update(jobs=default_jobs(todo) if jobs is None else int(jobs))
        for rec in (_EXECUTORS[executor](todo, root, **kwargs) if todo else ()):  # nothing to do: no Ray
            _commit(root, store, rec)
            lock = locks.pop(rec["run_id"], None)
            if lock is not None:
                lock.release()
            summary.ran.append(rec["run_id"])
            if rec["status"] != "done":
                summary.failed[rec["run_id"]] = rec.get("error") or "failed"
            i = len(summary.skipped) + len(summary.ran) + len(summary.elsewhere)
            msg = f"[{i}/{len(cells)}] {rec['generator']} on {rec['dataset']} (seed {rec['seed']}): {rec['status']}"
            if rec["status"] == "done":
                msg += f" in {rec.get('timings', {}).get('total_s', 0):.1f} s"
            else:
                msg += f": {rec.get('error')}"
            log.info(msg)
            bar.write(msg) if not bar.disable else print(msg, flush=True)
            bar.update(1)
    finally:
        for lock in locks.values():
            lock.release()
        bar.close()
    summary.seconds = time.perf_counter() - t0
    return summary
