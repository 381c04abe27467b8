"""Sample grids and 2-D scatter plots, written atomically as PNG (numpy in, no torch)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from genbench._io import atomic_write_bytes


def tile(images: np.ndarray, *, ncol: int | None = None, pad: int = 1) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> one (H', W', C) uint8 mosaic with ``pad`` pixels of grey between."""
    x = np.asarray(images, dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W); got shape {x.shape}")
    n, c, h, w = x.shape
    ncol = ncol or int(np.ceil(np.sqrt(n)))
    nrow = int(np.ceil(n / ncol))
    canvas = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), 0.5, dtype=np.float32)
    for i in range(n):
        r, q = divmod(i, ncol)
        canvas[pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = \
            x[i].transpose(1, 2, 0)
    return (np.clip(canvas, 0, 1) * 255).round().astype(np.uint8)


def png_bytes(mosaic: np.ndarray, *, scale: int = 1) -> bytes:
    from PIL import Image

    a = mosaic[:, :, 0] if mosaic.shape[2] == 1 else mosaic
    im = Image.fromarray(a)
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def write_sample_grid(path: str | Path, images: np.ndarray, *, ncol: int | None = None) -> Path:
    """A PNG grid of images (N, C, H, W) in [0, 1]; small images are scaled up to be visible."""
    mosaic = tile(images, ncol=ncol)
    scale = max(1, 256 // max(mosaic.shape[:2]))
    return atomic_write_bytes(path, png_bytes(mosaic, scale=scale))


def write_scatter(path: str | Path, points: np.ndarray, reference: np.ndarray | None = None) -> Path:
    """A PNG scatter of 2-D samples over the reference data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    if reference is not None:
        ax.scatter(reference[:, 0], reference[:, 1], s=2, c="0.7", label="data")
    ax.scatter(points[:, 0], points[:, 1], s=2, c="C0", alpha=0.5, label="samples")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7, markerscale=4)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
