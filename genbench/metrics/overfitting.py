"""Overfitting and data-copying checks: nearest-neighbour distances, copy rate, authenticity, C_T.

Every check compares generated samples ("fake") with held-out real data ("test", a split the
model never saw: test or val), both measured by their Euclidean distance to the nearest
*training* example, in pixel or feature space. A memorising model puts its samples closer to
the training set than fresh real data lies; a model that generalises does not. Each result
carries its threshold, the held-out reference value and a ``flagged`` verdict in ``params``,
so tables can mark copying.

Calibration (tests/test_overfitting.py, ``digits`` pixels, 1258 train images, 359 test as the
held-out reference): a copycat replaying 359 training images and noisy copycats (Gaussian noise
std 0.02 and 0.05, clipped to [0, 1]) are flagged by every check; the val split (180 real
images the model never saw) is flagged by none. The measured numbers and margins are in the
test module's docstring.

Caveat (Theis et al. 2016): Euclidean nearest neighbours only catch near-exact copies; a
model can memorise in ways these distances do not see (shifted, recombined training images).

References
----------
Meehan, Chaudhuri, Dasgupta (2020), "A Non-Parametric Test to Detect Data-Copying in Generative
Models", AISTATS (the C_T statistic; reference code github.com/casey-meehan/data-copying).
Alaa, van Breugel, Saveliev, van der Schaar (2022), "How Faithful is your Synthetic Data?
Sample-level Metrics for Evaluating and Auditing Generative Models", ICML (authenticity).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from genbench._validation import check_n, check_rows
from genbench.metrics import register_metric
from genbench.metrics._spec import Measurement
from genbench.metrics.neighbours import nearest_neighbours
from genbench.results import MetricResult

# Quantiles recorded for the NN-to-train distance distributions (summary for tables/plots).
SUMMARY_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95)

# Default flag thresholds, calibrated on `digits` (see the module docstring); each is recorded
# in the result's params together with the rule that uses it.
COPY_QUANTILE = 0.01  # copy threshold: this quantile of held-out -> train NN distances
COPY_FLAG = 0.10  # flag when more than this share of samples is under the copy threshold
AUTHENTICITY_FLAG_RATIO = 0.5  # flag when authentic share < ratio * held-out authentic share
MEDIAN_RATIO_FLAG = 0.5  # flag when median NN distance < ratio * held-out median
CT_FLAG = 3.0  # C_T < -3: copying, C_T > +3: underfitting (|Z| > 3 under the null is p < 0.003)
CT_MIN_FAKE_PER_CELL = 10  # default tau = 10 / m: a cell needs > 10 generated samples


@dataclass(frozen=True)
class TrainNeighbours:
    """Nearest-training-neighbour distances shared by the checks (computed once).

    Attributes
    ----------
    fake_dist, fake_index : (m,) float64 / int64 -- each generated sample's nearest training example.
    heldout_dist, heldout_index : (n,) -- the same for held-out real data.
    train_dist : (l,) float64 -- each training example's distance to its nearest *other* training
        example (authenticity's per-point radius).
    """

    fake_dist: np.ndarray
    fake_index: np.ndarray
    heldout_dist: np.ndarray
    heldout_index: np.ndarray
    train_dist: np.ndarray


def train_neighbours(fake: Any, train: Any, test: Any, *, device: Any = None,
                     batch_size: int = 1024) -> TrainNeighbours:
    """Exact nearest-training-neighbour distances of fake, held-out and training samples.

    Parameters
    ----------
    fake, train, test : arrays or tensors, (n, d) or (N, C, H, W), in the same space; ``test`` is
        held-out real data the model never saw.
    device : where the search runs (``"cpu"``, ``"cuda"``); results do not depend on it.

    Returns
    -------
    TrainNeighbours

    Examples
    --------
    >>> import numpy as np
    >>> tr = np.array([[0.0], [1.0], [3.0]])
    >>> nb = train_neighbours(np.array([[0.9]]), tr, np.array([[2.5]]))
    >>> nb.fake_index.tolist(), nb.train_dist.tolist()
    ([1], [1.0, 1.0, 2.0])
    """
    f, t, h = _inputs(fake, train, test, min_train=2)
    fd, fi = nearest_neighbours(f, t, k=1, device=device, batch_size=batch_size)
    # the held-out and train-to-train searches do not involve the samples: every generator scored
    # against the same data shares them (the train-to-train search dominates on MNIST: 50,000^2 pairs)
    key = (_digest(t), _digest(h))
    if key not in _DATA_SIDE:
        hd, hi = nearest_neighbours(h, t, k=1, device=device, batch_size=batch_size)
        td, _ = nearest_neighbours(t, t, k=1, exclude_self=True, device=device, batch_size=batch_size)
        while len(_DATA_SIDE) >= _DATA_SIDE_MAX:
            _DATA_SIDE.pop(next(iter(_DATA_SIDE)))
        _DATA_SIDE[key] = (hd[:, 0], hi[:, 0], td[:, 0])
    hd0, hi0, td0 = _DATA_SIDE[key]
    return TrainNeighbours(fd[:, 0], fi[:, 0], hd0.copy(), hi0.copy(), td0.copy())


#: held-out and train-to-train nearest neighbours by (train, held-out) content, in this process
_DATA_SIDE: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
_DATA_SIDE_MAX = 4
#: C_T's k-means partitions of the training data by (content, cells, restarts, seed), in this process
_PARTITIONS: dict[tuple[str, int, int, int], Any] = {}


def _digest(a: np.ndarray) -> str:
    """A content key of an array: shape, dtype and a hash of its bytes."""
    a = np.ascontiguousarray(a)
    return f"{a.shape}/{a.dtype}/" + hashlib.blake2b(a.view(np.uint8).reshape(-1), digest_size=16).hexdigest()


# --------------------------------------------------------------------------------------------
# the checks


@register_metric("nn-median-ratio", family="overfitting", needs="samples", direction=None,
                 shared={"neighbours": lambda inputs: _shared_neighbours(inputs)},
                 description="median NN-to-train distance of generated / held-out samples (1 = like fresh data)")
def nn_distance_ratio(fake: Any, train: Any, test: Any, *, flag_ratio: float = MEDIAN_RATIO_FLAG,
                      neighbours: TrainNeighbours | None = None, device: Any = None) -> Measurement:
    """Ratio of median nearest-training-neighbour distances, generated over held-out.

    ``ratio = median_i d(fake_i, train) / median_j d(heldout_j, train)``. Near 1: generated
    samples sit as far from the training set as fresh real data. Well below 1: samples hug
    training examples (copying); above 1: samples lie off the data (poor quality or
    underfitting). Neither direction is "better", so ``higher_is_better`` is None.

    Parameters
    ----------
    fake, train, test : (n, d) arrays or (N, C, H, W) images in the same space (test = held-out real data).
    flag_ratio : ``flagged`` when ``ratio < flag_ratio`` (default 0.5).
    neighbours : precomputed :func:`train_neighbours` (skips the search).

    Returns
    -------
    Measurement
        ``metric="nn-median-ratio"``; params hold both distance distributions' quantiles
        (``fake_quantiles``, ``heldout_quantiles``), ``flagged`` and the rule.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> train = rng.random((200, 8))
    >>> r = nn_distance_ratio(train[:50], train, rng.random((50, 8)))
    >>> r.value, r.params["flagged"]
    (0.0, True)
    """
    f, t, h = _inputs(fake, train, test, min_train=2)
    nb = neighbours or train_neighbours(f, t, h, device=device)
    med_h = float(np.median(nb.heldout_dist))
    if med_h <= 0:
        raise ValueError(
            "held-out data has a median distance of 0 to the training set (at least half of it duplicates "
            "training examples); use a held-out split disjoint from train."
        )
    ratio = float(np.median(nb.fake_dist)) / med_h
    return Measurement(
        ratio, n=_counts(f, t, h),
        params={
            "fake_quantiles": _quantiles(nb.fake_dist),
            "heldout_quantiles": _quantiles(nb.heldout_dist),
            "flag_ratio": flag_ratio,
            "flag_rule": f"copying when median fake NN distance < {flag_ratio} x held-out median",
            "flagged": bool(ratio < flag_ratio),
        },
    )


@register_metric("copy-rate", family="overfitting", needs="samples", direction="lower",
                 protocol_params={"quantile": "q"}, shared={"neighbours": lambda inputs: _shared_neighbours(inputs)},
                 description="share of generated samples closer to train than almost all held-out data")
def copy_rate(fake: Any, train: Any, test: Any, *, quantile: float = COPY_QUANTILE, flag_rate: float = COPY_FLAG,
              neighbours: TrainNeighbours | None = None, device: Any = None) -> Measurement:
    """Share of generated samples nearer to a training example than fresh data ever comes.

    The copy threshold is ``delta = quantile_q({d(h, train) : h in heldout})`` with q = 0.01 by
    default (numpy's linear interpolation): the distance to the training set under which only
    1% of real held-out data falls. A sample is a copy when ``d(fake_i, train) < delta``
    (strictly), so a model whose samples are distributed like held-out data has an expected
    copy rate of about q (``expected_null_rate`` in params). A low quantile rather than the
    minimum keeps the threshold from hinging on one held-out image that happens to duplicate
    a training image.

    Parameters
    ----------
    fake, train, test : (n, d) arrays or (N, C, H, W) images in the same space (test = held-out real data).
    quantile : q in (0, 1).
    flag_rate : ``flagged`` when the copy rate exceeds it (default 0.10, i.e. 10 x the null rate).
    neighbours, device : as in :func:`nn_distance_ratio`.

    Returns
    -------
    Measurement
        ``metric="copy-rate"`` in [0, 1], lower is better; params hold ``threshold``,
        ``quantile``, ``expected_null_rate``, ``n_copies``, ``flagged``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> train = rng.random((200, 8))
    >>> copy_rate(train[:50], train, rng.random((50, 8))).value
    1.0
    """
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1); got {quantile}.")
    if not quantile < flag_rate <= 1.0:
        raise ValueError(f"flag_rate must be in (quantile, 1] = ({quantile}, 1]; got {flag_rate}.")
    f, t, h = _inputs(fake, train, test, min_train=2)
    nb = neighbours or train_neighbours(f, t, h, device=device)
    delta = float(np.quantile(nb.heldout_dist, quantile))
    copies = nb.fake_dist < delta
    rate = float(copies.mean())
    return Measurement(
        rate, n=_counts(f, t, h),
        params={
            "threshold": delta,
            "threshold_rule": f"{quantile:g}-quantile of held-out -> train NN distances (numpy linear)",
            "quantile": quantile,
            "expected_null_rate": quantile,
            "n_copies": int(copies.sum()),
            "flag_rate": flag_rate,
            "flag_rule": f"copying when copy rate > {flag_rate:g}",
            "flagged": bool(rate > flag_rate),
        },
    )


@register_metric("authenticity", family="overfitting", needs="samples", direction="higher",
                 shared={"neighbours": lambda inputs: _shared_neighbours(inputs)},
                 description="share of samples farther from their NN training point than its own NN (Alaa 2022)")
def authenticity_score(fake: Any, train: Any, test: Any, *, flag_ratio: float = AUTHENTICITY_FLAG_RATIO,
                       neighbours: TrainNeighbours | None = None, device: Any = None) -> Measurement:
    """Authentic share (Alaa et al. 2022): samples not closer to a training point than its own neighbour.

    For a generated sample g with nearest training example t = NN_train(g), g is authentic when
    ``d(g, t) > d(t, NN_{train minus t}(t))``: the training point is closer to another training
    point than to g, so g is no closer to t than the data itself is. The score is the authentic
    share. Real data does not reach 1 (on ``digits`` pixels held-out data scores about 0.5), so
    the same share for the held-out data is computed and recorded, and the verdict is relative
    to it.

    Parameters
    ----------
    fake, train, test : (n, d) arrays or (N, C, H, W) images in the same space (test = held-out real data).
    flag_ratio : ``flagged`` when ``share < flag_ratio * heldout_share`` (default 0.5).
    neighbours, device : as in :func:`nn_distance_ratio`.

    Returns
    -------
    Measurement
        ``metric="authenticity"`` in [0, 1], higher is better; params hold ``heldout_share``,
        ``flagged`` and the rule.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> train = rng.random((200, 8))
    >>> authenticity_score(train[:50], train, rng.random((50, 8))).value
    0.0
    """
    f, t, h = _inputs(fake, train, test, min_train=2)
    nb = neighbours or train_neighbours(f, t, h, device=device)
    share = float((nb.fake_dist > nb.train_dist[nb.fake_index]).mean())
    held = float((nb.heldout_dist > nb.train_dist[nb.heldout_index]).mean())
    return Measurement(
        share, n=_counts(f, t, h),
        params={
            "heldout_share": held,
            "flag_ratio": flag_ratio,
            "flag_rule": f"copying when authentic share < {flag_ratio:g} x held-out authentic share",
            "flagged": bool(share < flag_ratio * held),
        },
    )


@register_metric("ct", family="overfitting", needs="samples", direction=None, protocol_params={"n_cells": "cells"},
                 description="Meehan et al. 2020 data-copying statistic C_T (<< 0 copying, >> 0 underfitting)")
def data_copying_ct(fake: Any, train: Any, test: Any, *, n_cells: int | None = None, tau: float | None = None,
                    seed: int = 0, flag: float = CT_FLAG, n_init: int = 3, device: Any = None) -> Measurement:
    """The data-copying test statistic C_T of Meehan et al. (2020).

    1. Partition the space into ``n_cells`` cells by k-means on the training data (seeded);
       generated and held-out samples go to their nearest centre.
    2. In each cell pi, take every sample's distance to its nearest *training point of that cell*
       (as in the reference code), L(Q_m) for generated and L(P_n) for held-out samples, and
       z-score the Mann-Whitney U of the generated sample,
       ``Z = (U - m n / 2) / sqrt(m n (m + n + 1) / 12)`` with U = #{(q, p): L(q) > L(p)}
       (+ 1/2 per tie; scipy's ``mannwhitneyu(...).statistic``). Z << 0: generated samples sit
       closer to the training data than held-out data does.
    3. ``C_T`` = mean of the cells' Z weighted by their held-out mass P_n(pi), over the cells whose
       generated mass Q_m(pi) exceeds ``tau``.

    Under the null (generated distributed like held-out data) each Z is about N(0, 1) and the
    weighted mean has variance <= 1, so ``C_T < -flag`` is flagged as copying (default 3) and
    ``C_T > flag`` is reported as underfitting.

    Parameters
    ----------
    fake, train, test : (n, d) arrays or (N, C, H, W) images in the same space (test = held-out real data).
    n_cells : k-means cells; default ``clip(n_heldout // 40, 2, 50)`` (about 40 held-out samples
        per cell; 8 cells for the 359 ``digits`` test images).
    tau : a cell is used when the share of generated samples in it is > tau; default
        ``10 / m`` (more than 10 generated samples, for the normal approximation of U).
    seed : k-means seed.
    flag : the |C_T| verdict threshold.
    n_init : k-means restarts.

    Returns
    -------
    Measurement
        ``metric="ct"``; params hold ``n_cells``, ``tau``, ``cells_used``, ``cell_z``,
        ``cell_weights``, ``dropped_heldout_mass`` (held-out mass of cells left out for too few
        generated samples: large values mean the model misses regions), ``flagged``, ``verdict``.

    Notes
    -----
    The reference code centres U at ``m n / 2 - 0.5`` (a fixed continuity shift); we use the
    plain null mean, a difference of at most ``0.5 / sd(U)`` per cell. Cells with no held-out
    sample carry zero weight and are skipped (the reference code raises).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> train = rng.random((400, 4))
    >>> r = data_copying_ct(train[:200], train, rng.random((200, 4)), n_cells=2)
    >>> r.value < -3, r.params["verdict"]
    (True, 'copying')
    """
    from scipy.stats import mannwhitneyu
    from sklearn.cluster import KMeans

    f, t, h = _inputs(fake, train, test, min_train=2)
    m, n = len(f), len(h)
    k = int(np.clip(n // 40, 2, 50)) if n_cells is None else int(n_cells)
    if not 1 <= k <= len(t):
        raise ValueError(f"n_cells must be in [1, {len(t)}] (the number of training samples); got {n_cells}.")
    if tau is None:
        tau = CT_MIN_FAKE_PER_CELL / m  # >= 1 when m <= 10: then no cell qualifies (error below)
    elif not 0.0 <= tau < 1.0:
        raise ValueError(f"tau must be in [0, 1); got {tau}.")
    tau = float(tau)

    t64 = t.astype(np.float64, copy=False)
    # the partition depends on the training data alone: every sample set scored against it shares it
    key = (_digest(t64), k, n_init, seed)
    if key not in _PARTITIONS:
        while len(_PARTITIONS) >= _DATA_SIDE_MAX:
            _PARTITIONS.pop(next(iter(_PARTITIONS)))
        _PARTITIONS[key] = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(t64)
    km = _PARTITIONS[key]
    cell_t = km.labels_
    cell_f = km.predict(f.astype(np.float64, copy=False))
    cell_h = km.predict(h.astype(np.float64, copy=False))

    used, z, weights, dropped = [], [], [], 0.0
    for c in range(k):
        tc, fc, hc = t[cell_t == c], f[cell_f == c], h[cell_h == c]
        if len(hc) == 0:
            continue  # zero held-out mass: zero weight in C_T
        if len(fc) / m <= tau:
            dropped += len(hc) / n
            continue
        lq, _ = nearest_neighbours(fc, tc, k=1, device=device)
        lp, _ = nearest_neighbours(hc, tc, k=1, device=device)
        u = float(mannwhitneyu(lq[:, 0], lp[:, 0]).statistic)
        mc, nc = len(fc), len(hc)
        z.append((u - mc * nc / 2.0) / math.sqrt(mc * nc * (mc + nc + 1) / 12.0))
        weights.append(nc / n)
        used.append(c)
    if not used:
        raise ValueError(
            f"no cell holds more than tau={tau:.3g} of the {m} generated samples and some held-out data; "
            "use fewer cells (n_cells) or more generated samples."
        )
    w = np.asarray(weights)
    ct = float(np.dot(w, z) / w.sum())
    verdict = "copying" if ct < -flag else "underfitting" if ct > flag else "ok"
    warnings = ()
    if dropped > 0:
        warnings = (f"{k - len(used)} of {k} cells hold too few generated samples (held-out mass "
                    f"{dropped:.3f} left out of C_T)",)
    return Measurement(
        ct, n=_counts(f, t, h), warnings=warnings, fixed={"cells": k},
        params={
            "n_cells": k,
            "tau": tau,
            "cells_used": len(used),
            "cell_ids": used,
            "cell_z": [float(v) for v in z],
            "cell_weights": [float(v) for v in w],
            "dropped_heldout_mass": float(dropped),
            "seed": seed,
            "flag": flag,
            "flag_rule": f"copying when C_T < -{flag:g}; underfitting when C_T > {flag:g}",
            "verdict": verdict,
            "flagged": verdict == "copying",
        },
    )


@register_metric("likelihood-gap", family="overfitting", needs="loglik", direction="lower", unit="nats",
                 uncertainty="stderr",
                 description="mean train log-likelihood minus mean test log-likelihood (nats per example)")
def likelihood_gap(train_ll: Any, test_ll: Any, *, kind: str | None = None, flag_z: float = 3.0) -> Measurement:
    """Train/test likelihood gap: ``mean(train_ll) - mean(test_ll)`` in nats per example.

    A model that memorises its training set assigns it more likelihood than unseen data, so a
    gap well above zero means overfitting. The standard error is Welch's
    ``sqrt(var_train / n_train + var_test / n_test)`` (ddof=1); ``z = gap / se`` is recorded and
    ``flagged`` is set when ``z > flag_z`` (a significant gap; read its size from the value).

    Parameters
    ----------
    train_ll, test_ll : (n_train,), (n_test,) per-example log-likelihoods in nats (from the
        likelihood estimators; the same estimator for both).
    kind : estimator kind, ``"exact"``, ``"lower-bound"`` or ``"estimate"`` (PROTOCOLS.md).
    flag_z : significance threshold.

    Returns
    -------
    Measurement
        ``metric="likelihood-gap"``, unit nats, lower is better, ``std`` the standard error.

    Examples
    --------
    >>> import numpy as np
    >>> r = likelihood_gap(np.array([-80.0, -82.0]), np.array([-90.0, -92.0]))
    >>> r.value, r.std
    (10.0, 1.4142135623730951)
    """
    tr = _loglik(train_ll, "train_ll")
    te = _loglik(test_ll, "test_ll")
    gap = float(tr.mean() - te.mean())
    se = math.sqrt(tr.var(ddof=1) / len(tr) + te.var(ddof=1) / len(te))
    z = gap / se if se > 0 else None
    flagged = gap > 0 and (z is None or z > flag_z)
    return Measurement(
        gap, std=se, std_kind="stderr", n={"train": len(tr), "test": len(te)}, kind=kind,
        params={
            "train_mean": float(tr.mean()),
            "test_mean": float(te.mean()),
            "z": z,
            "flag_z": flag_z,
            "flag_rule": f"overfitting when gap / stderr > {flag_z:g}",
            "flagged": bool(flagged),
        },
    )


def evaluate_overfitting(
    fake: Any,
    train: Any,
    test: Any,
    *,
    space_name: str = "pixels",
    heldout_split: str | None = None,
    seed: int = 0,
    n_cells: int | None = None,
    tau: float | None = None,
    copy_quantile: float = COPY_QUANTILE,
    copy_flag: float = COPY_FLAG,
    authenticity_flag_ratio: float = AUTHENTICITY_FLAG_RATIO,
    median_ratio_flag: float = MEDIAN_RATIO_FLAG,
    ct_flag: float = CT_FLAG,
    device: Any = None,
) -> list[MetricResult]:
    """All sample-based memorisation checks at once, sharing one nearest-neighbour search.

    Parameters
    ----------
    fake : (m, d) array or (m, C, H, W) images -- generated samples.
    train : the model's training data, same space.
    test : held-out real data the model never saw (the test split; or val when test is what is scored).
    space_name : names the space in the protocols, e.g. ``"pixels"`` or ``"domain-digits"``.
    seed, n_cells, tau : C_T's k-means seed, cell count and generated-mass threshold.
    copy_quantile, copy_flag, authenticity_flag_ratio, median_ratio_flag, ct_flag : thresholds
        (see each check); recorded in every result's params.
    device : where the NN search runs.

    Returns
    -------
    list of MetricResult
        ``nn-median-ratio``, ``copy-rate``, ``authenticity``, ``ct``; each with
        ``params["flagged"]`` (True = looks like copying).

    Examples
    --------
    >>> from genbench.data import load_dataset
    >>> ds = load_dataset("digits")
    >>> rows = evaluate_overfitting(ds.train.x[:359], ds.train.x, ds.test.x, heldout_split="test")
    >>> [(str(r.protocol), r.params["flagged"]) for r in rows][1]
    ('copy-rate@pixels/n=fake:359,train:1258,heldout:359/ref=train/heldout=test/q=0.01', True)
    """
    from genbench.metrics._evaluator import MetricInputs, evaluate_metrics

    f, t, h = _inputs(fake, train, test, min_train=2)
    inputs = MetricInputs(space_name, fake=f, train=t, heldout=h, ref="train", heldout_split=heldout_split,
                          device=device)
    return evaluate_metrics(inputs, family="overfitting", seed=seed, device=device, settings={
        "nn-median-ratio": {"flag_ratio": median_ratio_flag},
        "copy-rate": {"quantile": copy_quantile, "flag_rate": copy_flag},
        "authenticity": {"flag_ratio": authenticity_flag_ratio},
        "ct": {"n_cells": n_cells, "tau": tau, "flag": ct_flag}})


# --------------------------------------------------------------------------------------------
# helpers


def _inputs(fake: Any, train: Any, test: Any, *, min_train: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    f = check_rows(fake, "fake")
    t = check_rows(train, "train", min_n=min_train)
    h = check_rows(test, "test")
    for name, a in (("fake", f), ("test", h)):
        if a.shape[1] != t.shape[1]:
            raise ValueError(
                f"{name} and train have {a.shape[1]} and {t.shape[1]} values per sample; "
                "compute both in the same space (same image shape or feature extractor)."
            )
    return f, t, h


def _loglik(a: Any, name: str) -> np.ndarray:
    x = np.asarray(a.detach().cpu().numpy() if hasattr(a, "detach") else a, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D, one log-likelihood per example; got shape {x.shape}.")
    check_n(len(x), 2, name, why="for a standard error")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} has {int((~np.isfinite(x)).sum())} non-finite values; check the estimator.")
    return x


def _shared_neighbours(inputs: Any) -> TrainNeighbours:
    """One nearest-training-neighbour search shared by the checks of one evaluation."""
    return train_neighbours(inputs.fake, inputs.train, inputs.heldout, device=inputs.device)


def _counts(f: np.ndarray, t: np.ndarray, h: np.ndarray) -> dict[str, int]:
    return {"fake": len(f), "train": len(t), "heldout": len(h)}


def _quantiles(d: np.ndarray) -> dict[str, float]:
    out = {"min": float(d.min())}
    out.update({f"p{round(q * 100):02d}": float(np.quantile(d, q)) for q in SUMMARY_QUANTILES})
    return out
