r"""Plain dense reference implementation of the REML criterion, for tests.

Direct :math:`n \times n` formulas with :math:`H = I + \sum_k \theta_k^2 Z_k Z_k'`:

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
