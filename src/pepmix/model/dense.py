r"""Plain dense reference implementation of the REML criterion, for tests.

Direct :math:`n \times n` formulas, for any number of random-intercept factors :math:`Z_k`
(crossed or nested, e.g. feature, feature:condition, sample), with
:math:`H = I + \sum_k \theta_k^2 Z_k Z_k'`:

.. math:: d(\theta) = \log|H| + \log|X'H^{-1}X| + \nu\,(1 + \log(2\pi\,r^2/\nu)),\quad
          r^2 = y'\big(H^{-1} - H^{-1}X(X'H^{-1}X)^{-1}X'H^{-1}\big)y

This is lme4's ``REMLcrit`` (by the matrix determinant lemma
:math:`|H| = |\Lambda Z'Z\Lambda + I|`). With observation weights (residual variance
:math:`\sigma^2/w_i`) :math:`I` becomes :math:`W^{-1}`, so :math:`\log|H|` contains
:math:`-\sum_i \log w_i` (as lme4's criterion with ``weights=``). Cost :math:`O(n^3)`; never used
by the workflow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def indicator(codes: NDArray[np.intp]) -> FloatArray:
    """Dense 0/1 indicator matrix of integer codes (levels in order of first appearance)."""
    _, inv = np.unique(codes, return_inverse=True)
    z = np.zeros((codes.size, int(inv.max()) + 1))
    z[np.arange(codes.size), inv] = 1.0
    return z


def reml_criterion(
    y: FloatArray,
    x: FloatArray,
    zs: Sequence[FloatArray],
    theta: Sequence[float],
    weights: FloatArray | None = None,
) -> float:
    """REML criterion at ``theta`` by the dense direct formula (see module docstring).

    ``weights`` (default all 1) are observation weights: residual variance ``sigma^2 / w_i``.
    """
    n, p = x.shape
    h = np.eye(n) if weights is None else np.diag(1.0 / np.asarray(weights, dtype=np.float64))
    for z, t in zip(zs, theta, strict=True):
        h += t**2 * (z @ z.T)
    hinv = np.linalg.inv(h)
    xhx = x.T @ hinv @ x
    proj = hinv - hinv @ x @ np.linalg.solve(xhx, x.T @ hinv)
    r2 = float(y @ proj @ y)
    nu = n - p
    _, ld_h = np.linalg.slogdet(h)
    _, ld_x = np.linalg.slogdet(xhx)
    return float(ld_h + ld_x + nu * (1.0 + np.log(2.0 * np.pi * r2 / nu)))


def gls(
    y: FloatArray, x: FloatArray, zs: Sequence[FloatArray], theta: Sequence[float]
) -> tuple[FloatArray, FloatArray, float]:
    """Fixed effects, their covariance and sigma at ``theta`` (dense)."""
    n, p = x.shape
    h = np.eye(n)
    for z, t in zip(zs, theta, strict=True):
        h += t**2 * (z @ z.T)
    hinv = np.linalg.inv(h)
    xhx = x.T @ hinv @ x
    beta = np.linalg.solve(xhx, x.T @ hinv @ y)
    resid = y - x @ beta
    sigma2 = float(resid @ hinv @ resid) / (n - p)
    cov: FloatArray = sigma2 * np.linalg.inv(xhx)
    return np.asarray(beta, dtype=np.float64), cov, float(np.sqrt(sigma2))


def interaction_codes(*codes: NDArray[np.intp]) -> NDArray[np.intp]:
    """Codes of the interaction of several factors (e.g. lme4's ``feature:condition``): one
    level per observed combination, in order of first appearance."""
    stacked = np.stack([np.asarray(c, dtype=np.int64) for c in codes], axis=1)
    _, first, inverse = np.unique(stacked, axis=0, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))
    return np.asarray(rank[inverse.ravel()], dtype=np.intp)


def fit_dense(
    y: FloatArray,
    x: FloatArray,
    zs: Sequence[FloatArray],
    starts: Sequence[Sequence[float]] | None = None,
) -> tuple[FloatArray, float]:
    """Minimise :func:`reml_criterion` over ``theta >= 0`` by bounded quasi-Newton from several
    starts (default: every combination of 0.1, 1 and 4 per factor); returns ``theta`` and the
    criterion.

    Any number of random-intercept factors (crossed or nested, e.g. feature, feature:condition,
    sample). Tests only: the optimum is as good as L-BFGS-B's convergence (about 1e-8 in the
    criterion), and multi-modal criteria are covered by the grid of starts.
    """
    from itertools import product

    from scipy.optimize import minimize

    n_f = len(zs)
    grid = starts if starts is not None else list(product((0.1, 1.0, 4.0), repeat=n_f))

    def crit(theta: FloatArray) -> float:
        return reml_criterion(y, x, zs, list(np.abs(theta)))

    best_theta = np.zeros(n_f)
    best = crit(best_theta)
    for start in grid if n_f else ():
        res = minimize(
            crit,
            np.asarray(start, dtype=np.float64),
            method="L-BFGS-B",
            bounds=[(0.0, None)] * n_f,
            options={"ftol": 1e-14, "gtol": 1e-10, "maxiter": 2000},
        )
        if float(res.fun) < best:
            best, best_theta = float(res.fun), np.asarray(res.x, dtype=np.float64)
    return best_theta, best
