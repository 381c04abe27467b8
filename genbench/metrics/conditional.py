"""Conditional family: does a class-conditional generator give the class it was asked for?

- ``conditional-accuracy``: the share of samples that the dataset's domain classifier assigns to
  the class requested for them (chance: 1 / n_classes for a generator that ignores its label);
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

__all__ = ["classification_accuracy_score", "conditional_accuracy", "evaluate_conditional", "is_conditional"]


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


def is_conditional(gen: Any) -> bool:
    """Whether ``gen`` takes requested classes: an ``n_classes`` attribute and ``sample(..., labels=...)``."""
    import inspect

    try:
        return bool(getattr(gen, "n_classes", None)) and "labels" in inspect.signature(gen.sample).parameters
    except (TypeError, ValueError):
        return False


def evaluate_conditional(gen: Any, dataset: Any, *, n: int, seed: int = 0,
                         class_probs: Callable[[torch.Tensor], Any] | None = None,
                         space: str = "classifier") -> list[MetricResult]:
    """Conditional rows for a class-conditional generator on a labelled image dataset.

    Draws ``n`` samples for balanced requested labels (seeded); ``class_probs(x) -> (N, C)`` (the
    dataset's domain classifier, given by the caller, whose id is ``space``) gives
    ``conditional_accuracy``; CAS is computed on the test split, beside ``cas_real`` (the same
    classifier trained on ``n`` real training examples).

    Returns
    -------
    list of MetricResult (``conditional_accuracy`` when ``class_probs`` is given, ``cas``,
    ``cas_real``); empty when the dataset has no labels or no train/test split.
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

    def flat(a: torch.Tensor) -> np.ndarray:
        return a.reshape(len(a), -1).numpy()

    real_x, real_y = flat(te.x), te.y.numpy()
    rows += evaluate_metrics(MetricInputs("pixels", real=real_x, fake=flat(fake), real_labels=real_y,
                                          fake_labels=labels.numpy(), ref="test"), family="conditional", seed=seed)
    # the ceiling: the same classifier trained on real training images, as many as the samples
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.permutation(len(tr.x))[: min(n, len(tr.x))])
    rows += evaluate_metrics(MetricInputs("pixels", real=real_x, fake=flat(tr.x)[idx], real_labels=real_y,
                                          fake_labels=tr.y.numpy()[idx], ref="test"), metrics=["cas"], seed=seed,
                             suffix="_real", note="reference: the same classifier trained on real training images "
                                                  "(the value a perfect model reaches)")
    return rows
