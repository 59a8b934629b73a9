r"""Feature precision weights: empirical-Bayes per-feature residual variances (an option).

Peptides of one protein differ in noise (low-intensity, interfered or badly integrated
features scatter more). The model of :mod:`pepmix.model.fit` gives all features of a protein
one residual variance :math:`\sigma^2`. With ``model.feature_weights: empirical_bayes`` each
feature :math:`f` gets its own, :math:`\sigma^2 v_f`, estimated with empirical-Bayes shrinkage
and used as a precision weight :math:`1/v_f` in a refit: the approach of limma's
``arrayWeights`` and voom precision weights (Ritchie et al. 2006, *BMC Bioinformatics* 7:261;
Law et al. 2014, *Genome Biol* 15:R29) with the variance shrinkage of Smyth 2004 (*Stat Appl
Genet Mol Biol* 3:3), applied to the features of a protein.

Model and notation
------------------
Protein :math:`p`; observation :math:`i` of feature :math:`f` in run :math:`j`,
:math:`e_i \sim N(0, \sigma^2 \lambda_f)` with :math:`\lambda_f` the feature's variance relative
to the protein's; robust (Huber) weight :math:`h_i` (1 without ``model.robust``).

1. Statistic, from the least-squares fit of the additive model ``y ~ feature + run`` within the
   protein (:func:`additive_residuals`; its run effects span every run-level term of the
   model, and unlike the mixed fit's residuals it does not depend on the fit, so the prior can
   be estimated before sharding without fitting): residual df of feature :math:`f`,
   :math:`d_f = \sum_{i \in f} (1 - h_{ii})` with the leverage
   :math:`h_{ii} \approx 1/n_f + 1/c_j - 1/n_p` (:math:`n_f` observations of the feature,
   :math:`c_j` features seen in the run, :math:`n_p` observations of the protein; exact for a
   complete table), and
   :math:`z_f = (\mathrm{SS}_f / d_f) / (\sum_{g} \mathrm{SS}_g / \sum_g d_g)`: the feature's
   residual variance relative to the protein's pooled one (scale-free, so one prior serves
   proteins of any noise level). Only features with :math:`d_f \ge` :data:`MIN_DF` in proteins
   with at least :data:`MIN_FEATURES` such features get a ratio (with two features only the
   sum of their variances is identifiable: Grubbs 1948).
2. Prior (Smyth 2004): :math:`z_f \mid \lambda_f \approx \lambda_f \chi^2_{c d_f}/(c d_f)`,
   :math:`1/\lambda_f \sim \chi^2_{d_0}/(d_0 s_0^2)`. The residuals of one protein are
   correlated (a noisy feature inflates the others' residuals through the run means; the
   ratios of a protein share their denominator), so :math:`\mathrm{var}(\log z_f)` under
   homoscedasticity is not limma's :math:`\psi'(d_f/2)`. It is measured instead on null data:
   the same statistic on standard normal errors in the same cells (:data:`NULL_REPLICATES`
   data sets, seed :data:`NULL_SEED`). Then, by limma's moment equations (``fitFDist``):
   :math:`\psi'(d_0/2) = \mathrm{var}(\log z) - \mathrm{var}_0(\log z)`,
   :math:`\log s_0^2 = \overline{\log z} - \overline{\log z}_0 + \psi(d_0/2) - \log(d_0/2)`,
   and the effective df factor :math:`c` solves
   :math:`\overline{\psi'(c\,d_f/2)} = \mathrm{var}_0(\log z)` (:func:`fit_feature_prior`;
   :math:`d_0 = \infty` when there is no excess).
3. Posterior (``squeezeVar``): :math:`\tilde z_f = (d_0 s_0^2 + c d_f z_f)/(d_0 + c d_f)`;
   weights :math:`w_f = 1/\tilde z_f`, normalised to mean 1 over the protein's observations
   (so :math:`\sigma^2` keeps its scale); features without a ratio get 1
   (:func:`precision_weights`). This is what limma's ``arrayWeights`` and voom do for arrays
   and observations (Ritchie et al. 2006; Law et al. 2014), applied to the features of a
   protein.
4. One refit with weights :math:`h_i w_{f(i)}` (Huber weights of the converged robust fit
   held; the robust variance factor still applies), the weights then treated as known (as
   limma treats voom's). One round only: the statistic does not depend on the fit, so a
   second round would give the same weights.

Measured (``benchmarks/README.md``, "Per-feature residual variances"): on homoscedastic
simulations :math:`d_0` comes out at 130-220 (weights within 0.93-1.05), with lognormal feature
SD factors (sdlog 0.6) at about 4, on the demo at 2.1. No gain in ranking power on the
heteroscedastic simulation (where a feature's variance is estimable the contrast's SE is
dominated by the sample variance), FDP 7.1 -> 5.9 % with outlier features, but 4 and 2
background false positives on the demo (standard errors a median 21 % smaller): an option, not
the default. Not applied by the peptide-usage test and the parametric bootstraps, which refit
with the robust weights only.

Eligible proteins: fitted and converged and (with robust fitting) not on the least-squares
fallback. A protein whose refit has no finite optimum (a relative SD beyond
:data:`pepmix.model.optimize.DIVERGENT_THETA`) keeps its previous fit and weights 1.

Shard invariance: :math:`(s_0^2, d_0, c)` are global hyperparameters. A prior fitted within each
shard would make results depend on the number of shards, so the workflow estimates it once on
all proteins before sharding (rule ``variance_prior``, :mod:`pepmix.stages.variance_prior`) and
every shard fits with it (:class:`FeaturePrior`). Called on a whole data set (the library's
:func:`pepmix.model.fit.fit_proteins` without ``feature_prior``) the prior is fitted on the
proteins given.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from pepmix.model.design import RunDesign
from pepmix.model.fit import Encoded, ModelFit
from pepmix.model.suffstats import Problem

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

#: ``model.feature_weights`` methods
METHODS = ("none", "empirical_bayes")
#: features with a weight below this are counted in the protein's ``detail``
LOW_FEATURE_WEIGHT = 0.5
#: proteins with fewer features (each with residual df > 0) are not reweighted: with free run
#: effects the variances of two features are not separately identifiable, only their sum
#: (Grubbs 1948, *J Am Stat Assoc* 43:243)
MIN_FEATURES = 3
#: features with fewer residual df get no ratio (weight 1): the leverage approximation is poor
#: there and their log ratios have an unbounded left tail (residuals fitted almost exactly)
MIN_DF = 2.0
#: null data sets simulated to calibrate the sampling variance of the ratios
NULL_REPLICATES = 2
#: seed of the null simulation (fixed: the prior is a deterministic function of the data)
NULL_SEED = 20261207
#: sweeps of the additive fit (alternating means) at most, and their tolerance
MAX_SWEEPS = 200
SWEEP_TOL = 1e-10


@dataclass(frozen=True)
class FeaturePrior:
    r"""Scaled-inverse-chi-square prior of the feature variance ratios :math:`\lambda_f`.

    Attributes
    ----------
    df : float
        Prior df :math:`d_0` (``inf``: no heteroscedasticity beyond sampling noise).
    scale : float
        Prior scale :math:`s_0^2` (about 1: the ratios are relative to the protein's variance).
    df_factor : float
        :math:`c`: the ratios' effective df are :math:`c\,d_f` (calibrated on null data).
    n_features : int
        Features the prior was fitted on.
    """

    df: float
    scale: float
    df_factor: float
    n_features: int

    def to_dict(self) -> dict[str, float]:
        """JSON-ready values."""
        return {
            "df": self.df,
            "scale": self.scale,
            "df_factor": self.df_factor,
            "n_features": float(self.n_features),
        }

    @classmethod
    def from_dict(cls, data: dict[str, float]) -> FeaturePrior:
        """Read :meth:`to_dict`."""
        return cls(
            float(data["df"]),
            float(data["scale"]),
            float(data["df_factor"]),
            int(data["n_features"]),
        )


@dataclass(frozen=True)
class FeatureRatios:
    """Per feature (global feature codes of :class:`~pepmix.model.fit.Encoded`).

    Attributes
    ----------
    ratio : ndarray
        :math:`z_f` (NaN where not estimable).
    df : ndarray
        :math:`d_f` (0 where not estimable).
    protein : ndarray of int
        Protein code of each feature.
    n_obs : ndarray of int
        Observations of each feature.
    """

    ratio: FloatArray
    df: FloatArray
    protein: IntArray
    n_obs: IntArray


def additive_residuals(enc: Encoded, y: FloatArray) -> FloatArray:
    """Residuals of the least-squares fit ``y ~ feature + run`` within each protein.

    Alternating means (feature, then protein x run cell) converge to the projection on the sum
    of the two subspaces (von Neumann's alternating projections); at most :data:`MAX_SWEEPS`
    sweeps, stopping when no mean exceeds :data:`SWEEP_TOL`.
    """
    n_runs = max(len(enc.runs), 1)
    n_feat = int(enc.feat.max()) + 1 if enc.feat.size else 0
    cell = np.unique(enc.prot.astype(np.int64) * n_runs + enc.run, return_inverse=True)[1]
    n_f = np.maximum(np.bincount(enc.feat, minlength=n_feat), 1)
    n_c = np.maximum(np.bincount(cell), 1) if cell.size else np.ones(0)
    r = np.array(y, dtype=np.float64)
    for _ in range(MAX_SWEEPS):
        fm = np.bincount(enc.feat, weights=r, minlength=n_feat) / n_f
        r -= fm[enc.feat]
        cm = np.bincount(cell, weights=r) / n_c
        r -= cm[cell]
        if max(np.abs(fm).max(initial=0.0), np.abs(cm).max(initial=0.0)) < SWEEP_TOL:
            break
    return r


def feature_ratios(enc: Encoded, y: FloatArray | None = None) -> FeatureRatios:
    """Feature variance ratios :math:`z_f` and df :math:`d_f` (module docstring, steps 1-2).

    Parameters
    ----------
    enc : Encoded
        The encoded table (observations sorted by protein).
    y : ndarray, shape (N,), optional
        Values to use instead of ``enc.y`` (the null simulation); default None.
    """
    n_prot = len(enc.proteins)
    n_runs = max(len(enc.runs), 1)
    n_feat = int(enc.feat.max()) + 1 if enc.feat.size else 0
    fprot = np.zeros(n_feat, dtype=np.intp)
    fprot[enc.feat] = enc.prot
    n_f = np.bincount(enc.feat, minlength=n_feat)
    n_p = np.bincount(enc.prot, minlength=n_prot)
    cell = enc.prot.astype(np.int64) * n_runs + enc.run
    c_j = np.bincount(cell, minlength=n_prot * n_runs)[cell]  # features seen in the run
    # leverage of the additive fit, exact for a complete table
    lev = 1.0 / n_f[enc.feat] + 1.0 / c_j - 1.0 / n_p[enc.prot]
    d_f = np.maximum(np.bincount(enc.feat, weights=1.0 - lev, minlength=n_feat), 0.0)
    d_f = np.where(d_f >= MIN_DF, d_f, 0.0)
    resid = additive_residuals(enc, enc.y if y is None else y)
    ss_f = np.bincount(enc.feat, weights=resid**2, minlength=n_feat)
    f_p = np.bincount(fprot, weights=d_f > 0, minlength=n_prot)
    ok = (f_p[fprot] >= MIN_FEATURES) & (d_f > 0)
    ss_p = np.bincount(fprot, weights=np.where(ok, ss_f, 0.0), minlength=n_prot)
    nu = np.bincount(fprot, weights=np.where(ok, d_f, 0.0), minlength=n_prot)
    with np.errstate(invalid="ignore", divide="ignore"):
        s2_p = ss_p / nu
        ratio = np.where(ok & (s2_p[fprot] > 0), ss_f / d_f / s2_p[fprot], np.nan)
    ratio = np.where(ratio > 0, ratio, np.nan)
    d_f = np.where(np.isfinite(ratio), d_f, 0.0)
    return FeatureRatios(ratio, d_f, fprot, n_f.astype(np.intp))


def _df_factor(d: FloatArray, var_null: float) -> float:
    """:math:`c` with mean trigamma(c d / 2) = the null variance of log z (clipped to
    [0.1, 100])."""
    from scipy import optimize, special

    def gap(c: float) -> float:
        return float(np.mean(special.polygamma(1, c * d / 2)) - var_null)

    lo, hi = 0.1, 100.0
    if gap(lo) <= 0:
        return lo
    if gap(hi) >= 0:
        return hi
    return float(optimize.brentq(gap, lo, hi, xtol=1e-6))


def fit_feature_prior(enc: Encoded) -> FeaturePrior:
    r"""Fit the prior of the feature variance ratios on all proteins of ``enc``.

    Moments of :math:`\log z_f` as limma's ``fitFDist`` (Smyth 2004, section 6.2), with the
    sampling part measured on :data:`NULL_REPLICATES` null data sets (standard normal errors on
    the same cells, seed :data:`NULL_SEED`) instead of :math:`\psi'(d_f/2)`, because the
    residuals of one protein are correlated (the ratios of a 3-feature protein vary less than
    :math:`\chi^2_{d_f}/d_f`): :math:`\psi'(d_0/2) = \mathrm{var}(\log z) -
    \mathrm{var}_0(\log z)`, :math:`\log s_0^2 = \overline{\log z} - \overline{\log z}_0 +
    \psi(d_0/2) - \log(d_0/2)`; effective df :math:`c\,d_f` with
    :math:`\overline{\psi'(c\,d_f/2)} = \mathrm{var}_0(\log z)`. ``df = inf`` when the excess
    is not positive or fewer than 3 features are usable.
    """
    from scipy import special

    from pepmix.inference.limma.fitfdist import trigamma_inverse

    obs = feature_ratios(enc)
    use = obs.df > 0
    n = int(use.sum())
    if n < 3:
        return FeaturePrior(np.inf, 1.0, 1.0, n)
    rng = np.random.default_rng(NULL_SEED)
    null_logs = []
    for _ in range(NULL_REPLICATES):
        null = feature_ratios(enc, rng.standard_normal(enc.y.size))
        null_logs.append(np.log(null.ratio[use & (null.df > 0)]))
    e0 = np.concatenate(null_logs)
    e = np.log(obs.ratio[use])
    var0 = float(np.var(e0, ddof=1))
    factor = _df_factor(obs.df[use], var0)
    excess = float(np.var(e, ddof=1)) - var0
    shift = float(np.mean(e) - np.mean(e0))
    if excess <= 0:
        return FeaturePrior(np.inf, float(np.exp(shift)), factor, n)
    d0 = 2.0 * trigamma_inverse(excess)
    s0 = float(np.exp(shift + special.digamma(d0 / 2) - np.log(d0 / 2)))
    return FeaturePrior(float(d0), s0, factor, n)


def precision_weights(ratios: FeatureRatios, prior: FeaturePrior) -> FloatArray:
    """Feature weights :math:`w_f = 1/\tilde z_f`, mean 1 over each protein's observations.

    :math:`\tilde z_f = (d_0 s_0^2 + c\\,d_f z_f) / (d_0 + c\\,d_f)` (limma's posterior
    variance, :func:`pepmix.inference.limma.squeeze.posterior_var`); features without a ratio
    (df 0) get weight 1.
    """
    from pepmix.inference.limma.squeeze import posterior_var

    use = ratios.df > 0
    post = posterior_var(
        np.nan_to_num(ratios.ratio, nan=1.0), prior.df_factor * ratios.df, prior.scale, prior.df
    )
    w = np.where(use, 1.0 / post, 1.0)
    n_prot = int(ratios.protein.max()) + 1 if ratios.protein.size else 0
    total = np.bincount(ratios.protein, weights=w * ratios.n_obs, minlength=n_prot)
    count = np.bincount(ratios.protein, weights=ratios.n_obs, minlength=n_prot)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    return np.asarray(np.where(use, w / mean[ratios.protein], 1.0), dtype=np.float64)


def reweight_features(
    problem: Problem,
    enc: Encoded,
    design: RunDesign,
    cmat: FloatArray,
    out: ModelFit,
    pieces: list[pd.DataFrame],
    weights: FloatArray | None,
    eligible: NDArray[np.bool_],
    prior: FeaturePrior | None = None,
) -> tuple[list[pd.DataFrame], FloatArray, list[str], FeaturePrior]:
    """Estimate feature weights from the fit in ``out`` and refit once (module docstring).

    Parameters
    ----------
    problem, enc, design, cmat, out, pieces
        The fit to start from (as in :func:`pepmix.model.robust.irls`); ``out`` is updated in
        place for the refitted proteins.
    weights : ndarray, shape (N,), optional
        Robust weights of the fit (None: plain REML, all 1).
    eligible : ndarray of bool, shape (P,)
        Proteins that may be reweighted.
    prior : FeaturePrior, optional
        Default None: fitted on the features of ``eligible`` proteins (shard-invariant only
        when all proteins are in this call).

    Returns
    -------
    pieces, weights, notes, prior
        Coded predictions (with ``weight_mean``/``weight_min`` of the combined weights),
        combined observation weights, a ``detail`` note per protein, the prior used.
    """
    from pepmix.model.robust import _coded, _diverged, _refit, blup_frame

    h = np.ones(enc.y.size) if weights is None else weights
    current = _coded(pieces)
    ratios = feature_ratios(enc)
    if prior is None:
        prior = fit_feature_prior(enc)
    w_f = np.where(eligible[ratios.protein], precision_weights(ratios, prior), 1.0)
    log.info(
        "feature weights: prior d0 = %.3g, s0^2 = %.3g (%d features); %d features below %g",
        prior.df, prior.scale, prior.n_features, int(np.sum(w_f < LOW_FEATURE_WEIGHT)),
        LOW_FEATURE_WEIGHT,
    )  # fmt: skip
    n_prot = problem.n_proteins
    changed = np.bincount(ratios.protein, weights=np.abs(w_f - 1.0) > 1e-12, minlength=n_prot)
    subset = np.flatnonzero(changed > 0)
    combined = h * w_f[enc.feat]
    if subset.size:
        part, _ = _refit(problem, enc, design, cmat, out, subset, combined)
        bad = np.zeros(n_prot, dtype=bool)
        bad[subset] = _diverged(out)[subset]
        if bad.any():  # keep the previous fit: weights 1
            w_f = np.where(bad[ratios.protein], 1.0, w_f)
            combined = h * w_f[enc.feat]
            back, _ = _refit(
                problem, enc, design, cmat, out, np.flatnonzero(bad), combined, warm=False
            )
            part = np.concatenate([part[~bad[part[:, 0].astype(np.intp)]], back])
        keep = ~np.isin(current[:, 0].astype(np.intp), subset)
        current = np.concatenate([current[keep], part])
    final = blup_frame(current, enc, design, problem.factors, combined)
    low = np.bincount(ratios.protein, weights=w_f < LOW_FEATURE_WEIGHT, minlength=n_prot)
    notes = [
        f"feature weights: {int(k)} features with weight < {LOW_FEATURE_WEIGHT}" if k else ""
        for k in low.tolist()
    ]
    return [final], combined, notes, prior
