"""The Vendi score: the effective number of distinct samples (Friedman and Dieng 2023).

Provenance: the definition of Friedman & Dieng (2023), "The Vendi Score: A Diversity Evaluation
Metric for Machine Learning", TMLR; written from the paper (dgm-eval's ``metrics/vendi.py``
computes the same quantity with a linear kernel on normalised features).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from genbench._validation import check_features
from genbench.metrics import register_metric


@register_metric("vendi", family="quality", needs="fake", direction="higher", reference_row=True)
def vendi_score(fake: Any) -> float:
    """Vendi score of samples (higher is more diverse): exp of the entropy of the eigenvalues of K/n.

    K is the cosine-similarity kernel of the features (``k(x, x) = 1``), so K/n has unit trace and
    its eigenvalues are a probability vector; the score is ``exp(-sum_i l_i log l_i)``. n identical
    samples score 1; n mutually orthogonal ones score n.

    Parameters
    ----------
    fake : array (n, d)
        Features of the samples (any extractor; rows must be non-zero).

    Returns
    -------
    float
        In [1, min(n, d)].

    References
    ----------
    Friedman and Dieng 2023, "The Vendi Score: A Diversity Evaluation Metric for Machine Learning".

    Examples
    --------
    >>> import numpy as np
    >>> round(vendi_score(np.eye(5)), 9), round(vendi_score(np.ones((5, 3))), 9)
    (5.0, 1.0)
    """
    x = check_features(fake, "fake", min_n=1).astype(np.float64, copy=False)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError(f"fake has {int((norms == 0).sum())} all-zero feature rows; the cosine kernel needs "
                         "non-zero features (use an extractor whose features are not zero).")
    u = x / norms
    # the eigenvalues of K/n = U U^T / n equal those of the (d x d) U^T U / n: the smaller of the two
    gram = (u.T @ u if u.shape[1] < u.shape[0] else u @ u.T) / len(u)
    lam = np.clip(np.linalg.eigvalsh(gram), 0.0, None)
    lam = lam[lam > 0]
    return float(np.exp(-np.sum(lam * np.log(lam))))
