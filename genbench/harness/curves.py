"""Loss curves: ``artifacts/curves.csv`` (written atomically) and an optional ``curves.png``."""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any

from genbench._io import atomic_write_bytes, atomic_write_text


def curve_table(rows: list[dict[str, float]], val_rows: list[dict[str, float]]) -> tuple[list[str], list[list[Any]]]:
    """Merge training rows and validation rows by step: (columns, rows), missing cells empty."""
    by_step: dict[int, dict[str, float]] = {}
    columns: list[str] = ["step"]
    for r in [*rows, *val_rows]:
        by_step.setdefault(int(r["step"]), {}).update(r)
        for k in r:
            if k not in columns:
                columns.append(k)
    table = [[s if c == "step" else by_step[s].get(c, "") for c in columns] for s in sorted(by_step)]
    return columns, table


def write_curves_csv(path: str | os.PathLike, rows: list[dict[str, float]], val_rows: list[dict[str, float]]) -> Path:
    columns, table = curve_table(rows, val_rows)
    lines = [",".join(columns)]
    for row in table:
        lines.append(",".join(_cell(v) for v in row))
    return atomic_write_text(path, "\n".join(lines) + "\n")


def _cell(v: Any) -> str:
    if v == "":
        return ""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else str(v)
    return str(v)


def write_curves_png(path: str | os.PathLike, rows: list[dict[str, float]], val_rows: list[dict[str, float]],
                     *, title: str = "") -> Path | None:
    """Training losses (left) and validation scores (right) against step; None if nothing to plot."""
    if not rows:
        return None
    # the object API, not pyplot: no global figure state, no backend switching in the caller
    from matplotlib.figure import Figure

    n_panels = 2 if val_rows else 1
    fig = Figure(figsize=(5 * n_panels, 3.2))
    axes = fig.subplots(1, n_panels, squeeze=False)
    for ax, data, label in zip(axes[0], (rows, val_rows), ("training losses", "validation")):
        keys = [k for k in data[0] if k != "step"] if data else []
        for k in keys:
            ax.plot([r["step"] for r in data], [r.get(k, math.nan) for r in data], label=k,
                    marker="o" if data is val_rows else None, markersize=3)
        ax.set_xlabel("step")
        ax.set_title(label)
        if keys:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return atomic_write_bytes(path, buf.getvalue())
