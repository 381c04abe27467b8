"""Conditional family: does a class-conditional generator give the class it was asked for?

- ``conditional-accuracy``: the share of samples that the dataset's domain classifier assigns to
  the class requested for them (chance: 1 / n_classes for a generator that ignores its label);
- ``cas``: the Classification Accuracy Score (Ravuri & Vinyals, "Classification accuracy score
  for conditional generative models", NeurIPS 2019): a classifier trained on generated, labelled
  samples and tested on real test data. Here the classifier is a multinomial logistic regression
  on standardised pixels (scikit-learn), small enough for CPU runs (the paper trains a ResNet);
  :func:`evaluate_conditional` reports beside it the same classifier trained on the real
  training split at the same n (``cas_real``): the score of a perfect conditional model.

Generators are asked for labels explicitly: ``gen.sample(n, seed=s, labels=y)``, with ``y``
balanced over the classes, so the requested labels are known without any state on the generator.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from genbench.metrics import Measurement, register_metric

__all__ = ["classification_accuracy_score", "conditional_accuracy", "evaluate_conditional", "is_conditional"]


@register_metric("conditional-accuracy", family="conditional", needs="probs", direction="higher",
                 outputs=("conditional_accuracy",))
def conditional_accuracy(fake_probs: Any, *, labels: Any) -> Measurement:
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
    p, y = np.asarray(fake_probs), np.asarray(labels).reshape(-1)
    if len(p) != len(y):
        raise ValueError(f"labels has {len(y)} entries for {len(p)} samples")
    hit = (p.argmax(1) == y).astype(np.float64)
    acc = float(hit.mean())
    return Measurement(acc, std=float(np.sqrt(acc * (1 - acc) / len(hit))), std_kind="stderr",
                       params={"chance": 1.0 / p.shape[1]})


@register_metric("cas", family="conditional", needs="features", direction="higher")
def classification_accuracy_score(real: Any, fake: Any, *, fake_labels: Any, real_labels: Any,
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

    yf, yr = np.asarray(fake_labels).reshape(-1), np.asarray(real_labels).reshape(-1)
    warn: tuple[str, ...] = ()
    if len(np.unique(yf)) < 2:
        return Measurement(float((yr == yf[0]).mean()), warnings=("one class in the generated labels",))
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=C))
    clf.fit(np.asarray(fake, dtype=np.float64), yf)
    return Measurement(float((clf.predict(np.asarray(real, dtype=np.float64)) == yr).mean()), warnings=warn,
                       params={"classifier": "logistic regression on standardised pixels", "C": C})


def is_conditional(gen: Any) -> bool:
    """Whether ``gen`` takes requested classes: an ``n_classes`` attribute and ``sample(..., labels=...)``."""
    import inspect

    try:
        return bool(getattr(gen, "n_classes", None)) and "labels" in inspect.signature(gen.sample).parameters
    except (TypeError, ValueError):
        return False


def evaluate_conditional(gen: Any, dataset: Any, *, n: int, seed: int = 0, device: Any = None,
                         extractor: Any = None, cache_dir: Any = None, weights: Any = None) -> list[Any]:
    """Conditional rows for a class-conditional generator on a labelled image dataset.

    Draws ``n`` samples for balanced requested labels (seeded), classifies them with the
    dataset's domain classifier (``conditional_accuracy``), and computes CAS on the test split,
    beside ``cas_real`` (the same classifier trained on ``n`` real training examples, their
    labels balanced as far as the split allows).

    Returns
    -------
    list of MetricResult (``conditional_accuracy``, ``cas``, ``cas_real``); empty when the dataset
    has no labels or no train/test split.
    """
    from genbench.evaluate import default_extractor
    from genbench.features import Extractor, extract, get_extractor
    from genbench.metrics import MetricInputs, evaluate_metrics

    info = dataset.info
    if not info.n_classes or not {"train", "test"} <= set(info.split_sizes):
        return []
    labels = torch.arange(n) % int(info.n_classes)
    with torch.no_grad():
        fake = gen.sample(n, seed=seed, labels=labels).detach().float().cpu()
    ext = extractor if isinstance(extractor, Extractor) else get_extractor(
        default_extractor(dataset, extractor or "domain"), device=device, cache_dir=cache_dir, weights=weights)
    fk = extract(ext, fake, device=device)
    rows = []
    if fk.get("probs") is not None:
        inputs = MetricInputs(ext.id, fake_probs=fk["probs"], weights=ext.info.get("weights_hash"))
        rows += evaluate_metrics(inputs, metrics=["conditional-accuracy"], family="conditional",
                                 settings={"conditional-accuracy": {"labels": labels.numpy()}})
    te, tr = dataset.split("test"), dataset.split("train")
    flat = lambda a: a.reshape(len(a), -1).numpy()  # noqa: E731
    real_x, real_y = flat(te.x), te.y.numpy()
    rows += evaluate_metrics(MetricInputs("pixels", real=real_x, fake=flat(fake), ref="test"), metrics=["cas"],
                             family="conditional",
                             settings={"cas": {"fake_labels": labels.numpy(), "real_labels": real_y}})
    # the ceiling: the same classifier trained on real training images, as many as the samples
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.permutation(len(tr.x))[: min(n, len(tr.x))])
    ceiling = evaluate_metrics(MetricInputs("pixels", real=real_x, fake=flat(tr.x)[idx], ref="test"), metrics=["cas"],
                               family="conditional",
                               settings={"cas": {"fake_labels": tr.y.numpy()[idx], "real_labels": real_y}})
    note = "reference: the same classifier trained on real training images (the value a perfect model reaches)"
    rows += [r.with_(metric="cas_real", protocol=r.protocol.with_(metric="cas_real"), warnings=(*r.warnings, note))
             for r in ceiling]
    return rows
