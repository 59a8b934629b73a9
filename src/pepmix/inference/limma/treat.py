r"""Moderated t-tests: total df (limma ``df.total``) and TREAT p-values (McCarthy & Smyth 2009).

With a posterior variance :math:`\tilde s^2_g` on :math:`d_g + d_0` df (capped at the pooled
residual df :math:`\sum_g d_g`, :func:`total_df`), the moderated statistic
:math:`t_g = \hat\beta_g / (\tilde s_g u_g)` (:math:`u_g` the unscaled standard deviation) has a
t distribution on those df under :math:`\beta_g = 0`. TREAT tests
:math:`H_0: |\beta_g| \le \tau` instead (:func:`treat_pvalues`).

References
----------
Smyth GK (2004). Linear models and empirical Bayes methods for assessing differential expression
in microarray experiments. Stat Appl Genet Mol Biol 3, Article 3.

McCarthy DJ, Smyth GK (2009). Testing significance relative to a fold-change threshold is a TREAT.
Bioinformatics 25, 765-771.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from pepmix.inference.limma._numeric import FloatArray
from pepmix.inference.limma._validate import as_1d

__all__ = ["total_df", "treat_pvalues"]


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
    d = as_1d(np.atleast_1d(np.asarray(df_residual, dtype=np.float64)), "df_residual")
    pooled = float(np.nansum(d))
    with np.errstate(invalid="ignore"):
        out: FloatArray = np.minimum(d + np.asarray(df_prior, dtype=np.float64), pooled)
    return out


def _t_sf(t: FloatArray, df: FloatArray) -> FloatArray:
    """Upper tail of Student's t; normal for infinite df; NaN propagates.

    ``special.ndtr`` for infinite df, not ``special.stdtr(inf, .)``, which differs in the last bit.
    """
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
