"""Natural cubic spline basis for limma's variance trend (the column space of R's
``splines::ns(x, df, intercept = TRUE)``, used by ``fitFDist`` with a covariate).

Interior knots lie at type-7 quantiles of the fitted covariate (:func:`quantile7`, R's
``quantile``), boundary knots at its range; beyond the boundary knots the basis is extended
linearly, like ``predict.ns``. The natural-spline constraint (zero second derivative at both
boundary knots) is imposed by projecting the cubic B-spline basis onto the null space of the
constraint matrix (the same column space as ``ns``; the fitted values do not depend on the basis).
"""

from __future__ import annotations

import numpy as np

from pepmix.inference.limma._numeric import FloatArray, quantile7

__all__ = ["NaturalSpline"]


class NaturalSpline:
    """Natural cubic spline basis with ``df`` columns, knots placed on the covariate ``x``.

    Parameters
    ----------
    x : ndarray
        Covariate values the knots are placed on (finite, at least two distinct values).
    df : int
        Number of basis functions (>= 2), as ``ns(x, df, intercept = TRUE)``.
    """

    def __init__(self, x: FloatArray, df: int) -> None:
        n_inner = df - 2
        self.boundary = (float(np.min(x)), float(np.max(x)))
        probs = np.linspace(0.0, 1.0, n_inner + 2)[1:-1]
        inner = quantile7(x, probs.tolist()) if n_inner > 0 else np.empty(0)
        self.knots = np.sort(
            np.concatenate([np.repeat(self.boundary[0], 4), inner, np.repeat(self.boundary[1], 4)])
        )
        self.n_basis = self.knots.size - 4
        const = np.vstack([self._bspline(np.array(self.boundary), deriv=2)])
        q, _ = np.linalg.qr(const.T, mode="complete")
        self.null = q[:, 2:]

    def _bspline(self, x: FloatArray, deriv: int = 0) -> FloatArray:
        out = np.empty((x.size, self.n_basis))
        for j in range(self.n_basis):
            coef = np.zeros(self.n_basis)
            coef[j] = 1.0
            from scipy.interpolate import BSpline  # only for covariate trends

            spl = BSpline(self.knots, coef, 3, extrapolate=True)
            out[:, j] = spl.derivative(deriv)(x) if deriv else spl(x)
        return out

    def basis(self, x: FloatArray) -> FloatArray:
        """Basis matrix at ``x``, shape (len(x), df); linear beyond the boundary knots."""
        lo, hi = self.boundary
        full = np.empty((x.size, self.n_basis))
        inside = (x >= lo) & (x <= hi)
        if np.any(inside):
            full[inside] = self._bspline(x[inside])
        for pivot, mask in ((lo, x < lo), (hi, x > hi)):
            if np.any(mask):
                at = np.array([pivot])
                value = self._bspline(at)[0]
                slope = self._bspline(at, deriv=1)[0]
                full[mask] = value[None, :] + (x[mask] - pivot)[:, None] * slope[None, :]
        result: FloatArray = full @ self.null
        return result
