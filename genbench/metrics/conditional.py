"""Conditional family: does a class-conditional generator give the class it was asked for?

- ``conditional-accuracy``: the share of samples that the dataset's domain classifier assigns to
  the class requested for them (chance: 1 / n_classes for a generator that ignores its label);
- ``class-fid``, ``class-precision-recall``: FID, precision and recall of each class's samples
  against that class's real rows (features of the domain classifier), at equal n per class, averaged
  over classes, beside their real-vs-real rows;
- ``cas``: the Classification Accuracy Score (Ravuri & Vinyals, "Classification accuracy score
  for conditional generative models", NeurIPS 2019): a classifier trained on generated, labelled
  samples and tested on real test data. Here the classifier is a multinomial logistic regression
  on standardised pixels (scikit-learn), small enough for CPU runs (the paper trains a ResNet);
  :func:`evaluate_conditional` reports beside it the same classifier trained on the real
  training split at the same n (``cas_real``): the score of a perfect conditional model.

Both are registered metric specs (family ``conditional``): ``conditional-accuracy`` needs
``labelled_probs`` (the samples' class probabilities and the classes requested for them), ``cas``
needs ``labelled`` rows (real test rows and samples, each with its classes); the one evaluator,
:func:`genbench.metrics.evaluate_metrics`, makes their rows, ``cas_real`` included (the same spec
on real training rows, suffixed).

Generators are asked for labels explicitly: ``gen.sample(n, seed=s, labels=y)``, with ``y``
balanced over the classes, so the requested labels are known without any state on the generator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from genbench._validation import check_feature_pair, check_finite
from genbench.metrics import Measurement, register_metric
from genbench.results import MetricResult

__all__ = ["classification_accuracy_score", "conditional_accuracy", "evaluate_conditional", "is_conditional",
           "per_class_fid", "per_class_precision_recall"]


@register_metric("conditional-accuracy", family="conditional", needs="labelled_probs", direction="higher",
                 outputs=("conditional_accuracy",))
def conditional_accuracy(fake_probs: Any, labels: Any) -> Measurement:
    """Share of samples whose most probable class (under a classifier) is the class requested for them.

    Parameters
    ----------
    fake_probs : (N, C) class probabilities of the samples.
    labels : (N,) the classes the samples were generated for.

    Returns
    -------
    Measurement: the share in [0, 1] (higher is better), std its binomial standard error.

    Examples
    --------
    >>> import numpy as np
    >>> conditional_accuracy(np.eye(3)[[0, 1, 2, 0]], labels=[0, 1, 2, 1]).value
    0.75
    """
    p, y = np.asarray(fake_probs, dtype=np.float64), np.asarray(labels).reshape(-1)
    check_finite(p, "fake_probs")
    if len(p) != len(y):
        raise ValueError(f"labels has {len(y)} entries for {len(p)} samples")
    hit = (p.argmax(1) == y).astype(np.float64)
    acc = float(hit.mean())
    return Measurement(acc, std=float(np.sqrt(acc * (1 - acc) / len(hit))), std_kind="stderr",
                       params={"chance": 1.0 / p.shape[1]}, n={"fake": len(y)})


@register_metric("cas", family="conditional", needs="labelled", direction="higher")
def classification_accuracy_score(real: Any, fake: Any, real_labels: Any, fake_labels: Any, *,
                                  C: float = 1.0) -> Measurement:
    """Accuracy on real data (``real``, ``real_labels``) of a logistic regression trained on ``fake``, ``fake_labels``.

    Parameters
    ----------
    real, fake : (N, D) real test rows and generated rows (flattened pixels).
    fake_labels, real_labels : their classes.
    C : inverse L2 penalty of the logistic regression.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.r_[np.zeros((10, 2)), np.ones((10, 2))]; y = [0] * 10 + [1] * 10
    >>> classification_accuracy_score(x, x, fake_labels=y, real_labels=y).value
    1.0
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    real, fake = check_feature_pair(real, fake, metric="cas")
    yf, yr = np.asarray(fake_labels).reshape(-1), np.asarray(real_labels).reshape(-1)
    warn: tuple[str, ...] = ()
    if len(np.unique(yf)) < 2:
        return Measurement(float((yr == yf[0]).mean()), warnings=("one class in the generated labels",))
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=C))
    clf.fit(fake, yf)
    return Measurement(float((clf.predict(real) == yr).mean()), warnings=warn,
                       params={"classifier": "logistic regression on standardised pixels", "C": C},
                       n={"real": len(yr), "fake": len(yf)})


def _class_pairs(real: Any, fake: Any, real_labels: Any, fake_labels: Any, *, seed: int,
                 min_n: int) -> tuple[dict[int, tuple[np.ndarray, np.ndarray]], tuple[str, ...]]:
    """Per class, real and generated rows at equal n (the smaller count; the larger set subsampled without
    replacement, seeded), for the classes with at least ``min_n`` rows on both sides."""
    real, fake = check_feature_pair(real, fake, metric="per-class metrics")
    yr, yf = np.asarray(real_labels).reshape(-1), np.asarray(fake_labels).reshape(-1)
    if len(yr) != len(real) or len(yf) != len(fake):
        raise ValueError(f"labels: {len(yr)} real labels for {len(real)} rows, {len(yf)} sample labels for "
                         f"{len(fake)} samples; give one class per row")
    rng = np.random.default_rng(seed)
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    skipped = []
    for c in np.union1d(np.unique(yr), np.unique(yf)):
        ir, jf = np.flatnonzero(yr == c), np.flatnonzero(yf == c)
        n = min(len(ir), len(jf))
        if n < min_n:
            skipped.append(f"{int(c)} ({len(ir)} real, {len(jf)} generated)")
            continue
        out[int(c)] = (real[np.sort(rng.choice(ir, n, replace=False))], fake[np.sort(rng.choice(jf, n, replace=False))])
    if not out:
        raise ValueError(f"no class has {min_n} real and {min_n} generated rows; per-class metrics need at least "
                         f"that many of each class (classes: {', '.join(skipped)})")
    warn = (f"classes left out, fewer than {min_n} rows on a side: {', '.join(skipped)}",) if skipped else ()
    return out, warn


def _over_classes(values: dict[int, float], n: dict[int, int], warn: tuple[str, ...], what: str) -> Measurement:
    v = np.array(list(values.values()))
    note = (f"per-class {what} at equal n per class (n = {min(n.values())}..{max(n.values())}): at small n these "
            "are biased (FID up, recall down); read them beside the real-vs-real row of the same protocol")
    return Measurement(float(v.mean()), std=float(v.std(ddof=1)) if len(v) > 1 else None, std_kind="classes",
                       params={"per_class": {str(c): float(x) for c, x in values.items()},
                               "n_per_class": {str(c): int(k) for c, k in n.items()}},
                       warnings=(*warn, note), n={"real": sum(n.values()), "fake": sum(n.values())})


@register_metric("class-fid", family="conditional", needs="labelled", direction="lower", outputs=("fid_per_class",))
def per_class_fid(real: Any, fake: Any, real_labels: Any, fake_labels: Any, *, seed: int = 0) -> Measurement:
    """FID between the real rows and the samples of each class (features), at equal n per class; mean over classes.

    The std is the spread over classes (``std_kind="classes"``); ``params["per_class"]`` has each class's FID.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0); y = np.arange(400) % 2
    >>> x = rng.normal(size=(400, 2)) + 5 * y[:, None]
    >>> per_class_fid(x, x, y, y).value < 1e-9
    True
    """
    from genbench.metrics.quality import frechet_distance

    pairs, warn = _class_pairs(real, fake, real_labels, fake_labels, seed=seed, min_n=2)
    return _over_classes({c: frechet_distance(r, f) for c, (r, f) in pairs.items()},
                         {c: len(r) for c, (r, _) in pairs.items()}, warn, "FID")


@register_metric("class-precision-recall", family="conditional", needs="labelled", direction="higher",
                 outputs=("precision_per_class", "recall_per_class"), protocol_params={"k": "k"})
def per_class_precision_recall(real: Any, fake: Any, real_labels: Any, fake_labels: Any, *, k: int = 3,
                               seed: int = 0) -> dict[str, Measurement]:
    """Improved precision and recall (k-NN balls) per class at equal n per class; means over classes.

    A conditional model can score well on pooled precision/recall while drawing the wrong class's
    images for a label; per class, each class's samples are compared with that class's real rows.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0); y = np.arange(400) % 2
    >>> x = rng.normal(size=(400, 2)) + 5 * y[:, None]
    >>> out = per_class_precision_recall(x, x, y, y)
    >>> out["precision_per_class"].value, out["recall_per_class"].value
    (1.0, 1.0)
    """
    from genbench.metrics.quality import precision_recall

    pairs, warn = _class_pairs(real, fake, real_labels, fake_labels, seed=seed, min_n=k + 2)
    pr = {c: precision_recall(r, f, k=k) for c, (r, f) in pairs.items()}
    n = {c: len(r) for c, (r, _) in pairs.items()}
    return {"precision_per_class": _over_classes({c: v[0] for c, v in pr.items()}, n, warn, "precision"),
            "recall_per_class": _over_classes({c: v[1] for c, v in pr.items()}, n, warn, "recall")}


def is_conditional(gen: Any) -> bool:
    """Whether ``gen`` takes requested classes: an ``n_classes`` attribute and ``sample(..., labels=...)``."""
    import inspect

    try:
        return bool(getattr(gen, "n_classes", None)) and "labels" in inspect.signature(gen.sample).parameters
    except (TypeError, ValueError):
        return False


def evaluate_conditional(gen: Any, dataset: Any, *, n: int, seed: int = 0,
                         class_probs: Callable[[torch.Tensor], Any] | None = None,
                         features: Callable[[torch.Tensor], Any] | None = None,
                         space: str = "classifier") -> list[MetricResult]:
    """Conditional rows for a class-conditional generator on a labelled image dataset.

    Draws ``n`` samples for balanced requested labels (seeded); ``class_probs(x) -> (N, C)`` (the
    dataset's domain classifier, given by the caller, whose id is ``space``) gives
    ``conditional_accuracy``; ``features(x) -> (N, D)`` (the same extractor) gives the per-class FID,
    precision and recall against the test split, beside their real-vs-real rows (``fid_per_class_real``...:
    real training rows of each class against the test rows, at the same n per class); CAS is computed
    on the test split, beside ``cas_real`` (the same classifier trained on ``n`` real training examples).

    Returns
    -------
    list of MetricResult (``conditional_accuracy`` when ``class_probs`` is given, the per-class rows when
    ``features`` is given, ``cas``, ``cas_real``); empty when the dataset has no labels or no train/test split.
    """
    from genbench.metrics._evaluator import MetricInputs, evaluate_metrics

    info = dataset.info
    if not info.n_classes or not {"train", "test"} <= set(info.split_sizes):
        return []
    labels = torch.arange(n) % int(info.n_classes)
    with torch.no_grad():
        fake = gen.sample(n, seed=seed, labels=labels).detach().float().cpu()
    probs = class_probs(fake) if class_probs is not None else None
    # the specs whose inputs are given run: accuracy under the classifier (its space), then CAS on pixels
    rows = [] if probs is None else evaluate_metrics(
        MetricInputs(space, fake_probs=probs, fake_labels=labels.numpy()), family="conditional", seed=seed)
    te, tr = dataset.split("test"), dataset.split("train")
    if features is not None:
        per_class = ["fid_per_class", "precision_per_class", "recall_per_class"]
        real_f = np.asarray(features(te.x))
        labelled = MetricInputs(space, real=real_f, fake=np.asarray(features(fake)), real_labels=te.y.numpy(),
                                fake_labels=labels.numpy(), ref="test")
        rows += evaluate_metrics(labelled, metrics=per_class, seed=seed)
        rows += evaluate_metrics(
            MetricInputs(space, real=real_f, fake=np.asarray(features(tr.x)), real_labels=te.y.numpy(),
                         fake_labels=tr.y.numpy(), ref="test"), metrics=per_class, seed=seed, suffix="_real",
            note="real vs real: the training split's rows of each class against the test split's, at the same n per "
                 "class (the value a perfect conditional model reaches)")

    def flat(a: torch.Tensor) -> np.ndarray:
        return a.reshape(len(a), -1).numpy()

    real_x, real_y = flat(te.x), te.y.numpy()
    rows += evaluate_metrics(MetricInputs("pixels", real=real_x, fake=flat(fake), real_labels=real_y,
                                          fake_labels=labels.numpy(), ref="test"), metrics=["cas"], seed=seed)
    # the ceiling: the same classifier trained on real training images, as many as the samples
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.permutation(len(tr.x))[: min(n, len(tr.x))])
    rows += evaluate_metrics(MetricInputs("pixels", real=real_x, fake=flat(tr.x)[idx], real_labels=real_y,
                                          fake_labels=tr.y.numpy()[idx], ref="test"), metrics=["cas"], seed=seed,
                             suffix="_real", note="reference: the same classifier trained on real training images "
                                                  "(the value a perfect model reaches)")
    return rows
