"""Nearest-neighbour galleries: generated samples beside their closest training images (PNG + JSON).

The companion of the copy checks in :mod:`genbench.metrics.overfitting`: numbers say *whether*
a model copies, the gallery shows *what* it copied. Rows are the generated samples closest to
the training set (smallest first); each row shows the sample, a red separator, then its k
nearest training images. The pairs (indices and distances) go to a JSON file beside the PNG for
the HTML report. numpy and PIL only: no torch import here (reports stay light).

With ``matches`` (per-sample results of the transformation-invariant copy check,
:func:`genbench.metrics.copies.match_transforms`), the samples the check flagged come first, and
each row ends with a blue separator, the training image *after* the matched transformation
(shifted, flipped, re-lit) and a label: the transformation (``shift (+1, 0)``), the distance, and
``COPY`` when flagged. A shifted copy is far from every training image in plain pixel space, so
only this column shows what it copied.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from genbench._io import atomic_write_bytes, atomic_write_json
from genbench._validation import check_images

PAD = 2  # grey pixels between cells
SEP = 6  # extra pixels between the generated sample and its neighbours (drawn red)
MIN_CELL = 32  # small images (8x8 digits) are scaled up by an integer factor to at least this
BACKGROUND = (128, 128, 128)
SEPARATOR = (200, 30, 30)
MATCH_SEPARATOR = (40, 90, 200)  # before the matched (transformed) training image
LABEL_WIDTH = 132  # pixels for the transformation's label after the matched image
LABEL_LINE = 11  # pixels per label line (PIL's default bitmap font is 11 high)
TEXT = (255, 255, 255)
COPY_TEXT = (255, 210, 60)
DEFAULT_NAME = "nn_gallery.png"


def gallery_size(n_rows: int, k: int, height: int, width: int, *, matched: bool = False) -> tuple[int, int]:
    """(width, height) in pixels of a gallery of ``n_rows`` rows and ``k`` neighbours of HxW images.

    ``scale = max(1, ceil(32 / max(H, W)))``, cells ``H*scale x W*scale``;
    ``width = PAD + (k + 1) * (W*scale + PAD) + SEP`` and ``height = PAD + n_rows * (H*scale + PAD)``.
    With ``matched`` (a transformed-match column), ``width += SEP + W*scale + PAD + LABEL_WIDTH`` and
    rows are at least three label lines high.

    Examples
    --------
    >>> gallery_size(16, 3, 8, 8)
    (144, 546)
    >>> gallery_size(16, 3, 8, 8, matched=True)
    (316, 562)
    """
    s = _scale(height, width)
    w = PAD + (k + 1) * (width * s + PAD) + SEP
    if matched:
        w += SEP + width * s + PAD + LABEL_WIDTH
    return w, PAD + n_rows * (_row_height(height * s, matched) + PAD)


def _row_height(cell_h: int, matched: bool) -> int:
    return max(cell_h, 3 * LABEL_LINE) if matched else cell_h


def write_nn_gallery(
    path: str | Path,
    fake_images: Any,
    train_images: Any,
    *,
    n: int = 16,
    k: int = 3,
    nn: tuple[Any, Any] | None = None,
    space_name: str = "pixels",
    matches: Mapping[int, Mapping[str, Any]] | None = None,
) -> Path:
    """Write a PNG of the ``n`` generated samples closest to the training data beside their ``k`` neighbours.

    Parameters
    ----------
    path : str or Path
        The PNG file (``*.png``), or a folder to write ``nn_gallery.png`` into. The pairs are
        written beside it as JSON with the same stem (``nn_gallery.json``). Both writes are atomic.
    fake_images : (N, C, H, W) array or tensor in [0, 1], C = 1 or 3
        Generated samples.
    train_images : (M, C, H, W) in [0, 1]
        The training set.
    n : int
        Rows: the ``min(n, N)`` samples with the smallest nearest-neighbour distance (ties to the
        lower sample index).
    k : int
        Training neighbours shown per row.
    nn : (distances (N, >=k), indices (N, >=k)), optional
        Precomputed neighbours of every generated sample, ascending, e.g. from
        :func:`genbench.metrics.neighbours.nearest_neighbours` in pixel or feature space (pass
        ``space_name`` accordingly). Without it, pixel-space neighbours are found here by a
        chunked float64 search (GEMM expansion for the order, explicit differences for the
        reported distances); pass ``nn`` for the exact, GPU-capable search of the metrics.
    space_name : str
        The space the distances were measured in, recorded in the JSON.
    matches : {sample index: match}, optional
        Per-sample results of the transformation-invariant copy check
        (:func:`genbench.metrics.copies.match_transforms`): ``image`` (C, H, W), the training image after
        the matched transformation; ``caption``; ``distance``; ``flagged``. Rows then start with the
        flagged samples (by match distance, ties to the lower index), then the closest by ``nn``; each
        row with a match shows the transformed training image and its label after the neighbours, and
        its JSON pair holds the match (without the image).

    Returns
    -------
    Path
        The PNG written; its size is :func:`gallery_size` ``(min(n, N), k, H, W)``.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> train = np.random.default_rng(0).random((20, 1, 8, 8))
    >>> png = write_nn_gallery(tempfile.mkdtemp(), train[:4], train, n=2, k=2)
    >>> png.name, png.with_suffix(".json").exists()
    ('nn_gallery.png', True)
    """
    from PIL import Image

    fake = check_images(fake_images, "fake_images")
    train = check_images(train_images, "train_images")
    if fake.shape[1:] != train.shape[1:]:
        raise ValueError(
            f"fake_images and train_images have per-image shapes {fake.shape[1:]} and {train.shape[1:]}; "
            "they must match."
        )
    if fake.shape[1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels to be shown; got {fake.shape[1]}.")
    if len(fake) == 0 or len(train) == 0:
        raise ValueError("fake_images and train_images must each hold at least one image.")
    if n < 1 or not 1 <= k <= len(train):
        raise ValueError(f"need n >= 1 and 1 <= k <= {len(train)} (training images); got n={n}, k={k}.")

    if nn is None:
        dist, idx = _pixel_neighbours(fake, train, k)
    else:
        dist, idx = _check_nn(nn, len(fake), len(train), k)
    matches = _check_matches(matches, fake.shape)
    rows = gallery_rows(dist[:, 0], n, matches)

    _, c, h, w = fake.shape
    s = _scale(h, w)
    matched = matches is not None
    width, height = gallery_size(len(rows), k, h, w, matched=matched)
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND
    cw, ch = w * s, h * s
    rh = _row_height(ch, matched)
    labels: list[tuple[int, int, dict[str, Any]]] = []
    for r, i in enumerate(rows):
        y = PAD + r * (rh + PAD)
        canvas[y : y + ch, PAD : PAD + cw] = _cell(fake[i], s)
        canvas[y : y + ch, PAD + cw + PAD : PAD + cw + PAD + SEP - PAD] = SEPARATOR
        for j in range(k):
            x = PAD + (j + 1) * (cw + PAD) + SEP
            canvas[y : y + ch, x : x + cw] = _cell(train[idx[i, j]], s)
        if matched and int(i) in matches:
            x = PAD + (k + 1) * (cw + PAD) + SEP
            canvas[y : y + ch, x : x + SEP - PAD] = MATCH_SEPARATOR
            x += SEP
            canvas[y : y + ch, x : x + cw] = _cell(matches[int(i)]["image"], s)
            labels.append((x + cw + PAD, y, matches[int(i)]))

    png = Path(path)
    if png.suffix.lower() != ".png":
        png = png / DEFAULT_NAME
    im = Image.fromarray(canvas)
    if labels:
        _draw_labels(im, labels)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    atomic_write_bytes(png, buf.getvalue())
    atomic_write_json(png.with_suffix(".json"), {
        "png": png.name,
        "space": space_name,
        "k": k,
        "n_fake": len(fake),
        "n_train": len(train),
        "layout": {"rows": len(rows), "columns": ["fake"] + [f"train_nn{j + 1}" for j in range(k)] + (
                       ["train_transformed", "label"] if matched else []),
                   "scale": s, "pad": PAD, "separator": SEP, "width": width, "height": height},
        "pairs": [
            {"fake_index": int(i), "train_index": [int(v) for v in idx[i, :k]],
             "distance": [float(v) for v in dist[i, :k]],
             **({"match": _json_match(matches[int(i)])} if matched and int(i) in matches else {})}
            for i in rows
        ],
    })
    return png


def gallery_rows(nn_distance: Any, n: int, matches: Mapping[int, Mapping[str, Any]] | None = None) -> list[int]:
    """The samples a gallery shows, in order: those ``matches`` flags (by match distance, ties to the lower
    index), then the smallest first nearest-neighbour distance (ties to the lower index); ``n`` at most.

    Examples
    --------
    >>> gallery_rows([0.5, 0.1, 0.3], 2), gallery_rows([0.5, 0.1, 0.3], 2, {0: {"flagged": True, "distance": 0}})
    ([1, 2], [0, 1])
    """
    d = np.asarray(nn_distance, dtype=np.float64)
    flagged = sorted((float(m.get("distance", 0.0)), int(i)) for i, m in (matches or {}).items() if m.get("flagged"))
    first = [i for _, i in flagged]
    seen = set(first)
    rest = [int(i) for i in np.lexsort((np.arange(len(d)), d)) if int(i) not in seen]
    return (first + rest)[: min(n, len(d))]


def _check_matches(matches: Mapping[int, Mapping[str, Any]] | None,
                   shape: tuple[int, ...]) -> dict[int, Mapping[str, Any]] | None:
    if matches is None:
        return None
    out = {}
    for i, m in matches.items():
        if not 0 <= int(i) < shape[0]:
            raise ValueError(f"matches has sample index {i}, outside [0, {shape[0]}) of fake_images.")
        img = np.asarray(m.get("image"), dtype=np.float64)
        if img.shape != tuple(shape[1:]):
            raise ValueError(f"matches[{i}]['image'] must be one transformed training image of shape "
                             f"{tuple(shape[1:])}; got {img.shape}.")
        out[int(i)] = {**m, "image": img}
    return out


def _json_match(m: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in m.items() if k != "image"}


def _draw_labels(im: Any, labels: list[tuple[int, int, Mapping[str, Any]]]) -> None:
    """Each matched row's label: the transformation, the distance, and COPY when the check flagged it."""
    from PIL import ImageDraw, ImageFont

    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default()
    for x, y, m in labels:
        caption = str(m.get("caption") or m.get("transform") or "?")
        lines = [(caption, TEXT)]
        if len(caption) > 21:  # "flip + shift (-1, +2) + brightness +0.10": break after the geometry
            head, _, tail = caption.rpartition(" + ")
            lines = [(head, TEXT), ("+ " + tail, TEXT)]
        if "distance" in m:
            lines.append((f"d={float(m['distance']):.3g}", TEXT))
        if m.get("flagged"):
            lines[-1] = (lines[-1][0] + "  COPY", COPY_TEXT) if len(lines) >= 3 else lines[-1]
            if len(lines) < 3:
                lines.append(("COPY", COPY_TEXT))
        for r, (text, colour) in enumerate(lines[:3]):
            draw.text((x, y + r * LABEL_LINE), text[:22], fill=colour, font=font)


def _scale(h: int, w: int) -> int:
    return max(1, math.ceil(MIN_CELL / max(h, w)))


def _cell(img: np.ndarray, s: int) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H*s, W*s, 3) uint8, nearest-neighbour upscaling."""
    a = (np.clip(img, 0.0, 1.0) * 255.0).round().astype(np.uint8).transpose(1, 2, 0)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return np.repeat(np.repeat(a, s, axis=0), s, axis=1)


def _check_nn(nn: tuple[Any, Any], n_fake: int, n_train: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    dist = np.asarray(nn[0].detach().cpu().numpy() if hasattr(nn[0], "detach") else nn[0], dtype=np.float64)
    idx = np.asarray(nn[1].detach().cpu().numpy() if hasattr(nn[1], "detach") else nn[1])
    if dist.ndim != 2 or dist.shape != idx.shape or len(dist) != n_fake or dist.shape[1] < k:
        raise ValueError(
            f"nn must be (distances, indices), each of shape ({n_fake}, >= {k}); "
            f"got {dist.shape} and {idx.shape}."
        )
    if idx.dtype.kind not in "iu" or idx.min() < 0 or idx.max() >= n_train:
        raise ValueError(f"nn indices must be integers in [0, {n_train}) indexing train_images.")
    if not np.isfinite(dist).all():
        raise ValueError("nn distances must be finite.")
    return dist, idx.astype(np.int64)


def _pixel_neighbours(fake: np.ndarray, train: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k nearest training images per generated image in pixel space: the one exact k-NN search
    (:func:`genbench.metrics.neighbours.nearest_neighbours`; ties to the lower index)."""
    from genbench.metrics.neighbours import nearest_neighbours  # torch: imported only when a gallery is drawn

    return nearest_neighbours(fake.reshape(len(fake), -1), train.reshape(len(train), -1), k=k)
