r"""Empirical-Bayes moderation of the contrast variances: pepmix's use of the limma port.

Per contrast :math:`j`, protein :math:`g` has the estimate :math:`\hat\delta_{gj}`, its standard
error :math:`\mathrm{se}_{gj}` and (capped) Satterthwaite df :math:`\nu_{gj}`. What is moderated
is the *contrast's variance on the scale of one biological sample*,

.. math::

    s^2_{gj} = \mathrm{se}^2_{gj} / u_{gj}, \qquad u_{gj} = 1/n_{A,g} + 1/n_{B,g},

with :math:`n_{A,g}, n_{B,g}` the numbers of samples the protein was observed in for the two
conditions. :math:`s^2_{gj}` estimates the between-sample variance of the protein's abundance
(sample and run effects plus residual noise averaged over its features) on :math:`\nu_{gj}` df.
Under limma's hierarchical model (:mod:`pepmix.inference.limma`),
:math:`s^2_{gj} \mid \sigma^2_{gj} \sim \sigma^2_{gj}\chi^2_{\nu_{gj}}/\nu_{gj}` and
:math:`1/\sigma^2_{gj} \sim \chi^2_{d_0}/(d_0 s_0^2)`; ``squeezeVar`` (robust by default,
Phipson et al. 2016) fits :math:`(s_0^2, d_0)` and every tested protein gets

.. math::

    \tilde s^2_{gj} = \frac{d_0 s_0^2 + \nu_{gj} s^2_{gj}}{d_0 + \nu_{gj}}, \qquad
    \widetilde{\mathrm{se}}_{gj} = \tilde s_{gj}\sqrt{u_{gj}},

on :math:`\min(\nu_{gj} + d_0, \sum_g \nu_{gj})` df (limma's ``df.total``). Dividing by
:math:`u_{gj}` removes the known effect of how many samples were observed, so that the prior is
fitted to comparable variances.

Two rules are pepmix's, not limma's:

- **The prior is fitted to proteins with** :math:`\nu_{gj} \ge 1` (:data:`MIN_PRIOR_DF`) and
  applied to all tested proteins (:func:`squeeze_var_masked`). The moment estimator (Smyth 2004)
  subtracts the mean sampling variance of the log-variances, :math:`\psi'(\nu/2)\approx 4/\nu^2`
  for small :math:`\nu`, from their observed spread. One protein on :math:`\nu = 2\cdot10^{-5}`
  (a boundary fit on four observations) contributes :math:`10^{10}`, the difference goes negative
  and :math:`d_0 = \infty`: every protein would get the prior variance. Such proteins carry no
  information about the prior; they are still moderated (their posterior is essentially the
  prior variance). With the robust fit they get the prior df of a non-outlying protein.
- **No moderation with fewer than** :data:`MIN_PROTEINS_FOR_PRIOR` proteins on
  :math:`\nu_{gj} \ge 1`: the prior is then not estimable with any precision.

References
----------
Smyth GK (2004). Linear models and empirical Bayes methods for assessing differential expression
in microarray experiments. Stat Appl Genet Mol Biol 3, Article 3.

Phipson B, Lee S, Majewski IJ, Alexander WS, Smyth GK (2016). Robust hyperparameter estimation
protects against hypervariable genes and improves power to detect differential expression. Ann
Appl Stat 10, 946-963.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from pepmix.inference.limma import (
    FDistFit,
    SqueezeResult,
    fit_f_dist,
    fit_f_dist_robust,
    squeeze_var,
    total_df,
)
from pepmix.inference.limma.squeeze import squeezed

log = logging.getLogger(__name__)

__all__ = [
    "MIN_PRIOR_DF",
    "MIN_PROTEINS_FOR_PRIOR",
    "ModeratedContrast",
    "moderate_contrast",
    "squeeze_var_masked",
]

#: fewest proteins (with df >= MIN_PRIOR_DF) for which a prior is estimated (below: no moderation)
MIN_PROTEINS_FOR_PRIOR = 10
#: proteins with fewer df are moderated but do not enter the estimate of the prior
MIN_PRIOR_DF = 1.0

FloatArray = NDArray[np.float64]


@dataclass
class ModeratedContrast:
    """Standard errors and df of one contrast's rows after moderation.

    Attributes
    ----------
    se : ndarray
        Moderated standard errors of the moderated rows, the input elsewhere.
    df : ndarray
        Total df of the moderated rows, the input elsewhere.
    df_prior : ndarray
        Prior df :math:`d_0` of the moderated rows (per protein with the robust fit), NaN
        elsewhere.
    var_prior : ndarray
        Prior variance :math:`s_0^2` of the moderated rows, NaN elsewhere.
    moderated : ndarray of bool
        Rows that were moderated.
    """

    se: FloatArray
    df: FloatArray
    df_prior: FloatArray
    var_prior: FloatArray
    moderated: NDArray[np.bool_]

    @classmethod
    def unmoderated(cls, se: FloatArray, df: FloatArray) -> ModeratedContrast:
        """The input standard errors and df, with no row moderated."""
        n = se.size
        return cls(
            se=se.copy(),
            df=df.copy(),
            df_prior=np.full(n, np.nan),
            var_prior=np.full(n, np.nan),
            moderated=np.zeros(n, dtype=bool),
        )


def moderate_contrast(
    part: pd.DataFrame,
    name: str,
    tested: NDArray[np.bool_],
    se_raw: FloatArray,
    df: FloatArray,
    *,
    robust: bool = True,
) -> ModeratedContrast:
    """Moderate the tested rows of one contrast (see the module docstring).

    Parameters
    ----------
    part : pandas.DataFrame
        The contrast's rows; columns ``n_samples_num`` and ``n_samples_den`` (read only when a
        prior is fitted).
    name : str
        Contrast name (for the log).
    tested : ndarray of bool
        Rows that are tested; only they are moderated and enter the prior.
    se_raw : ndarray
        Unmoderated standard errors.
    df : ndarray
        Their (capped) Satterthwaite df.
    robust : bool, default True
        limma's robust prior (:func:`~pepmix.inference.limma.robust.fit_f_dist_robust`).

    Returns
    -------
    ModeratedContrast
        Unmoderated if fewer than :data:`MIN_PROTEINS_FOR_PRIOR` tested rows have
        df >= :data:`MIN_PRIOR_DF`.
    """
    out = ModeratedContrast.unmoderated(se_raw, df)
    informative = tested & (df >= MIN_PRIOR_DF)
    if informative.sum() < MIN_PROTEINS_FOR_PRIOR:
        return out
    n_num = part["n_samples_num"].to_numpy(dtype=np.float64)
    n_den = part["n_samples_den"].to_numpy(dtype=np.float64)
    unscaled = 1.0 / n_num[tested] + 1.0 / n_den[tested]
    s2 = se_raw[tested] ** 2 / unscaled
    mask = informative[tested]
    if mask.all():
        result = squeeze_var(s2, df[tested], robust=robust)
    else:
        result = squeeze_var_masked(s2, df[tested], mask, robust=robust)
    d0 = np.broadcast_to(np.asarray(result.df_prior, dtype=np.float64), s2.shape)
    out.se[tested] = np.sqrt(result.var_post * unscaled)
    out.df[tested] = total_df(df[tested], d0)
    out.df_prior[tested] = d0
    out.var_prior[tested] = np.broadcast_to(
        np.asarray(result.var_prior, dtype=np.float64), s2.shape
    )
    out.moderated[tested] = True
    log.info(
        "contrast %s: prior variance %.4g on %.3g df (median), fitted to %d of %d proteins "
        "(df >= %g)",
        name,
        float(np.median(out.var_prior[tested])),
        float(np.median(d0)),
        int(mask.sum()),
        int(tested.sum()),
        MIN_PRIOR_DF,
    )
    return out


def squeeze_var_masked(
    s2: ArrayLike, df: ArrayLike, prior_mask: ArrayLike, *, robust: bool = True
) -> SqueezeResult:
    """limma's ``squeezeVar`` with the prior estimated from the variances in ``prior_mask`` only.

    Every protein is moderated with that prior; with ``robust=True`` the proteins outside the
    mask get the prior df of a non-outlying protein (``fit.df2``). As in ``squeezeVar``,
    proteins with df 0 have their variance set to 0 (and get the prior variance).

    Parameters
    ----------
    s2 : array_like, shape (G,)
        Variances, finite and >= 0, NaN for missing.
    df : array_like, shape (G,)
        Their df, finite and >= 0.
    prior_mask : array_like of bool, shape (G,)
        Proteins whose variances estimate the prior (at least two).
    robust : bool, default True
        Robust prior (per-protein ``df_prior`` inside the mask).

    Returns
    -------
    SqueezeResult
        ``fit`` describes the masked proteins only.

    Raises
    ------
    ValueError
        On a ``prior_mask`` of the wrong length or selecting fewer than two proteins, invalid
        variances or df, or when the prior df cannot be estimated.
    """
    x = np.asarray(s2, dtype=np.float64)
    d = np.asarray(df, dtype=np.float64)
    mask = np.asarray(prior_mask, dtype=bool)
    if x.ndim != 1 or d.shape != x.shape:
        raise ValueError("s2 and df must be one-dimensional and of the same length")
    if mask.shape != x.shape:
        raise ValueError(f"prior_mask must have length {x.size}")
    if mask.sum() < 2:
        raise ValueError("prior_mask must select at least two proteins")
    if np.any(x < 0) or np.any(np.isinf(x)) or np.any(d < 0) or np.any(np.isinf(d)):
        raise ValueError("s2 and df must be finite and >= 0 (or NaN)")
    x = np.where(d == 0, 0.0, x)
    df_prior: float | FloatArray
    fit: FDistFit
    if robust:
        fit = fit_f_dist_robust(x[mask], d[mask])
        df_prior = np.full(x.size, fit.df2)
        if fit.df2_shrunk is not None:
            df_prior[mask] = fit.df2_shrunk
    else:
        fit = fit_f_dist(x[mask], d[mask])
        df_prior = fit.df2
    return squeezed(x, d, fit, df_prior)
