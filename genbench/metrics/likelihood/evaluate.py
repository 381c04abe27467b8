"""The matrix entry point: every likelihood number that applies to a dataset, samples and a model.

Every row is made by the one evaluator (:func:`genbench.metrics._evaluator.evaluate_metrics`) from
the registered likelihood specs; each estimator scores the test split and a training subset with
one model selection (sigma, components) shared by both, and their train-minus-test gap is
:func:`genbench.metrics.overfitting.likelihood_gap` (Welch standard error).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from genbench._validation import check_disjoint_rows, check_same_width
from genbench.metrics._evaluator import MetricInputs, evaluate_metrics
from genbench.metrics._spec import Measurement
from genbench.metrics.likelihood._common import _check_batch, _flat
from genbench.metrics.likelihood.gmm import GMM_COMPONENTS, GMM_COMPONENTS_POINTS
from genbench.metrics.likelihood.parzen import PARZEN_GRID, PARZEN_GRID_POINTS
from genbench.protocols import LatentVariableModel, LikelihoodModel
from genbench.results import MetricResult


def _first(x: torch.Tensor, n: int | None, name: str) -> torch.Tensor:
    if n is None:
        return x
    n = _check_batch(n, name)
    return x[:n]


def _selection_rows(v: np.ndarray, samples: np.ndarray, train_all: Any, train_idx: np.ndarray,
                    n_val: int) -> tuple[np.ndarray, str]:
    """The rows that choose sigma / components: validation rows that are not among the samples.

    A control replaying the validation split (``heldout``) would otherwise tune sigma on its own
    samples, where every validation row sits at distance 0 from a kernel centre, and sigma runs to the
    grid's lower edge. When fewer than half the validation rows are left, training rows that are
    neither among the samples nor in the scored train subset are used instead (the control never saw
    them). The note says which, and is recorded on every density row."""
    def keys(a: np.ndarray) -> set[bytes]:
        return {r.tobytes() for r in np.ascontiguousarray(a, dtype=np.float64)}

    in_samples = keys(samples)
    keep = np.array([r.tobytes() not in in_samples for r in np.ascontiguousarray(v)], dtype=bool)
    if keep.all():
        return v, ""
    if keep.sum() >= max(1, len(v) // 2):
        return v[keep], (f"{int((~keep).sum())} of {len(v)} validation rows are among the samples and were left out "
                         "of choosing sigma / components.")
    tr = train_all.reshape(len(train_all), -1).double().numpy()
    free = np.ones(len(tr), dtype=bool)
    free[train_idx] = False
    free &= np.array([r.tobytes() not in in_samples for r in tr], dtype=bool)
    chosen = tr[np.flatnonzero(free)[:n_val]]
    if not len(chosen):
        raise ValueError("every validation and training row is among the samples: no data is left to choose sigma / "
                         "components on; score such samples with the sample-quality and copy families only.")
    return chosen, (f"the samples include {int((~keep).sum())} of the {len(v)} validation rows (a control replaying "
                    f"them), so sigma / components were chosen on {len(chosen)} training rows that are neither among "
                    "the samples nor in the scored train subset.")


def evaluate_likelihood(*, dataset: Any, samples: Any = None, model: Any = None, n_test: int | None = None,
                        k: int = 1000, parzen: bool = True, gmm: bool = True, seed: int = 0, device: Any = None,
                        train_subset: int | None = None, n_val: int | None = 1000,
                        parzen_grid: Sequence[float] | None = None, gmm_components: Sequence[int] | None = None,
                        gmm_covariance: str | None = None, elbo_samples: int = 16, batch_size: int = 64,
                        model_space: str | None = None, protocol_seed: int | None = None) -> list[MetricResult]:
    """Every likelihood number that applies to a dataset, generated samples and (optionally) a model.

    For each estimator the same computation runs on the test split (``ref=test``), on a training
    subset (``ref=train``), and their difference is reported as ``<metric>-gap`` (train minus
    test, nats; large positive values point at overfitting or copying; ``higher_is_better=False``).

    Rows (value = mean log-likelihood in nats per example, higher is better, ``std`` = standard
    error over examples, bits/dim in ``params["bits_per_dim"]``):

    - ``parzen@{pixels|points}/n=samples:{N},{ref}:{M}/ref={ref}/sigma={s}/seed={seed}`` (estimate;
      sigma chosen on ``val``);
    - ``gmm@{space}/n=.../ref=.../cov={type}/components={c}/seed=...`` (estimate; c chosen on ``val``);
    - ``true-loglik@{dataset}/n={M}/ref=test`` for datasets with a known density (exact);
    - a :class:`LatentVariableModel`: ``iwae/n=.../ref=.../k={k}/seed=...`` and ``elbo/.../mc={m}/...``
      (lower-bound);
    - a :class:`LikelihoodModel` with kind ``exact``: ``exact-loglik/n=.../ref=...`` (exact); with kind
      ``lower-bound`` and no latent protocol: ``bound-loglik/...`` from its ``log_prob``.

    The gap's standard error is Welch's (ddof=1, :func:`~genbench.metrics.overfitting.likelihood_gap`),
    with its ``z`` and ``flagged`` in params.

    A model satisfying neither protocol (a GAN) adds no rows.

    Parameters
    ----------
    dataset : a :class:`genbench.data.Dataset` with ``train``/``val``/``test`` splits.
    samples : (N, ...) generated samples for Parzen and GMM (10,000 in the Parzen protocol).
    model : optional model, used through the protocols above.
    n_test : the first ``n_test`` test examples (None = the whole split).
    k : IWAE importance samples (default 1000 for the benchmark matrix; 5000 for final numbers;
        always in the protocol name).
    parzen, gmm : whether to run the sample-based estimators.
    seed : seeds the train subset, the GMM initialisation and the importance samples.
    protocol_seed : the seed the rows' protocols record (default ``seed``): the evaluation's own seed
        when ``seed`` was derived from it for this family, as the other families' rows record it.
    device : torch device for Parzen distance blocks and model calls.
    train_subset : training examples for the ``ref=train`` rows (None = as many as test), drawn
        without replacement by ``seed``.
    n_val : validation examples used to tune sigma / components (Goodfellow et al. used 1,000).
    parzen_grid : sigma grid (default ``logspace(-1, 0, 10)`` for images, ``logspace(-3, 0, 16)``
        for points).
    gmm_components, gmm_covariance : GMM grid (default (1, 2, 5, 10, 20); points also 8, 25, 50)
        and covariance type (default ``"full"`` up to 100 dims, ``"diag"`` above). ``reg_covar`` is
        the quantisation-bin variance ``(1/(L-1))**2 / 12`` for discrete data, else 1e-6.
    elbo_samples : single-sample bounds averaged per example for the ELBO rows.
    batch_size : examples per model call.
    model_space : ``"mass"`` when the model's log-likelihood is a probability mass over the data's
        levels (Bernoulli / categorical decoders, PixelCNN softmax: bits/dim adds nothing) or
        ``"density"`` for a density on the stored values (bits/dim adds ``log(L - 1)`` per dim, minus the
        log of the grid spacing; see ``_common``). Default: the model's ``likelihood_space`` attribute
        if it has one, else ``"mass"``.

    Returns
    -------
    list[MetricResult]

    Examples
    --------
    >>> from genbench.data import load_dataset
    >>> ds = load_dataset("mixture-ring")
    >>> rows = evaluate_likelihood(dataset=ds, samples=ds.sample(2000, seed=1), n_test=200, gmm=False)
    >>> sorted({r.metric for r in rows})
    ['parzen', 'parzen-gap', 'true-loglik']
    """
    info = dataset.info
    info = dataset.info
    points = info.kind == "points"
    space = "points" if points else "pixels"
    dim, levels = int(info.dim), info.levels
    test_x = _first(dataset.test.x, n_test, "n_test")
    val_x = _first(dataset.val.x, n_val, "n_val")
    train_all = dataset.train.x
    m = len(test_x) if train_subset is None else _check_batch(train_subset, "train_subset")
    m = min(m, len(train_all))
    idx = np.sort(np.random.default_rng(seed).choice(len(train_all), size=m, replace=False))
    train_x = train_all[torch.from_numpy(idx)]
    out: list[MetricResult] = []
    pseed = seed if protocol_seed is None else protocol_seed

    def triple(name: str, inputs: MetricInputs, refs: dict[str, Any], settings: dict[str, Any]) -> None:
        """The estimator on test and on the train subset (one model selection, shared through ``inputs``),
        then their gap; every row records the evaluation seed (it drew the train subset)."""
        rows, parts = {}, {}
        for ref, x in refs.items():
            got: dict[str, Measurement] = {}
            (row,) = evaluate_metrics(inputs.for_split(x, ref), metrics=[name], settings={name: settings},
                                      seed=seed, device=device, measurements=got)
            rows[ref] = row.with_(protocol=row.protocol.with_(seed=pseed))
            parts[ref] = got[name].parts
        gap = _gap_row(name, rows["train"], rows["test"], parts["train"], parts["test"])
        out.extend([rows["test"], rows["train"], gap])

    if samples is not None and (parzen or gmm):
        s = _flat(samples, "samples", hint="check the generator's output")
        check_same_width(s, test_x.reshape(len(test_x), -1), "samples", "test")
        # float64 rows prepared once, for every estimator and both splits
        flat = {ref: x.reshape(len(x), -1).double().numpy() for ref, x in (("test", test_x), ("train", train_x))}
        v = val_x.reshape(len(val_x), -1).double().numpy()
        v, selection_note = _selection_rows(v, s, train_all, idx, len(val_x))
        for ref, x in flat.items():  # sigma / components must never be tuned on an evaluation set
            check_disjoint_rows(v, x, "validation", ref,
                                fix="tune sigma / components on data disjoint from the evaluation sets")
        density = MetricInputs(space, fake=s, val=v)
        first_density_row = len(out)
        if parzen:
            grid = parzen_grid if parzen_grid is not None else (PARZEN_GRID_POINTS if points else PARZEN_GRID)
            triple("parzen", density, flat, {"grid": grid, "levels": levels})
        if gmm:
            comps = gmm_components if gmm_components is not None else (GMM_COMPONENTS_POINTS if points
                                                                       else GMM_COMPONENTS)
            cov = gmm_covariance or ("full" if dim <= 100 else "diag")
            # a pixel is never more certain than its quantisation bin (see gmm_log_likelihood)
            reg = (1.0 / (levels - 1)) ** 2 / 12.0 if (levels is not None and levels > 1) else 1e-6
            triple("gmm", density, flat, {"n_components_grid": tuple(comps), "covariance_type": cov,
                                          "reg_covar": reg, "levels": levels})
        if selection_note:
            out[first_density_row:] = [r.with_(warnings=(*r.warnings, selection_note),
                                               params={**r.params, "selection_rows": selection_note})
                                       for r in out[first_density_row:]]

    if callable(getattr(dataset, "log_density", None)):
        out += evaluate_metrics(MetricInputs(info.name, model=dataset, x=test_x, ref="test"), metrics=["true-loglik"],
                                settings={"true-loglik": {"levels": levels}})

    if model is not None:
        space_m = model_space or getattr(model, "likelihood_space", None) or "mass"
        if space_m not in ("mass", "density"):
            raise ValueError(f"model_space must be 'mass' or 'density'; got {space_m!r}.")
        refs = {"test": test_x, "train": train_x}
        common = {"levels": levels, "model_space": space_m, "batch_size": batch_size}
        minputs = MetricInputs("", model=model)  # a model's rows name no space: the model is the protocol
        if isinstance(model, LatentVariableModel):
            triple("iwae", minputs, refs, {**common, "k": k})
            triple("elbo", minputs, refs, {**common, "n_samples": elbo_samples})
        if isinstance(model, LikelihoodModel):
            exact = model.likelihood_kind == "exact"
            if exact or not isinstance(model, LatentVariableModel):
                triple("exact-loglik" if exact else "bound-loglik", minputs, refs, common)
    return out


def _gap_row(name: str, train: MetricResult, test: MetricResult, train_ll: np.ndarray,
             test_ll: np.ndarray) -> MetricResult:
    """``<name>-gap``: train minus test of one estimator (same selection), through the one gap function.

    The number and its Welch standard error come from the registered ``likelihood-gap`` spec
    (:func:`genbench.metrics.overfitting.likelihood_gap`); the row is named after the estimator and
    keeps its protocol fields (space, fixed and tuned parameters, seed). A difference of two bounds
    or estimates is neither a bound nor exact: its kind is ``estimate``.
    """
    metric = f"{name}-gap"
    inputs = MetricInputs(test.protocol.space or "", train_ll=train_ll, test_ll=test_ll, ref="train-test")
    (g,) = evaluate_metrics(inputs, metrics=["likelihood-gap"], settings={"likelihood-gap": {"kind": "estimate"}})
    params = {k: v for k, v in test.params.items() if not k.startswith("bits_per_dim")}
    params.update(g.params)
    params.update(train_protocol=str(train.protocol), test_protocol=str(test.protocol),
                  bits_per_dim_gap=test.params["bits_per_dim"] - train.params["bits_per_dim"])
    return g.with_(metric=metric, protocol=test.protocol.with_(metric=metric, n=g.protocol.n, ref="train-test"),
                   params=params, warnings=tuple(dict.fromkeys((*test.warnings, *g.warnings))))
