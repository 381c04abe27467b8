"""Likelihood estimators: Parzen window, Gaussian mixture, importance sampling (IWAE-k), ELBO, exact.

Every number is a log-likelihood in **nats per example** (higher is better) labelled with its
estimator kind (PROTOCOLS.md, "Likelihood estimators"):

- ``estimate``: Parzen window and GMM fitted to generated samples (densities of the *sample
  set*, not of the model), AIS-like estimators;
- ``lower-bound``: ELBO and IWAE-k (a stochastic lower bound: its expectation is <= log p(x));
- ``exact``: autoregressive models such as PixelCNN, and a dataset's known density.

One file per estimator: ``parzen``, ``gmm``, ``importance`` (IWAE and ELBO), ``exact``, ``ais``
(annealed importance sampling with BDMC bounds, Wu et al. 2017); what they
share (bits/dim, the :class:`~genbench.metrics.Measurement` of per-example values, input checks)
is in ``_common``; :func:`evaluate_likelihood` (``evaluate``) runs them for the matrix through the
one evaluator. Each estimator is registered as a metric spec whose compute returns a
``Measurement`` (mean +- standard error, tuned sigma / components, bits/dim in params); the
per-example functions below keep returning arrays, :class:`LikelihoodEstimate` and :class:`GMMFit`.
Bits/dim conventions: see :mod:`genbench.metrics.likelihood._common`.

References
----------
Breuleux, Bengio & Vincent 2009 (Parzen estimate of sample sets); Goodfellow et al. 2014
(Parzen protocol: 10,000 samples, sigma from ``logspace(-1, 0, 10)`` on validation);
Theis, van den Oord & Bethge 2016 (why Parzen numbers mislead); Burda, Grosse & Salakhutdinov
2016 (IWAE bound); Rezende, Mohamed & Wierstra 2014 (importance-sampled marginal likelihood).
"""

from genbench.metrics.likelihood._common import bits_per_dim, dequantisation_offset, loglik_measurement
from genbench.metrics.likelihood._weights import LikelihoodEstimate
from genbench.metrics.likelihood.ais import (
    AISEstimate,
    BDMCResult,
    GaussianObservationModel,
    ais_log_likelihood,
    bdmc,
    evaluate_ais,
    select_gan_sigma,
)
from genbench.metrics.likelihood.evaluate import evaluate_likelihood
from genbench.metrics.likelihood.exact import bound_measure, exact_log_likelihood, exact_measure, true_measure
from genbench.metrics.likelihood.gmm import (
    GMM_CAVEAT,
    GMM_COMPONENTS,
    GMM_COMPONENTS_POINTS,
    GMMFit,
    gmm_log_likelihood,
    gmm_measure,
)
from genbench.metrics.likelihood.importance import (
    IWAE_K_FINAL,
    elbo,
    elbo_measure,
    importance_sampled_log_likelihood,
    iwae_measure,
)
from genbench.metrics.likelihood.parzen import (
    PARZEN_GRID,
    PARZEN_GRID_POINTS,
    PARZEN_N_SAMPLES,
    THEIS_CAVEAT,
    parzen_estimate,
    parzen_log_likelihood,
    parzen_measure,
    select_parzen_sigma,
)

__all__ = [
    "AISEstimate",
    "BDMCResult",
    "GaussianObservationModel",
    "ais_log_likelihood",
    "bdmc",
    "evaluate_ais",
    "select_gan_sigma",
    "GMM_CAVEAT",
    "GMM_COMPONENTS",
    "GMM_COMPONENTS_POINTS",
    "IWAE_K_FINAL",
    "PARZEN_GRID",
    "PARZEN_GRID_POINTS",
    "PARZEN_N_SAMPLES",
    "THEIS_CAVEAT",
    "GMMFit",
    "LikelihoodEstimate",
    "bits_per_dim",
    "bound_measure",
    "dequantisation_offset",
    "elbo",
    "elbo_measure",
    "evaluate_likelihood",
    "exact_log_likelihood",
    "exact_measure",
    "gmm_log_likelihood",
    "gmm_measure",
    "importance_sampled_log_likelihood",
    "iwae_measure",
    "loglik_measurement",
    "parzen_estimate",
    "parzen_log_likelihood",
    "parzen_measure",
    "select_parzen_sigma",
    "true_measure",
]
