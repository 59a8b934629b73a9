r"""Moment estimation of the scaled-F prior (limma ``fitFDist``, Smyth 2004).

Under the hierarchical model of :mod:`pepmix.inference.limma`,
:math:`s^2_g \sim s_0^2 F(d_g, d_0)`. With :math:`\psi, \psi'` the digamma and trigamma
functions, :math:`e_g = \log s^2_g - \psi(d_g/2) + \log(d_g/2)` has

.. math::

    E[e_g] = \log s_0^2 - \psi(d_0/2) + \log(d_0/2), \qquad
    \mathrm{Var}[e_g] = \psi'(d_g/2) + \psi'(d_0/2).

:func:`fit_f_dist` equates these to the sample mean and variance of :math:`e_g`;
:math:`\psi'(d_0/2)` is inverted by Newton's method (:func:`trigamma_inverse`). When the observed
spread of :math:`e_g` is no larger than the mean sampling variance :math:`\overline{\psi'(d_g/2)}`,
:math:`d_0 = \infty`. With a covariate the mean of :math:`e_g` is a natural cubic spline in the
covariate with 1-4 df (limma's ``trend``), so :math:`s_0^2` becomes a vector.

References
----------
Smyth GK (2004). Linear models and empirical Bayes methods for assessing differential expression
in microarray experiments. Stat Appl Genet Mol Biol 3, Article 3.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from pepmix.inference.limma._numeric import FloatArray, r_mean
from pepmix.inference.limma._spline import NaturalSpline
from pepmix.inference.limma._validate import as_1d, as_df, check_s2

log = logging.getLogger(__name__)

__all__ = [
    "FDistFit",
    "fit_f_dist",
    "fit_f_dist_validated",
    "prepare_covariate",
    "trigamma_inverse",
]

#: df at or below this, and variances below minus this, are left out of the estimation (limma)
_DF_EPS = 1e-15


@dataclass(frozen=True, eq=False)
class FDistFit:
    """Fitted scaled F-distribution :math:`s^2_g \\sim s_0^2 F(d_g, d_0)`.

    Attributes
    ----------
    scale : float or ndarray
        Prior variance :math:`s_0^2` (limma ``scale``). A per-protein array when a covariate was
        given (trend), otherwise a float. NaN when it could not be estimated.
    df2 : float
        Prior degrees of freedom :math:`d_0` (limma ``df2``); may be ``inf``; NaN when it could not
        be estimated.
    df2_shrunk : ndarray or None, default None
        Robust fit only: per-protein prior df, reduced for outlier variances (limma
        ``df2.shrunk``). Proteins excluded from the fit get ``df2``.
    tail_p_value : ndarray or None, default None
        Robust fit only: right-tail probability of each :math:`s^2_g` under the fitted scaled F
        distribution (limma ``tail.p.value``); NaN for excluded proteins, None on the early-return
        paths where limma does not compute it.
    prob_outlier : ndarray or None, default None
        Robust fit only: probability that each variance is an outlier (limma ``prob.outlier``);
        NaN for excluded proteins, None where limma does not compute it.
    df2_outlier : float or None, default None
        Robust fit only: prior df assigned to outliers (limma ``df2.outlier``), None where limma
        does not compute it.
    """

    scale: float | FloatArray
    df2: float
    df2_shrunk: FloatArray | None = None
    tail_p_value: FloatArray | None = None
    prob_outlier: FloatArray | None = None
    df2_outlier: float | None = None


def trigamma_inverse(x: float) -> float:
    """Solve :math:`\\psi'(y) = x` for y > 0 by Newton's method (limma ``trigammaInverse``).

    Parameters
    ----------
    x : float
        Value of the trigamma function, > 0.

    Returns
    -------
    float
        ``y``; ``1/sqrt(x)`` for ``x > 1e7``, ``1/x`` for ``x < 1e-6``; NaN (with a logged
        warning) for negative ``x``.
    """
    if math.isnan(x):
        return math.nan
    if x < 0:
        log.warning("trigamma inverse of a negative value: NaN produced")
        return math.nan
    if x > 1e7:
        return 1.0 / math.sqrt(x)
    if x < 1e-6:
        return 1.0 / x
    y = 0.5 + 1.0 / x
    iteration = 0
    while True:
        iteration += 1
        tri = float(special.polygamma(1, y))
        dif = tri * (1.0 - tri / x) / float(special.polygamma(2, y))
        y += dif
        if -dif / y < 1e-8:
            break
        if iteration > 50:
            log.warning("trigamma inverse: iteration limit exceeded")
            break
    return y


def prepare_covariate(covariate: ArrayLike, n: int) -> FloatArray:
    """The covariate of a variance trend, infinite values moved one unit beyond the finite range.

    Parameters
    ----------
    covariate : array_like, shape (n,)
        Covariate values, no NaN.
    n : int
        Number of variances.

    Returns
    -------
    ndarray, shape (n,)
        Finite covariate (the signs, if no value is finite).

    Raises
    ------
    ValueError
        On a length other than ``n`` or NaN values.
    """
    cov = as_1d(covariate, "covariate").copy()
    if cov.size != n:
        raise ValueError("s2 and covariate must be of the same length")
    if np.any(np.isnan(cov)):
        raise ValueError("NaN covariate values are not allowed")
    isfin = np.isfinite(cov)
    if not np.all(isfin):
        if np.any(isfin):
            lo, hi = float(np.min(cov[isfin])), float(np.max(cov[isfin]))
            cov[cov == -np.inf] = lo - 1.0
            cov[cov == np.inf] = hi + 1.0
        else:
            cov = np.sign(cov)
    return cov


def fit_f_dist_validated(
    x: FloatArray, df1: FloatArray | float, covariate: FloatArray | None
) -> tuple[float | FloatArray, float]:
    """limma's ``fitFDist`` on inputs already checked by :func:`fit_f_dist`.

    Parameters
    ----------
    x : ndarray, shape (G,)
        Variances (NaN allowed).
    df1 : float or ndarray, shape (G,)
        Their df (see :func:`pepmix.inference.limma._validate.as_df`).
    covariate : ndarray, shape (G,) or None
        Prepared covariate (:func:`prepare_covariate`), or None for a constant prior.

    Returns
    -------
    tuple
        ``(scale, df2)``, as the attributes of :class:`FDistFit`.
    """
    n = x.size
    if n == 0:
        return math.nan, math.nan
    if n == 1:
        return float(x[0]), 0.0
    ok = _usable(x, df1)
    nok = 0 if ok is None else int(np.sum(ok))
    if ok is None or nok == 0:
        return math.nan, math.nan
    if nok == 1:
        return float(x[ok][0]), 0.0
    cov_notok: FloatArray | None = None
    if nok < n:
        x = x[ok]
        if not isinstance(df1, float):
            df1 = df1[ok]
        if covariate is not None:
            cov_notok = covariate[~ok]
            covariate = covariate[ok]
    splinedf = 0
    if covariate is not None:
        splinedf = 1 + int(nok >= 3) + int(nok >= 6) + int(nok >= 30)
        splinedf = min(splinedf, int(np.unique(covariate).size))
        if splinedf < 2:
            sub_scale, sub_df2 = fit_f_dist_validated(x, df1, None)
            return np.full(n, float(sub_scale)), sub_df2
    x = _offset_zeros(x)
    half = np.asarray(df1, dtype=np.float64) / 2.0
    e = np.log(x) - special.digamma(half) + np.log(half)
    if covariate is None:
        emean: float | FloatArray = r_mean(e)
        evar = math.fsum(((e - emean) ** 2).tolist()) / (nok - 1)
    else:
        emean, evar = _trend_moments(e, covariate, splinedf, ok, cov_notok)
    evar -= r_mean(np.atleast_1d(special.polygamma(1, half)))
    return _prior(emean, evar, x, trend=covariate is not None)


def _usable(x: FloatArray, df1: FloatArray | float) -> NDArray[np.bool_] | None:
    """Proteins with a usable variance and df; None when a common df is unusable."""
    if isinstance(df1, float):
        if not (math.isfinite(df1) and df1 > _DF_EPS):
            return None
        ok = np.ones(x.size, dtype=bool)
    else:
        ok = np.isfinite(df1) & (df1 > _DF_EPS)
    with np.errstate(invalid="ignore"):
        ok &= np.isfinite(x) & (x > -_DF_EPS)
    return ok


def _offset_zeros(x: FloatArray) -> FloatArray:
    """Variances below 1e-5 times the median raised to that value (limma; warns on zeros)."""
    x = np.maximum(x, 0.0)
    m = float(np.median(x))
    if m == 0:
        log.warning("More than half of residual variances are exactly zero: eBayes unreliable")
        m = 1.0
    elif np.any(x == 0):
        log.warning("Zero sample variances detected, have been offset away from zero")
    return np.maximum(x, 1e-5 * m)


def _trend_moments(
    e: FloatArray,
    covariate: FloatArray,
    splinedf: int,
    ok: NDArray[np.bool_],
    cov_notok: FloatArray | None,
) -> tuple[FloatArray, float]:
    """Spline fit of ``e`` on the covariate: fitted mean (all proteins), residual variance."""
    spline = NaturalSpline(covariate, splinedf)
    design = spline.basis(covariate)
    coef, _, rank, _ = np.linalg.lstsq(design, e, rcond=None)
    fitted = design @ coef
    rss = math.fsum(((e - fitted) ** 2).tolist())
    evar = rss / (e.size - int(rank))
    if cov_notok is None:
        return fitted, evar
    emean = np.empty(ok.size)
    emean[ok] = fitted
    emean[~ok] = spline.basis(cov_notok) @ coef
    return emean, evar


def _prior(
    emean: float | FloatArray, evar: float, x: FloatArray, trend: bool
) -> tuple[float | FloatArray, float]:
    """``(scale, df2)`` from the mean of ``e`` and its variance beyond sampling variance."""
    scale: float | FloatArray
    if evar > 0:
        df2 = 2.0 * trigamma_inverse(evar)
        shift = float(special.digamma(df2 / 2.0)) - math.log(df2 / 2.0)
        scale = math.exp(emean + shift) if isinstance(emean, float) else np.exp(emean + shift)
        return scale, df2
    scale = np.exp(emean) if trend else r_mean(x)
    return scale, math.inf


def fit_f_dist(s2: ArrayLike, df: ArrayLike, covariate: ArrayLike | None = None) -> FDistFit:
    """Moment estimation of a scaled F-distribution (limma ``fitFDist``, Smyth 2004).

    Assumes ``s2[g] ~ scale * F(df[g], df2)`` and estimates ``scale`` (:math:`s_0^2`) and
    ``df2`` (:math:`d_0`) from the mean and variance of :math:`\\log s^2_g`.

    Parameters
    ----------
    s2 : array_like, shape (G,)
        Sample variances, >= 0. NaN marks a missing variance; such proteins, and those whose df is
        NaN or <= 1e-15, are left out of the estimation. Exact zeros are offset to 1e-5 times the
        median (with a logged warning), as limma does.
    df : float or array_like, shape (G,)
        Residual degrees of freedom of each variance, >= 0, possibly non-integer (e.g.
        Satterthwaite df). A scalar applies to all proteins.
    covariate : array_like, shape (G,), optional
        If given (default None), ``log(scale)`` is a natural cubic spline in the covariate with
        1-4 df depending on the number of usable proteins (limma's ``trend``), and ``scale`` is
        returned per protein (predicted from the spline, extrapolated linearly, for proteins left
        out of the estimation). Infinite values are moved one unit beyond the finite range.

    Returns
    -------
    FDistFit
        ``scale`` and ``df2``; ``df2`` is ``inf`` when the variances are no more dispersed than
        sampling error alone explains. With fewer than two usable variances ``df2`` is 0 (one
        usable: ``scale`` is that variance) or NaN (none).

    Raises
    ------
    ValueError
        On negative or infinite ``s2``, negative or infinite ``df``, mismatched lengths or NaN
        covariate values.
    """
    x = as_1d(s2, "s2")
    check_s2(x)
    df1 = as_df(df, x.size)
    cov = None if covariate is None else prepare_covariate(covariate, x.size)
    scale, df2 = fit_f_dist_validated(x, df1, cov)
    return FDistFit(scale=scale, df2=df2)
