"""Run folders: one self-describing folder per run, written atomically.

Layout of ``<results>/runs/<run_id>/``::

    config.json        what was asked for (enough to rebuild the run)
    result.json        status, metrics (with protocols), provenance, artifacts; written last
    log.txt            human-readable progress log
    checkpoints/       model checkpoints (trained generators)
    artifacts/         samples.npz, curves.csv, galleries, plots

``result.json`` is the commit point: a run without it (or with status other than ``done``) is
not finished, and a killed process never leaves a half-written one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genbench._io import atomic_write_json, read_json
from genbench.provenance import now_iso
from genbench.results import SCHEMA_VERSION, MetricResult

STATUSES = ("done", "failed", "running")
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

    def write_result(
        self,
        *,
        status: str,
        metrics: list[MetricResult] | None = None,
        provenance: dict[str, Any] | None = None,
        error: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        record = {
            "schema": SCHEMA_VERSION,
            "run_id": self.run_id,
            "status": status,
            "error": error,
            "metrics": [m.to_dict() for m in metrics or []],
            "provenance": provenance or {},
            "finished": now_iso(),
            **fields,
        }
        atomic_write_json(self.result_path, record)
        return record

    def read_result(self) -> dict[str, Any] | None:
        if not self.result_path.is_file():
            return None
        return read_json(self.result_path)

    def is_done(self) -> bool:
        r = self.read_result()
        return r is not None and r.get("status") == "done"


def iter_run_folders(results: str | os.PathLike) -> list[RunFolder]:
    root = Path(results) / "runs"
    if not root.is_dir():
        return []
    return [RunFolder(p) for p in sorted(root.iterdir()) if p.is_dir()]
