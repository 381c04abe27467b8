"""The results store: an SQLite index over all run folders, queryable across runs.

Run folders are the source of truth; the store is an index that can always be rebuilt from
them (:meth:`ResultsStore.rebuild`). Writes use WAL mode and one transaction per run, so a
process killed mid-write leaves the previous state readable.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from genbench.results import Protocol
from genbench.runs import DamagedRunError, iter_run_folders, results_dir

STORE_NAME = "index.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    kind TEXT, generator TEXT, dataset TEXT, seed INTEGER, status TEXT NOT NULL,
    cell_id TEXT, matrix TEXT, path TEXT, finished TEXT, error TEXT,
    config TEXT, provenance TEXT, artifacts TEXT, extra TEXT
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    metric TEXT NOT NULL, protocol TEXT NOT NULL, value REAL NOT NULL,
    std REAL, std_kind TEXT, ci_low REAL, ci_high REAL, ci_level REAL,
    n TEXT, kind TEXT, unit TEXT, higher_is_better INTEGER, params TEXT, warnings TEXT,
    target REAL, column_key TEXT, protocol_fields TEXT,
    PRIMARY KEY (run_id, protocol)
);
CREATE INDEX IF NOT EXISTS metrics_metric ON metrics(metric);
"""

# columns added after the first schema: an older index gains them (NULL for its old rows)
_ADDED_METRIC_COLUMNS = {"target": "REAL", "column_key": "TEXT", "protocol_fields": "TEXT"}

class RebuildReport(int):
    """What :meth:`ResultsStore.rebuild` returns: the number of runs indexed (an ``int``), with
    ``skipped``, a dict from each skipped run folder to why it was skipped."""

    skipped: dict[str, str]

    def __new__(cls, n: int, skipped: dict[str, str]) -> RebuildReport:
        self = super().__new__(cls, n)
        self.skipped = dict(skipped)
        return self


RUN_COLUMNS = ("kind", "generator", "dataset", "seed", "status", "cell_id", "matrix", "finished", "error")


class ResultsStore:
    """SQLite index of run results under a results directory.

    Examples
    --------
    >>> store = ResultsStore("results")          # doctest: +SKIP
    >>> store.put(run_folder.read_result(), path=run_folder.path)  # doctest: +SKIP
    >>> store.to_frame().head()                  # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike | None = None, *, path: str | os.PathLike | None = None) -> None:
        self.root = results_dir(root)
        self.path = Path(path) if path is not None else self.root / STORE_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(100):
            try:
                self._init_schema()
                break
            except sqlite3.OperationalError as e:
                # two processes creating one index at once: switching a new file to WAL needs an
                # exclusive lock, and SQLite reports "locked" without waiting; the other one wins
                if "locked" not in str(e) or attempt == 99:
                    raise
                time.sleep(0.05)

    def _init_schema(self) -> None:
        with self._connect() as con:
            con.executescript(SCHEMA)
            have = {r[1] for r in con.execute("PRAGMA table_info(metrics)")}
            for col, typ in _ADDED_METRIC_COLUMNS.items():
                if col not in have:
                    con.execute(f"ALTER TABLE metrics ADD COLUMN {col} {typ}")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=30)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA foreign_keys=ON")
            con.execute("PRAGMA synchronous=NORMAL")
            yield con
        finally:
            con.close()

    def put(self, record: dict[str, Any], *, path: str | os.PathLike | None = None) -> None:
        """Insert or replace one run's record (its result.json content) in one transaction."""
        with self._connect() as con, con:  # `with con` = one transaction, rolled back on error
            self._put(con, record, path)

    def _put(self, con: sqlite3.Connection, record: dict[str, Any], path: Any) -> None:
        run_id = record["run_id"]
        known = set(RUN_COLUMNS) | {"run_id", "config", "provenance", "artifacts", "metrics", "schema"}
        extra = {k: v for k, v in record.items() if k not in known}
        con.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
        con.execute(
            "INSERT OR REPLACE INTO runs (run_id, kind, generator, dataset, seed, status, cell_id, matrix, path, "
            "finished, error, config, provenance, artifacts, extra) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                run_id, record.get("kind"), record.get("generator"), record.get("dataset"), record.get("seed"),
                record["status"], record.get("cell_id"), record.get("matrix"), str(path) if path else None,
                record.get("finished"), record.get("error"), _j(record.get("config")),
                _j(record.get("provenance")), _j(record.get("artifacts")), _j(extra),
            ),
        )
        for m in record.get("metrics", []):
            ci = m.get("ci") or (None, None)
            hib = m.get("higher_is_better")
            fields = m.get("protocol_fields")
            column = Protocol.from_dict(fields).column if isinstance(fields, dict) else m["protocol"]
            con.execute(
                "INSERT OR REPLACE INTO metrics (run_id, metric, protocol, value, std, std_kind, ci_low, ci_high, "
                "ci_level, n, kind, unit, higher_is_better, params, warnings, target, column_key, protocol_fields) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run_id, m["metric"], m["protocol"], float(m["value"]), m.get("std"), m.get("std_kind"),
                    ci[0], ci[1], m.get("ci_level"), _j(m.get("n")), m.get("kind"), m.get("unit"),
                    None if hib is None else int(bool(hib)), _j(m.get("params")), _j(m.get("warnings")),
                    m.get("target"), column, _j(fields),
                ),
            )

    def rebuild(self) -> RebuildReport:
        """Rebuild the index from the run folders (into a temp file, then renamed).

        Folders whose ``result.json`` is damaged (truncated, not JSON, an older schema) or cannot be
        indexed are skipped and reported, not fatal: the index holds every other run.

        Returns
        -------
        RebuildReport : the number of runs indexed (an int), with ``.skipped`` mapping each skipped
            run folder to the reason.
        """
        tmp = self.path.with_name(self.path.name + ".rebuild")
        for suffix in ("", "-wal", "-shm"):
            Path(str(tmp) + suffix).unlink(missing_ok=True)
        fresh = ResultsStore(self.root, path=tmp)
        n = 0
        skipped: dict[str, str] = {}
        try:
            with fresh._connect() as con, con:
                con.execute("BEGIN")  # one transaction; a savepoint per run undoes just that run
                for rf in iter_run_folders(self.root):
                    try:
                        rec = rf.read_result()
                    except DamagedRunError as e:
                        skipped[str(rf.path)] = e.problem
                        continue
                    if rec is None:
                        continue
                    con.execute("SAVEPOINT one_run")
                    try:
                        fresh._put(con, rec, rf.path)
                    except (ValueError, KeyError, TypeError) as e:
                        # this run's rows are undone; the others stay
                        con.execute("ROLLBACK TO one_run")
                        skipped[str(rf.path)] = f"cannot be indexed ({type(e).__name__}: {e})"
                        continue
                    finally:
                        con.execute("RELEASE one_run")
                    n += 1
            with fresh._connect() as con:
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except BaseException:
            for suffix in ("", "-wal", "-shm"):
                Path(str(tmp) + suffix).unlink(missing_ok=True)
            raise
        for suffix in ("-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)
        os.replace(tmp, self.path)
        for suffix in ("-wal", "-shm"):
            Path(str(tmp) + suffix).unlink(missing_ok=True)
        return RebuildReport(n, skipped)

    def runs(self, **where: Any) -> list[dict[str, Any]]:
        sql = "SELECT * FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(f"{k} = ?" for k in where)
        with self._connect() as con:
            con.row_factory = sqlite3.Row
            rows = con.execute(sql + " ORDER BY run_id", tuple(where.values())).fetchall()
        return [_decode(dict(r)) for r in rows]

    def status(self, run_id: str) -> str | None:
        with self._connect() as con:
            row = con.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return row[0] if row else None

    def to_frame(self):
        """A tidy long pandas table: one row per run x metric, with the run's columns."""
        import pandas as pd

        with self._connect() as con:
            df = pd.read_sql_query(
                "SELECT r.run_id, r.kind, r.generator, r.dataset, r.seed, r.status, r.cell_id, r.matrix, "
                "m.metric, m.protocol, m.value, m.std, m.std_kind, m.ci_low, m.ci_high, m.n, m.kind AS estimator, "
                "m.unit, m.higher_is_better, m.target, m.column_key, m.protocol_fields, m.params, m.warnings "
                "FROM metrics m JOIN runs r USING (run_id) ORDER BY r.run_id, m.protocol",
                con,
            )
        return df


def _j(v: Any) -> str | None:
    return None if v is None else json.dumps(v, sort_keys=True, default=str)


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for k in ("config", "provenance", "artifacts", "extra"):
        if row.get(k):
            row[k] = json.loads(row[k])
    return row
