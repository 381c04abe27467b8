"""Comparison tables from the results store: models x metrics, per dataset and metric family.

Each column is one protocol (a metric with its extractor, sample counts, reference split and
fixed hyper-parameters); numbers of different protocols never share a column. Hyper-parameters
tuned per model on validation data (Parzen ``sigma``, GMM ``components``) are part of a row's
full protocol name but not of the column key: choosing them on validation *is* the protocol.
Cells show mean ± std over training seeds when there are several seeds, else the metric's own
uncertainty (its kind is in the CSV's ``std_kind``). Controls are reference rows, marked
``(control)``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from genbench._io import atomic_write_text
from genbench.runs import results_dir
from genbench.store import ResultsStore

# Metric name -> family, for grouping the printed tables (reports must not import the metric
# modules, which import torch; a name not listed here is shown under "other").
FAMILIES = {
    "quality": ("is", "is_real", "fid", "kid", "precision", "recall", "density", "coverage"),
    "likelihood": ("exact-loglik", "iwae", "elbo", "bound-loglik", "parzen", "gmm", "true-loglik",
                   "exact-loglik-gap", "iwae-gap", "elbo-gap", "bound-loglik-gap", "parzen-gap", "gmm-gap"),
    "overfitting": ("nn-median-ratio", "copy-rate", "authenticity", "ct", "likelihood-gap"),
    "coverage": ("modes-captured", "hq-share", "mode-kl", "classes-covered", "class-kl"),
}
FAMILY_ORDER = ("quality", "likelihood", "overfitting", "coverage", "training", "other")
_RANK = {m: i for fam in FAMILIES.values() for i, m in enumerate(fam)}


def metric_family(metric: str) -> str:
    if metric.startswith(("val_", "train_")):
        return "training"
    return next((f for f, names in FAMILIES.items() if metric in names), "other")


def load_frame(results: str | os.PathLike | None = None, *, matrix: str | None = None, store_path=None):
    """The tidy long table (one row per run x metric) of finished runs, with ``control``,
    ``family`` and ``column`` (the protocol's column key)."""
    store = ResultsStore(results, path=store_path)
    df = store.to_frame()
    runs = {r["run_id"]: r for r in store.runs()}
    df["control"] = [bool((runs.get(rid, {}).get("extra") or {}).get("control", False)) for rid in df["run_id"]]
    df["family"] = [metric_family(m) for m in df["metric"]]
    # the column key was written with each row from its protocol record (Protocol.column): the protocol
    # without its tuned hyper-parameters and seed; nothing here parses protocol names back
    df["column"] = df["column_key"]
    df["fields"] = [json.loads(f) if isinstance(f, str) else {} for f in df["protocol_fields"]]
    df = df[df["status"] == "done"]
    if matrix is not None:
        df = df[df["matrix"] == matrix]
    return df


def _fmt(mean: float, std: float | None) -> str:
    f = f"{mean:.4g}" if abs(mean) < 1e5 else f"{mean:.3e}"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f
    return f"{f} ± {std:.2g}"


def _label_parts(fields: dict) -> dict[str, str]:
    """The protocol record's fields that can tell columns of one metric apart, as short texts."""
    space = str(fields.get("space") or "")
    out = {"space": space.split("-")[0] if space.startswith("domain-") else space,  # the hash is in the legend
           "n": ",".join(f"{k}:{v}" for k, v in (fields.get("n") or {}).items()),
           "ref": f"ref={fields['ref']}" if fields.get("ref") else "",
           "heldout": f"heldout={fields['heldout']}" if fields.get("heldout") else ""}
    out.update({f"fixed.{k}": f"{k}={v}" for k, v in fields.get("fixed") or ()})
    return out


def _labels(columns: list[tuple[str, str]], fields: dict[str, dict]) -> dict[str, str]:
    """Short labels for (metric, column key) pairs: the metric name, plus the protocol fields that
    tell apart columns of the same metric (e.g. ``parzen[ref=test]`` / ``parzen[ref=train]``)."""
    by_metric: dict[str, list[str]] = {}
    for metric, col in columns:
        by_metric.setdefault(metric, []).append(col)
    out = {}
    for metric, cols in by_metric.items():
        if len(cols) == 1:
            out[cols[0]] = metric
            continue
        parts = [_label_parts(fields.get(c, {})) for c in cols]
        keys = sorted({k for p in parts for k in p})
        differing = [k for k in keys if len({p.get(k, "") for p in parts}) > 1]
        for c, p in zip(cols, parts):
            diff = [p[k] for k in differing if p.get(k)]
            out[c] = f"{metric}[{','.join(diff)}]" if diff else c
    return out


def _printed(metric: str, column: str) -> bool:
    """The printed table leaves out what the CSV keeps: likelihoods on the training subset (their
    train - test gaps are shown) and raw training losses (validation scores and time are shown)."""
    if column.endswith("/ref=train") and metric_family(metric) == "likelihood":
        return False
    return not (metric.startswith("train_") and metric != "train_seconds")


def comparison_tables(df, *, printed: bool = False) -> dict[str, dict[str, tuple[object, dict[str, str]]]]:
    """{dataset: {family: (DataFrame models x metric labels, {label: protocol column key})}}.

    ``printed=True`` keeps only the columns of the printed table (see :func:`_printed`)."""
    out: dict[str, dict[str, tuple[object, dict[str, str]]]] = {}
    if printed and len(df):
        df = df[[_printed(m, c) for m, c in zip(df["metric"], df["column"])]]
    for ds, g in df.groupby("dataset", sort=True):
        agg = g.groupby(["family", "column", "metric", "generator", "control"], dropna=False).agg(
            mean=("value", "mean"), seed_std=("value", "std"), own_std=("std", "mean"), seeds=("seed", "nunique"),
        ).reset_index()
        agg["cell"] = [_fmt(r.mean, r.seed_std if r.seeds > 1 else r.own_std) for r in agg.itertuples()]
        agg["row"] = [f"{r.generator} (control)" if r.control else r.generator for r in agg.itertuples()]
        rows = agg[["row", "control"]].drop_duplicates().sort_values(["control", "row"])["row"].tolist()
        per_family = {}
        for fam in FAMILY_ORDER:
            a = agg[agg["family"] == fam]
            if a.empty:
                continue
            pairs = sorted({(r.metric, r.column) for r in a.itertuples()}, key=lambda p: (_RANK.get(p[0], 99), p))
            cols = [c for _, c in pairs]
            labels = _labels(pairs, {c: f for c, f in zip(g["column"], g["fields"])})
            wide = a.pivot_table(index="row", columns="column", values="cell", aggfunc="first")
            wide = wide.reindex(index=[r for r in rows if r in wide.index], columns=cols).fillna("")
            wide.columns = [labels[c] for c in cols]
            wide.index.name = "generator"
            per_family[fam] = (wide, {labels[c]: c for c in cols})
        out[str(ds)] = per_family
    return out


def format_comparison(df) -> str:
    import pandas as pd

    parts = []
    with pd.option_context("display.max_columns", None, "display.width", 200, "display.max_colwidth", 40,
                           "display.max_rows", None):
        for ds, fams in comparison_tables(df, printed=True).items():
            parts.append(f"=== {ds} ===")
            for fam, (table, legend) in fams.items():
                parts.append(f"--- {ds}: {fam} ---\n{table.to_string()}")
                parts.append("protocols:\n" + "\n".join(f"  {k:<24} {v}" for k, v in legend.items()))
    if not parts:
        return "(no finished runs in the results store)"
    parts.append("± is the std over training seeds where there are several, else the metric's own uncertainty "
                 "(stderr over test examples for likelihoods, std over splits/subsets for IS/KID); sigma and "
                 "components are tuned per model on the validation split; likelihoods on the training subset "
                 "and training losses are in the CSV (genbench report).")
    return "\n\n".join(parts)


def print_comparison(store_path: str | os.PathLike, *, matrix: str | None = None) -> None:
    store_path = Path(store_path)
    print(format_comparison(load_frame(store_path.parent, matrix=matrix, store_path=store_path)))


def write_report(results: str | os.PathLike | None = None, *, out_dir: str | os.PathLike | None = None,
                 matrix: str | None = None) -> list[Path]:
    """Write the tidy CSV, one wide CSV per dataset (models x protocols) and a text table."""
    root = results_dir(results)
    out = Path(out_dir) if out_dir else root / "report"
    df = load_frame(root, matrix=matrix)
    paths = [atomic_write_text(out / "results_long.csv", df.to_csv(index=False))]
    for ds, fams in comparison_tables(df).items():
        import pandas as pd

        wide = pd.concat([t.rename(columns=legend) for t, legend in fams.values()], axis=1)
        safe = ds.replace(":", "_").replace("/", "_")
        paths.append(atomic_write_text(out / f"comparison_{safe}.csv", wide.to_csv()))
    paths.append(atomic_write_text(out / "comparison.txt", format_comparison(df) + "\n"))
    return paths
