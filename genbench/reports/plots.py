"""Plots for the HTML report, as PNG bytes: 2-D samples over a mixture's true density, and sample
quality against test likelihood per model. matplotlib's object API (no pyplot: no global figure
state, no backend switching in the caller); numpy in, no torch.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


def _png(fig, dpi: int = 80) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def mixture_overlay(points: np.ndarray, *, centres: np.ndarray, log_density: Callable[[np.ndarray], np.ndarray],
                    captured: Sequence[bool] | None = None, title: str = "", max_points: int = 2000,
                    grid: int = 160) -> bytes:
    """Samples (N, 2) drawn over the contours of the true density, modes marked.

    Parameters
    ----------
    points : (N, 2) samples (the first ``max_points`` are drawn).
    centres : (M, 2) the mixture's mode centres.
    log_density : the true log-density, (K, 2) -> (K,), e.g. ``MixtureDataset.log_density``.
    captured : (M,) whether each mode was captured (from the ``modes-captured`` metric's
        ``hq_counts``); captured modes get a green circle, missed ones a red cross. None: centres
        drawn plain.

    Returns
    -------
    bytes : a PNG.
    """
    from matplotlib.figure import Figure

    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)[:max_points]
    c = np.asarray(centres, dtype=np.float64)
    span = np.ptp(c, axis=0).max() if len(c) > 1 else 1.0
    lo, hi = c.min(0) - 0.25 * span - 0.5, c.max(0) + 0.25 * span + 0.5
    xs, ys = np.linspace(lo[0], hi[0], grid), np.linspace(lo[1], hi[1], grid)
    gx, gy = np.meshgrid(xs, ys)
    ld = np.asarray(log_density(np.stack([gx.ravel(), gy.ravel()], 1)), dtype=np.float64).reshape(gx.shape)
    top = np.nanmax(ld)
    fig = Figure(figsize=(3.4, 3.4))
    ax = fig.subplots()
    # contours of the density at 1/e^k of its peak: the modes' shapes, visible at any std
    levels = sorted(top - np.array([8.0, 4.0, 2.0, 0.5]))
    ax.contour(gx, gy, ld, levels=levels, colors="0.55", linewidths=0.6)
    inside = (pts[:, 0] >= lo[0]) & (pts[:, 0] <= hi[0]) & (pts[:, 1] >= lo[1]) & (pts[:, 1] <= hi[1])
    ax.scatter(pts[inside, 0], pts[inside, 1], s=3, c="C0", alpha=0.5, linewidths=0)
    if captured is not None:
        cap = np.asarray(captured, dtype=bool)
        ax.scatter(c[cap, 0], c[cap, 1], s=60, facecolors="none", edgecolors="tab:green", linewidths=1.4,
                   label="captured")
        ax.scatter(c[~cap, 0], c[~cap, 1], s=50, marker="x", c="tab:red", linewidths=1.6, label="missed")
        ax.legend(loc="upper right", fontsize=6, framealpha=0.8)
    n_out = int((~inside).sum())
    if n_out:
        ax.text(0.01, 0.01, f"{n_out} of {len(pts)} samples outside the frame", transform=ax.transAxes, fontsize=6,
                color="tab:red")
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_aspect("equal")
    ax.tick_params(labelsize=6)
    if title:
        ax.set_title(title, fontsize=8)
    return _png(fig)


@dataclass
class TradeoffPoint:
    label: str
    x: float
    y: float
    xerr: float | None = None  # std over seeds, when there are several
    yerr: float | None = None
    control: bool = False


def quality_vs_likelihood(points: Sequence[TradeoffPoint], *, xlabel: str, ylabel: str, title: str = "") -> bytes:
    """Sample quality against test log-likelihood, one point per model (Theis et al. 2016: the two
    are largely independent; a model can be good at one and bad at the other). Error bars are the
    std over training seeds; controls are hollow."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 3.6))
    ax = fig.subplots()
    for i, p in enumerate(points):
        color = f"C{i % 10}"
        ax.errorbar([p.x], [p.y], xerr=None if p.xerr is None else [p.xerr],
                    yerr=None if p.yerr is None else [p.yerr], fmt="o", color=color,
                    mfc="none" if p.control else color, capsize=3, ms=6)
        ax.annotate(p.label if len(p.label) <= 28 else p.label[:27] + "…", (p.x, p.y), textcoords="offset points",
                    xytext=(5, 4), fontsize=7, color=color)
    ax.margins(0.12)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    return _png(fig)
