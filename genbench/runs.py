"""Run folders: one self-describing folder per run, written atomically.

Layout of ``<results>/runs/<run_id>/``::

    config.json        what was asked for (enough to rebuild the run)
    result.json        status, metrics (with protocols), provenance, artifacts; written last
    log.txt            human-readable progress log
    checkpoints/       model checkpoints (trained generators)
    artifacts/         samples.npz, curves.csv, galleries, plots

``result.json`` is the commit point: a run without it (or with status other than ``done``) is
not finished, and a killed process never leaves a half-written one. A ``result.json`` that
cannot be read (truncated, hand-edited, written by an older schema) makes the folder *damaged*:
:meth:`RunFolder.read_result` raises :class:`DamagedRunError` naming the file, and the matrix
runner redoes the run.

A process computing a run holds an advisory lock on ``.lock`` in its folder
(:meth:`RunFolder.try_lock`); the kernel releases it when the process exits or is killed, so a
lock is never left behind. Another process that finds the lock taken leaves the run alone.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genbench._io import atomic_write_json, read_json
from genbench.provenance import now_iso
from genbench.results import RUN_STATUSES, SCHEMA_VERSION, MetricResult, RunRecord

STATUSES = RUN_STATUSES
#: what :meth:`RunFolder.state` reports: a status, or ``damaged`` (unreadable result.json) or
#: ``unfinished`` (no result.json and nobody computing it: interrupted, or not started)
STATES = (*STATUSES, "damaged", "unfinished")
LOCK_NAME = ".lock"


class DamagedRunError(ValueError):
    """A run folder whose ``result.json`` cannot be used; the message names the file and what to do."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path, self.problem = path, problem
        super().__init__(f"{path}: damaged run result ({problem}); the run counts as not finished and is redone "
                         "by the next `genbench run` (or remove its folder).")


def check_record(rec: Any) -> None:
    """Raise ValueError if ``rec`` (a parsed result.json) is not a record this genbench can use."""
    if not isinstance(rec, dict):
        raise ValueError(f"expected a JSON object, found {type(rec).__name__}")
    for key in ("run_id", "status"):
        if key not in rec:
            raise ValueError(f"no {key!r} field")
    if rec["status"] not in STATUSES:
        raise ValueError(f"status {rec['status']!r} is not one of {', '.join(STATUSES)}")
    metrics = rec.get("metrics") or []
    if not isinstance(metrics, list):
        raise ValueError("'metrics' is not a list")
    for m in metrics:
        if not isinstance(m, dict):
            raise ValueError(f"a metric entry is {type(m).__name__}, not an object")
        try:
            MetricResult.from_dict(m)
        except (TypeError, KeyError) as e:
            raise ValueError(f"metric {m.get('metric')!r} cannot be read ({type(e).__name__}: {e})") from e


class RunLock:
    """An advisory ``flock`` on a run folder's lock file, held until :meth:`release` or process exit."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd

    def release(self) -> None:
        if self._fd >= 0:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def results_dir(path: str | os.PathLike | None = None) -> Path:
    """The results directory: the argument, else $GENBENCH_RESULTS, else ./results."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get("GENBENCH_RESULTS")
    return Path(env).expanduser() if env else Path("results")


def safe_name(s: str) -> str:
    """``s`` as a single path component: runs of other characters than letters, digits, ``._-`` become ``_``."""
    name = _SAFE.sub("_", s).strip("_")
    # "", "." and ".." would put the run folder at (or above) runs/ itself
    if not name.strip("."):
        raise ValueError(f"run id {s!r} gives no usable folder name; use letters, digits, '.', '_' or '-'.")
    return name


@dataclass
class RunFolder:
    path: Path

    @classmethod
    def open(cls, results: str | os.PathLike, run_id: str) -> RunFolder:
        p = Path(results) / "runs" / safe_name(run_id)
        p.mkdir(parents=True, exist_ok=True)
        return cls(p)

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def result_path(self) -> Path:
        return self.path / "result.json"

    @property
    def log_path(self) -> Path:
        return self.path / "log.txt"

    @property
    def checkpoints(self) -> Path:
        d = self.path / "checkpoints"
        d.mkdir(exist_ok=True)
        return d

    @property
    def artifacts(self) -> Path:
        d = self.path / "artifacts"
        d.mkdir(exist_ok=True)
        return d

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_json(self.config_path, {"schema": SCHEMA_VERSION, **config})

    def log(self, message: str) -> None:
        # append-only; a torn last line in a log is harmless, unlike in a result
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(f"{now_iso()} {message}\n")

    def commit(self, record: RunRecord) -> dict[str, Any]:
        """Write ``result.json`` atomically from the typed record (stamped ``finished`` now); returns its JSON form."""
        if record.run_id != self.run_id:
            raise ValueError(f"record {record.run_id!r} written into run folder {self.run_id!r}")
        d = RunRecord.from_dict({**record.to_dict(), "finished": now_iso()}).to_dict()
        atomic_write_json(self.result_path, d)
        return d

    def write_result(self, *, status: str, metrics: list[MetricResult] | None = None,
                     provenance: dict[str, Any] | None = None, error: str | None = None,
                     **fields: Any) -> dict[str, Any]:
        """:meth:`commit` a :class:`~genbench.results.RunRecord` built from these fields."""
        return self.commit(RunRecord.from_dict({"run_id": self.run_id, "status": status, "metrics": metrics or [],
                                                "provenance": provenance or {}, "error": error, **fields}))

    def read_result(self) -> dict[str, Any] | None:
        """The result record; None when there is none yet. Raises :class:`DamagedRunError` when
        ``result.json`` is unreadable (truncated, not JSON) or of an older schema."""
        if not self.result_path.is_file():
            return None
        try:
            rec = read_json(self.result_path)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DamagedRunError(self.result_path, f"not valid JSON: {e}") from e
        except OSError as e:
            raise DamagedRunError(self.result_path, f"cannot be read: {e}") from e
        try:
            check_record(rec)
        except ValueError as e:
            raise DamagedRunError(self.result_path, str(e)) from e
        return rec

    def is_done(self) -> bool:
        """Whether the run finished with status ``done`` (a damaged result is not done)."""
        try:
            r = self.read_result()
        except DamagedRunError:
            return False
        return r is not None and r.get("status") == "done"

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_NAME

    def try_lock(self) -> RunLock | None:
        """Take this run's lock without waiting; None when another process holds it."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            raise
        return RunLock(self.lock_path, fd)

    def is_locked(self) -> bool:
        """Whether some process (this one included) is computing this run now."""
        if not self.lock_path.is_file():
            return False
        lock = self.try_lock()
        if lock is None:
            return True
        lock.release()
        return False

    def state(self) -> tuple[str, str]:
        """(state, detail): state is one of :data:`STATES`; detail is the error or damage, if any."""
        try:
            rec = self.read_result()
        except DamagedRunError as e:
            return ("running" if self.is_locked() else "damaged"), e.problem
        if self.is_locked():
            return "running", ""
        if rec is None:
            return "unfinished", "no result.json"
        return rec["status"], rec.get("error") or ""


def iter_run_folders(results: str | os.PathLike) -> list[RunFolder]:
    root = Path(results) / "runs"
    if not root.is_dir():
        return []
    return [RunFolder(p) for p in sorted(root.iterdir()) if p.is_dir()]
