"""Comparison tables from the results store: protocols x generators, per dataset.

Rows are protocol names (a metric with its extractor, sample counts, reference split and
hyper-parameters), so numbers of different protocols never share a row. Cells show
mean ± std over training seeds when there are several seeds, else the metric's own uncertainty
(its ``std_kind`` is listed in the CSV). Controls are marked ``(control)``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from genbench._io import atomic_write_text
from genbench.runs import results_dir
from genbench.store import ResultsStore

# display order: metric families as a reader scans them; anything else follows alphabetically
ORDER = ("is", "fid", "kid", "precision", "recall", "density", "coverage", "parzen", "gmm", "iwae", "elbo",
         "nll-exact", "exact", "true")


def load_frame(results: str | os.PathLike | None = None, *, matrix: str | None = None, store_path=None):
    """The tidy long table (one row per run x metric) of finished cells, with a ``control`` column."""
    store = ResultsStore(results, path=store_path)
    df = store.to_frame()
    runs = {r["run_id"]: r for r in store.runs()}
    df["control"] = [bool((runs.get(rid, {}).get("extra") or {}).get("control", False)) for rid in df["run_id"]]
    df = df[(df["status"] == "done")]
    if matrix is not None:
        df = df[df["matrix"] == matrix]
    return df


def _fmt(mean: float, std: float | None) -> str:
    def f(v: float) -> str:
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.4e}"

    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f(mean)
    return f"{f(mean)} ± {std:.2g}"


def comparison_tables(df) -> dict[str, object]:
    """{dataset: DataFrame of protocol rows x generator columns with formatted 'mean ± std' strings}."""
    import pandas as pd

    out: dict[str, object] = {}
    for ds, g in df.groupby("dataset", sort=True):
        agg = g.groupby(["protocol", "metric", "generator", "control"], dropna=False).agg(
            mean=("value", "mean"), seed_std=("value", "std"), own_std=("std", "mean"), seeds=("seed", "nunique"),
        ).reset_index()
        agg["cell"] = [
            _fmt(r.mean, r.seed_std if r.seeds > 1 else r.own_std) for r in agg.itertuples()
        ]
        gens = agg[["generator", "control"]].drop_duplicates().sort_values(["control", "generator"])
        cols = [f"{r.generator} (control)" if r.control else r.generator for r in gens.itertuples()]
        agg["col"] = [f"{r.generator} (control)" if r.control else r.generator for r in agg.itertuples()]
        wide = agg.pivot_table(index=["metric", "protocol"], columns="col", values="cell", aggfunc="first")
        wide = wide.reindex(columns=[c for c in cols if c in wide.columns])
        rank = {m: i for i, m in enumerate(ORDER)}
        keys = sorted(wide.index, key=lambda k: (rank.get(k[0].split("-")[0] if k[0] not in rank else k[0],
                                                          len(ORDER)), k[0], k[1]))
        wide = wide.reindex(keys).fillna("")
        wide.index = pd.Index([p for _, p in wide.index], name="protocol")
        out[str(ds)] = wide
    return out


def format_comparison(df) -> str:
    import pandas as pd

    parts = []
    with pd.option_context("display.max_columns", None, "display.width", 250, "display.max_colwidth", 60,
                           "display.max_rows", None):
        for ds, table in comparison_tables(df).items():
            parts.append(f"== {ds} ==\n{table.to_string()}")
    return "\n\n".join(parts) if parts else "(no finished cells in the results store)"


def print_comparison(store_path: str | os.PathLike, *, matrix: str | None = None) -> None:
    store_path = Path(store_path)
    print(format_comparison(load_frame(store_path.parent, matrix=matrix, store_path=store_path)))


def write_report(results: str | os.PathLike | None = None, *, out_dir: str | os.PathLike | None = None,
                 matrix: str | None = None) -> list[Path]:
    """Write the tidy CSV, one wide CSV per dataset and a text table; returns the paths."""
    root = results_dir(results)
    out = Path(out_dir) if out_dir else root / "report"
    df = load_frame(root, matrix=matrix)
    paths = [atomic_write_text(out / "results_long.csv", df.to_csv(index=False))]
    for ds, table in comparison_tables(df).items():
        safe = ds.replace(":", "_").replace("/", "_")
        paths.append(atomic_write_text(out / f"comparison_{safe}.csv", table.to_csv()))
    paths.append(atomic_write_text(out / "comparison.txt", format_comparison(df) + "\n"))
    return paths
