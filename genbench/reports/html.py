"""The report of a results directory: tidy CSV, wide comparison CSVs, a markdown summary and one
self-contained ``report.html``.

The HTML opens from disk with no network: images are embedded as ``data:`` URIs, styles and the
one small script (column sorting) are inline, and a Content-Security-Policy allows nothing else
(the script by its hash). Every string from a run (labels, config values, errors, paths) goes
through Jinja2's autoescaping.

The report owns its output folder: it is written into a fresh folder beside it and swapped in, so
files of an earlier report never sit beside a new one as if current; a folder holding files the
report did not write is never replaced.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from html import escape as html_escape
from pathlib import Path
from typing import Any

from genbench._io import atomic_write_text
from genbench.provenance import now_iso
from genbench.reports.tables import (
    TIE_RULE,
    NoResultsError,
    Table,
    all_rows,
    build_tables,
    failures,
    format_comparison,
    load_frame,
    long_csv_frame,
    open_store,
    safe_file_part,
    wide_csv_frames,
)
from genbench.runs import results_dir, safe_name

MARKER = ".genbench-report"
TIMING_ORDER = ("train_s", "sample_s", "features_s", "quality_s", "likelihood_s", "overfitting_s", "total_s")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# the one inline script: click a column header to sort the model rows (reference rows stay below)
SORT_SCRIPT = """
document.querySelectorAll("table.cmp th.sortable").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.querySelector("tbody.models");
    if (!body) { return; }
    var idx = Array.prototype.indexOf.call(th.parentNode.children, th);
    var asc = th.getAttribute("aria-sort") !== "ascending", text = th.classList.contains("model");
    table.querySelectorAll("th.sortable").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    function key(r) {
      var c = r.cells[idx], v = c ? c.getAttribute("data-v") : null;
      if (v === null || v === "") { return null; }
      var f = text ? NaN : parseFloat(v);
      return isNaN(f) ? v.toLowerCase() : f;
    }
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      if (x === null && y === null) { return 0; }
      if (x === null) { return 1; }
      if (y === null) { return -1; }
      var d = (typeof x === "number" && typeof y === "number") ? x - y : String(x).localeCompare(String(y));
      return asc ? d : -d;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""

ReferenceData = Callable[[str], "dict[str, Any] | None"]


# ---------------------------------------------------------------------------------------------
# the output folder


def _check_replaceable(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"report output {out} exists and is not a folder; choose another -o.")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise ValueError(
            f"report output {out} holds files that genbench report did not write (no {MARKER} marker); it will not "
            "be replaced. Choose an empty or new folder with -o.")


def _swap_in(staging: Path, out: Path) -> None:
    """Replace ``out`` by ``staging``: the old report is moved aside, then removed."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / "r")
    try:
        os.replace(staging, out)
    except BaseException:
        if old is not None:
            os.replace(old / "r", out)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# images


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _run_folder(root: Path, run: dict[str, Any]) -> Path | None:
    """The run's folder: under this results directory first (folders move with it), else the indexed path."""
    try:
        here = root / "runs" / safe_name(run["run_id"])
    except ValueError:
        here = None
    if here is not None and here.is_dir():
        return here
    p = run.get("path")
    return Path(p) if p and Path(p).is_dir() else None


def _artifact(root: Path, run: dict[str, Any], key: str, default: str | None = None) -> Path | None:
    """An artifact file of a run, only inside its run folder."""
    folder = _run_folder(root, run)
    if folder is None:
        return None
    rel = (run.get("artifacts") or {}).get(key) or default
    if not rel:
        return None
    p = (folder / rel).resolve()
    if not p.is_relative_to(folder.resolve()) or not p.is_file():
        return None
    return p


def _png_file(p: Path | None) -> bytes | None:
    if p is None:
        return None
    b = p.read_bytes()
    return b if b.startswith(PNG_MAGIC) else None


# ---------------------------------------------------------------------------------------------
# building the page


def _protocol_text(c) -> str:
    f = c.fields or {}
    parts = [f"protocol: {c.key}", f"direction: {c.direction_text}"]
    if c.kind:
        parts.append(f"estimator: {c.kind}")
    if c.unit:
        parts.append(f"unit: {c.unit}")
    if f.get("weights"):
        parts.append(f"weights: {f['weights']}")
    if c.std_kinds:
        parts.append("own uncertainty: " + ", ".join(c.std_kinds))
    return "\n".join(parts)


def _table_ctx(t: Table) -> dict[str, Any]:
    cols = [{"label": c.label, "arrow": c.direction, "title": _protocol_text(c), "key": c.key} for c in t.columns]

    def row(r) -> dict[str, Any]:
        cells = []
        for c in t.columns:
            v = t.values.get((r.key, c.key))
            if v is None:
                cells.append({"text": "failed" if r.failed and not r.seeds else "", "v": "", "best": False,
                              "title": "", "failed": bool(r.failed and not r.seeds), "no_unc": False, "warn": False,
                              "tied": False})
                continue
            unc = f"std over {v.n_seeds} seeds" if v.std_kind == "seeds" else (
                f"± is {v.std_kind}" if v.std_kind else "no uncertainty recorded")
            title = f"{c.label}: mean {v.mean:.6g} over {v.n_seeds} seed(s) {list(v.seeds)}; {unc}"
            if v.tied:
                title += "\nnot separated from the best model of this column (≈): " + TIE_RULE
            if v.warnings:
                title += "\nwarnings:\n" + "\n".join(f"- {w}" for w in v.warnings)
            cells.append({"text": v.text, "v": repr(v.mean), "best": v.best, "failed": False, "no_unc": v.std is None,
                          "warn": bool(v.warnings), "title": title, "tied": bool(v.tied)})
        errors = [f"seed {s}: {e}" for s, e in r.failed]
        return {"label": r.label, "seeds": r.seeds_text, "n_seeds": len(r.seeds), "cells": cells, "errors": errors,
                "gen": json.dumps({k: r.gen.get(k) for k in ("name", "label", "model", "train")}, sort_keys=True)}

    return {"title": t.title, "family": t.family, "group": t.group, "columns": cols,
            "models": [row(r) for r in t.rows if not r.control], "refs": [row(r) for r in t.rows if r.control],
            "separation": [{"label": c.label, "text": t.separation[c.key]} for c in t.columns if c.key in t.separation],
            "tie_rule": TIE_RULE if t.tie_marks else ""}


def _legend(tables: list[Table]) -> list[dict[str, Any]]:
    out, seen = [], set()
    for t in tables:
        for c in t.columns:
            if c.key in seen:
                continue
            seen.add(c.key)
            out.append({"label": c.label, "arrow": c.direction, "direction": c.direction_text, "key": c.key,
                        "kind": c.kind or "", "unit": c.unit or "", "std": ", ".join(c.std_kinds),
                        "family": t.family})
    return out


def _first_done(runs: list[dict[str, Any]], row_key: str) -> dict[str, Any] | None:
    done = [r for r in runs if r["row_key"] == row_key and r.get("status") == "done"]
    return min(done, key=lambda r: (r.get("seed") is None, r.get("seed") or 0)) if done else None


def _captured(df, run_id: str) -> list[bool] | None:
    sub = df[(df["run_id"] == run_id) & (df["metric"] == "modes-captured")]
    if sub.empty:
        return None
    params = sub["params"].iloc[0]
    params = json.loads(params) if isinstance(params, str) else (params or {})
    counts = params.get("hq_counts")
    if counts is None:
        return None
    need = params.get("min_count", 1)
    return [int(c) >= int(need) for c in counts]


def _pictures(root: Path, ds: str, runs: list[dict[str, Any]], tables: list[Table], df, ref: dict | None,
              notes: list[str]) -> dict[str, Any]:
    """Sample grids beside real data, mixtures over their density, NN galleries, training curves."""
    from genbench.reports import grids, plots

    rows = all_rows(tables)
    samples, galleries, curves = [], [], []
    if ref is not None and ref.get("images") is not None:
        mosaic = grids.tile(ref["images"][:64])
        scale = max(1, 256 // max(mosaic.shape[:2]))
        samples.append({"label": f"real data ({ref.get('split', 'test')} split)", "src": data_uri(
            grids.png_bytes(mosaic, scale=scale)), "real": True, "plot": False})
    mixture = ref is not None and ref.get("centres") is not None and ref.get("log_density") is not None
    if mixture and ref.get("points") is not None:
        samples.append({"label": f"real data ({ref.get('split', 'test')} split)", "real": True, "plot": True,
                        "src": data_uri(
            plots.mixture_overlay(ref["points"], centres=ref["centres"], log_density=ref["log_density"],
                                  title="real data"))})
    for r in rows:
        run = _first_done(runs, r.key)
        if run is None:
            continue
        cap = f"{r.label}, seed {run.get('seed')}"
        png, plot = None, False
        if mixture:
            npz = _artifact(root, run, "samples", "artifacts/samples.npz")
            if npz is not None:
                import numpy as np

                try:
                    with np.load(npz) as z:
                        pts = z["x"] if "x" in z.files else z[z.files[0]]
                    captured = _captured(df, run["run_id"])
                    title = r.label if captured is None else f"{r.label}: {sum(captured)}/{len(captured)} modes"
                    png = plots.mixture_overlay(pts, centres=ref["centres"], log_density=ref["log_density"],
                                                captured=captured, title=title[:60])
                    plot = True
                except (OSError, ValueError, KeyError) as e:
                    notes.append(f"{run['run_id']}: samples.npz not drawn ({type(e).__name__}: {e})")
        if png is None:
            png = _png_file(_artifact(root, run, "sample_grid") or _artifact(root, run, "sample_scatter")
                            or _artifact(root, run, "_", "artifacts/samples.png"))
        if png is not None:
            samples.append({"label": cap, "src": data_uri(png), "real": False,
                            "plot": plot or "sample_scatter" in (run.get("artifacts") or {})})
        g = _png_file(_artifact(root, run, "nn_gallery", "artifacts/nn_gallery.png"))
        if g is not None:
            info = ""
            pairs_path = _artifact(root, run, "nn_gallery_pairs", "artifacts/nn_gallery.json")
            if pairs_path is not None:
                try:
                    pj = json.loads(pairs_path.read_text(encoding="utf-8"))
                    d = [p["distance"][0] for p in pj.get("pairs", [])]
                    if d:
                        info = (f"{pj.get('space', '?')} space; {len(d)} closest of {pj.get('n_fake', '?')} samples, "
                                f"nearest-neighbour distance {min(d):.3g} to {max(d):.3g}")
                    flagged = [p["match"] for p in pj.get("pairs", []) if (p.get("match") or {}).get("flagged")]
                    if flagged:  # rows of the transformation-invariant copy check: what it matched, and how
                        kinds = sorted({str(m.get("caption", m.get("transform", "?"))) for m in flagged})
                        info += (f"; {len(flagged)} shown first are copies up to a transformation "
                                 f"({', '.join(kinds[:4])}{', ...' if len(kinds) > 4 else ''}), drawn after the "
                                 "blue bar as matched")
                except (OSError, ValueError, KeyError, TypeError, IndexError):
                    info = "pairs file unreadable"
            galleries.append({"label": cap, "src": data_uri(g), "info": info})
        c = _png_file(_artifact(root, run, "curves_png", "artifacts/curves.png"))
        if c is not None:
            curves.append({"label": cap, "src": data_uri(c)})
    return {"samples": samples, "galleries": galleries, "curves": curves}


def _pick(tables: list[Table], family: str, prefer: tuple[str, ...], ok=lambda c: True):
    cands = []
    for t in tables:
        if t.family != family:
            continue
        for c in t.columns:
            if c.metric not in prefer or not ok(c):
                continue
            n = sum(1 for r in t.rows if (r.key, c.key) in t.values and not r.control)
            cands.append((-n, prefer.index(c.metric), c.key, t, c))
    return min(cands, key=lambda x: x[:3])[3:] if cands else None


def _tradeoff(ds: str, tables: list[Table]) -> dict[str, Any] | None:
    """Sample quality (FID, else precision/KID) against one test-likelihood column that most models have."""
    from genbench.reports import plots

    q = _pick(tables, "quality", ("fid", "kid", "precision", "density"))
    lk = _pick(tables, "likelihood", ("gmm", "parzen", "iwae", "elbo", "exact-loglik", "bound-loglik", "true-loglik"),
               ok=lambda c: (c.fields or {}).get("ref") == "test")
    if q is None or lk is None:
        return None
    (tq, cq), (tl, cl) = q, lk
    pts = []
    for r in tq.rows:
        a, b = tl.values.get((r.key, cl.key)), tq.values.get((r.key, cq.key))
        if a is None or b is None:
            continue
        pts.append(plots.TradeoffPoint(r.label, a.mean, b.mean, a.std if a.std_kind == "seeds" else None,
                                       b.std if b.std_kind == "seeds" else None, r.control))
    if len(pts) < 2:
        return None
    xl = f"{cl.label} (test log-likelihood, {cl.kind or 'estimate'}{', ' + cl.unit if cl.unit else ''}) {cl.direction}"
    yl = f"{cq.label} {cq.direction}"
    png = plots.quality_vs_likelihood(pts, xlabel=xl, ylabel=yl, title=f"{ds}: sample quality vs test likelihood")
    return {"src": data_uri(png), "x": cl.key, "y": cq.key, "n": len(pts)}


def _runs_ctx(runs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    keys = [k for k in TIMING_ORDER if any(k in r["timings"] for r in runs)]
    keys += sorted({k for r in runs for k in r["timings"]} - set(keys))
    out = []
    for r in runs:
        extra = r.get("extra") or {}
        t = r["timings"]
        out.append({"run_id": r["run_id"], "row": r["row"], "dataset": r.get("dataset") or "", "seed": r.get("seed"),
                    "status": r.get("status") or "", "error": r.get("error") or "",
                    "traceback": extra.get("traceback") or "", "matrix": r.get("matrix") or "",
                    "timings": [("" if not isinstance(t.get(k), int | float) else f"{t[k]:.1f}") for k in keys]})
    return out, keys


def _provenance(runs: list[dict[str, Any]], df) -> dict[str, Any]:
    envs: dict[str, dict[str, Any]] = {}
    for r in runs:
        p = r.get("provenance") or {}
        env = {"genbench": p.get("genbench"), "git_commit": p.get("git_commit"), "python": p.get("python"),
               "platform": p.get("platform"), "device": p.get("device"),
               "packages": ", ".join(f"{k} {v}" for k, v in sorted((p.get("packages") or {}).items()))}
        k = json.dumps(env, sort_keys=True, default=str)
        envs.setdefault(k, {**env, "runs": 0})["runs"] += 1
    evals = {}
    for r in runs:
        ev = (r.get("config") or {}).get("evaluation") if isinstance(r.get("config"), dict) else None
        if ev:
            k = json.dumps(ev, sort_keys=True, default=str)
            evals.setdefault(k, {"text": k, "runs": 0})["runs"] += 1
    protocols = sorted(set(df["protocol"])) if len(df) else []
    return {"envs": list(envs.values()), "matrices": sorted({str(r.get("matrix")) for r in runs if r.get("matrix")}),
            "seeds": sorted({r.get("seed") for r in runs if r.get("seed") is not None}),
            "datasets": sorted({str(r.get("dataset")) for r in runs}), "evaluations": list(evals.values()),
            "protocols": protocols}


def _guard(notes: list[str], what: str, default: Any, fn: Callable[..., Any], *args: Any) -> Any:
    """Pictures are the report's extras: one that cannot be drawn (a corrupt artifact, a plotting
    error) is named in the notes instead of costing the tables."""
    try:
        return fn(*args)
    except Exception as e:
        notes.append(f"{what} not shown: {type(e).__name__}: {e}")
        return default


def render_html(root: Path, df, runs: list[dict[str, Any]], *, reference_data: ReferenceData | None = None,
                title: str = "genbench report", notes: list[str] | None = None) -> str:
    """The report page as one self-contained HTML string."""
    import jinja2

    notes = list(notes or [])
    datasets = []
    for ds, tables in build_tables(df, runs=runs, split_likelihoods=True, training_losses=False).items():
        ref = None
        if reference_data is not None:
            try:
                ref = reference_data(ds)
            except Exception as e:  # a missing data file must not cost the report: say so instead
                notes.append(f"real data of {ds!r} not shown: {type(e).__name__}: {e}")
        ds_runs = [r for r in runs if str(r.get("dataset")) == ds]
        real_tables = [t for t in tables if t.columns]
        datasets.append({
            "name": ds, "anchor": "ds-" + safe_file_part(ds),
            "tables": [{**_table_ctx(t), "first_likelihood": t is next(
                (x for x in real_tables if x.family == "likelihood"), None)} for t in real_tables],
            "split_likelihoods": sum(1 for t in real_tables if t.family == "likelihood") > 1,
            "legend": _legend(real_tables),
            "pictures": _guard(notes, f"pictures of {ds!r}", {"samples": [], "galleries": [], "curves": []},
                               _pictures, root, ds, ds_runs, tables, df[df["dataset"] == ds], ref, notes),
            "tradeoff": _guard(notes, f"the quality-likelihood plot of {ds!r}", None, _tradeoff, ds, real_tables),
            "failed": [r for r in ds_runs if r.get("status") == "failed"],
        })
    run_rows, timing_keys = _runs_ctx(runs)
    script_hash = base64.b64encode(hashlib.sha256(SORT_SCRIPT.encode("utf-8")).digest()).decode("ascii")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html.j2").render(
        title=title, generated=now_iso(), root=str(root), datasets=datasets, runs=run_rows, timing_keys=timing_keys,
        n_done=sum(r.get("status") == "done" for r in runs), n_failed=len(failures(runs)),
        n_other=sum(r.get("status") not in ("done", "failed") for r in runs), notes=notes,
        provenance=_provenance(runs, df), script=SORT_SCRIPT, script_hash=script_hash,
    )


# ---------------------------------------------------------------------------------------------
# markdown summary


def _md_escape(s: str) -> str:
    """Table-cell text for markdown: pipes escaped, one line, and no raw HTML (markdown passes it through)."""
    return html_escape(str(s), quote=False).replace("|", "\\|").replace("\n", " ")


def render_markdown(df, runs: list[dict[str, Any]], *, title: str, notes: list[str] | None = None) -> str:
    lines = [f"# {title}", ""]
    lines += [f"> Note: {_md_escape(n)}" for n in notes or []] + ([""] if notes else [])
    matrices = sorted({str(r.get("matrix")) for r in runs if r.get("matrix")})
    commits = sorted({str((r.get("provenance") or {}).get("git_commit")) for r in runs})
    lines += [f"Matrix: {', '.join(matrices) or '-'}; {sum(r.get('status') == 'done' for r in runs)} finished and "
              f"{len(failures(runs))} failed runs; genbench commit(s): {', '.join(commits)}.", "",
              "Rows are model configurations, `seeds` how many seeds were averaged; cells are mean ± std over seeds "
              "(one seed: the metric's own uncertainty, kind in the CSV). ↑ higher is better, ↓ lower is better, "
              "→v best near v; **bold** is the best model (controls are references), ≈ a model not separated from "
              "it by the column's ± (the rule is under each table that has one). Likelihood tables are split "
              "by estimator kind and unit: numbers in different tables are not comparable. Full protocols are in "
              "the CSV files and `report.html`.", ""]
    for ds, tables in build_tables(df, runs=runs, printed=True, split_likelihoods=True).items():
        lines += [f"## {ds}", ""]
        for t in tables:
            if not t.columns:
                continue
            lines += [f"### {t.title}", ""]
            head = ["model", "seeds"] + [f"{c.label} {c.direction}".strip() for c in t.columns]
            lines.append("| " + " | ".join(_md_escape(h) for h in head) + " |")
            lines.append("|" + "---|" * len(head))
            for r in t.rows:
                cells = []
                for c in t.columns:
                    v = t.values.get((r.key, c.key))
                    cells.append("" if v is None else (f"**{v.text}**" if v.best else v.text))
                lines.append("| " + " | ".join(_md_escape(x) for x in [r.label, r.seeds_text] + cells) + " |")
            lines.append("")
            if t.tie_marks:
                lines += [_md_escape(TIE_RULE), ""]
                lines += [f"- **{_md_escape(c.label)}**: {_md_escape(t.separation[c.key])}" for c in t.columns
                          if c.key in t.separation]
                lines += [""] if t.separation else []
    failed = failures(runs)
    if failed:
        lines += ["## Failed cells", ""]
        lines += [f"- {_md_escape(r['row'])} on {_md_escape(r.get('dataset'))}, seed {r.get('seed')}: "
                  f"{_md_escape((r.get('error') or 'failed').splitlines()[0])}" for r in failed]
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# the report


def write_report(results: str | os.PathLike | None = None, *, out_dir: str | os.PathLike | None = None,
                 matrix: str | None = None, cell_ids: list[str] | tuple[str, ...] | set[str] | None = None,
                 html: bool = True, reference_data: ReferenceData | None = None,
                 notes: list[str] | None = None, title: str | None = None,
                 log: Callable[[str], None] | None = None) -> list[Path]:
    """Write the report of ``results`` into ``out_dir`` (default ``<results>/report``).

    Files: ``results_long.csv`` (one row per run x metric, protocol fields as columns),
    ``runs.csv`` (status, error, timings per run), ``comparison_<dataset>.csv`` (models x
    protocols: mean, std, std kind, seeds), ``comparison.txt`` (the printed tables),
    ``README.md`` (markdown summary) and ``report.html`` (self-contained).

    Parameters
    ----------
    matrix : keep the runs recorded under this matrix name.
    cell_ids : keep exactly the runs of these cells (a matrix's ``[c.cell_id for c in m.cells()]``),
        whichever matrix run computed them.
    reference_data : ``name -> dict | None`` giving real data to show beside the samples:
        ``images`` (N, C, H, W) in [0, 1], or ``points`` (N, 2) with ``centres``, ``std`` and
        ``log_density`` for 2-D mixtures; ``split`` names the split. The CLI passes one that reads
        :mod:`genbench.data` (this module does not import it: it would import torch).
    notes : lines shown at the top of the HTML and the README.
    log : called with each note the report itself adds (an index rebuilt from the run folders,
        cells of ``cell_ids`` without a result), e.g. to print them.

    Raises
    ------
    NoResultsError (a FileNotFoundError) when there is no store, no runs, or no run passes the filter;
    ValueError when ``out_dir`` holds files that a report did not write.
    """
    root = results_dir(results)
    store, open_notes = open_store(root)
    notes = list(notes or [])
    added = list(open_notes)
    df = load_frame(matrix=matrix, cell_ids=cell_ids, store=store)
    runs = df.attrs["runs"]
    if not runs:
        have = sorted({str(r.get("matrix")) for r in store.runs()})
        what = " and ".join(x for x in (f"matrix {matrix!r}" if matrix else "",
                                         f"{len(cell_ids)} given cell ids" if cell_ids is not None else "") if x)
        raise NoResultsError(f"no runs of {what} in {store.path}; matrices there: {', '.join(have) or 'none'}.")
    if cell_ids is not None:
        found = {r.get("cell_id") or r["run_id"] for r in runs} | {r["run_id"] for r in runs}
        missing = [c for c in cell_ids if c not in found]
        if missing:
            added.append(f"{len(missing)} of {len(set(cell_ids))} cells have no result yet (not run, or still "
                         f"running): {', '.join(missing)}")
    for n in added:
        if log is not None:
            log(n)
    notes = added + notes
    out = Path(out_dir) if out_dir is not None else root / "report"
    _check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    title = title or ("genbench report: " + (", ".join(sorted({str(r.get('matrix')) for r in runs
                                                              if r.get('matrix')})) or str(root)))
    try:
        names = ["results_long.csv", "runs.csv"]
        atomic_write_text(staging / "results_long.csv", long_csv_frame(df).to_csv(index=False))
        atomic_write_text(staging / "runs.csv", _runs_csv(runs))
        for ds, wide in wide_csv_frames(df, runs=runs).items():
            name = f"comparison_{safe_file_part(ds)}.csv"
            atomic_write_text(staging / name, wide.to_csv(index=False))
            names.append(name)
        atomic_write_text(staging / "comparison.txt", format_comparison(df, runs=runs) + "\n")
        atomic_write_text(staging / "README.md", render_markdown(df, runs, title=title, notes=notes))
        names += ["comparison.txt", "README.md"]
        if html:
            atomic_write_text(staging / "report.html",
                              render_html(root, df, runs, reference_data=reference_data, title=title, notes=notes))
            names.append("report.html")
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; a report folder is an ordinary folder
        atomic_write_text(staging / MARKER, json.dumps({"files": sorted(names)}, indent=1) + "\n")
        _swap_in(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [out / n for n in names]


def _runs_csv(runs: list[dict[str, Any]]) -> str:
    import pandas as pd

    keys = sorted({k for r in runs for k in r["timings"]}, key=lambda k: (k not in TIMING_ORDER,
                                                                          TIMING_ORDER.index(k) if k in TIMING_ORDER
                                                                          else 0, k))
    rows = []
    for r in runs:
        rows.append({"run_id": r["run_id"], "model": r["row"], "dataset": r.get("dataset"), "seed": r.get("seed"),
                     "status": r.get("status"), "error": r.get("error") or "", "matrix": r.get("matrix"),
                     "control": r["control"], "finished": r.get("finished"),
                     **{k: r["timings"].get(k) for k in keys}})
    return pd.DataFrame(rows).to_csv(index=False)


__all__ = ["NoResultsError", "render_html", "render_markdown", "write_report", "data_uri"]
