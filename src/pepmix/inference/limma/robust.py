r"""Robust estimation of the scaled-F prior (limma ``fitFDistRobustly``, Phipson et al. 2016).

Notation as in :mod:`pepmix.inference.limma`: :math:`s^2_g \sim s_0^2 F(d_g, d_0)`. Hypervariable
proteins (outliers) inflate the spread of :math:`\log s^2_g` and deflate the moment estimate of
:math:`d_0`. The robust fit, in the steps of limma's ``fitFDistRobustly`` (no covariate):

1. **Usable proteins**: variances that are NaN or have df NaN or <= 1e-6 are left out (they get
   ``df2`` as shrunk df); variances below :math:`10^{-12}` times the median are raised to it.
2. **Non-robust start**: :func:`~pepmix.inference.limma.fitfdist.fit_f_dist` gives
   :math:`(s_0^2, d_0)` used to map unequal df onto the largest df :math:`d_{\max}`: each
   :math:`s^2_g` is replaced by the variance on :math:`d_{\max}` df with the same F tail
   probability.
3. **Winsorized moments**: :math:`z_g = \log s^2_g` minus its trimmed mean (trim = the right tail
   proportion) is Winsorized at its type-7 quantiles; its mean and variance are compared with the
   mean and variance of the equally Winsorized :math:`\log F(d_{\max}, d_0)` distribution
   (128-point Gauss-Legendre quadrature). :math:`d_0` solves the variance equation (root finding
   on :math:`d_0/(1+d_0)`, R's ``uniroot``), or is infinite when the observed variance is at most
   that of :math:`\log \chi^2_{d_{\max}}/d_{\max}`; :math:`s_0^2` follows from the mean.
4. **Outliers**: the right-tail probability :math:`p_g` of each :math:`s^2_g` under the fitted
   distribution is compared with its empirical tail probability :math:`(G - r_g + 0.5)/G`
   (:math:`r_g` the rank); their ratio (at most 1) is the probability that protein :math:`g` is
   not an outlier. The per-protein prior df (``df2_shrunk``) mix :math:`d_0` with the df of an
   outlier, made monotone in :math:`p_g`.

References
----------
Phipson B, Lee S, Majewski IJ, Alexander WS, Smyth GK (2016). Robust hyperparameter estimation
protects against hypervariable genes and improves power to detect differential expression. Ann
Appl Stat 10, 946-963.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from pepmix.inference.limma._distributions import f_density, log_pf, qf
from pepmix.inference.limma._numeric import (
    FloatArray,
    average_ranks,
    log_ratio,
    quantile7,
    r_mean,
    trimmed_mean,
    zeroin,
)
from pepmix.inference.limma._validate import as_1d, as_df, as_tail_p, check_s2
from pepmix.inference.limma.fitfdist import FDistFit, fit_f_dist_validated

log = logging.getLogger(__name__)

__all__ = ["fit_f_dist_robust", "fit_f_dist_robust_validated", "winsorized_moments"]


def fit_f_dist_robust(
    s2: ArrayLike,
    df: ArrayLike,
    winsor_tail_p: float | Sequence[float] = (0.05, 0.1),
) -> FDistFit:
    """Robust estimation of a scaled F-distribution (limma ``fitFDistRobustly``).

    Implements Phipson et al. (2016): the prior is estimated from Winsorized moments of
    :math:`\\log s^2_g`, and each protein gets its own prior df (``df2_shrunk``), lowered towards
    the df appropriate for outliers according to the probability that its variance is an outlier.

    Parameters
    ----------
    s2 : array_like, shape (G,)
        Sample variances, >= 0; NaN marks a missing variance (excluded from the estimation, gets
        ``df2`` as its shrunk df). Variances below 1e-12 times the median are offset to that value.
    df : float or array_like, shape (G,)
        Residual degrees of freedom, >= 0, possibly non-integer. Proteins with NaN df or df <= 1e-6
        are excluded like missing variances. Unequal df are mapped to the largest df by matching
        F-distribution tail probabilities (as in limma).
    winsor_tail_p : float or sequence of two floats, default (0.05, 0.1)
        Left and right tail proportions of :math:`\\log s^2_g` to Winsorize, each in (0, 0.5).

    Returns
    -------
    FDistFit
        ``scale``, ``df2``, ``df2_shrunk`` (always set) and, when limma computes them,
        ``tail_p_value``, ``prob_outlier`` and ``df2_outlier``.

    Raises
    ------
    ValueError
        On negative or infinite inputs, mismatched lengths, a bad ``winsor_tail_p``, or when most
        usable variances are zero.

    Notes
    -----
    With exactly two proteins limma returns the non-robust fit without ``df2.shrunk``; here
    ``df2_shrunk`` is then ``df2`` for both.
    """
    x = as_1d(s2, "s2")
    check_s2(x)
    df1 = as_df(df, x.size)
    tails = as_tail_p(winsor_tail_p)
    return fit_f_dist_robust_validated(x, df1, tails)


def fit_f_dist_robust_validated(
    x: FloatArray, df1: FloatArray | float, tail_p: tuple[float, float]
) -> FDistFit:
    """:func:`fit_f_dist_robust` on checked inputs (steps 1-4 of the module docstring).

    Parameters
    ----------
    x : ndarray, shape (G,)
        Variances (NaN allowed).
    df1 : float or ndarray, shape (G,)
        Their df.
    tail_p : tuple of two floats
        Left and right Winsorization tail proportions.

    Returns
    -------
    FDistFit
    """
    n = x.size
    if n < 2:
        return FDistFit(scale=math.nan, df2=math.nan, df2_shrunk=np.full(n, math.nan))
    if n == 2:
        # limma returns the plain fitFDist result here (without df2.shrunk); use df2 for both
        scale, df2 = fit_f_dist_validated(x, df1, None)
        return FDistFit(scale=scale, df2=df2, df2_shrunk=np.full(n, df2))
    df1_arr = np.broadcast_to(np.asarray(df1, dtype=np.float64), (n,))
    ok = ~np.isnan(x) & np.isfinite(df1_arr) & (df1_arr > 1e-6)
    if not np.all(ok):
        return _fit_usable(x, df1, tail_p, ok)
    x = _offset_tiny(x)
    nr_scale, nr_df2 = fit_f_dist_validated(x, df1, None)
    nr_scale_f = float(nr_scale)  # no covariate: scalar
    if all(p < 1.0 / n for p in tail_p):
        return FDistFit(scale=nr_scale_f, df2=nr_df2, df2_shrunk=np.full(n, nr_df2))
    x, df1_max = _to_largest_df(x, df1, nr_scale_f, nr_df2)
    z = np.log(x)
    ztrend, zwmean, zwvar = _winsorized_log_moments(z, tail_p)
    mom_mean, mom_var = winsorized_moments(df1_max, math.inf, tail_p)
    funval_inf = log_ratio(zwvar, mom_var)
    if funval_inf <= 0:
        return _infinite_prior_fit(z, ztrend + zwmean - mom_mean, df1_max)
    if math.isinf(nr_df2):
        return FDistFit(scale=nr_scale_f, df2=nr_df2, df2_shrunk=np.full(n, nr_df2))
    df2 = _solve_df2(df1_max, tail_p, zwvar, nr_df2, funval_inf)
    mom_mean, _ = winsorized_moments(df1_max, df2, tail_p)
    return _outlier_fit(z, ztrend + zwmean - mom_mean, df1_max, df2)


def _fit_usable(
    x: FloatArray, df1: FloatArray | float, tail_p: tuple[float, float], ok: NDArray[np.bool_]
) -> FDistFit:
    """Fit to the usable proteins ``ok``; the others get ``df2`` as shrunk df and NaN p-values."""
    n = x.size
    sub = fit_f_dist_robust_validated(x[ok], df1 if isinstance(df1, float) else df1[ok], tail_p)
    shrunk = np.full(n, sub.df2)
    if sub.df2_shrunk is not None:
        shrunk[ok] = sub.df2_shrunk

    def expand(values: FloatArray | None) -> FloatArray | None:
        if values is None:
            return None
        full = np.full(n, math.nan)
        full[ok] = values
        return full

    return FDistFit(
        scale=sub.scale,
        df2=sub.df2,
        df2_shrunk=shrunk,
        tail_p_value=expand(sub.tail_p_value),
        prob_outlier=expand(sub.prob_outlier),
        df2_outlier=sub.df2_outlier,
    )


def _offset_tiny(x: FloatArray) -> FloatArray:
    """Variances below 1e-12 times the median raised to it (a copy; warns once)."""
    x = x.copy()
    m = float(np.median(x))
    if m <= 0:
        raise ValueError("Variances are mostly <= 0")
    tiny = x < m * 1e-12
    if np.any(tiny):
        log.warning("%d very small variance(s) detected, offset away from zero", int(np.sum(tiny)))
        x[tiny] = m * 1e-12
    return x


def _to_largest_df(
    x: FloatArray, df1: FloatArray | float, scale: float, df2: float
) -> tuple[FloatArray, float]:
    """Variances on fewer df mapped to the largest df with the same F tail probability.

    The smaller of the two tails is matched (on the log scale), as limma does.
    """
    if isinstance(df1, float):
        return x, df1
    df1max = float(np.max(df1))
    lower_df = df1 < (df1max - 1e-14)
    if np.any(lower_df):
        f = x[lower_df] / scale
        d1 = df1[lower_df]
        pupper = log_pf(f, d1, df2, lower=False)
        plower = log_pf(f, d1, df2, lower=True)
        up = pupper < plower
        if np.any(up):
            f[up] = qf(pupper[up], df1max, df2, lower=False, log_p=True)
        if np.any(~up):
            f[~up] = qf(plower[~up], df1max, df2, lower=True, log_p=True)
        x[lower_df] = f * scale
    return x, df1max


def _winsorized_log_moments(
    z: FloatArray, tail_p: tuple[float, float]
) -> tuple[float, float, float]:
    """Trimmed mean of ``z`` and mean and variance of its Winsorized residuals."""
    n = z.size
    ztrend = trimmed_mean(z, tail_p[1])
    zresid = z - ztrend
    zrq = quantile7(zresid, (tail_p[0], 1.0 - tail_p[1]))
    zwins = np.minimum(np.maximum(zresid, zrq[0]), zrq[1])
    zwmean = r_mean(zwins)
    zwvar = r_mean((zwins - zwmean) ** 2) * n / (n - 1)
    return ztrend, zwmean, zwvar


@lru_cache(maxsize=1)
def _gauss_legendre_unit(order: int = 128) -> tuple[FloatArray, FloatArray]:
    """Gauss-Legendre nodes and weights on [0, 1] (weights sum to 1)."""
    nodes, weights = np.polynomial.legendre.leggauss(order)
    return (nodes + 1.0) / 2.0, weights / 2.0


def winsorized_moments(df1: float, df2: float, tail_p: tuple[float, float]) -> tuple[float, float]:
    """Mean and variance of the Winsorized log F(df1, df2) distribution.

    128-point Gauss-Legendre quadrature on the :math:`x/(1+x)` scale between the Winsorization
    quantiles, plus the tail masses at the quantiles (limma's ``fitFDistRobustly``).

    Parameters
    ----------
    df1, df2 : float
        Degrees of freedom of the F distribution (``df2`` may be ``inf``).
    tail_p : tuple of two floats
        Left and right Winsorization tail proportions.

    Returns
    -------
    tuple of float
        ``(mean, variance)``.
    """
    fq = qf(np.array([tail_p[0], 1.0 - tail_p[1]]), df1, df2, lower=True, log_p=False)
    zq = np.log(fq)
    q = fq / (1.0 + fq)
    g_nodes, g_weights = _gauss_legendre_unit()
    nodes = q[0] + (q[1] - q[0]) * g_nodes
    fnodes = nodes / (1.0 - nodes)
    znodes = np.log(fnodes)
    f = f_density(fnodes, df1, df2) / (1.0 - nodes) ** 2
    q21 = float(q[1] - q[0])
    tails = np.array(tail_p)
    mean = q21 * math.fsum((g_weights * f * znodes).tolist()) + math.fsum((zq * tails).tolist())
    var = q21 * math.fsum((g_weights * f * (znodes - mean) ** 2).tolist()) + math.fsum(
        ((zq - mean) ** 2 * tails).tolist()
    )
    return mean, var


def _solve_df2(
    df1: float, tail_p: tuple[float, float], zwvar: float, nr_df2: float, funval_inf: float
) -> float:
    """Prior df matching the Winsorized variance, searched on the link scale ``d0/(1+d0)``.

    The search starts at the non-robust ``nr_df2`` (the robust d0 is never smaller); limma's
    ``uniroot(tol = 1e-8)`` with the known value at d0 = inf is reproduced by :func:`zeroin`.
    """

    def fun(v: float) -> float:
        _, var = winsorized_moments(df1, v / (1.0 - v), tail_p)
        return log_ratio(zwvar, var)

    rbx = nr_df2 / (1.0 + nr_df2)
    funval_low = fun(rbx)
    if funval_low >= 0:
        return nr_df2
    root = zeroin(fun, rbx, 1.0, funval_low, funval_inf, tol=1e-8, maxiter=1000)
    return root / (1.0 - root)


def _infinite_prior_fit(z: FloatArray, ztc: float, df1: float) -> FDistFit:
    """Fit with infinite prior df: chi-square tail probabilities, shrunk df for outliers."""
    n = z.size
    s20 = math.exp(ztc)
    fstat = np.exp(z - ztc)
    tail_pv = np.asarray(special.gammaincc(df1 / 2.0, fstat * df1 / 2.0), dtype=np.float64)
    r = average_ranks(fstat)
    emp_tail = (n - r + 0.5) / n
    prob_not = np.minimum(tail_pv / emp_tail, 1.0)
    shrunk = np.full(n, math.inf)
    outl = prob_not < 1
    if np.any(outl):
        shrunk[outl] = prob_not[outl] * (n * df1)
        o = np.argsort(tail_pv, kind="stable")
        shrunk[o] = np.maximum.accumulate(shrunk[o])
    return FDistFit(scale=s20, df2=math.inf, df2_shrunk=shrunk, tail_p_value=tail_pv)


def _outlier_fit(z: FloatArray, ztc: float, df1: float, df2: float) -> FDistFit:
    """Fit with finite prior df: tail and outlier probabilities, shrunk df (step 4)."""
    n = z.size
    s20 = math.exp(ztc)
    fstat = np.exp(z - ztc)
    log_tail = log_pf(fstat, df1, df2, lower=False)
    tail_pv = np.asarray(np.exp(log_tail), dtype=np.float64)
    r = average_ranks(fstat)
    log_emp = np.log(n - r + 0.5) - math.log(n)
    log_not = np.minimum(log_tail - log_emp, 0.0)
    prob_out = -np.expm1(log_not)
    if np.any(log_not < 0):
        df2_outlier, shrunk = _shrunk_df(fstat, log_tail, log_not, df1, df2)
    else:
        df2_outlier = df2
        shrunk = np.full(n, df2)
    return FDistFit(
        scale=s20,
        df2=df2,
        df2_shrunk=shrunk,
        tail_p_value=tail_pv,
        prob_outlier=prob_out,
        df2_outlier=df2_outlier,
    )


def _shrunk_df(
    fstat: FloatArray, log_tail: FloatArray, log_not: FloatArray, df1: float, df2: float
) -> tuple[float, FloatArray]:
    """Outlier df and per-protein prior df, monotone in the tail probability (limma)."""
    n = fstat.size
    prob_not = np.exp(log_not)
    prob_out = -np.expm1(log_not)
    min_log_tail = float(np.min(log_tail))
    if min_log_tail == -math.inf:
        df2_outlier = 0.0
        shrunk = prob_not * df2
    else:
        df2_outlier = math.log(0.5) / min_log_tail * df2
        new_log_tail = float(log_pf(np.array([np.max(fstat)]), df1, df2_outlier, lower=False)[0])
        df2_outlier = math.log(0.5) / new_log_tail * df2_outlier
        shrunk = prob_not * df2 + prob_out * df2_outlier
    o = np.argsort(log_tail, kind="stable")
    ordered = shrunk[o]
    running = np.cumsum(ordered) / np.arange(1, n + 1)
    imin = int(np.argmin(running))
    ordered[: imin + 1] = running[imin]
    out = np.empty(n)
    out[o] = np.maximum.accumulate(ordered)
    return df2_outlier, out
