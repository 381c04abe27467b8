"""Representation family: how useful a model's codes are, for every model with an encoder.

- ``linear-probe``: accuracy of a multinomial logistic regression (scikit-learn) trained on the
  codes of the training split and tested on the codes of the test split, with every training
  label (``probe_acc``) and with ``per_class`` labels per class (``probe_acc_10pc``: the few-label
  regime in which a representation's value shows most);
- ``reconstruction``: mean squared error per data value of decode(encode(x)) on test data.

Both are registered metric specs (family ``representation``; ``linear-probe`` needs an
``encoder``: the model, labelled training and test rows; ``reconstruction`` needs a ``model`` and
data) run by the one evaluator, :func:`genbench.metrics.evaluate_metrics`.
:func:`evaluate_representation` runs them for a model and, through the same specs on other
inputs, for two reference rows: raw pixels (``probe_acc_pixels``: the probe on the data
themselves, what an encoder must beat to have helped) and a random encoder of the same
architecture (``probe_acc_random``: a freshly initialised copy of the model, seeded; what training
added over a random projection of the same shape).

References: Alain & Bengio, "Understanding intermediate layers using linear classifier probes",
2016; the linear evaluation protocol of Oord, Li, Vinyals, "Representation learning with
contrastive predictive coding", 2018.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from genbench._validation import check_finite
from genbench.metrics import Measurement, register_metric
from genbench.results import MetricResult

__all__ = ["PixelEncoder", "encode_all", "evaluate_representation", "linear_probe", "random_encoder",
           "reconstruction_error"]


def encode_all(model: Any, x: torch.Tensor, *, batch_size: int = 1024) -> np.ndarray:
    """``model.encode`` over ``x`` in batches, as a float64 array (N, Z); non-finite codes are an error."""
    x = torch.as_tensor(x)
    with torch.no_grad():
        out = [model.encode(x[i:i + batch_size]).detach().float().cpu().reshape(len(x[i:i + batch_size]), -1)
               for i in range(0, len(x), batch_size)]
    z = torch.cat(out).double().numpy() if out else np.zeros((0, 0))
    check_finite(z, "codes", hint="check the data and the encoder")
    return z


def _probe_accuracy(z_tr: np.ndarray, y_tr: np.ndarray, z_te: np.ndarray, y_te: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # standardised codes: the probe's L2 penalty then weighs every code dimension alike, whatever
    # scale training left it at
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    clf.fit(z_tr, y_tr)
    return float((clf.predict(z_te) == y_te).mean())


def few_labels(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices of ``per_class`` examples of each class (all of a class that has fewer), seeded."""
    rng = np.random.default_rng(seed)
    idx = [rng.permutation(np.flatnonzero(y == c))[:per_class] for c in np.unique(y)]
    return np.sort(np.concatenate(idx))


@register_metric("linear-probe", family="representation", needs="encoder", direction="higher",
                 outputs=("probe_acc", "probe_acc_10pc"), protocol_params={"per_class": "per_class"})
def linear_probe(model: Any, x: torch.Tensor, y: Any, x_test: torch.Tensor, y_test: Any, *, per_class: int = 10,
                 seed: int = 0) -> dict[str, Measurement]:
    """Linear-probe test accuracy on a model's codes, with all training labels and with ``per_class`` per class.

    Parameters
    ----------
    model : anything with ``encode(x) -> (N, Z)`` (:class:`genbench.protocols.Autoencoder`).
    x, y : training data (N, ...) and integer labels (N,).
    x_test, y_test : test data and labels.
    per_class : labels per class of the few-label probe (chosen with ``seed``).

    Returns
    -------
    ``{"probe_acc": ..., "probe_acc_10pc": ...}``: test accuracies in [0, 1], higher is better.

    Examples
    --------
    >>> import torch
    >>> from genbench.metrics.representation import PixelEncoder
    >>> x = torch.cat([torch.zeros(20, 2), torch.ones(20, 2)]); y = [0] * 20 + [1] * 20
    >>> linear_probe(PixelEncoder(), x, y=y, x_test=x, y_test=y, per_class=3)["probe_acc"].value
    1.0
    """
    y, y_test = np.asarray(y), np.asarray(y_test)
    z_tr, z_te = encode_all(model, x), encode_all(model, x_test)
    few = few_labels(y, per_class, seed)
    n = {"train": len(y), "test": len(y_test)}
    return {"probe_acc": Measurement(_probe_accuracy(z_tr, y, z_te, y_test), n=n),
            "probe_acc_10pc": Measurement(_probe_accuracy(z_tr[few], y[few], z_te, y_test),
                                          n={"train": len(few), "test": len(y_test)},
                                          params={"per_class": per_class})}


@register_metric("reconstruction", family="representation", needs="model", direction="lower",
                 outputs=("rec_mse",), unit="mse per value", uncertainty="stderr")
def reconstruction_error(model: Any, x: torch.Tensor, *, batch_size: int = 1024) -> Measurement:
    """Mean squared error per data value of ``decode(encode(x))`` against ``x``; std: its standard error.

    Parameters
    ----------
    model : anything with ``encode`` and ``decode`` (:class:`genbench.protocols.Autoencoder`);
        ``decode`` returns data in the data's range (a decoder mean).
    x : (N, ...) data, usually the test split.

    Examples
    --------
    >>> import torch
    >>> reconstruction_error(PixelEncoder(shape=(2,)), torch.rand(10, 2)).value
    0.0
    """
    x = torch.as_tensor(x)
    per = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size]
            r = model.decode(model.encode(xb)).detach().float().cpu().reshape(len(xb), -1)
            per.append(((r - xb.float().reshape(len(xb), -1)) ** 2).mean(1))
    e = torch.cat(per).double().numpy()
    check_finite(e, "reconstruction errors", hint="check the data and the model's encode and decode")
    return Measurement(float(e.mean()), std=float(e.std(ddof=1) / np.sqrt(len(e))) if len(e) > 1 else None,
                       std_kind="stderr", n={"x": len(e)})


class PixelEncoder:
    """The identity "encoder": codes are the flattened data (the raw-pixel reference row)."""

    def __init__(self, shape: tuple[int, ...] | None = None) -> None:
        self.shape = shape

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), -1).float()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z if self.shape is None else z.reshape(len(z), *self.shape)


def random_encoder(model: torch.nn.Module, *, seed: int) -> torch.nn.Module:
    """A copy of ``model`` with every layer re-initialised (its own default initialisation), seeded.

    The global torch RNG is forked, so drawing the weights changes no other stream.
    """
    fresh = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in fresh.modules():
            if m is not fresh and hasattr(m, "reset_parameters"):
                m.reset_parameters()
    return fresh.eval()


def evaluate_representation(model: Any, dataset: Any, *, seed: int = 0, device: Any = None,
                            per_class: int = 10) -> list[MetricResult]:
    """Representation rows of a model with ``encode``, and the pixel and random-encoder reference rows.

    Needs a labelled dataset with train and test splits (else returns no rows). Reconstruction is
    measured when the model also has ``decode``. Every row comes out of
    :func:`~genbench.metrics.evaluate_metrics`: the family's specs on the model's codes, then the
    probe's spec on the reference encoders' codes, its outputs suffixed ``_pixels`` and ``_random``.

    Returns
    -------
    list of MetricResult: ``probe_acc``, ``probe_acc_10pc``, ``rec_mse`` (model),
    ``probe_acc_pixels``, ``probe_acc_10pc_pixels``, ``probe_acc_random``, ``probe_acc_10pc_random``.
    """
    from genbench.metrics import specs
    from genbench.metrics._evaluator import MetricInputs, evaluate_metrics

    splits = dataset.info.split_sizes
    if not dataset.info.n_classes or not {"train", "test"} <= set(splits):
        return []
    tr, te = dataset.split("train"), dataset.split("test")
    settings = {"linear-probe": {"per_class": per_class}}

    def inputs(enc: Any, space: str) -> MetricInputs:
        return MetricInputs(space, model=enc, train=tr.x, train_labels=tr.y.numpy(), x=te.x,
                            x_labels=te.y.numpy(), ref="test", device=device)

    # a model without decode has no reconstruction; every other default spec of the family applies
    own = [s.name for s in specs("representation") if s.default and (s.needs != "model" or hasattr(model, "decode"))]
    rows = evaluate_metrics(inputs(model, "codes"), metrics=own, family="representation", settings=settings,
                            seed=seed, device=device)
    probe = dict(metrics=["linear-probe"], family="representation", settings=settings, seed=seed, device=device)
    rows += evaluate_metrics(inputs(PixelEncoder(), "pixels"), suffix="_pixels",
                             note="reference: the same probe on the raw data values (no encoder)", **probe)
    if isinstance(model, torch.nn.Module):
        rows += evaluate_metrics(inputs(random_encoder(model, seed=seed), "codes"), suffix="_random",
                                 note=f"reference: a freshly initialised copy of the model (seed {seed}), same "
                                      "architecture", **probe)
    return rows
