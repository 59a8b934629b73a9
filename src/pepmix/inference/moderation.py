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

- **The prior is fitted to proteins with** :math:`\nu_{gj} \ge 1` (:data:`MIN_PRIOR_DF`, up to
  the rounding tolerance :data:`MIN_PRIOR_DF_RTOL`) and
  applied to all tested proteins (:func:`squeeze_var_masked`). The moment estimator (Smyth 2004)
  subtracts the mean sampling variance of the log-variances, :math:`\psi'(\nu/2)\approx 4/\nu^2`
  for small :math:`\nu`, from their observed spread. One protein on :math:`\nu = 2\cdot10^{-5}`
  (a boundary fit on four observations) contributes :math:`10^{10}`, the difference goes negative
  and :math:`d_0 = \infty`: every protein would get the prior variance. Such proteins carry no
  information about the prior; they are still moderated (their posterior is essentially the
  prior variance). With the robust fit they get the prior df of a non-outlying protein.
- **No moderation with fewer than** :data:`MIN_PROTEINS_FOR_PRIOR` proteins on
  :math:`\nu_{gj} \ge 1`: the prior is then not estimable with any precision.

**The prior** (``prior``, config ``testing.variance_prior``): ``limma`` is the single
scaled-inverse-chi-square prior above; ``vash`` is a mixture of them on a grid of scales and df
(variance adaptive shrinkage, Lu & Stephens 2016; :mod:`pepmix.inference.vash`), for variance
distributions that one such prior does not fit (many near zero and a long tail);
``vash_censored`` is ``vash`` with the boundary fits of the replicate stratum as censored
observations in the prior's likelihood (:func:`replicate_boundary`; module docstring of
:mod:`pepmix.inference.vash`, "Boundary fits as censored observations"). ``stratum`` is a
prior on the replicate stratum's variance above each protein's residual floor, fitted to the
between-replicate mean squares the model stage exports (``var_floor``, ``var_between``;
:mod:`pepmix.inference.stratum`): rows without a floor (the replicate factor dropped or not
estimable, :func:`replicate_dropped`) keep limma's moderation, the others get the posterior's
normal p-values, reported as vash's are (below). The rules above
hold for both: the mixture weights are fitted to the proteins with :math:`\nu_{gj} \ge 1` (and
finite), and every tested protein gets its posterior. The p-value is then the posterior mixture
of moderated-t p-values (:attr:`ModeratedContrast.mixture`); the reported standard error is
:math:`\tilde s_{gj}\sqrt{u_{gj}}` with :math:`\tilde s^2_{gj}` the inverse posterior mean
precision, the reported df the df at which that standard error's t statistic gives the mixture
p-value (:func:`pepmix.inference.vash.implied_df`), so t, df, p and the t-interval agree;
``df_prior`` is the posterior mean of the component df (prior plus own, capped) minus the
protein's own df and ``var_prior`` the prior's inverse mean precision.

References
----------
Smyth GK (2004). Linear models and empirical Bayes methods for assessing differential expression
in microarray experiments. Stat Appl Genet Mol Biol 3, Article 3.

Lu M, Stephens M (2016). Variance adaptive shrinkage (vash): flexible empirical Bayes estimation
of variances. Bioinformatics 32, 3428-3434.

Phipson B, Lee S, Majewski IJ, Alexander WS, Smyth GK (2016). Robust hyperparameter estimation
protects against hypervariable genes and improves power to detect differential expression. Ann
Appl Stat 10, 946-963.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from pepmix.alerts import alert
from pepmix.inference.limma import (
    FDistFit,
    SqueezeResult,
    fit_f_dist,
    fit_f_dist_robust,
    squeeze_var,
    total_df,
)
from pepmix.inference.limma.squeeze import squeezed

if TYPE_CHECKING:
    from pepmix.inference.stratum import StratumPosterior
    from pepmix.inference.vash import MixturePosterior

log = logging.getLogger(__name__)

__all__ = [
    "MIN_PRIOR_DF",
    "MIN_PROTEINS_FOR_PRIOR",
    "PRIORS",
    "ModeratedContrast",
    "moderate_contrast",
    "replicate_boundary",
    "replicate_dropped",
    "squeeze_var_masked",
]

#: fewest proteins (with df >= MIN_PRIOR_DF) for which a prior is estimated (below: no moderation)
MIN_PROTEINS_FOR_PRIOR = 10
#: proteins with fewer df are moderated but do not enter the estimate of the prior
MIN_PRIOR_DF = 1.0
#: relative tolerance of the :data:`MIN_PRIOR_DF` rule: a Satterthwaite df that is exactly 1 by
#: the design (e.g. three observations and two fixed effects) comes out a few units in the last
#: place above or below 1 depending on the summation order of the linear algebra (BLAS build,
#: CPU); such proteins count as df 1. The df themselves are accurate to the optimiser's
#: tolerance only (~1e-6 relative), so no information is lost
MIN_PRIOR_DF_RTOL = 1e-6

#: the priors of ``moderate_contrast`` (config ``testing.variance_prior``)
PRIORS = ("limma", "vash", "vash_censored", "stratum")
#: the model stage's note on a fit with variances at zero (:mod:`pepmix.model.fit`)
_AT_ZERO = re.compile(r"variance at zero: ([^;]*)")

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class PosteriorMixture:
    """The vash posterior of a contrast's moderated rows, for their p-values.

    Attributes
    ----------
    rows : ndarray of bool, shape (n,)
        The moderated rows of the contrast.
    unscaled : ndarray, shape (R,)
        :math:`u_{gj}` of those rows.
    posterior : MixturePosterior
        Their posterior mixture (R rows).
    """

    rows: NDArray[np.bool_]
    unscaled: FloatArray
    posterior: MixturePosterior

    def pvalues(self, estimate: FloatArray, lfc: float = 0.0) -> FloatArray:
        """Mixture p-values of the moderated rows (t-test, TREAT for ``lfc > 0``), shape (R,)."""
        from pepmix.inference.vash import mixture_pvalues

        return mixture_pvalues(estimate[self.rows], self.unscaled, self.posterior, lfc)


class MixturePValues(Protocol):
    """Posterior p-values of a contrast's moderated rows (vash, stratum prior)."""

    @property
    def rows(self) -> NDArray[np.bool_]:
        """The rows the p-values are for."""
        ...

    def pvalues(self, estimate: FloatArray, lfc: float = 0.0) -> FloatArray:
        """p-values of the rows ``rows`` (t-test, TREAT for ``lfc > 0``)."""
        ...


@dataclass(frozen=True)
class StratumMixture:
    """The stratum prior's posterior of a contrast's moderated rows, for their p-values.

    Attributes
    ----------
    rows : ndarray of bool, shape (n,)
        The rows moderated with the stratum prior.
    unscaled : ndarray, shape (R,)
        :math:`u_{gj}` of those rows.
    posterior : StratumPosterior
        Their posterior (R rows).
    """

    rows: NDArray[np.bool_]
    unscaled: FloatArray
    posterior: StratumPosterior

    def pvalues(self, estimate: FloatArray, lfc: float = 0.0) -> FloatArray:
        """Posterior-predictive p-values of the rows (:func:`pepmix.inference.stratum.pvalues`)."""
        from pepmix.inference.stratum import pvalues

        return pvalues(estimate[self.rows], self.unscaled, self.posterior, lfc)


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
    mixture : PosteriorMixture or StratumMixture or None, default None
        With the vash or stratum prior: the posterior the p-values come from (the p-value of
        ``se`` and ``df`` equals it for a two-sided test; TREAT p-values must use it).
    """

    se: FloatArray
    df: FloatArray
    df_prior: FloatArray
    var_prior: FloatArray
    moderated: NDArray[np.bool_]
    mixture: MixturePValues | None = None

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
    prior: str = "limma",
    estimate: FloatArray | None = None,
) -> ModeratedContrast:
    """Moderate the tested rows of one contrast (see the module docstring).

    Parameters
    ----------
    part : pandas.DataFrame
        The contrast's rows; columns ``n_samples_num`` and ``n_samples_den`` (read only when a
        prior is fitted); ``var_floor`` and ``df_between`` with the stratum prior.
    name : str
        Contrast name (for the log).
    tested : ndarray of bool
        Rows that are tested; only they are moderated and enter the prior.
    se_raw : ndarray
        Unmoderated standard errors.
    df : ndarray
        Their (capped) Satterthwaite df.
    robust : bool, default True
        limma's robust prior (:func:`~pepmix.inference.limma.robust.fit_f_dist_robust`); with
        ``prior="limma"`` only.
    prior : {"limma", "vash", "vash_censored", "stratum"}, default "limma"
        The prior on the variances (module docstring).
    estimate : ndarray, optional
        The contrast estimates; needed with the vash and stratum priors (for the reported df).

    Returns
    -------
    ModeratedContrast
        Unmoderated if fewer than :data:`MIN_PROTEINS_FOR_PRIOR` tested rows have
        df >= :data:`MIN_PRIOR_DF`.
    """
    out = ModeratedContrast.unmoderated(se_raw, df)
    informative = tested & (df >= MIN_PRIOR_DF * (1.0 - MIN_PRIOR_DF_RTOL))
    if informative.sum() < MIN_PROTEINS_FOR_PRIOR:
        return out
    n_num = part["n_samples_num"].to_numpy(dtype=np.float64)
    n_den = part["n_samples_den"].to_numpy(dtype=np.float64)
    unscaled = 1.0 / n_num[tested] + 1.0 / n_den[tested]
    s2 = se_raw[tested] ** 2 / unscaled
    mask = informative[tested]
    if prior in ("vash", "vash_censored"):
        if estimate is None:
            raise ValueError("the vash prior needs the estimates")
        censored = (
            replicate_boundary(part)[tested] if prior == "vash_censored" else np.zeros_like(mask)
        )
        return _moderate_vash(out, name, tested, s2, df[tested], mask, unscaled, estimate, censored)
    if prior == "stratum":
        if estimate is None:
            raise ValueError("the stratum prior needs the estimates")
        limma = moderate_contrast(part, name, tested, se_raw, df, robust=robust)
        return _moderate_stratum(limma, part, name, tested, unscaled, estimate)
    if prior != "limma":
        raise ValueError(f"unknown prior {prior!r} (one of {', '.join(PRIORS)})")
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


def _moderate_vash(
    out: ModeratedContrast,
    name: str,
    tested: NDArray[np.bool_],
    s2: FloatArray,
    df: FloatArray,
    mask: NDArray[np.bool_],
    unscaled: FloatArray,
    estimate: FloatArray,
    censored: NDArray[np.bool_],
) -> ModeratedContrast:
    """``out`` with the tested rows moderated under the vash prior fitted to ``mask``
    (``censored`` rows as censored observations)."""
    # imported here: pepmix.inference.vash loads scipy.optimize (~0.15 CPU s), which the
    # default limma prior does not need (rule test's start-up)
    from pepmix.inference.vash import fit_prior, implied_df, mixture_pvalues, posterior

    fit_rows = mask & np.isfinite(df)
    if fit_rows.sum() < MIN_PROTEINS_FOR_PRIOR or not np.any(s2[fit_rows] > 0):
        return out
    fitted = fit_prior(s2[fit_rows], df[fit_rows], censored=censored[fit_rows])
    post = posterior(fitted, s2, df)
    var_post = post.var_post
    se = np.sqrt(var_post * unscaled)
    est = estimate[tested]
    p = mixture_pvalues(est, unscaled, post)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = est / se
    mean_df = post.df_mean
    out.se[tested] = se
    out.df[tested] = implied_df(t, p, mean_df)
    with np.errstate(invalid="ignore"):  # infinite df: NaN
        out.df_prior[tested] = np.where(np.isfinite(df), mean_df - df, np.nan)
    out.var_prior[tested] = fitted.var_harmonic
    out.moderated[tested] = True
    out.mixture = PosteriorMixture(rows=tested.copy(), unscaled=unscaled, posterior=post)
    log.info(
        "contrast %s: vash prior of %d components (inverse mean precision %.4g), fitted to %d "
        "of %d proteins (df >= %g; %d censored boundary fits) in %d EM cycles",
        name,
        fitted.weight.size,
        fitted.var_harmonic,
        int(fit_rows.sum()),
        int(tested.sum()),
        MIN_PRIOR_DF,
        int(np.count_nonzero(censored[fit_rows])),
        fitted.n_iter,
    )
    return out


def _moderate_stratum(
    out: ModeratedContrast,
    part: pd.DataFrame,
    name: str,
    tested: NDArray[np.bool_],
    unscaled: FloatArray,
    estimate: FloatArray,
) -> ModeratedContrast:
    """``out`` (limma's moderation) with the tested rows that have a residual floor moderated
    under the stratum prior (:mod:`pepmix.inference.stratum`), fitted to those with
    ``df_between`` >= :data:`MIN_PRIOR_DF`; ``out`` unchanged when fewer than
    :data:`MIN_PROTEINS_FOR_PRIOR` such rows exist."""
    from pepmix.inference.stratum import StratumData, fit_prior, posterior
    from pepmix.inference.vash import implied_df

    nan = np.full(len(part), np.nan)
    cols = [part[c].to_numpy(dtype=np.float64) if c in part else nan
            for c in ("var_floor", "var_between", "df_between")]  # fmt: skip
    floor, between, nu = (c[tested] for c in cols)
    has = np.isfinite(floor) & (floor > 0) & np.isfinite(between) & np.isfinite(nu) & (nu >= 0)
    has &= ~replicate_dropped(part)[tested]
    fit_rows = has & (nu >= MIN_PRIOR_DF * (1.0 - MIN_PRIOR_DF_RTOL))
    if fit_rows.sum() < MIN_PROTEINS_FOR_PRIOR:
        alert(
            log,
            "stratum_prior_unavailable",
            f"contrast {name}: testing.variance_prior stratum, but only {int(fit_rows.sum())} "
            "tested proteins have a residual floor (the fit must export them: "
            "pepmix.api.fit(stratum=True), as the workflow's fit rule does): limma's prior used",
        )
        return out
    data = StratumData.from_variances(between[has], floor[has], unscaled[has], nu[has])
    fitted = fit_prior(data.take(fit_rows[has]))
    post = posterior(fitted, data)
    rows = tested.copy()
    rows[tested] = has
    u = unscaled[has]
    mix = StratumMixture(rows=rows, unscaled=u, posterior=post)
    p = mix.pvalues(estimate)
    se = np.sqrt(post.var_post * u)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = estimate[rows] / se
    total = implied_df(t, p, nu[has])
    out.se[rows] = se
    out.df[rows] = total
    out.df_prior[rows] = total - nu[has]
    out.var_prior[rows] = fitted.mean + data.floor
    out.moderated[rows] = True
    out.mixture = mix
    log.info(
        "contrast %s: stratum prior (mean %.4g, mass %.2f at zero; %d grid points), fitted to "
        "%d of %d proteins in %d SQUAREM cycles; %d without a floor keep limma's prior",
        name,
        fitted.mean,
        fitted.mass_at_zero,
        fitted.grid.size,
        int(fit_rows.sum()),
        int(tested.sum()),
        fitted.n_iter,
        int(np.count_nonzero(~has)),
    )
    return out


def replicate_dropped(part: pd.DataFrame) -> NDArray[np.bool_]:
    """Rows whose model lost the replicate factor (``sample``; ``run`` with technical
    replication): ``detail`` says it was dropped (no finite REML optimum) or has one
    observation per level. Their residual variance holds the replicate stratum's, so they have
    no residual floor (a robust refit may have fitted the factor again; the first fit's verdict
    is kept).

    Parameters
    ----------
    part : pandas.DataFrame
        Column ``detail``; ``replication`` optional (``biological`` without).

    Returns
    -------
    ndarray of bool
    """
    details = part["detail"].fillna("").astype(str)
    technical = (
        part["replication"].astype(str) == "technical"
        if "replication" in part.columns
        else pd.Series(False, index=part.index)
    )
    lost = {
        name: details.str.contains(rf"\b{name}: (?:dropped|one observation per level)").to_numpy()
        for name in ("sample", "run")
    }
    out: NDArray[np.bool_] = np.where(technical.to_numpy(), lost["run"], lost["sample"])
    return out


def replicate_boundary(part: pd.DataFrame) -> NDArray[np.bool_]:
    """Rows whose fit has the replicate stratum's variance at zero (status ``boundary``).

    The replicate stratum is the factor ``sample`` (``run`` for rows with ``replication``
    ``technical``: the model then has the run in the sample's place); the model stage names
    the factors with variances at zero in ``detail`` (``variance at zero: feature, sample``).

    Parameters
    ----------
    part : pandas.DataFrame
        Columns ``status`` and ``detail``; ``replication`` optional (``biological`` without).

    Returns
    -------
    ndarray of bool
    """
    boundary = part["status"].to_numpy(dtype=object) == "boundary"
    details = part["detail"].fillna("").astype(str).to_numpy(dtype=object)
    technical = (
        part["replication"].to_numpy(dtype=object) == "technical"
        if "replication" in part.columns
        else np.zeros(len(part), dtype=bool)
    )
    out = np.zeros(len(part), dtype=bool)
    for i in np.flatnonzero(boundary):
        found = _AT_ZERO.search(details[i])
        factors = {f.strip() for f in found.group(1).split(",")} if found else set()
        out[i] = ("run" if technical[i] else "sample") in factors
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
