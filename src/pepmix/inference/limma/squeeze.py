r"""Posterior (moderated) variances (limma ``squeezeVar``, Smyth 2004).

With the prior :math:`(s_0^2, d_0)` fitted by :func:`~pepmix.inference.limma.fitfdist.fit_f_dist`
or :func:`~pepmix.inference.limma.robust.fit_f_dist_robust`, the posterior variance of protein
:math:`g` is

.. math::

    \tilde s^2_g = \frac{d_0 s_0^2 + d_g s^2_g}{d_0 + d_g},

with :math:`\tilde s^2_g = s_0^2` where :math:`d_0 = \infty`. :math:`s_0^2` is a vector with a
covariate trend, :math:`d_0` a vector (``df2_shrunk``) for the robust fit.

References
----------
Smyth GK (2004). Linear models and empirical Bayes methods for assessing differential expression
in microarray experiments. Stat Appl Genet Mol Biol 3, Article 3.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from pepmix.inference.limma._numeric import FloatArray
from pepmix.inference.limma._validate import as_1d, as_df, as_tail_p, check_s2
from pepmix.inference.limma.fitfdist import FDistFit, fit_f_dist_validated, prepare_covariate
from pepmix.inference.limma.robust import fit_f_dist_robust_validated

__all__ = ["SqueezeResult", "posterior_var", "squeeze_var"]


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
    fit : FDistFit or None, default None
        The underlying F-distribution fit (None for a single protein).
    """

    var_post: FloatArray
    var_prior: float | FloatArray
    df_prior: float | FloatArray
    fit: FDistFit | None = None


def posterior_var(
    var: FloatArray,
    df: FloatArray | float,
    var_prior: float | FloatArray,
    df_prior: float | FloatArray,
) -> FloatArray:
    """Posterior variances :math:`(d_g s^2_g + d_0 s_0^2)/(d_g + d_0)`; the prior where d0 = inf.

    Parameters
    ----------
    var : ndarray, shape (G,)
        Sample variances :math:`s^2_g`.
    df : float or ndarray, shape (G,)
        Their df :math:`d_g`.
    var_prior : float or ndarray, shape (G,)
        Prior variance :math:`s_0^2`.
    df_prior : float or ndarray, shape (G,)
        Prior df :math:`d_0`, may be ``inf``.

    Returns
    -------
    ndarray, shape (G,)
        Posterior variances (NaN where an input is NaN and :math:`d_0` is finite).
    """
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
        Use :func:`~pepmix.inference.limma.robust.fit_f_dist_robust` (per-protein ``df_prior``)
        instead of :func:`~pepmix.inference.limma.fitfdist.fit_f_dist`.
    winsor_tail_p : float or sequence of two floats, default (0.05, 0.1)
        Winsorization tail proportions; used only when ``robust=True``.
    covariate : array_like, shape (G,), optional
        Default None. If given, the prior variance follows a spline trend in the covariate
        (limma's ``trend``); ``var_prior`` is then per protein. Only for ``robust=False``.

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
    x = as_1d(s2, "s2")
    check_s2(x)
    n = x.size
    if n == 0:
        raise ValueError("s2 is empty")
    df1 = as_df(df, n)
    tails = as_tail_p(winsor_tail_p)
    cov = None if covariate is None else prepare_covariate(covariate, n)
    if n == 1:
        return SqueezeResult(var_post=x.copy(), var_prior=float(x[0]), df_prior=0.0)
    if not isinstance(df1, float):
        x = x.copy()
        x[df1 == 0] = 0.0
    df_prior: float | FloatArray
    if robust:
        if cov is not None:
            raise NotImplementedError("robust=True with a covariate is not implemented")
        fit = fit_f_dist_robust_validated(x, df1, tails)
        df_prior = fit.df2_shrunk if fit.df2_shrunk is not None else fit.df2
    else:
        scale, df2 = fit_f_dist_validated(x, df1, cov)
        fit = FDistFit(scale=scale, df2=df2)
        df_prior = df2
    return squeezed(x, df1, fit, df_prior)


def squeezed(
    x: FloatArray, df1: FloatArray | float, fit: FDistFit, df_prior: float | FloatArray
) -> SqueezeResult:
    """Posterior variances of ``x`` under a fitted prior (the last step of ``squeezeVar``).

    Parameters
    ----------
    x : ndarray, shape (G,)
        Sample variances.
    df1 : float or ndarray, shape (G,)
        Their df.
    fit : FDistFit
        The fitted prior; ``fit.scale`` is the prior variance.
    df_prior : float or ndarray, shape (G,)
        Prior df to use (``fit.df2``, or per-protein df of a robust fit).

    Returns
    -------
    SqueezeResult

    Raises
    ------
    ValueError
        If ``df_prior`` contains NaN (the prior df could not be estimated).
    """
    if np.any(np.isnan(df_prior)):
        raise ValueError("Could not estimate prior df")
    var_post = posterior_var(x, df1, fit.scale, df_prior)
    return SqueezeResult(var_post=var_post, var_prior=fit.scale, df_prior=df_prior, fit=fit)
