"""Mode coverage: modes captured on synthetic 2-D mixtures, class coverage on labelled image data.

On the ``mixture-ring`` (8 modes) and ``mixture-grid`` (25 modes) data the true modes are known,
so mode dropping is counted directly, as in the Unrolled-GAN / VEEGAN / PacGAN experiments:

- a sample is **high quality** when it lies within 3 standard deviations of its nearest mode
  centre (VEEGAN, Srivastava et al. 2017, Sec. 5.1);
- a mode is **captured** when at least ``min_count`` high-quality samples have it as nearest
  centre; VEEGAN's rule, and our default, is ``min_count = 1`` ("the number of mixture
  components whose mean is nearest to at least one high quality sample"). A stricter count
  can be asked for (``min_count=20`` of 2,500 samples is a fifth of a grid mode's expected 100);
- the **mode histogram** is the share of *all* samples whose nearest centre is each mode, and
  its KL divergence from the uniform mode distribution, ``KL(p || u) = log M - H(p)``, is
  finite even when modes are empty (the reverse direction would be infinite).

On image data the domain classifier's argmax gives a class histogram: the same KL from uniform,
and the number of classes that receive a reasonable share ("does the model drop digits?").

References
----------
Metz et al. (2017), "Unrolled Generative Adversarial Networks", ICLR.
Srivastava et al. (2017), "VEEGAN: Reducing Mode Collapse in GANs using Implicit Variational
Learning", NeurIPS.
Lin et al. (2018), "PacGAN: The power of two samples in generative adversarial networks", NeurIPS.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from genbench._validation import as_numpy, check_features, check_n
from genbench.metrics import register_metric
from genbench.metrics._spec import Measurement
from genbench.results import MetricResult

HQ_STD = 3.0  # "high quality": within 3 std of the nearest mode (VEEGAN)
MODE_KL_FLAG = 0.05  # nats; dropping one of 8 ring modes gives log(8/7) = 0.134, half of them log 2
CLASS_MIN_SHARE = 0.2  # a class counts as covered with >= 1/5 of its uniform share of samples
CLASS_KL_FLAG = 0.05  # nats; real digits test labels score 0.0078, dropping half the digits log 2


def mode_assignments(fake: Any, centres: Any, std: float, *, hq_std: float = HQ_STD) -> tuple[np.ndarray, np.ndarray]:
    """Nearest mode of each sample and whether it is high quality (within ``hq_std * std``).

    Parameters
    ----------
    fake : (n, D) points.
    centres : (M, D) mode centres.
    std : the modes' isotropic standard deviation.

    Returns
    -------
    nearest : (n,) int64, index of the nearest centre (ties to the lower index).
    high_quality : (n,) bool.

    Examples
    --------
    >>> import numpy as np
    >>> nearest, hq = mode_assignments(np.array([[0.1, 0.0], [5.0, 5.0]]), np.array([[0.0, 0.0], [4.0, 4.0]]), 0.1)
    >>> nearest.tolist(), hq.tolist()
    ([0, 1], [True, False])
    """
    x, c, std = _mixture_inputs(fake, centres, std)
    d2 = ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)  # (n, M): M is small (8 or 25)
    nearest = d2.argmin(1)
    hq = np.sqrt(d2[np.arange(len(x)), nearest]) <= hq_std * std
    return nearest.astype(np.int64), hq


@register_metric("modes-captured", family="coverage", needs="mixture", direction="higher",
                 protocol_params={"hq_std": "hq_std", "min_count": "min"},
                 description="mixture modes with at least min_count high-quality samples (VEEGAN rule)")
def modes_captured(fake: Any, centres: Any, std: float, *, min_count: int = 1, hq_std: float = HQ_STD) -> Measurement:
    """Number of mixture modes captured: modes nearest to >= ``min_count`` high-quality samples.

    Parameters
    ----------
    fake : (n, D) generated points.
    centres : (M, D) true mode centres; std : their standard deviation.
    min_count : high-quality samples a mode needs (VEEGAN: 1).
    hq_std : the high-quality radius in standard deviations.

    Returns
    -------
    Measurement
        value in 0..M, higher is better; params hold ``n_modes``, ``hq_counts`` (per mode),
        ``missing_modes`` and ``flagged`` (a mode is missing).

    Examples
    --------
    >>> import numpy as np
    >>> c = np.array([[0.0, 0.0], [4.0, 0.0]])
    >>> modes_captured(np.zeros((10, 2)), c, 0.1).value  # every sample on mode 0
    1.0
    """
    nearest, hq = mode_assignments(fake, centres, std, hq_std=hq_std)
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1; got {min_count}.")
    m = len(np.asarray(centres))
    hq_counts = np.bincount(nearest[hq], minlength=m)
    captured = hq_counts >= min_count
    return Measurement(
        float(captured.sum()),
        params={
            "n_modes": m,
            "min_count": min_count,
            "hq_std": hq_std,
            "hq_counts": hq_counts.tolist(),
            "missing_modes": np.flatnonzero(~captured).tolist(),
            "rule": f"a mode is captured when >= {min_count} samples within {hq_std:g} std have it as nearest centre",
            "flagged": bool(not captured.all()),
        },
    )


@register_metric("hq-share", family="coverage", needs="mixture", direction="higher",
                 protocol_params={"hq_std": "hq_std"},
                 description="share of samples within 3 std of their nearest mixture mode")
def high_quality_share(fake: Any, centres: Any, std: float, *, hq_std: float = HQ_STD) -> Measurement:
    """Share of generated points within ``hq_std`` standard deviations of their nearest mode.

    For samples of the true mixture the share is ``P(chi2_D <= hq_std^2)`` (modes far apart
    compared with std): 1 - exp(-4.5) = 0.9889 in 2-D with 3 std, recorded as
    ``expected_true_share``.

    Parameters
    ----------
    fake : (n, D) points; centres : (M, D); std : mode std; hq_std : radius in std.

    Returns
    -------
    Measurement
        value in [0, 1], higher is better.

    Examples
    --------
    >>> import numpy as np
    >>> high_quality_share(np.array([[0.0, 0.0], [1.0, 1.0]]), np.zeros((1, 2)), 0.1).value
    0.5
    """
    from scipy.stats import chi2

    nearest, hq = mode_assignments(fake, centres, std, hq_std=hq_std)
    dim = np.asarray(centres).shape[1]
    return Measurement(
        float(hq.mean()),
        params={"hq_std": hq_std, "n_high_quality": int(hq.sum()),
                "expected_true_share": float(chi2.cdf(hq_std**2, dim))},
    )


@register_metric("mode-kl", family="coverage", needs="mixture", direction="lower", unit="nats",
                 description="KL(mode histogram || uniform) in nats, all samples assigned to the nearest mode")
def mode_kl(fake: Any, centres: Any, std: float, *, flag: float = MODE_KL_FLAG) -> Measurement:
    """KL divergence of the generated mode histogram from the uniform mode distribution, in nats.

    Every sample counts for its nearest centre; ``KL(p || u) = sum_i p_i log(M p_i)`` lies in
    [0, log M]: 0 for perfectly balanced modes, ``log(M / K)`` when K of M modes get equal shares
    and the rest none (log 2 = 0.693 for half the modes). For true samples its expectation is
    about ``(M - 1) / (2 n)`` (recorded as ``expected_null_kl``).

    Parameters
    ----------
    fake : (n, D) points; centres : (M, D); std : mode std (only validated here).
    flag : ``flagged`` when KL > flag (default 0.05 nats).

    Returns
    -------
    Measurement
        value >= 0, lower is better; params hold the ``histogram`` (counts per mode).

    Examples
    --------
    >>> import numpy as np
    >>> c = np.array([[0.0, 0.0], [4.0, 0.0]])
    >>> round(mode_kl(np.zeros((10, 2)), c, 0.1).value, 4)  # all in one of two modes: log 2
    0.6931
    """
    nearest, _ = mode_assignments(fake, centres, std)
    m = len(np.asarray(centres))
    counts = np.bincount(nearest, minlength=m)
    kl = _kl_from_uniform(counts)
    return Measurement(
        kl, warnings=_small_sample_warning(len(nearest), m, flag),
        params={"histogram": counts.tolist(), "expected_null_kl": (m - 1) / (2 * len(nearest)), "flag": flag,
                "flag_rule": f"mode imbalance when KL > {flag:g} nats", "flagged": bool(kl > flag)},
    )


def evaluate_mode_coverage(fake: Any, dataset: Any, *, min_count: int = 1, hq_std: float = HQ_STD,
                           kl_flag: float = MODE_KL_FLAG) -> list[MetricResult]:
    """Modes captured, high-quality share and mode-histogram KL on a synthetic mixture.

    Parameters
    ----------
    fake : (n, 2) array or tensor of generated points.
    dataset : a :class:`genbench.data.MixtureDataset` (``mixture-ring``, ``mixture-grid``),
        whose ``centres`` and ``std`` define the modes.
    min_count, hq_std, kl_flag : see :func:`modes_captured`, :func:`mode_kl`.

    Returns
    -------
    list of MetricResult
        ``modes-captured``, ``hq-share``, ``mode-kl``.

    Examples
    --------
    >>> from genbench.data import load_dataset
    >>> ring = load_dataset("mixture-ring")
    >>> [r.value for r in evaluate_mode_coverage(ring.sample(2500, seed=0), ring)][0]
    8.0
    """
    centres = getattr(dataset, "centres", None)
    if centres is None:
        raise ValueError(
            f"evaluate_mode_coverage needs a mixture dataset with known centres (mixture-ring, mixture-grid); "
            f"got {type(dataset).__name__}. For image data use class_coverage on classifier probabilities."
        )
    from genbench.metrics._evaluator import MetricInputs, evaluate_metrics

    inputs = MetricInputs(dataset.name, fake=as_numpy(fake, dtype=np.float64), centres=centres, std=dataset.std)
    return evaluate_metrics(inputs, family="coverage", settings={
        "modes-captured": {"min_count": min_count, "hq_std": hq_std}, "hq-share": {"hq_std": hq_std},
        "mode-kl": {"flag": kl_flag}})


@register_metric("class-coverage", family="coverage", needs="probs", outputs=("classes-covered", "class-kl"),
                 direction={"classes-covered": "higher", "class-kl": "lower"}, protocol_params={"min_share": "min"},
                 description="classes covered and KL(class histogram || uniform) from classifier argmax")
def class_coverage(probs: Any, *, min_share: float = CLASS_MIN_SHARE,
                   kl_flag: float = CLASS_KL_FLAG) -> tuple[Measurement, Measurement]:
    """Class histogram of generated images under the domain classifier: classes covered, KL from uniform.

    Each sample counts for its argmax class (ties to the lower class). A class is **covered** when
    it receives at least ``min_share`` of its uniform share, i.e. ``count >= min_share * n / C``
    (default a fifth): a classifier's mistakes scatter a few predictions into every class, so
    "at least one" would never see a dropped digit. ``class-kl`` is ``KL(p || uniform)`` in nats.
    Both assume balanced classes, as in MNIST-like data (digits labels: KL 0.0078 on test, 0.0008 on train).

    Parameters
    ----------
    probs : (n, C) class probabilities (rows summing to 1) from the domain classifier.
    min_share : covered-class threshold as a share of n / C.
    kl_flag : ``flagged`` when KL > kl_flag (default 0.05 nats).

    Returns
    -------
    (Measurement, Measurement)
        ``classes-covered`` (0..C, higher is better; flagged when a class is missing) and
        ``class-kl`` (nats, lower is better); both keep the ``histogram`` in params.

    Examples
    --------
    >>> import numpy as np
    >>> probs = np.eye(10)[np.arange(100) % 5]  # only digits 0-4
    >>> [r.value for r in class_coverage(probs)]
    [5.0, 0.6931471805599453]
    """
    p = check_features(probs, "probs", min_n=1)
    if (p < 0).any() or not np.allclose(p.sum(1), 1.0, atol=1e-3):
        raise ValueError(
            "probs must be class probabilities: non-negative rows summing to 1 "
            f"(row sums range {p.sum(1).min():.4g}..{p.sum(1).max():.4g}); apply softmax to logits first."
        )
    if not 0.0 < min_share <= 1.0:
        raise ValueError(f"min_share must be in (0, 1]; got {min_share}.")
    n, c = p.shape
    counts = np.bincount(p.argmax(1), minlength=c)
    need = min_share * n / c
    covered = counts >= need
    kl = _kl_from_uniform(counts)
    hist = counts.tolist()
    return (
        Measurement(float(covered.sum()), params={
            "n_classes": c, "histogram": hist, "min_share": min_share, "min_count": need,
            "missing_classes": np.flatnonzero(~covered).tolist(),
            "rule": f"a class is covered with >= {min_share:g} x n / C argmax predictions",
            "flagged": bool(not covered.all())}),
        Measurement(kl, unit="nats", warnings=_small_sample_warning(n, c, kl_flag), params={
            "n_classes": c, "histogram": hist, "expected_null_kl": (c - 1) / (2 * n), "flag": kl_flag,
            "flag_rule": f"class imbalance when KL > {kl_flag:g} nats", "flagged": bool(kl > kl_flag)}),
    )


# --------------------------------------------------------------------------------------------


def _mixture_inputs(fake: Any, centres: Any, std: float) -> tuple[np.ndarray, np.ndarray, float]:
    x = check_features(fake, "fake", min_n=1)
    c = as_numpy(centres, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != x.shape[1]:
        raise ValueError(
            f"centres must be (M, {x.shape[1]}) to match fake points of dimension {x.shape[1]}; got {c.shape}."
        )
    check_n(len(c), 1, "centres")
    s = float(std) if np.ndim(std) == 0 else math.nan
    if not (math.isfinite(s) and s > 0):
        raise ValueError(f"std must be a positive finite number; got {std!r}.")
    return x, c, s


def _kl_from_uniform(counts: np.ndarray) -> float:
    """KL(p || uniform) in nats for a histogram, with 0 log 0 = 0."""
    p = counts / counts.sum()
    nz = p > 0
    # clip: rounding can leave a tiny negative for an exactly uniform histogram
    return max(0.0, float(np.sum(p[nz] * np.log(p[nz] * len(p)))))


def _small_sample_warning(n: int, m: int, flag: float) -> tuple[str, ...]:
    null = (m - 1) / (2 * n)
    if null > flag / 5:
        return (f"n={n} is small for {m} bins: sampling alone gives KL ~ {null:.3g}, near the flag {flag:g}",)
    return ()
