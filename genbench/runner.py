"""Running a benchmark matrix: resumable, with a local or a Ray executor.

The driver alone writes ``result.json`` and the results store; workers (in-process or Ray
tasks) train/load, sample and evaluate one cell each and return a plain-dict record. A cell is
finished when its run folder holds a ``result.json`` with status ``done``: a second invocation
skips those, and a run killed midway (Ctrl-C or kill -9) continues where it stopped, training
resuming from the cell's last checkpoint.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genbench._io import atomic_write_json
from genbench._progress import progress
from genbench.matrix import Cell, Matrix
from genbench.provenance import now_iso, provenance
from genbench.results import SCHEMA_VERSION
from genbench.runs import RunFolder, results_dir, safe_name
from genbench.store import ResultsStore

log = logging.getLogger("genbench.run")

EXECUTORS = ("local", "ray")


@dataclass
class RunSummary:
    matrix: str
    results: Path
    store_path: Path
    total: int
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def describe(self) -> str:
        lines = [
            f"matrix {self.matrix!r}: {self.total} cells; {len(self.ran)} run now, {len(self.skipped)} already "
            f"finished, {len(self.failed)} failed ({self.seconds:.0f} s)."
        ]
        for cid, err in self.failed.items():
            lines.append(f"  FAILED {cid}: {err}")
        lines.append(f"results store: {self.store_path}")
        lines.append(f"run folders:   {self.results / 'runs'}")
        return "\n".join(lines)


def execute_cell(cell_dict: dict[str, Any], root: str, threads: int = 0) -> dict[str, Any]:
    """Train (or load), sample and evaluate one cell; return its record. Never raises for cell errors.

    Runs in a worker (in-process or a Ray task). It writes the cell's config, checkpoints and
    artifacts into its run folder, but not ``result.json``: the driver commits that.
    """
    import torch

    cell = Cell.from_dict(cell_dict)
    rf = RunFolder.open(root, cell.cell_id)
    rf.write_config(cell.to_dict())
    threads = threads or cell.evaluation.threads
    if threads:
        torch.set_num_threads(threads)
    base: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "run_id": cell.cell_id,
        "cell_id": cell.cell_id,
        "kind": "cell",
        "matrix": cell.matrix,
        "generator": cell.generator.display,
        "family": cell.generator.name,
        "dataset": cell.dataset,
        "seed": cell.seed,
        "config": cell.to_dict(),
        "started": now_iso(),
    }
    t0 = time.perf_counter()
    rf.log(f"cell {cell.cell_id}: start ({cell.generator.display} on {cell.dataset}, seed {cell.seed})")
    try:
        from genbench.evaluate import evaluate_cell

        out = evaluate_cell(cell, rf)
        rec = {
            **base,
            "status": "done",
            "error": None,
            "metrics": [m.to_dict() for m in out.metrics],
            "artifacts": out.artifacts,
            "control": out.control,
            "timings": {**out.timings, "total_s": time.perf_counter() - t0},
            "provenance": provenance(seed=cell.seed, device=out.device, threads=torch.get_num_threads()),
        }
        rf.log(f"cell {cell.cell_id}: done in {time.perf_counter() - t0:.1f} s, {len(out.metrics)} metrics")
        return rec
    except Exception as e:  # a failing cell is recorded, and the run carries on
        tb = traceback.format_exc()
        rf.log(f"cell {cell.cell_id}: FAILED\n{tb}")
        return {
            **base,
            "status": "failed",
            "error": f"{type(e).__name__}: {e}",
            "traceback": tb,
            "metrics": [],
            "timings": {"total_s": time.perf_counter() - t0},
            "provenance": provenance(seed=cell.seed),
        }


def _commit(root: Path, store: ResultsStore, record: dict[str, Any]) -> None:
    rec = {**record, "finished": now_iso()}
    rf = RunFolder.open(root, rec["run_id"])
    atomic_write_json(rf.result_path, rec)  # the run folder is the source of truth: write it first
    store.put(rec, path=rf.path)


def _local(cells: list[Cell], root: Path, **_: Any) -> Iterator[dict[str, Any]]:
    for c in cells:
        yield execute_cell(c.to_dict(), str(root))


def _ray(cells: list[Cell], root: Path, *, address: str | None = None, num_cpus: int | None = None,
         cpus_per_cell: int = 1) -> Iterator[dict[str, Any]]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # otherwise Ray reports usage to a public address
    try:
        import ray
    except ImportError as e:
        raise RuntimeError("the ray executor needs Ray: pip install 'genbench[ray]'") from e
    started = False
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, _node_ip_address="127.0.0.1", include_dashboard=False,
                 log_to_driver=False)
        started = True
    try:
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        task = ray.remote(execute_cell)
        pending = {}
        for c in cells:
            want_gpu = gpus if c.evaluation.device in ("auto", "cuda") else 0
            ref = task.options(num_cpus=cpus_per_cell, num_gpus=want_gpu, max_retries=0).remote(
                c.to_dict(), str(root), cpus_per_cell)
            pending[ref] = c
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for r in ready:
                c = pending.pop(r)
                try:
                    yield ray.get(r)
                except Exception as e:  # the worker itself died (OOM, killed)
                    yield {"run_id": c.cell_id, "cell_id": c.cell_id, "kind": "cell", "matrix": c.matrix,
                           "generator": c.generator.display, "family": c.generator.name, "dataset": c.dataset,
                           "seed": c.seed, "config": c.to_dict(), "status": "failed",
                           "error": f"worker failed: {type(e).__name__}: {e}", "metrics": []}
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
) -> RunSummary:
    """Run every unfinished cell of ``matrix`` and index the results.

    Parameters
    ----------
    matrix : from :func:`genbench.matrix.load_matrix`.
    results : results directory (default ``$GENBENCH_RESULTS`` or ``./results``).
    executor : ``"local"`` (in-process, sequential) or ``"ray"`` (one Ray task per cell).
    address : an existing Ray cluster; without it a local Ray instance is started and shut down.
    retry_failed : re-run cells whose last attempt failed.

    Returns
    -------
    RunSummary, whose ``failed`` maps cell ids to errors.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"Unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}.")
    t0 = time.perf_counter()
    root = results_dir(results).resolve()
    store = ResultsStore(root)
    cells = matrix.cells()
    summary = RunSummary(matrix.name, root, store.path, len(cells))
    todo: list[Cell] = []
    for c in cells:
        folder = root / "runs" / safe_name(c.cell_id)
        rec = RunFolder(folder).read_result() if folder.exists() else None
        if rec is not None and (rec.get("status") == "done" or (rec.get("status") == "failed" and not retry_failed)):
            if store.status(c.cell_id) != rec.get("status"):  # killed between folder write and index
                store.put(rec, path=folder)
            summary.skipped.append(c.cell_id)
            if rec.get("status") == "failed":
                summary.failed[c.cell_id] = rec.get("error") or "failed"
        else:
            todo.append(c)
    bar = progress(total=len(cells), initial=len(summary.skipped), desc=f"matrix {matrix.name}", unit="cell",
                   enabled=progress_bar)
    log.info("matrix %s: %d cells, %d to run", matrix.name, len(cells), len(todo))
    try:
        kwargs = {"address": address, "num_cpus": num_cpus} if executor == "ray" else {}
        for i, rec in enumerate(_EXECUTORS[executor](todo, root, **kwargs), 1):
            _commit(root, store, rec)
            summary.ran.append(rec["run_id"])
            if rec["status"] != "done":
                summary.failed[rec["run_id"]] = rec.get("error") or "failed"
            msg = f"[{len(summary.skipped) + i}/{len(cells)}] {rec['generator']} on {rec['dataset']} " \
                  f"(seed {rec['seed']}): {rec['status']}"
            if rec["status"] == "done":
                msg += f" in {rec.get('timings', {}).get('total_s', 0):.1f} s"
            else:
                msg += f": {rec.get('error')}"
            log.info(msg)
            bar.write(msg) if not bar.disable else print(msg, flush=True)
            bar.update(1)
    finally:
        bar.close()
    summary.seconds = time.perf_counter() - t0
    return summary
