"""Copy checks that survive small transformations: shifted, flipped, re-lit training images.

Euclidean nearest neighbours only catch near-exact copies (Theis et al. 2016): a generator that
outputs training images shifted by one pixel passes every check of
:mod:`genbench.metrics.overfitting` (on ``digits`` pixels: NN ratio 2.0, copy rate 0,
authenticity 0.98). :func:`transform_copy_rate` closes that blind spot for images: it matches
every generated sample against the training set under a family of small transformations and
calibrates its copy threshold on held-out data under the *same* search, so a larger family
cannot by itself raise the rate of fresh data above the null rate q.

The transformation family (exhaustive, finite for the geometry):

- translations by ``(dy, dx)`` with ``|dx|, |dy| <= max_shift`` (the pixels shifted in are
  ``fill``: a constant such as the background 0, or ``"edge"`` to replicate the border);
- horizontal flips when ``flips=True`` (off for digits, where a flip changes the class);
- brightness: with ``brightness=True`` each image's mean is removed before matching, which is
  the closed-form best offset ``b`` of an intensity map ``a x + b`` for every pair (any ``b``:
  a global offset is a copy whatever its size); the fitted offset of each flagged pair is
  recorded;
- contrast: the gains ``a`` in ``contrasts`` (default ``(1.0,)``), each a separate member of the
  family.

Each member's search is exact (:func:`genbench.metrics.neighbours.nearest_neighbours`, equal to
brute-force float64), and the best member is kept with ties going to the earlier member in the
documented order (identity first), so the result is exact and deterministic.

References
----------
Theis, van den Oord, Bethge (2016), "A note on the evaluation of generative models", ICLR
(nearest-neighbour tests only catch near-exact copies; a shifted copy is far in pixel space).
Meehan, Chaudhuri, Dasgupta (2020), "A Non-Parametric Test to Detect Data-Copying in Generative
Models", AISTATS (calibrating copy tests on held-out data).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from genbench.metrics import register_metric
from genbench.metrics._spec import Measurement
from genbench.metrics.neighbours import nearest_neighbours
from genbench.metrics.overfitting import COPY_FLAG, COPY_QUANTILE, _counts, _inputs

__all__ = ["Transform", "TransformMatch", "match_transforms", "transform_copy_rate", "transform_family",
           "transform_neighbours"]


@dataclass(frozen=True)
class Transform:
    """One member of the family: flip (first), then shift by ``(dy, dx)`` (content moves down/right
    for positive values), then, with brightness on, removal of the image mean, then gain ``contrast``."""

    dy: int = 0
    dx: int = 0
    flip: bool = False
    contrast: float = 1.0

    @property
    def label(self) -> str:
        parts = [f"dx={self.dx:+d}", f"dy={self.dy:+d}"]
        if self.flip:
            parts.append("flip")
        if self.contrast != 1.0:
            parts.append(f"contrast={self.contrast:g}")
        return ",".join(parts)

    @property
    def caption(self) -> str:
        """A short label for pictures: ``identity``, ``shift (+1, 0)`` (dx, dy), ``flip + shift (-1, +2)``,
        ``contrast x1.1``.

        Examples
        --------
        >>> Transform(dy=0, dx=1).caption, Transform(flip=True).caption, Transform(contrast=0.9).caption
        ('shift (+1, 0)', 'flip', 'contrast x0.9')
        """
        parts = ["flip"] if self.flip else []
        if self.dy or self.dx:
            parts.append(f"shift ({self.dx:+d}, {self.dy:+d})".replace("+0", "0"))
        if self.contrast != 1.0:
            parts.append(f"contrast x{self.contrast:g}")
        return " + ".join(parts) or "identity"

    @property
    def is_identity(self) -> bool:
        return self.dy == 0 and self.dx == 0 and not self.flip and self.contrast == 1.0


def transform_family(max_shift: int = 2, *, flips: bool = False,
                     contrasts: Sequence[float] = (1.0,)) -> list[Transform]:
    """The members in search order: identity first, then by shift size, flip, contrast.

    Order matters only for ties (the earlier member wins), which makes the reported match
    deterministic and prefers "no transformation" when it is as good as any.

    Examples
    --------
    >>> fam = transform_family(1)
    >>> len(fam), fam[0].label
    (9, 'dx=+0,dy=+0')
    """
    if not isinstance(max_shift, int | np.integer) or max_shift < 0:
        raise ValueError(f"max_shift must be a non-negative integer; got {max_shift!r}.")
    cs = [float(c) for c in contrasts]
    if not cs or any(not (math.isfinite(c) and c > 0) for c in cs):
        raise ValueError(f"contrasts must be positive gains (e.g. (0.9, 1.0, 1.1)); got {contrasts!r}.")
    cs = sorted(set(cs), key=lambda c: (c != 1.0, abs(math.log(c)), c))  # 1.0 first
    shifts = sorted(((dy, dx) for dy in range(-max_shift, max_shift + 1) for dx in range(-max_shift, max_shift + 1)),
                    key=lambda s: (max(abs(s[0]), abs(s[1])), abs(s[0]) + abs(s[1]), s))
    return [Transform(dy, dx, fl, c) for fl in ((False, True) if flips else (False,)) for (dy, dx) in shifts
            for c in cs]


@dataclass(frozen=True)
class TransformMatch:
    """Best match of each query over the transformed training set.

    Attributes
    ----------
    distance : (n,) float64 -- Euclidean distance to the best transformed training image.
    train_index : (n,) int64 -- which training image.
    transform_index : (n,) int64 -- which member of ``family``.
    family : the members, in search order.
    """

    distance: np.ndarray
    train_index: np.ndarray
    transform_index: np.ndarray
    family: list[Transform]


def _shape(shape: Any, d: int) -> tuple[int, int, int]:
    if shape is None:
        raise ValueError(
            "transform-copy-rate needs the image shape to shift and flip samples: pass shape=(C, H, W) "
            "(e.g. shape=(1, 8, 8) for digits). It applies to images in pixel space only, not to feature vectors."
        )
    s = tuple(int(v) for v in shape)
    if len(s) == 2:
        s = (1, *s)
    if len(s) != 3 or any(v < 1 for v in s) or math.prod(s) != d:
        raise ValueError(f"shape must be (C, H, W) or (H, W) with C*H*W equal to the {d} values per sample; "
                         f"got {shape!r}.")
    return s  # type: ignore[return-value]


def _apply(x: np.ndarray, t: Transform, shape: tuple[int, int, int], fill: float | str,
           brightness: bool) -> np.ndarray:
    """Rows (n, d) -> transformed rows (n, d), float64."""
    c, h, w = shape
    img = x.reshape(len(x), c, h, w).astype(np.float64, copy=False)
    if t.flip:
        img = img[..., ::-1]
    if t.dy or t.dx:
        s = max(abs(t.dy), abs(t.dx))
        pad = ((0, 0), (0, 0), (s, s), (s, s))
        padded = np.pad(img, pad, mode="edge") if fill == "edge" else np.pad(img, pad, constant_values=float(fill))
        img = padded[:, :, s - t.dy:s - t.dy + h, s - t.dx:s - t.dx + w]
    rows = np.ascontiguousarray(img.reshape(len(x), -1))
    if brightness:
        rows = rows - rows.mean(axis=1, keepdims=True)
    if t.contrast != 1.0:
        rows = rows * t.contrast
    return rows


def transform_neighbours(queries: Any, train: Any, *, shape: Any, max_shift: int = 2, flips: bool = False,
                         brightness: bool = True, contrasts: Sequence[float] = (1.0,), fill: float | str = 0.0,
                         device: Any = None, batch_size: int = 1024) -> TransformMatch:
    """Exact nearest transformed training image of every query.

    ``min over members T and training images t of |q' - T(t)|``, where ``q'`` is the query with
    its mean removed when ``brightness`` is on (the best offset in closed form), else the query.

    Parameters
    ----------
    queries, train : (n, d) rows or (N, C, H, W) images, in pixel space.
    shape : (C, H, W) or (H, W) of one image.
    max_shift, flips, brightness, contrasts, fill : the family (see the module docstring).
    device, batch_size : passed to :func:`~genbench.metrics.neighbours.nearest_neighbours`.

    Returns
    -------
    TransformMatch

    Examples
    --------
    >>> import numpy as np
    >>> train = np.zeros((2, 1, 4, 4)); train[0, 0, 1, 1] = 1.0; train[1, 0, 2, 2:] = 1.0
    >>> q = np.zeros((1, 1, 4, 4)); q[0, 0, 1, 2] = 1.0  # train[0] moved right by one pixel
    >>> m = transform_neighbours(q, train, shape=(1, 4, 4), max_shift=1, brightness=False)
    >>> m.distance.tolist(), m.train_index.tolist(), m.family[int(m.transform_index[0])].label
    ([0.0], [0], 'dx=+1,dy=+0')
    """
    from genbench._validation import check_rows

    q = check_rows(queries, "queries").astype(np.float64, copy=False)
    t = check_rows(train, "train").astype(np.float64, copy=False)
    if q.shape[1] != t.shape[1]:
        raise ValueError(f"queries and train have {q.shape[1]} and {t.shape[1]} values per sample; use one space.")
    shp = _shape(shape, t.shape[1])
    if not (fill == "edge" or isinstance(fill, int | float) and math.isfinite(fill)):
        raise ValueError(f"fill must be a number or 'edge'; got {fill!r}.")
    family = transform_family(max_shift, flips=flips, contrasts=contrasts)
    qx = q - q.mean(axis=1, keepdims=True) if brightness else q
    best_d = np.full(len(q), np.inf)
    best_i = np.zeros(len(q), dtype=np.int64)
    best_t = np.zeros(len(q), dtype=np.int64)
    for ti, tr in enumerate(family):
        dist, idx = nearest_neighbours(qx, _apply(t, tr, shp, fill, brightness), k=1, device=device,
                                       batch_size=batch_size)
        better = dist[:, 0] < best_d  # strict: ties stay with the earlier member (identity first)
        best_d[better], best_i[better], best_t[better] = dist[better, 0], idx[better, 0], ti
    return TransformMatch(best_d, best_i, best_t, family)


def _match_record(query: np.ndarray, train: np.ndarray, tr: Transform, j: int, distance: float,
                  shape: tuple[int, int, int], fill: float | str, brightness: bool) -> dict[str, Any]:
    """One query's best match as a record (the metric's ``examples`` entries), with its fitted brightness."""
    rec: dict[str, Any] = {"train": j, "transform": tr.label, "dx": tr.dx, "dy": tr.dy, "flip": tr.flip,
                           "contrast": tr.contrast, "distance": float(distance)}
    if brightness:  # the fitted offset b of g ~ a T(t) + b, in closed form: mean(g) - a mean(T(t))
        tt = _apply(train[j:j + 1], Transform(tr.dy, tr.dx, tr.flip, 1.0), shape, fill, False)
        rec["brightness"] = float(query.astype(np.float64).mean() - tr.contrast * tt.mean())
    return rec


def match_transforms(queries: Any, train: Any, *, shape: Any, max_shift: int = 2, flips: bool = False,
                     brightness: bool = True, contrasts: Sequence[float] = (1.0,), fill: float | str = 0.0,
                     threshold: float | None = None, device: Any = None) -> list[dict[str, Any]]:
    """Per query: the best transformed training image, how it was transformed, and the image itself.

    The same search as :func:`transform_copy_rate` (:func:`transform_neighbours`, same family and tie
    rule), for pictures of what matched: each record holds ``train`` (index), ``transform`` (the
    protocol label, ``dx=+1,dy=+0``), ``caption`` (``shift (+1, 0)``, with ``brightness +0.10`` when an
    offset was fitted), ``dx``, ``dy``, ``flip``, ``contrast``, ``distance``, ``brightness`` (the fitted
    offset, with ``brightness`` on), ``image`` (C, H, W): the training image after the matched
    transformation, ``contrast * T(t) + brightness``, clipped to [0, 1] for display, and ``flagged``
    (``distance < threshold``; None without a threshold, e.g. the metric's ``params["threshold"]``).

    Examples
    --------
    >>> import numpy as np
    >>> train = np.zeros((2, 1, 4, 4)); train[0, 0, 1, 1] = 1.0; train[1, 0, 2, 2:] = 1.0
    >>> q = np.zeros((1, 1, 4, 4)); q[0, 0, 1, 2] = 1.0  # train[0] moved right by one pixel
    >>> m = match_transforms(q, train, shape=(1, 4, 4), max_shift=1, brightness=False)[0]
    >>> m["train"], m["caption"], bool((m["image"] == q[0]).all())
    (0, 'shift (+1, 0)', True)
    """
    from genbench._validation import check_rows

    q = check_rows(queries, "queries").astype(np.float64, copy=False)
    t = check_rows(train, "train").astype(np.float64, copy=False)
    shp = _shape(shape, t.shape[1])
    m = transform_neighbours(q, t, shape=shp, max_shift=max_shift, flips=flips, brightness=brightness,
                             contrasts=contrasts, fill=fill, device=device)
    out = []
    for i in range(len(q)):
        tr = m.family[int(m.transform_index[i])]
        j = int(m.train_index[i])
        rec = _match_record(q[i], t, tr, j, m.distance[i], shp, fill, brightness)
        img = _apply(t[j:j + 1], Transform(tr.dy, tr.dx, tr.flip, 1.0), shp, fill, False)[0] * tr.contrast
        b = rec.get("brightness", 0.0)
        rec["image"] = np.clip(img + b, 0.0, 1.0).reshape(shp)
        rec["caption"] = tr.caption + (f" + brightness {b:+.2f}" if brightness and abs(b) >= 0.005 else "")
        rec["flagged"] = None if threshold is None else bool(m.distance[i] < threshold)
        out.append(rec)
    return out


#: held-out searches by (train, held-out, family) content, in this process
_HELDOUT: dict[tuple[str, str, str], TransformMatch] = {}


@register_metric("transform-copy-rate", family="overfitting", needs="samples", direction="lower",
                 protocol_params={"quantile": "q", "max_shift": "shift", "flips": "flips",
                                  "brightness": "brightness", "max_samples": "checked"},
                 default=False,
                 description="share of generated images nearer to a shifted/flipped/re-lit training image than "
                 "almost all held-out data (images only; needs shape)")
def transform_copy_rate(fake: Any, train: Any, test: Any, *, shape: Any = None, max_shift: int = 2,
                        flips: bool = False, brightness: bool = True, contrasts: Sequence[float] = (1.0,),
                        fill: float | str = 0.0, quantile: float = COPY_QUANTILE, flag_rate: float = COPY_FLAG,
                        max_samples: int | None = 2000, max_heldout: int | None = None, n_examples: int = 10,
                        device: Any = None) -> Measurement:
    """Share of generated images that copy a training image up to a small transformation.

    For every sample g and held-out image h, the distance to the nearest *transformed* training
    image, ``D(x) = min_{T, t} |x' - T(t)|`` over the family (see :func:`transform_neighbours`).
    The copy threshold is ``delta = quantile_q({D(h) : h in heldout})`` (q = 0.01, numpy's linear
    interpolation), the same rule as ``copy-rate`` under the same search, and a sample is a copy
    when ``D(g) < delta`` (strictly). Samples distributed like held-out data score about q.

    Parameters
    ----------
    fake, train, test : (n, d) rows or (N, C, H, W) images in **pixel space** (test = held-out real data).
    shape : (C, H, W) or (H, W) of one image, e.g. ``(1, 8, 8)`` for digits. Required: without
        it (feature vectors) the check does not apply and raises a ValueError saying so.
    max_shift : translations with ``|dx|, |dy| <= max_shift`` (default 2: 25 shifts).
    flips : also match horizontally flipped training images (off by default; off for digits).
    brightness : match up to a global intensity offset (each image's mean removed).
    contrasts : intensity gains tried (each one member of the family).
    fill : value shifted in at the border (default 0, the background of digits/MNIST), or ``"edge"``.
    quantile : q in (0, 1) for the threshold.
    flag_rate : ``flagged`` when the rate exceeds it (default 0.10, i.e. 10 x the null rate).
    max_samples : check at most this many generated samples (the first ones; default 2,000, which
        keeps the default matrix fast), recorded in the protocol and ``n["checked"]``; None: all.
    max_heldout : set the threshold on the first this many held-out images (None: all); recorded in the
        protocol (``heldout_checked``) and ``n``. The held-out search is the same for every generator
        scored against the same data, and is done once per process.
    n_examples : flagged samples listed in ``params["examples"]`` (for galleries).
    device : where the searches run.

    Returns
    -------
    Measurement
        ``metric="transform-copy-rate"`` in [0, 1], lower is better. params hold ``threshold``,
        ``n_copies``, ``flagged``, the family, ``transform_counts`` (matched transformation per
        flagged sample, by label), ``examples`` (sample index, train index, transformation,
        fitted brightness offset, distance), and the held-out distance quantiles.

    References
    ----------
    Theis et al. 2016 (the blind spot of Euclidean nearest neighbours); Meehan et al. 2020.

    Examples
    --------
    >>> from genbench.data import load_dataset
    >>> ds = load_dataset("digits")
    >>> train = ds.train.x.numpy()
    >>> shifted = np.zeros_like(train[:200]); shifted[..., 1:] = train[:200, ..., :-1]  # moved right
    >>> r = transform_copy_rate(shifted, train, ds.test.x.numpy(), shape=(1, 8, 8))
    >>> r.value, r.params["flagged"], r.params["examples"][0]["transform"]
    (1.0, True, 'dx=+1,dy=+0')
    """
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1); got {quantile}.")
    if not quantile < flag_rate <= 1.0:
        raise ValueError(f"flag_rate must be in (quantile, 1] = ({quantile}, 1]; got {flag_rate}.")
    if max_samples is not None and (not isinstance(max_samples, int | np.integer) or max_samples < 1):
        raise ValueError(f"max_samples must be a positive integer or None; got {max_samples!r}.")
    if max_heldout is not None and (not isinstance(max_heldout, int | np.integer) or max_heldout < 2):
        raise ValueError(f"max_heldout must be an integer >= 2 or None; got {max_heldout!r}.")
    f, t, h = _inputs(fake, train, test, min_train=1)
    shp = _shape(shape, t.shape[1])
    n_all, nh_all = len(f), len(h)
    if max_samples is not None and n_all > max_samples:
        f = f[:max_samples]
    if max_heldout is not None and nh_all > max_heldout:
        h = h[:max_heldout]
    kw = dict(shape=shp, max_shift=max_shift, flips=flips, brightness=brightness, contrasts=contrasts, fill=fill,
              device=device)
    # rows do not interact: the held-out search (the threshold) does not depend on the samples, and every
    # generator scored against the same data shares it
    from genbench.metrics.overfitting import _digest

    key = (_digest(t), _digest(h), repr(sorted((k, v) for k, v in kw.items() if k != "device")))
    if key not in _HELDOUT:
        while len(_HELDOUT) >= 4:
            _HELDOUT.pop(next(iter(_HELDOUT)))
        _HELDOUT[key] = transform_neighbours(h.astype(np.float64), t, **kw)
    held = _HELDOUT[key]
    fk = transform_neighbours(f.astype(np.float64), t, **kw)
    delta = float(np.quantile(held.distance, quantile))
    copies = fk.distance < delta
    rate = float(copies.mean())
    fam = fk.family
    flagged_idx = np.flatnonzero(copies)
    counts = Counter(fam[int(fk.transform_index[i])].label for i in flagged_idx)
    examples = []
    for i in flagged_idx[:n_examples]:
        examples.append({"sample": int(i), **_match_record(f[i], t, fam[int(fk.transform_index[i])],
                                                           int(fk.train_index[i]), fk.distance[i], shp, fill,
                                                           brightness)})
    warnings = ()
    if len(f) < n_all:
        warnings = (f"transform-copy-rate checked the first {len(f)} of {n_all} generated samples "
                    f"(max_samples={max_samples}); the rate's resolution is 1/{len(f)}",)
    if len(h) < nh_all:
        warnings = (*warnings, f"the copy threshold is the {quantile:g}-quantile over the first {len(h)} of "
                               f"{nh_all} held-out images (max_heldout={max_heldout})")
    n = _counts(f, t, h)
    fixed: dict[str, Any] = {"q": quantile, "shift": int(max_shift), "flips": bool(flips),
                             "brightness": bool(brightness), "checked": len(f)}
    if len(h) < nh_all:
        fixed["heldout_checked"] = len(h)
    if [float(c) for c in contrasts] != [1.0]:  # the rest of the family enters the protocol when not default
        fixed["contrasts"] = ",".join(f"{float(c):g}" for c in contrasts)
    if fill != 0.0:
        fixed["fill"] = fill
    return Measurement(
        rate, n={**n, "fake": n_all, "checked": len(f)}, warnings=warnings, fixed=fixed,
        params={
            "threshold": delta,
            "threshold_rule": f"{quantile:g}-quantile of held-out -> transformed-train distances (numpy linear), "
                              "same transformation search",
            "quantile": quantile,
            "expected_null_rate": quantile,
            "n_copies": int(copies.sum()),
            "n_checked": len(f),
            "family": {"max_shift": int(max_shift), "flips": bool(flips), "brightness": bool(brightness),
                       "contrasts": [float(c) for c in contrasts], "fill": fill, "members": len(fam)},
            "transform_counts": dict(counts.most_common()),
            "examples": examples,
            "heldout_quantiles": {"min": float(held.distance.min()),
                                  **{f"p{round(p * 100):02d}": float(np.quantile(held.distance, p))
                                     for p in (0.01, 0.05, 0.5)}},
            "flag_rate": flag_rate,
            "flag_rule": f"copying when transform-copy rate > {flag_rate:g}",
            "flagged": bool(rate > flag_rate),
        },
    )
