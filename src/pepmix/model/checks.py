"""Degenerate designs, detected before any iteration.

Rules, applied per protein (all vectorised over proteins):

1. A random factor with a single observed level is dropped (``one level``).
2. A random factor whose every level holds one observation is dropped: its variance is
   confounded with the residual variance (``one observation per level``).
3. Two run-level random factors that partition the observations identically (e.g. ``run`` and
   ``sample`` when the protein was seen in one run per sample) are confounded: the one later in
   ``feature, sample, run, batch`` is dropped.
4. A run-level random factor nested in conditions with at most one level per observed condition
   is confounded with the condition means and dropped.
5. Fixed-effect columns are kept greedily in order when linearly independent of the columns kept
   before them (an unobserved condition or a batch confounded with conditions is dropped).
6. With no residual degree of freedom left (``n - p <= 0``) the protein is not fitted
   (``too_few_observations``).

A dropped factor is the model with that variance fixed at 0, so the fit of a reduced model is the
same engine with fewer free parameters; the protein's status becomes ``reduced_model`` and the
``detail`` column says what was dropped and why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

RANK_TOL = 1e-9


@dataclass
class FactorStats:
    """Per-protein level statistics of one random factor.

    Attributes
    ----------
    n_levels : ndarray of int, shape (P,)
        Observed levels per protein.
    max_count : ndarray of int, shape (P,)
        Largest number of observations in one level.
    """

    n_levels: NDArray[np.intp]
    max_count: NDArray[np.intp]


def greedy_independent(xtx: NDArray[np.float64], tol: float = RANK_TOL) -> NDArray[np.bool_]:
    """Keep columns in order when independent of the columns kept before them.

    Parameters
    ----------
    xtx : ndarray, shape (P, p, p)
        Cross-products :math:`X'X` of each protein's observed rows.
    tol : float, default 1e-9
        A column is dependent when its residual sum of squares after projection on the kept
        columns is below ``tol`` times its own sum of squares.

    Returns
    -------
    ndarray of bool, shape (P, p)
    """
    n_prot, p, _ = xtx.shape
    keep = np.zeros((n_prot, p), dtype=bool)
    for j in range(p):
        diag = xtx[:, j, j]
        resid = diag.copy()
        if j > 0:
            k = keep[:, :j]
            a = xtx[:, :j, :j] * (k[:, :, None] & k[:, None, :])
            a = a + np.eye(j)[None] * (~k)[:, :, None]
            b = xtx[:, :j, j] * k
            sol = np.linalg.solve(a, b[:, :, None])[:, :, 0]
            resid = diag - np.sum(b * sol, axis=1)
        keep[:, j] = (diag > 0) & (resid > tol * np.maximum(diag, 1.0))
    return keep
