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
    """One small panel per training loss (lines) and per validation score (markers), against
    step: losses of different scales (a reconstruction in nats, a discriminator's BCE) each stay
    readable. None if nothing to plot."""
    if not rows:
        return None
    # the object API, not pyplot: no global figure state, no backend switching in the caller
    from matplotlib.figure import Figure

    panels = [(k, rows, "-") for k in rows[0] if k != "step"]
    panels += [(k, val_rows, "o-") for k in (val_rows[0] if val_rows else {}) if k != "step"]
    ncols = min(4, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(3.2 * ncols, 2.4 * nrows + (0.4 if title else 0)))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (key, data, style) in zip(axes, panels):
        ax.plot([r["step"] for r in data], [r.get(key, math.nan) for r in data], style, markersize=3,
                color="C1" if data is val_rows else "C0")
        ax.set_title(key, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("step", fontsize=8)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return atomic_write_bytes(path, buf.getvalue())
