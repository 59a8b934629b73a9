r"""Empirical-Bayes moderation of protein-wise variances: a Python port of limma's method.

Model and notation
------------------
For protein (gene) :math:`g = 1, \dots, G` the per-protein model gives a residual variance
:math:`s^2_g` on :math:`d_g` degrees of freedom. :math:`d_g` may differ between proteins and need
not be an integer (Satterthwaite df from a mixed model are accepted). The hierarchical model of
Smyth (2004) is

.. math::

    s^2_g \mid \sigma^2_g \sim \sigma^2_g\,\chi^2_{d_g}/d_g, \qquad
    \frac{1}{\sigma^2_g} \sim \frac{1}{d_0 s_0^2}\,\chi^2_{d_0},

so that marginally :math:`s^2_g \sim s_0^2 \cdot F(d_g, d_0)`. The prior variance
:math:`s_0^2` (``var_prior``, limma ``s2.prior``) and prior degrees of freedom :math:`d_0`
(``df_prior``, limma ``df.prior``) are estimated from all proteins, and the posterior (moderated)
variance is

.. math::

    \tilde s^2_g = \frac{d_0 s_0^2 + d_g s^2_g}{d_0 + d_g}

on :math:`d_g + d_0` degrees of freedom (limma caps the total at :math:`\sum_g d_g`, see
:func:`total_df`). :math:`d_0 = \infty` means all true variances equal :math:`s_0^2`; then
:math:`\tilde s^2_g = s_0^2`.

Estimation
----------
:func:`fit_f_dist` (limma ``fitFDist``) matches moments of
:math:`e_g = \log s^2_g - \psi(d_g/2) + \log(d_g/2)`: :math:`E[e_g] = \log s_0^2 - \psi(d_0/2) +
\log(d_0/2)` and :math:`\mathrm{Var}[e_g] = \psi'(d_g/2) + \psi'(d_0/2)`, where :math:`\psi,
\psi'` are the digamma and trigamma functions; :math:`\psi'(d_0/2)` is inverted by Newton's
method. With a covariate the mean of :math:`e_g` is a natural cubic spline in the covariate
(limma's ``trend``), so :math:`s_0^2` becomes a vector.

:func:`fit_f_dist_robust` (limma ``fitFDistRobustly``; Phipson et al. 2016) estimates
:math:`d_0, s_0^2` from Winsorized moments of :math:`\log s^2_g` (unequal :math:`d_g` are first
mapped to the largest :math:`d_g` by matching F tail probabilities), then shrinks the prior df of
proteins whose variance is an outlier: ``df2_shrunk`` is a per-protein :math:`d_0`.

:func:`squeeze_var` (limma ``squeezeVar``) combines both into posterior variances.
:func:`treat_pvalues` gives limma's TREAT p-values for :math:`H_0: |\beta| \le \tau` and
:func:`bh_adjust` Benjamini-Hochberg adjusted p-values.

The code follows limma 3.54 (R 4.2) step by step, including its handling of zero and missing
variances and of zero or missing df, so results agree with limma to rounding (see
``tests/reference/ebayes``). Differences:

- inputs that are errors in a pipeline (negative or infinite variances, negative or infinite df)
  raise :class:`ValueError` instead of being dropped;
- the robust fit with a covariate (limma uses ``lowess`` for it) is not ported;
- F and chi-square tail probabilities are computed on the log scale without underflow, where R 4.2
  can underflow or lose accuracy for extreme variances (far outliers); quantiles reproduce R's
  ``qf`` formula, including its rounding;
- limma >= 3.62 by default estimates the prior differently when the df are unequal
  (``fitFDistUnequalDF1``, ``legacy = FALSE``); this module reproduces the legacy (3.54) method.

References
----------
Smyth GK (2004). Linear models and empirical Bayes methods for assessing differential expression
in microarray experiments. Stat Appl Genet Mol Biol 3, Article 3.

Phipson B, Lee S, Majewski IJ, Alexander WS, Smyth GK (2016). Robust hyperparameter estimation
protects against hypervariable genes and improves power to detect differential expression. Ann
Appl Stat 10, 946-963.

McCarthy DJ, Smyth GK (2009). Testing significance relative to a fold-change threshold is a TREAT.
Bioinformatics 25, 765-771.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]

__all__ = [
    "FDistFit",
    "SqueezeResult",
    "bh_adjust",
    "fit_f_dist",
    "fit_f_dist_robust",
    "squeeze_var",
    "total_df",
    "treat_pvalues",
]

_LN_2PI = math.log(2.0 * math.pi)
_LN_SQRT_2PI = 0.5 * _LN_2PI
_DBL_MIN = float(np.finfo(np.float64).tiny)
_DBL_EPS = float(np.finfo(np.float64).eps)
#: below this a tail probability is recomputed on the log scale (it may have underflowed)
_TINY_P = 1e-290


# ---------------------------------------------------------------------------------------------
# Result types
# ---------------------------------------------------------------------------------------------


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
    df2_shrunk : ndarray or None
        Robust fit only: per-protein prior df, reduced for outlier variances (limma
        ``df2.shrunk``). Proteins excluded from the fit get ``df2``.
    tail_p_value : ndarray or None
        Robust fit only: right-tail probability of each :math:`s^2_g` under the fitted scaled F
        distribution (limma ``tail.p.value``); NaN for excluded proteins, None on the early-return
        paths where limma does not compute it.
    prob_outlier : ndarray or None
        Robust fit only: probability that each variance is an outlier (limma ``prob.outlier``);
        NaN for excluded proteins, None where limma does not compute it.
    df2_outlier : float or None
        Robust fit only: prior df assigned to outliers (limma ``df2.outlier``), None where limma
        does not compute it.
    """

    scale: float | FloatArray
    df2: float
    df2_shrunk: FloatArray | None = None
    tail_p_value: FloatArray | None = None
    prob_outlier: FloatArray | None = None
    df2_outlier: float | None = None


@dataclass(frozen=True, eq=False)
class SqueezeResult:
    """Posterior (moderated) variances and the estimated prior.

    Attributes
    ----------
    var_post : ndarray
        Posterior variances :math:`\\tilde s^2_g` (limma ``var.post`` / ``s2.post``).
    var_prior : float or ndarray
        Prior variance :math:`s_0^2` (limma ``var.prior`` / ``s2.prior``); an array when a
        covariate (trend) was used.
    df_prior : float or ndarray
        Prior df :math:`d_0` (limma ``df.prior``); a per-protein array when ``robust=True``.
    fit : FDistFit or None
        The underlying F-distribution fit (None for a single protein).
    """

    var_post: FloatArray
    var_prior: float | FloatArray
    df_prior: float | FloatArray
    fit: FDistFit | None = None


# ---------------------------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------------------------


def _as_1d(values: ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _check_s2(s2: FloatArray) -> None:
    if np.any(s2 < 0):
        raise ValueError("s2 contains negative variances")
    if np.any(np.isinf(s2)):
        raise ValueError("s2 contains infinite variances")


def _as_df(df: ArrayLike, n: int) -> FloatArray | float:
    arr = np.asarray(df, dtype=np.float64)
    if arr.ndim == 0:
        value = float(arr)
        if value < 0 or math.isinf(value):
            raise ValueError(f"df must be finite and >= 0 (or NaN), got {value}")
        return value
    if arr.ndim != 1:
        raise ValueError(f"df must be a scalar or one-dimensional, got shape {arr.shape}")
    if arr.size == 1:
        return _as_df(arr[0], n)
    if arr.size != n:
        raise ValueError(f"df has length {arr.size} but s2 has length {n}")
    if np.any(arr < 0) or np.any(np.isinf(arr)):
        raise ValueError("df must be finite and >= 0 (or NaN)")
    return arr


def _as_tail_p(winsor_tail_p: float | Sequence[float]) -> tuple[float, float]:
    arr = np.atleast_1d(np.asarray(winsor_tail_p, dtype=np.float64))
    if arr.ndim != 1 or arr.size not in (1, 2):
        raise ValueError("winsor_tail_p must have one or two elements")
    arr = np.resize(arr, 2)
    if not np.all((arr > 0) & (arr < 0.5)):
        raise ValueError(f"winsor_tail_p must lie in (0, 0.5), got {arr.tolist()}")
    return float(arr[0]), float(arr[1])


# ---------------------------------------------------------------------------------------------
# Small numerical helpers (R semantics)
# ---------------------------------------------------------------------------------------------


def _average_ranks(x: FloatArray) -> FloatArray:
    """Ranks 1..n with ties given their average rank (``scipy.stats.rankdata``'s default)."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return np.asarray((ends - (counts - 1) / 2.0)[inverse], dtype=np.float64)


def _mean(x: FloatArray) -> float:
    """Mean with an exactly rounded sum (R accumulates in long double)."""
    return math.fsum(x.tolist()) / x.size


def _quantile7(x: FloatArray, probs: Sequence[float]) -> FloatArray:
    """R's ``quantile(x, probs, type = 7)``."""
    xs = np.sort(x)
    n = xs.size
    out = np.empty(len(probs))
    for k, p in enumerate(probs):
        index = (n - 1) * p
        lo = math.floor(index)
        hi = math.ceil(index)
        q = float(xs[lo])
        h = index - lo
        if index > lo and xs[hi] != q:
            q = (1.0 - h) * q + h * float(xs[hi])
        out[k] = q
    return out


def _trimmed_mean(x: FloatArray, trim: float) -> float:
    """R's ``mean(x, trim = trim)``."""
    n = x.size
    if trim >= 0.5:
        return float(np.median(x))
    lo = math.floor(n * trim)
    xs = np.sort(x)[lo : n - lo]
    return _mean(xs)


def _log_ratio(num: float, den: float) -> float:
    """log(num / den) with R's conventions for zero (-inf) and NaN."""
    ratio = num / den if den != 0 else (math.inf if num > 0 else math.nan)
    if math.isnan(ratio):
        return math.nan
    if ratio == 0:
        return -math.inf
    return math.log(ratio)


def _trigamma_inverse(x: float) -> float:
    """Solve :math:`\\psi'(y) = x` for y > 0 by Newton's method (Smyth 2004, as in limma)."""
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


def _zeroin(
    f: Callable[[float], float],
    ax: float,
    bx: float,
    fa: float,
    fb: float,
    tol: float,
    maxiter: int,
) -> float:
    """Brent's root finder with the stopping rule of R's ``uniroot`` (given f at both ends)."""
    a, b = ax, bx
    c, fc = a, fa
    if fa == 0.0:
        return a
    if fb == 0.0:
        return b
    for _ in range(maxiter + 1):
        prev_step = b - a
        if abs(fc) < abs(fb):
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2.0 * _DBL_EPS * abs(b) + tol / 2.0
        new_step = (c - b) / 2.0
        if abs(new_step) <= tol_act or fb == 0.0:
            return b
        if abs(prev_step) >= tol_act and abs(fa) > abs(fb):
            cb = c - b
            if a == c:
                t1 = fb / fa
                p = cb * t1
                q = 1.0 - t1
            else:
                q = fa / fc
                t1 = fb / fc
                t2 = fb / fa
                p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0))
                q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            if p > 0:
                q = -q
            else:
                p = -p
            if p < (0.75 * cb * q - abs(tol_act * q) / 2.0) and p < abs(prev_step * q / 2.0):
                new_step = p / q
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0 else -tol_act
        a, fa = b, fb
        b += new_step
        fb = f(b)
        if (fb > 0 and fc > 0) or (fb < 0 and fc < 0):
            c, fc = a, fa
    log.warning("root finding: iteration limit reached")
    return b


# ---------------------------------------------------------------------------------------------
# Densities, distribution and quantile functions accurate in the tails
# ---------------------------------------------------------------------------------------------


def _stirlerr(n: FloatArray) -> FloatArray:
    """log(n!) - log(sqrt(2 pi n) (n/e)^n), Loader (2000)."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    small = (n <= 15.0) & (n > 0)
    ns = n[small]
    out[small] = special.gammaln(ns + 1.0) - (ns + 0.5) * np.log(ns) + ns - _LN_SQRT_2PI
    big = n > 15.0
    nb = n[big]
    nn = nb * nb
    s0, s1, s2, s3, s4 = 1 / 12, 1 / 360, 1 / 1260, 1 / 1680, 1 / 1188
    val = np.where(
        nb > 500,
        (s0 - s1 / nn) / nb,
        np.where(
            nb > 80,
            (s0 - (s1 - s2 / nn) / nn) / nb,
            np.where(
                nb > 35,
                (s0 - (s1 - (s2 - s3 / nn) / nn) / nn) / nb,
                (s0 - (s1 - (s2 - (s3 - s4 / nn) / nn) / nn) / nn) / nb,
            ),
        ),
    )
    out[big] = val
    return out


def _bd0(x: FloatArray, mu: FloatArray) -> FloatArray:
    """Deviance term x log(x/mu) + mu - x, computed without cancellation (Loader 2000)."""
    x, mu = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(mu, np.float64))
    out = np.empty(x.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        close = np.abs(x - mu) < 0.1 * (x + mu)
        far = ~close
        out[far] = x[far] * np.log(x[far] / mu[far]) + mu[far] - x[far]
        if np.any(close):
            xc, mc = x[close], mu[close]
            v = (xc - mc) / (xc + mc)
            s = (xc - mc) * v
            ej = 2.0 * xc * v
            v2 = v * v
            active = np.abs(s) >= _DBL_MIN
            for j in range(1, 1000):
                if not np.any(active):
                    break
                ej = np.where(active, ej * v2, ej)
                s1 = s + ej / (2 * j + 1)
                done = active & (s1 == s)
                s = np.where(active, s1, s)
                active &= ~done
            out[close] = s
    return out


def _log_dbinom_raw(k: float, n: float, p: FloatArray, q: FloatArray) -> FloatArray:
    """Log of the binomial density at (possibly non-integer) k, Loader's saddle point form."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if k == 0.0:
            if n == 0.0:
                return np.zeros_like(p)
            lc = np.where(p < 0.1, -_bd0(np.full_like(q, n), n * q) - n * p, n * np.log(q))
            return np.where(p == 0, 0.0, np.where(q == 0, -np.inf, lc))
        if k == n:
            lc = np.where(q < 0.1, -_bd0(np.full_like(p, n), n * p) - n * q, n * np.log(p))
            return np.where(q == 0, 0.0, np.where(p == 0, -np.inf, lc))
        if k < 0 or k > n:
            return np.full_like(p, -np.inf)
        st = _stirlerr(np.array([n, k, n - k]))
        lc = (
            st[0]
            - st[1]
            - st[2]
            - _bd0(np.full_like(p, k), n * p)
            - _bd0(np.full_like(q, n - k), n * q)
        )
        lf = _LN_2PI + math.log(k) + math.log1p(-k / n)
        res = lc - 0.5 * lf
        return np.where((p == 0) | (q == 0), -np.inf, res)


def _log_dpois_raw(k: float, lam: FloatArray) -> FloatArray:
    """Log Poisson density at (possibly non-integer) k, Loader's form."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.empty_like(lam)
        zero = lam == 0
        out[zero] = 0.0 if k == 0 else -np.inf
        rest = ~zero
        lr = lam[rest]
        if k < 0:
            out[rest] = -np.inf
            return out
        res = np.where(
            k <= lr * _DBL_MIN,
            -lr,
            np.where(
                lr < k * _DBL_MIN,
                -lr + k * np.log(lr) - special.gammaln(k + 1.0),
                -float(_stirlerr(np.array([k]))[0])
                - _bd0(np.full_like(lr, k), lr)
                - 0.5 * math.log(2.0 * math.pi * k if k > 0 else 1.0),
            ),
        )
        out[rest] = np.where(np.isinf(lr), -np.inf, res)
        return out


def _f_density(x: FloatArray, m: float, n: float) -> FloatArray:
    """Density of F(m, n) at x > 0, accurate for large n (R's ``df``; n may be inf)."""
    x = np.asarray(x, dtype=np.float64)
    if math.isinf(n):
        # Gamma(shape m/2, scale 2/m) density, as chi-square(m)/m
        shape, scale = m / 2.0, 2.0 / m
        with np.errstate(divide="ignore", invalid="ignore"):
            if shape < 1:
                lp = _log_dpois_raw(shape, x / scale)
                return np.exp(lp) * shape / x
            return np.exp(_log_dpois_raw(shape - 1.0, x / scale)) / scale
    f = 1.0 / (n + x * m)
    q = n * f
    p = x * m * f
    if m >= 2:
        fac = m * q / 2.0
        dens = np.exp(_log_dbinom_raw((m - 2.0) / 2.0, (m + n - 2.0) / 2.0, p, q))
    else:
        fac = m * m * q / (2.0 * p * (m + n))
        dens = np.exp(_log_dbinom_raw(m / 2.0, (m + n) / 2.0, p, q))
    result: FloatArray = fac * dens
    return result


def _log_ibeta_cf(a: float, b: float, x: float) -> float:
    """log I_x(a, b) by the continued fraction, for x well below the mean (no underflow)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = tiny if abs(d) < tiny else d
    d = 1.0 / d
    h = d
    for m in range(1, 10000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = tiny if abs(d) < tiny else d
        c = 1.0 + aa / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = tiny if abs(d) < tiny else d
        c = 1.0 + aa / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    front = a * math.log(x) + b * math.log1p(-x) - math.log(a) - float(special.betaln(a, b))
    return front + math.log(h)


def _log_ibeta(
    a: FloatArray | float, b: FloatArray | float, y: FloatArray, yc: FloatArray, lower: bool
) -> FloatArray:
    """log of I_y(a, b) (lower) or 1 - I_y(a, b) (upper); ``yc`` = 1 - y computed accurately."""
    a, b, y, yc = np.broadcast_arrays(a, b, y, yc)
    lo = special.betainc(a, b, y)
    up = special.betainc(b, a, yc)
    target, other = (lo, up) if lower else (up, lo)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(target <= 0.5, np.log(target), np.log1p(-other))
    idx = np.flatnonzero((target < _TINY_P) & (y > 0) & (yc > 0))
    for i in idx:
        if lower:
            out.flat[i] = _log_ibeta_cf(float(a.flat[i]), float(b.flat[i]), float(y.flat[i]))
        else:
            out.flat[i] = _log_ibeta_cf(float(b.flat[i]), float(a.flat[i]), float(yc.flat[i]))
    result: FloatArray = out
    return result


def _log_igamma_small(a: float, x: float, lower: bool) -> float:
    """log of the regularized incomplete gamma P(a, x) (lower) or Q(a, x) (upper) in its far
    tail, by the series (lower) or the continued fraction (upper)."""
    front = -x + a * math.log(x) - math.lgamma(a)
    if lower:
        ap = a
        term = total = 1.0 / a
        for _ in range(100000):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-17:
                break
        return front + math.log(total)
    tiny = 1e-300
    bb = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / bb
    h = d
    for i in range(1, 100000):
        an = -i * (i - a)
        bb += 2.0
        d = an * d + bb
        d = tiny if abs(d) < tiny else d
        c = bb + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return front + math.log(h)


def _log_pchisq(q: FloatArray, k: FloatArray, lower: bool) -> FloatArray:
    """log P(X <= q) or log P(X > q) for X ~ chi-square(k)."""
    q, k = np.broadcast_arrays(np.asarray(q, np.float64), np.asarray(k, np.float64))
    a, x = k / 2.0, q / 2.0
    lo = special.gammainc(a, x)
    up = special.gammaincc(a, x)
    target, other = (lo, up) if lower else (up, lo)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(target <= 0.5, np.log(target), np.log1p(-other))
    idx = np.flatnonzero((target < _TINY_P) & (x > 0) & np.isfinite(x))
    for i in idx:
        out.flat[i] = _log_igamma_small(float(a.flat[i]), float(x.flat[i]), lower)
    result: FloatArray = out
    return result


def _log_pf(x: FloatArray, m: FloatArray | float, n: float, lower: bool) -> FloatArray:
    """log P(X <= x) (lower) or log P(X > x) for X ~ F(m, n); n may be inf."""
    x, mm = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(m, np.float64))
    if math.isinf(n):
        return _log_pchisq(x * mm, mm, lower)
    denom = n + mm * x
    v = n / denom  # ~ Beta(n/2, m/2)
    w = mm * x / denom  # = 1 - v ~ Beta(m/2, n/2)
    big = mm * x > n
    # R: if m x > n use pbeta(v; n/2, m/2) with the tail swapped, else pbeta(w; m/2, n/2)
    out = np.empty(x.shape)
    if np.any(big):
        out[big] = _log_ibeta(n / 2.0, mm[big] / 2.0, v[big], w[big], not lower)
    small = ~big
    if np.any(small):
        out[small] = _log_ibeta(mm[small] / 2.0, n / 2.0, w[small], v[small], lower)
    return out


def _solve_log_tail(logp: float, logcdf: Callable[[float], float], increasing: bool) -> float:
    """Solve logcdf(x) = logp for x > 0 on the log-x scale (used only for extreme tails)."""

    def g(t: float) -> float:
        return logcdf(math.exp(t)) - logp

    t_min, t_max = -745.0, 709.7
    lo, hi = -1.0, 1.0
    step = 2.0
    sign = 1.0 if increasing else -1.0
    while sign * g(lo) > 0:
        if lo <= t_min:
            return 0.0
        lo = max(lo - step, t_min)
        step *= 2.0
    step = 2.0
    while sign * g(hi) < 0:
        if hi >= t_max:
            return math.inf
        hi = min(hi + step, t_max)
        step *= 2.0
    from scipy.optimize import brentq  # only for extreme tails

    root = float(brentq(g, lo, hi, xtol=1e-15, rtol=4 * _DBL_EPS, maxiter=500))
    return math.exp(root)


def _qchisq(p: FloatArray, k: float, lower: bool, log_p: bool) -> FloatArray:
    """Quantile of chi-square(k) for (log) probabilities p."""
    p = np.asarray(p, dtype=np.float64)
    prob = np.exp(p) if log_p else p
    a = k / 2.0
    out = np.asarray(
        2.0 * (special.gammaincinv(a, prob) if lower else special.gammainccinv(a, prob)),
        dtype=np.float64,
    )
    if log_p:
        for i in np.flatnonzero(p < -700.0):
            lp = float(p.flat[i])
            out.flat[i] = _solve_log_tail(
                lp, lambda xx: float(_log_pchisq(np.array([xx]), np.array([k]), lower)[0]), lower
            )
    result: FloatArray = out
    return result


def _qf(p: FloatArray, m: float, n: float, lower: bool, log_p: bool) -> FloatArray:
    """Quantile of F(m, n) for (log) probabilities p, following R's ``qf`` (including its
    chi-square form for n > 4e5)."""
    p = np.asarray(p, dtype=np.float64)
    if m <= n and n > 4e5:
        if math.isinf(m):
            return np.ones_like(p)
        return _qchisq(p, m, lower, log_p) / m
    if m > 4e5:
        return n / _qchisq(p, n, not lower, log_p)
    prob = np.exp(p) if log_p else p
    a, b = m / 2.0, n / 2.0
    # V = n / (n + m X) ~ Beta(n/2, m/2) and W = 1 - V ~ Beta(m/2, n/2). Like R, return
    # (1/v - 1) n/m with v the V-quantile rounded to double (this reproduces R's rounding when v
    # is close to 1); v is taken as 1 - w when the W-quantile w is small, else computed directly.
    if lower:
        w = special.betaincinv(a, b, prob)
        v_direct = special.betainccinv(b, a, prob)
    else:
        w = special.betainccinv(a, b, prob)
        v_direct = special.betaincinv(b, a, prob)
    v = np.where(w <= 0.5, 1.0 - w, v_direct)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.asarray((1.0 / v - 1.0) * (n / m), dtype=np.float64)
    if log_p:
        for i in np.flatnonzero(p < -700.0):
            lp = float(p.flat[i])
            out.flat[i] = _solve_log_tail(
                lp, lambda xx: float(_log_pf(np.array([xx]), m, n, lower)[0]), lower
            )
    result: FloatArray = out
    return result


@lru_cache(maxsize=1)
def _gauss_legendre_unit(order: int = 128) -> tuple[FloatArray, FloatArray]:
    """Gauss-Legendre nodes and weights on [0, 1] (weights sum to 1)."""
    nodes, weights = np.polynomial.legendre.leggauss(order)
    return (nodes + 1.0) / 2.0, weights / 2.0


# ---------------------------------------------------------------------------------------------
# Natural cubic spline basis (the column space of R's splines::ns(x, df, intercept = TRUE))
# ---------------------------------------------------------------------------------------------


class _NaturalSpline:
    """Natural cubic spline basis with interior knots at quantiles of the fitted covariate and
    boundary knots at its range; linear beyond the boundary knots like ``predict.ns``."""

    def __init__(self, x: FloatArray, df: int) -> None:
        n_inner = df - 2
        self.boundary = (float(np.min(x)), float(np.max(x)))
        probs = np.linspace(0.0, 1.0, n_inner + 2)[1:-1]
        inner = _quantile7(x, probs.tolist()) if n_inner > 0 else np.empty(0)
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


# ---------------------------------------------------------------------------------------------
# fitFDist
# ---------------------------------------------------------------------------------------------


def _prepare_covariate(covariate: ArrayLike, n: int) -> FloatArray:
    cov = _as_1d(covariate, "covariate").copy()
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


def _fit_f_dist(
    x: FloatArray, df1: FloatArray | float, covariate: FloatArray | None
) -> tuple[float | FloatArray, float]:
    """limma's fitFDist on validated inputs; returns (scale, df2)."""
    n = x.size
    if n == 0:
        return math.nan, math.nan
    if n == 1:
        return float(x[0]), 0.0
    if isinstance(df1, float):
        if not (math.isfinite(df1) and df1 > 1e-15):
            return math.nan, math.nan
        ok = np.ones(n, dtype=bool)
    else:
        ok = np.isfinite(df1) & (df1 > 1e-15)
    with np.errstate(invalid="ignore"):
        ok &= np.isfinite(x) & (x > -1e-15)
    nok = int(np.sum(ok))
    if nok == 0:
        return math.nan, math.nan
    if nok == 1:
        return float(x[ok][0]), 0.0
    notallok = nok < n
    cov_notok: FloatArray | None = None
    if notallok:
        x = x[ok]
        if not isinstance(df1, float):
            df1 = df1[ok]
        if covariate is not None:
            cov_notok = covariate[~ok]
            covariate = covariate[ok]
    if covariate is not None:
        splinedf = 1 + int(nok >= 3) + int(nok >= 6) + int(nok >= 30)
        splinedf = min(splinedf, int(np.unique(covariate).size))
        if splinedf < 2:
            sub_scale, sub_df2 = _fit_f_dist(x, df1, None)
            return np.full(n, float(sub_scale)), sub_df2
    x = np.maximum(x, 0.0)
    m = float(np.median(x))
    if m == 0:
        log.warning("More than half of residual variances are exactly zero: eBayes unreliable")
        m = 1.0
    elif np.any(x == 0):
        log.warning("Zero sample variances detected, have been offset away from zero")
    x = np.maximum(x, 1e-5 * m)
    z = np.log(x)
    half = np.asarray(df1, dtype=np.float64) / 2.0
    e = z - special.digamma(half) + np.log(half)
    emean: float | FloatArray
    if covariate is None:
        emean = _mean(e)
        evar = math.fsum(((e - emean) ** 2).tolist()) / (nok - 1)
    else:
        spline = _NaturalSpline(covariate, splinedf)
        design = spline.basis(covariate)
        coef, _, rank, _ = np.linalg.lstsq(design, e, rcond=None)
        fitted = design @ coef
        rss = math.fsum(((e - fitted) ** 2).tolist())
        evar = rss / (nok - int(rank))
        if notallok and cov_notok is not None:
            emean_full = np.empty(n)
            emean_full[ok] = fitted
            emean_full[~ok] = spline.basis(cov_notok) @ coef
            emean = emean_full
        else:
            emean = fitted
    evar -= _mean(np.atleast_1d(special.polygamma(1, half)))
    if evar > 0:
        df2 = 2.0 * _trigamma_inverse(evar)
        shift = float(special.digamma(df2 / 2.0)) - math.log(df2 / 2.0)
        scale: float | FloatArray
        scale = math.exp(emean + shift) if isinstance(emean, float) else np.exp(emean + shift)
    else:
        df2 = math.inf
        scale = _mean(x) if covariate is None else np.exp(emean)
    return scale, df2


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
    x = _as_1d(s2, "s2")
    _check_s2(x)
    df1 = _as_df(df, x.size)
    cov = None if covariate is None else _prepare_covariate(covariate, x.size)
    scale, df2 = _fit_f_dist(x, df1, cov)
    return FDistFit(scale=scale, df2=df2)


# ---------------------------------------------------------------------------------------------
# fitFDistRobustly
# ---------------------------------------------------------------------------------------------


def _winsorized_moments(df1: float, df2: float, tail_p: tuple[float, float]) -> tuple[float, float]:
    """Mean and variance of the Winsorized log F(df1, df2) distribution (128-point quadrature
    on the x/(1+x) scale between the Winsorization quantiles)."""
    fq = _qf(np.array([tail_p[0], 1.0 - tail_p[1]]), df1, df2, lower=True, log_p=False)
    zq = np.log(fq)
    q = fq / (1.0 + fq)
    g_nodes, g_weights = _gauss_legendre_unit()
    nodes = q[0] + (q[1] - q[0]) * g_nodes
    fnodes = nodes / (1.0 - nodes)
    znodes = np.log(fnodes)
    f = _f_density(fnodes, df1, df2) / (1.0 - nodes) ** 2
    q21 = float(q[1] - q[0])
    tails = np.array(tail_p)
    mean = q21 * math.fsum((g_weights * f * znodes).tolist()) + math.fsum((zq * tails).tolist())
    var = q21 * math.fsum((g_weights * f * (znodes - mean) ** 2).tolist()) + math.fsum(
        ((zq - mean) ** 2 * tails).tolist()
    )
    return mean, var


def _fit_f_dist_robust(
    x: FloatArray, df1: FloatArray | float, tail_p: tuple[float, float]
) -> FDistFit:
    """limma's fitFDistRobustly (no covariate) on validated inputs."""
    n = x.size
    if n < 2:
        return FDistFit(scale=math.nan, df2=math.nan, df2_shrunk=np.full(n, math.nan))
    if n == 2:
        # limma returns the plain fitFDist result here (without df2.shrunk); use df2 for both
        scale, df2 = _fit_f_dist(x, df1, None)
        return FDistFit(scale=scale, df2=df2, df2_shrunk=np.full(n, df2))
    df1_arr = np.broadcast_to(np.asarray(df1, dtype=np.float64), (n,))
    ok = ~np.isnan(x) & np.isfinite(df1_arr) & (df1_arr > 1e-6)
    if not np.all(ok):
        sub = _fit_f_dist_robust(x[ok], df1 if isinstance(df1, float) else df1[ok], tail_p)
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

    x = x.copy()
    m = float(np.median(x))
    if m <= 0:
        raise ValueError("Variances are mostly <= 0")
    tiny = x < m * 1e-12
    if np.any(tiny):
        log.warning("%d very small variance(s) detected, offset away from zero", int(np.sum(tiny)))
        x[tiny] = m * 1e-12

    nr_scale, nr_df2 = _fit_f_dist(x, df1, None)
    nr_scale_f = float(nr_scale)  # no covariate: scalar
    prob = (tail_p[0], 1.0 - tail_p[1])
    if all(p < 1.0 / n for p in tail_p):
        return FDistFit(scale=nr_scale_f, df2=nr_df2, df2_shrunk=np.full(n, nr_df2))

    # Map unequal df1 onto the largest df1 by matching tail probabilities
    df1_scalar: float
    if isinstance(df1, float):
        df1_scalar = df1
    else:
        df1max = float(np.max(df1))
        lower_df = df1 < (df1max - 1e-14)
        if np.any(lower_df):
            s = nr_scale_f
            f = x[lower_df] / s
            d1 = df1[lower_df]
            pupper = _log_pf(f, d1, nr_df2, lower=False)
            plower = _log_pf(f, d1, nr_df2, lower=True)
            up = pupper < plower
            if np.any(up):
                f[up] = _qf(pupper[up], df1max, nr_df2, lower=False, log_p=True)
            if np.any(~up):
                f[~up] = _qf(plower[~up], df1max, nr_df2, lower=True, log_p=True)
            x[lower_df] = f * s
        df1_scalar = df1max

    z = np.log(x)
    ztrend = _trimmed_mean(z, tail_p[1])
    zresid = z - ztrend
    zrq = _quantile7(zresid, prob)
    zwins = np.minimum(np.maximum(zresid, zrq[0]), zrq[1])
    zwmean = _mean(zwins)
    zwvar = _mean((zwins - zwmean) ** 2) * n / (n - 1)

    def linkfun(v: float) -> float:
        return v / (1.0 + v)

    def linkinv(v: float) -> float:
        return v / (1.0 - v)

    mom_mean, mom_var = _winsorized_moments(df1_scalar, math.inf, tail_p)
    funval_inf = _log_ratio(zwvar, mom_var)
    if funval_inf <= 0:
        # Prior df is infinite
        ztc = ztrend + zwmean - mom_mean
        s20 = math.exp(ztc)
        fstat = np.exp(z - ztc)
        tail_pv = np.asarray(
            special.gammaincc(df1_scalar / 2.0, fstat * df1_scalar / 2.0), dtype=np.float64
        )
        r = _average_ranks(fstat)
        emp_tail = (n - r + 0.5) / n
        prob_not = np.minimum(tail_pv / emp_tail, 1.0)
        shrunk = np.full(n, math.inf)
        outl = prob_not < 1
        if np.any(outl):
            shrunk[outl] = prob_not[outl] * (n * df1_scalar)
            o = np.argsort(tail_pv, kind="stable")
            shrunk[o] = np.maximum.accumulate(shrunk[o])
        return FDistFit(scale=s20, df2=math.inf, df2_shrunk=shrunk, tail_p_value=tail_pv)

    def fun(v: float) -> float:
        _, var = _winsorized_moments(df1_scalar, linkinv(v), tail_p)
        return _log_ratio(zwvar, var)

    if math.isinf(nr_df2):
        return FDistFit(scale=nr_scale_f, df2=nr_df2, df2_shrunk=np.full(n, nr_df2))

    rbx = linkfun(nr_df2)
    funval_low = fun(rbx)
    if funval_low >= 0:
        df2 = nr_df2
    else:
        root = _zeroin(fun, rbx, 1.0, funval_low, funval_inf, tol=1e-8, maxiter=1000)
        df2 = linkinv(root)

    mom_mean, _ = _winsorized_moments(df1_scalar, df2, tail_p)
    ztc = ztrend + zwmean - mom_mean
    s20 = math.exp(ztc)
    fstat = np.exp(z - ztc)
    log_tail = _log_pf(fstat, df1_scalar, df2, lower=False)
    tail_pv = np.asarray(np.exp(log_tail), dtype=np.float64)
    r = _average_ranks(fstat)
    log_emp = np.log(n - r + 0.5) - math.log(n)
    log_not = np.minimum(log_tail - log_emp, 0.0)
    prob_not = np.exp(log_not)
    prob_out = -np.expm1(log_not)
    if np.any(log_not < 0):
        min_log_tail = float(np.min(log_tail))
        if min_log_tail == -math.inf:
            df2_outlier = 0.0
            shrunk = prob_not * df2
        else:
            df2_outlier = math.log(0.5) / min_log_tail * df2
            new_log_tail = float(
                _log_pf(np.array([np.max(fstat)]), df1_scalar, df2_outlier, lower=False)[0]
            )
            df2_outlier = math.log(0.5) / new_log_tail * df2_outlier
            shrunk = prob_not * df2 + prob_out * df2_outlier
        o = np.argsort(log_tail, kind="stable")
        ordered = shrunk[o]
        running = np.cumsum(ordered) / np.arange(1, n + 1)
        imin = int(np.argmin(running))
        ordered[: imin + 1] = running[imin]
        shrunk = np.empty(n)
        shrunk[o] = np.maximum.accumulate(ordered)
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
    x = _as_1d(s2, "s2")
    _check_s2(x)
    df1 = _as_df(df, x.size)
    tails = _as_tail_p(winsor_tail_p)
    return _fit_f_dist_robust(x, df1, tails)


# ---------------------------------------------------------------------------------------------
# squeezeVar
# ---------------------------------------------------------------------------------------------


def _posterior(
    var: FloatArray,
    df: FloatArray | float,
    var_prior: float | FloatArray,
    df_prior: float | FloatArray,
) -> FloatArray:
    n = var.size
    dfp = np.asarray(df_prior, dtype=np.float64)
    vp = np.asarray(var_prior, dtype=np.float64)
    d = np.asarray(df, dtype=np.float64)
    isfin = np.isfinite(dfp)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if np.all(isfin):
            post = (d * var + dfp * vp) / (d + dfp)
            out: FloatArray = np.broadcast_to(post, (n,)).astype(np.float64, copy=True)
            return out
        var_post = np.broadcast_to(vp, (n,)).astype(np.float64, copy=True)
        if np.any(isfin):
            fin = np.broadcast_to(isfin, (n,))
            d_i = d if d.ndim == 0 else d[fin]
            dfp_i = np.broadcast_to(dfp, (n,))[fin]
            var_post[fin] = (d_i * var[fin] + dfp_i * var_post[fin]) / (d_i + dfp_i)
    return var_post


def squeeze_var(
    s2: ArrayLike,
    df: ArrayLike,
    robust: bool = False,
    winsor_tail_p: float | Sequence[float] = (0.05, 0.1),
    covariate: ArrayLike | None = None,
    prior_mask: ArrayLike | None = None,
) -> SqueezeResult:
    """Empirical-Bayes posterior variances (limma ``squeezeVar``).

    Parameters
    ----------
    s2 : array_like, shape (G,)
        Sample (residual) variances, >= 0, NaN for missing.
    df : float or array_like, shape (G,)
        Their degrees of freedom, >= 0, possibly non-integer (Satterthwaite). With per-protein df,
        proteins with ``df == 0`` have their variance set to 0, are left out of the estimation,
        and get the prior variance as posterior. A NaN df or NaN variance (with df > 0) gives a
        NaN posterior, as in limma.
    robust : bool, default False
        Use :func:`fit_f_dist_robust` (per-protein ``df_prior``) instead of :func:`fit_f_dist`.
    winsor_tail_p : float or sequence of two floats, default (0.05, 0.1)
        Winsorization tail proportions; used only when ``robust=True``.
    covariate : array_like, shape (G,), optional
        Default None. If given, the prior variance follows a spline trend in the covariate
        (limma's ``trend``); ``var_prior`` is then per protein. Only for ``robust=False``.
    prior_mask : array_like of bool, shape (G,), optional
        Default None (all proteins). Proteins whose variances estimate the prior; every protein
        is then moderated with that prior, those outside the mask with the prior df of a
        non-outlying protein (``fit.df2``) when ``robust=True``. Not limma: pepmix leaves out
        variances on df < 1, whose huge log-variance sampling variance (trigamma(df/2)) can drive
        the moment estimate of the prior df to infinity. ``fit`` then describes the masked
        proteins only. Not with a covariate.

    Returns
    -------
    SqueezeResult
        ``var_post``, ``var_prior``, ``df_prior`` and the underlying ``fit``. With
        ``df_prior == inf`` every posterior variance equals the prior variance. A single protein
        is returned unchanged with ``df_prior = 0``.

    Raises
    ------
    ValueError
        On invalid inputs, an empty ``s2``, or when the prior df cannot be estimated (e.g. no
        protein has a usable variance).
    NotImplementedError
        For ``robust=True`` together with a covariate (limma's lowess-based robust trend is not
        ported).
    """
    x = _as_1d(s2, "s2")
    _check_s2(x)
    n = x.size
    if n == 0:
        raise ValueError("s2 is empty")
    df1 = _as_df(df, n)
    tails = _as_tail_p(winsor_tail_p)
    cov = None if covariate is None else _prepare_covariate(covariate, n)
    if n == 1:
        return SqueezeResult(var_post=x.copy(), var_prior=float(x[0]), df_prior=0.0)
    if not isinstance(df1, float):
        x = x.copy()
        x[df1 == 0] = 0.0
    if prior_mask is not None:
        if cov is not None:
            raise NotImplementedError("prior_mask with a covariate is not implemented")
        return _squeeze_masked(x, df1, _as_mask(prior_mask, n), robust, tails)
    df_prior: float | FloatArray
    if robust:
        if cov is not None:
            raise NotImplementedError("robust=True with a covariate is not implemented")
        fit = _fit_f_dist_robust(x, df1, tails)
        df_prior = fit.df2_shrunk if fit.df2_shrunk is not None else fit.df2
    else:
        scale, df2 = _fit_f_dist(x, df1, cov)
        fit = FDistFit(scale=scale, df2=df2)
        df_prior = df2
    return _squeezed(x, df1, fit, df_prior)


def _squeezed(
    x: FloatArray, df1: FloatArray | float, fit: FDistFit, df_prior: float | FloatArray
) -> SqueezeResult:
    """Posterior variances of ``x`` under the fitted prior (squeezeVar's last step)."""
    if np.any(np.isnan(df_prior)):
        raise ValueError("Could not estimate prior df")
    var_post = _posterior(x, df1, fit.scale, df_prior)
    return SqueezeResult(var_post=var_post, var_prior=fit.scale, df_prior=df_prior, fit=fit)


def _as_mask(mask: ArrayLike, n: int) -> NDArray[np.bool_]:
    out = np.asarray(mask, dtype=bool)
    if out.shape != (n,):
        raise ValueError(f"prior_mask must have length {n}")
    if out.sum() < 2:
        raise ValueError("prior_mask must select at least two proteins")
    return out


def _squeeze_masked(
    x: FloatArray,
    df1: FloatArray | float,
    mask: NDArray[np.bool_],
    robust: bool,
    tails: tuple[float, float],
) -> SqueezeResult:
    """:func:`squeeze_var` with the prior estimated from ``x[mask]`` only (see ``prior_mask``)."""
    sub = df1 if isinstance(df1, float) else df1[mask]
    df_prior: float | FloatArray
    if robust:
        fit = _fit_f_dist_robust(x[mask], sub, tails)
        df_prior = np.full(x.size, fit.df2)
        if fit.df2_shrunk is not None:
            df_prior[mask] = fit.df2_shrunk
    else:
        scale, df2 = _fit_f_dist(x[mask], sub, None)
        fit = FDistFit(scale=scale, df2=df2)
        df_prior = df2
    return _squeezed(x, df1, fit, df_prior)


def total_df(df_residual: ArrayLike, df_prior: ArrayLike) -> FloatArray:
    """Total df of moderated statistics, ``min(df_residual + df_prior, sum(df_residual))``.

    This is limma's ``df.total`` in ``eBayes``/``treat``: the moderated df can never exceed the
    pooled residual df.

    Parameters
    ----------
    df_residual : array_like, shape (G,)
        Residual df per protein (NaN ignored in the pooled sum).
    df_prior : float or array_like, shape (G,)
        Prior df (``SqueezeResult.df_prior``); may be ``inf``.

    Returns
    -------
    ndarray, shape (G,)
    """
    d = _as_1d(np.atleast_1d(np.asarray(df_residual, dtype=np.float64)), "df_residual")
    pooled = float(np.nansum(d))
    with np.errstate(invalid="ignore"):
        out: FloatArray = np.minimum(d + np.asarray(df_prior, dtype=np.float64), pooled)
    return out


# ---------------------------------------------------------------------------------------------
# TREAT and Benjamini-Hochberg
# ---------------------------------------------------------------------------------------------


def _t_sf(t: FloatArray, df: FloatArray) -> FloatArray:
    """Upper tail of Student's t; normal for infinite df; NaN propagates."""
    with np.errstate(invalid="ignore"):
        out = np.where(
            np.isinf(df), special.ndtr(-t), special.stdtr(np.where(np.isinf(df), 1.0, df), -t)
        )
    result: FloatArray = np.asarray(out, dtype=np.float64)
    return result


def treat_pvalues(estimate: ArrayLike, se: ArrayLike, df: ArrayLike, lfc: float) -> FloatArray:
    """TREAT p-values for :math:`H_0: |\\beta| \\le \\tau` (limma ``treat``, McCarthy & Smyth 2009).

    With :math:`t_\\pm = (|\\hat\\beta| \\mp \\tau)/\\mathrm{se}` the p-value is
    :math:`P(T > t_-) + P(T > t_+)` for :math:`T \\sim t_{df}`, the formula of limma 3.54's
    ``treat`` (the probability, at :math:`|\\beta| = \\tau`, of an estimate at least as far from
    zero as the one observed).

    Parameters
    ----------
    estimate : array_like
        Estimated log2 fold changes (contrasts).
    se : array_like
        Their standard errors (moderated, e.g. ``sqrt(var_post) * stdev_unscaled``), >= 0;
        broadcast against ``estimate``.
    df : array_like
        Degrees of freedom of the t distribution (moderated: :func:`total_df`); > 0 or inf;
        broadcast against ``estimate``.
    lfc : float
        Threshold :math:`\\tau` on the log2 scale; its absolute value is used, as in limma.
        ``lfc = 0`` gives ordinary two-sided t-test p-values.

    Returns
    -------
    ndarray
        p-values with the broadcast shape; NaN where any input is NaN.

    Raises
    ------
    ValueError
        On negative ``se``, non-positive ``df`` or a non-finite ``lfc``.
    """
    b = np.asarray(estimate, dtype=np.float64)
    s = np.asarray(se, dtype=np.float64)
    d = np.asarray(df, dtype=np.float64)
    if not math.isfinite(lfc):
        raise ValueError("lfc must be finite")
    if np.any(s < 0):
        raise ValueError("se must be >= 0")
    if np.any(d <= 0):
        raise ValueError("df must be > 0")
    b, s, d = np.broadcast_arrays(b, s, d)
    tau = abs(float(lfc))
    absb = np.abs(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_right = (absb - tau) / s
        t_left = (absb + tau) / s
    p: FloatArray = _t_sf(t_right, d) + _t_sf(t_left, d)
    return p


def bh_adjust(p: ArrayLike) -> FloatArray:
    """Benjamini-Hochberg adjusted p-values, as R's ``p.adjust(p, method = "BH")``.

    Parameters
    ----------
    p : array_like
        p-values in [0, 1]; NaN entries stay NaN and are not counted in the number of tests.

    Returns
    -------
    ndarray
        Adjusted p-values with the shape of ``p``.

    Raises
    ------
    ValueError
        If a p-value lies outside [0, 1].
    """
    arr = np.asarray(p, dtype=np.float64)
    flat = arr.ravel()
    out = np.full(flat.shape, math.nan)
    keep = ~np.isnan(flat)
    pv = flat[keep]
    if np.any((pv < 0) | (pv > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    m = pv.size
    if m:
        order = np.argsort(-pv, kind="stable")
        i = np.arange(m, 0, -1, dtype=np.float64)
        adj = np.minimum(1.0, np.minimum.accumulate(m / i * pv[order]))
        res = np.empty(m)
        res[order] = adj
        out[keep] = res
    result: FloatArray = out.reshape(arr.shape)
    return result
