"""Fit one linear mixed model per protein, all proteins at once.

Entry point :func:`fit_proteins`: encodes the long table, builds the sufficient statistics
(:mod:`pepmix.model.suffstats`), minimises the REML criterion bucket by bucket
(:mod:`pepmix.model.optimize`) and computes estimates, BLUPs and Satterthwaite contrast tests
(:mod:`pepmix.model.satterthwaite`).

Every protein gets exactly one status:

``ok``
    all model terms kept, every variance estimated above zero
``boundary``
    a variance estimated at zero (see the boundary rule in :mod:`pepmix.model.satterthwaite`)
``reduced_model``
    a term was dropped before fitting because it is not estimable (``detail`` says which and why;
    rules in :mod:`pepmix.model.checks`), or after fitting because the REML criterion had no
    finite optimum (rule in :mod:`pepmix.model.divergent`)
``too_few_observations``
    no residual degree of freedom; not fitted
``not_estimable``
    the criterion could not be evaluated or did not converge (``detail`` says which)

With a variance-ratio prior (``prior``, :mod:`pepmix.model.shrinkage`) a shrunk variance is
never zero, so it never makes a protein ``boundary``; when its plain REML estimate was zero the
``detail`` says ``<factor> variance shrunk: REML estimate 0`` (status ``ok`` unless another term
sets it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from pepmix.model.design import (
    BATCH_CONDITION,
    SLOPE_TERM,
    USAGE_FACTOR,
    RunDesign,
    batch_condition_df,
    contrast_replication,
)
from pepmix.model.divergent import reduce_divergent
from pepmix.model.optimize import DIVERGENT_THETA, MAX_ITER, _put_rows, minimize
from pepmix.model.reml import Bucket, Derivatives, Evaluation, _inverses, derivatives, evaluate
from pepmix.model.satterthwaite import (
    Estimates,
    contrast_tests,
    cov_derivatives,
    estimates,
    point_estimates,
)
from pepmix.model.suffstats import Problem, build_problem

if TYPE_CHECKING:
    # imported where used: the prior is optional and its module loads scipy.optimize
    from pepmix.model.feature_weights import FeaturePrior
    from pepmix.model.majority import Exclusions
    from pepmix.model.majority_shards import ShardSample
    from pepmix.model.shrinkage import VariancePrior
    from pepmix.model.subset_problem import SubsetBuilder

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]

#: statuses of proteins that were fitted
FITTED = ("ok", "boundary", "reduced_model")
#: a free variance whose removal changes the criterion by less than this is set to zero
SNAP_TOL = 1e-7
#: snapped variances with a relative standard deviation above this were not identifiable
SNAP_THETA = 1e-2
#: robust fits: the first (weighted) fit is light and completed only for the proteins whose
#: weights settle on it (:func:`pepmix.model.robust.irls`, ``first``; bit-identical); False:
#: the first fit computes covariances and contrasts for every protein
LIGHT_FIRST = True
#: robust fits: the first fit's problem is built by the refits'
#: :class:`pepmix.model.subset_problem.SubsetBuilder` (the weight-independent steps once for
#: both; bit-identical); False: by :func:`pepmix.model.suffstats.build_problem`
FIRST_FROM_BUILDER = True


@dataclass
class ModelFit:
    """Per-protein results of :func:`fit_proteins`.

    Attributes
    ----------
    proteins : list of str
    design : RunDesign
    factors : tuple of str
    status, detail : list of str
    n_features, n_obs : ndarray of int
    theta : ndarray, shape (P, F)
        Relative standard deviations (NaN where not fitted or dropped).
    sigma : ndarray, shape (P,)
    reml_crit : ndarray, shape (P,)
        lme4's ``REMLcrit`` (NaN where not fitted).
    nu : ndarray, shape (P,)
        Residual degrees of freedom ``n - p``.
    beta : ndarray, shape (P, p)
        Fixed effects in :attr:`RunDesign.x_names` coordinates (NaN for dropped columns).
    cov_beta : ndarray, shape (P, p, p)
    contrast_names : list of str
    estimate, se, df : ndarray, shape (P, M)
        Contrast estimates, standard errors and Satterthwaite df (NaN where not estimable).
    contrast_ok : ndarray of bool, shape (P, M)
        Whether every fixed effect the contrast uses was estimable.
    converged : ndarray of bool
    iterations : ndarray of int
    blups : pandas.DataFrame
        Columns ``protein, factor, level, blup`` (data units, like ``lme4::ranef``); with
        ``robust="huber"`` also ``weight_mean, weight_min`` (observation weights of the level).
    run_effects : pandas.DataFrame
        Protein abundance model only: ``protein, run, abundance, se, n_features``.
    run_effects_parts : list of pandas.DataFrame
        Work list while fitting.
    weights : ndarray, shape (N,), optional
        Robust fit only: final observation weights, in the order of :attr:`encoded`
        (with ``feature_weights``: robust times feature precision weights).
    feature_prior : FeaturePrior, optional
        ``feature_weights``: the prior of the feature variance ratios used.
    not_identifiable : ndarray of bool, shape (P, F)
        Variances set to zero because the criterion did not depend on them.
    samples_per_condition : ndarray of int, shape (P, C)
        Replication units (biological samples; runs with technical replication) in which the
        protein was observed, per condition.
    prior : VariancePrior or None
        Variance-ratio prior the fit used (None: plain REML).
    theta_reml : ndarray, shape (P, F)
        With a prior: the plain REML estimates of ``theta`` (NaN otherwise).
    reduce_divergent : bool, default True
        Refit proteins without a finite optimum as reduced models
        (:mod:`pepmix.model.divergent`); the robust fit's weighted refits turn it off.
    beta_centred : ndarray, shape (P, p)
        Fixed effects of ``y`` centred at the protein's mean (0 on dropped columns): the
        coordinates in which contrasts of conditions are computed (the mean cancels exactly).
    dcov_beta : ndarray, shape (P, F + 1, p, p)
        Derivatives of ``cov_beta`` in :math:`\\psi = (\\theta_1, \\dots, \\theta_F, \\sigma)`
        (0 for parameters that are not free; NaN on dropped columns); scaled like ``cov_beta``
        by the robust variance factor. With ``vcov_varpar`` it gives every contrast's
        Satterthwaite df (:mod:`pepmix.model.stored`).
    vcov_varpar : ndarray, shape (P, F + 1, F + 1)
        lmerTest's covariance :math:`A = 2H^+` of :math:`\\hat\\psi`
        (:mod:`pepmix.model.satterthwaite`).
    cov_beta_floor : ndarray, shape (P, p, p)
        ``cov_beta`` with the replicate stratum's variance (``sample``; ``run`` with technical
        replication) set to zero and the residual variance the within-replicate one, the
        other variance ratios at their estimates: the *residual floor* of every contrast's
        variance (:func:`stratum_split`; scaled like ``cov_beta`` by the robust variance
        factor). NaN where the model has no free replicate factor or was not fitted (for the
        stratum prior, :mod:`pepmix.inference.stratum`).
    stratum_ratio : ndarray, shape (P,)
        The replicate factor's unconstrained between/within mean-square ratio
        (:func:`stratum_split`), NaN with ``cov_beta_floor``. Both are computed only with
        ``stratum`` (``fit_proteins(stratum=True)``; ~3 % of the fit's CPU time), NaN otherwise.
    theta_scale : ndarray, shape (P,), optional
        Robust fits: the square root of the variance factor :attr:`theta` was divided by
        (:func:`pepmix.model.robust.correct_variance`; 1 where none was applied), so that
        ``theta * theta_scale`` is the weighted REML optimum (the start of refits, e.g. the
        variance tests). Default None: 1 for every protein.
    builder : SubsetBuilder, optional
        Robust fits: the robust iteration's builder of weighted problems
        (:class:`pepmix.model.subset_problem.SubsetBuilder` of :attr:`encoded`), reused for
        the problem at the final weights (:func:`pepmix.model.variance_tests.refit_problem`).
        Default None.
    """

    proteins: list[str]
    design: RunDesign
    factors: tuple[str, ...]
    status: list[str]
    detail: list[str]
    n_features: NDArray[np.intp]
    n_obs: NDArray[np.intp]
    theta: FloatArray
    sigma: FloatArray
    reml_crit: FloatArray
    nu: FloatArray
    beta: FloatArray
    cov_beta: FloatArray
    contrast_names: list[str]
    estimate: FloatArray
    se: FloatArray
    df: FloatArray
    contrast_ok: NDArray[np.bool_]
    converged: NDArray[np.bool_]
    iterations: NDArray[np.intp]
    blups: pd.DataFrame
    run_effects: pd.DataFrame = field(default_factory=pd.DataFrame)
    encoded: Encoded | None = None
    run_effects_parts: list[pd.DataFrame] = field(default_factory=list)
    not_identifiable: NDArray[np.bool_] = field(
        default_factory=lambda: np.zeros((0, 0), dtype=bool)
    )
    samples_per_condition: NDArray[np.intp] = field(
        default_factory=lambda: np.zeros((0, 0), dtype=np.intp)
    )
    prior: VariancePrior | None = None
    theta_reml: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))
    weights: FloatArray | None = None
    #: the feature-variance prior used (``feature_weights``; None: not used)
    feature_prior: FeaturePrior | None = None
    reduce_divergent: bool = True
    beta_centred: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))
    dcov_beta: FloatArray = field(default_factory=lambda: np.zeros((0, 0, 0, 0)))
    vcov_varpar: FloatArray = field(default_factory=lambda: np.zeros((0, 0, 0)))
    cov_beta_floor: FloatArray = field(default_factory=lambda: np.zeros((0, 0, 0)))
    stratum_ratio: FloatArray = field(default_factory=lambda: np.zeros(0))
    #: compute ``cov_beta_floor`` and ``stratum_ratio`` (``fit_proteins(stratum=True)``)
    stratum: bool = False
    theta_scale: FloatArray | None = None
    builder: SubsetBuilder | None = field(default=None, repr=False)

    def varpar_names(self) -> list[str]:
        """Names of the variance parameters :math:`\\psi` of ``dcov_beta`` and
        ``vcov_varpar``: ``theta_<factor>`` per random factor, then ``sigma``."""
        return [f"theta_{f}" for f in self.factors] + ["sigma"]

    def variance_components(self) -> pd.DataFrame:
        """One row per protein: ``protein, var_<factor>..., var_residual, n_features,
        n_observations, status, detail`` plus ``reml_crit`` and ``df_residual``; with a prior
        also ``reml_ratio_<factor>`` (plain REML :math:`\\theta^2`) and
        ``shrinkage_prior_df_<factor>``, ``shrinkage_prior_ratio_<factor>`` (:math:`d_0, r_0`)
        for each shrunk factor."""
        out = pd.DataFrame({"protein": self.proteins})
        sigma2 = self.sigma**2
        for f, name in enumerate(self.factors):
            out[f"var_{name}"] = self.theta[:, f] ** 2 * sigma2
        out["var_residual"] = sigma2
        out["n_features"] = self.n_features
        out["n_observations"] = self.n_obs
        out["status"] = self.status
        out["detail"] = self.detail
        out["reml_crit"] = self.reml_crit
        out["df_residual"] = self.nu
        if self.prior is not None:  # shrinkage: REML estimates and the fitted prior
            for f, name in enumerate(self.factors):
                if name in self.prior.factors:
                    fp = self.prior.factors[name]
                    out[f"reml_ratio_{name}"] = self.theta_reml[:, f] ** 2
                    out[f"shrinkage_prior_df_{name}"] = fp.df
                    out[f"shrinkage_prior_ratio_{name}"] = fp.ratio
        return out

    def contrast_table(
        self, numerators: Sequence[str], denominators: Sequence[str]
    ) -> pd.DataFrame:
        """Long table of contrast estimates, one row per protein and contrast.

        Columns ``protein, contrast, estimate, se, df, status, detail, n_features,
        n_observations, sigma, df_residual, n_samples_num, n_samples_den, df_between,
        replication``. A contrast involving a condition in which the protein was never observed
        gets status ``one_condition_missing`` (one side observed) or ``not_estimable`` (neither
        side) and NaN statistics. ``n_samples_*`` count the replication units (biological
        samples, or runs with technical replication) observed in each condition; ``df_between``
        is the between-sample (containment) degrees of freedom: observed units minus estimable
        fixed effects; with a variance-ratio prior, plus the prior df :math:`d_0` of the
        protein's shrunk ``sample`` ratio (the prior is information about the between-sample
        variance, as limma's prior df are; see :mod:`pepmix.model.shrinkage`); with a
        ``batch:condition`` term, at most the containment df of that stratum
        (:func:`pepmix.model.design.batch_condition_df`, where at least 1). ``replication``
        says what the units are (:func:`pepmix.model.design.contrast_replication`).

        Parameters
        ----------
        numerators, denominators : sequence of str
            Conditions of each contrast, in the order of :attr:`contrast_names`.
        """
        cmat = contrast_matrix(self.design, list(zip(numerators, denominators, strict=True)))
        return contrast_frame(
            self,
            self.contrast_names,
            numerators,
            denominators,
            (self.estimate, self.se, self.df),
            self.df_between(),
            (contrast_floors(self.beta, self.cov_beta_floor, cmat), self.stratum_ratio),
        )

    def df_between(self) -> FloatArray:
        """Between-sample df of each protein (see :meth:`contrast_table`)."""
        kept = np.sum(~np.isnan(self.beta), axis=1)
        df_between = (self.samples_per_condition.sum(axis=1) - kept).astype(np.float64)
        out: FloatArray = df_between + self._prior_df_between()
        if BATCH_CONDITION in self.factors and self.encoded is not None:
            # the effect is replicated by batches: containment df of the batch:condition
            # stratum where the protein's cells leave at least one
            enc = self.encoded
            cells = batch_condition_df(enc.prot, enc.run, self.design, len(self.proteins))
            out = np.where(cells >= 1, np.minimum(out, cells), out)
        return out

    def _prior_df_between(self) -> FloatArray:
        """Prior df added to the between-sample df: :math:`d_0` where ``sample`` was shrunk."""
        extra = np.zeros(len(self.proteins))
        if self.prior is not None and "sample" in self.prior.factors and "sample" in self.factors:
            f = self.factors.index("sample")
            extra = np.where(self.theta[:, f] > 0, self.prior.factors["sample"].df, 0.0)
        return extra

    def fixed_effects(self) -> pd.DataFrame:
        """Long table ``protein, term, estimate, se`` plus the covariance row by row."""
        names = self.design.x_names
        p = len(names)
        frame = pd.DataFrame(
            {
                "protein": np.repeat(self.proteins, p),
                "term": np.tile(names, len(self.proteins)),
                "estimate": self.beta.reshape(-1),
                "se": np.sqrt(np.diagonal(self.cov_beta, axis1=1, axis2=2)).reshape(-1),
            }
        )
        cov = self.cov_beta.reshape(-1, p)
        for j, name in enumerate(names):
            frame[f"cov[{name}]"] = cov[:, j]
        return frame


class _ProteinColumns(Protocol):
    """Per-protein columns a contrast table repeats (:class:`ModelFit` and stored fits)."""

    proteins: list[str]
    design: RunDesign
    status: list[str]
    detail: list[str]
    n_features: NDArray[np.intp]
    n_obs: NDArray[np.intp]
    sigma: FloatArray
    nu: FloatArray
    beta: FloatArray
    samples_per_condition: NDArray[np.intp]


def contrast_frame(
    fit: _ProteinColumns,
    names: Sequence[str],
    numerators: Sequence[str],
    denominators: Sequence[str],
    stats: tuple[FloatArray, FloatArray, FloatArray],
    df_between: FloatArray,
    floors: tuple[FloatArray, FloatArray] | None = None,
) -> pd.DataFrame:
    """Long contrast table (:meth:`ModelFit.contrast_table`) from estimates, SEs and df.

    ``stats`` holds ``estimate, se, df`` of shape ``(P, M)``; ``df_between`` shape ``(P,)``;
    ``floors`` the contrasts' residual floors (shape ``(P, M)``, :func:`contrast_floors`) and
    the proteins' :attr:`ModelFit.stratum_ratio` (shape ``(P,)``): columns ``var_floor`` and
    ``var_between`` (their product, the contrast's unconstrained between-replicate mean
    square; default None: NaN).
    """
    n = len(fit.proteins)
    floor, ratio = floors if floors is not None else (np.full((n, len(names)), np.nan), None)
    ratio = np.full(n, np.nan) if ratio is None or ratio.shape != (n,) else ratio
    conditions = fit.design.conditions
    observed = ~np.isnan(fit.beta[:, : len(conditions)])
    fit_status = np.asarray(fit.status, dtype=object)
    spc = fit.samples_per_condition
    estimate, se, df = stats
    frames = []
    for m, name in enumerate(names):
        num = conditions.index(numerators[m])
        den = conditions.index(denominators[m])
        num_obs, den_obs = observed[:, num], observed[:, den]
        status = fit_status.copy()
        fitted = np.isin(status, FITTED)
        status[fitted & (num_obs ^ den_obs)] = "one_condition_missing"
        status[fitted & ~num_obs & ~den_obs] = "not_estimable"
        good = np.isin(status, FITTED)
        frames.append(
            pd.DataFrame(
                {
                    "protein": fit.proteins,
                    "contrast": name,
                    "estimate": np.where(good, estimate[:, m], np.nan),
                    "se": np.where(good, se[:, m], np.nan),
                    "df": np.where(good, df[:, m], np.nan),
                    "status": status,
                    "detail": fit.detail,
                    "n_features": fit.n_features,
                    "n_observations": fit.n_obs,
                    "sigma": fit.sigma,
                    "df_residual": fit.nu,
                    "n_samples_num": spc[:, num],
                    "n_samples_den": spc[:, den],
                    "df_between": df_between,
                    "replication": contrast_replication(fit.design, numerators[m], denominators[m]),
                    "var_floor": np.where(good, floor[:, m], np.nan),
                    "var_between": np.where(good, floor[:, m] * ratio, np.nan),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def contrast_floors(beta: FloatArray, cov_floor: FloatArray, cmat: FloatArray) -> FloatArray:
    """Residual floors :math:`L V_0 L'` of the contrasts ``cmat`` (shape ``(M, p)``).

    ``cov_floor`` is :attr:`ModelFit.cov_beta_floor` (shape ``(P, p, p)``; any other shape:
    unknown). Returns shape ``(P, M)``, NaN where a used fixed effect was not estimable (NaN in
    ``beta``) or the floor is unknown.
    """
    n, p = beta.shape
    if cov_floor.shape != (n, p, p) or cmat.shape[0] == 0:
        return np.full((n, cmat.shape[0]), np.nan)
    xkeep = ~np.isnan(beta)
    ok = ~np.any((cmat != 0)[None, :, :] & ~xkeep[:, None, :], axis=2)
    cm = np.where(ok[:, :, None], cmat[None, :, :], 0.0) * xkeep[:, None, :]
    both = xkeep[:, :, None] & xkeep[:, None, :]
    cov = np.where(both, cov_floor, 0.0)
    known = np.all(np.isfinite(cov), axis=(1, 2))
    var = np.einsum("bmp,bpq,bmq->bm", cm, np.nan_to_num(cov), cm)
    out: FloatArray = np.where(ok & known[:, None], var, np.nan)
    return out


@dataclass
class Encoded:
    """Integer-coded observations sorted by protein, feature and run.

    Attributes
    ----------
    proteins : list of str
        Protein names in code order (sorted).
    features : ndarray of object
        Feature name of each feature code.
    prot, feat, run : ndarray of int
    y : ndarray
    runs : list of str
        The design's runs that ``run`` codes (an encoding serves every design with these runs).
    """

    proteins: list[str]
    features: NDArray[np.object_]
    prot: NDArray[np.intp]
    feat: NDArray[np.intp]
    run: NDArray[np.intp]
    y: FloatArray
    runs: list[str]


def _codes(column: pd.Series, sort: bool) -> tuple[NDArray[np.intp], NDArray[np.object_]]:
    """Integer codes and labels of a column (categoricals use their codes directly)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        raw = column.cat.codes.to_numpy(dtype=np.intp)
        if np.any(raw < 0):
            raise ValueError(f"column {column.name!r} has missing values")
        labels = np.asarray(column.cat.categories, dtype=object)
        used = np.flatnonzero(np.bincount(raw, minlength=labels.size) > 0)
        if sort:
            used = used[np.argsort(labels[used].astype(str), kind="stable")]
        remap = np.full(labels.size, -1, dtype=np.intp)
        remap[used] = np.arange(used.size)
        return remap[raw], labels[used]
    codes, uniques = pd.factorize(column, sort=sort)
    if np.any(codes < 0):
        raise ValueError(f"column {column.name!r} has missing values")
    return codes.astype(np.intp), np.asarray(uniques, dtype=object)


def encode(table: pd.DataFrame, design: RunDesign) -> Encoded:
    """Integer codes for a long table with ``protein, feature, run, y`` (see :class:`Encoded`).

    Proteins are numbered in sorted order; observations are ordered by protein, feature and run
    (no sort is done when the table is already in that order). Categorical columns (as read from
    dictionary-encoded Parquet) are used through their codes.
    """
    prot_codes, proteins = _codes(table["protein"], sort=True)
    run_codes_raw, run_names = _codes(table["run"], sort=False)
    run_lookup = pd.Index(design.runs).get_indexer(pd.Index(run_names))
    if np.any(run_lookup < 0):
        missing = sorted(str(r) for r in run_names[run_lookup < 0])
        raise ValueError(f"runs not in the design: {', '.join(missing)}")
    run_codes = run_lookup[run_codes_raw]
    fcode, fnames = _codes(table["feature"], sort=False)
    n_names = max(len(fnames), 1)
    pair_key = prot_codes.astype(np.int64) * n_names + fcode
    pair_codes, pair_uniques = pd.factorize(pair_key)
    by_protein = np.argsort(pair_uniques, kind="stable")
    rank = np.empty_like(by_protein)
    rank[by_protein] = np.arange(by_protein.size)
    feat_codes = rank[pair_codes]
    feature_names = fnames[pair_uniques[by_protein] % n_names]
    key = feat_codes.astype(np.int64) * len(design.runs) + run_codes
    y = table["y"].to_numpy(dtype=np.float64)
    if key.size > 1 and np.any(key[1:] < key[:-1]):
        order = np.argsort(key, kind="stable")
        prot_codes, feat_codes, run_codes, y = (
            prot_codes[order], feat_codes[order], run_codes[order], y[order],
        )  # fmt: skip
    if not np.all(np.isfinite(y)):
        raise ValueError("log2 intensities must be finite")
    return Encoded(
        proteins=[str(p) for p in proteins],
        features=feature_names,
        prot=prot_codes.astype(np.intp),
        feat=feat_codes.astype(np.intp),
        run=run_codes.astype(np.intp),
        y=y,
        runs=list(design.runs),
    )


def contrast_matrix(design: RunDesign, pairs: Sequence[tuple[str, str]]) -> FloatArray:
    """Rows ``e_numerator - e_denominator`` over the fixed effects for ``(num, den)`` pairs."""
    out = np.zeros((len(pairs), design.n_fixed))
    for m, (num, den) in enumerate(pairs):
        out[m, design.conditions.index(num)] += 1.0
        out[m, design.conditions.index(den)] -= 1.0
    return out


def fit_proteins(
    table: pd.DataFrame,
    design: RunDesign,
    contrasts: Sequence[tuple[str, str, str]] = (),
    compress: bool = True,
    what: str = "proteins",
    encoded: Encoded | None = None,
    prior: VariancePrior | None = None,
    robust: str = "none",
    start_weights: FloatArray | None = None,
    theta0: FloatArray | None = None,
    feature_weights: str = "none",
    feature_prior: FeaturePrior | None = None,
    robust_scale: str = "additive",
    inference: bool = True,
    stratum: bool = False,
    feature_majority: bool = False,
    majority_prior: tuple[float, float] | ShardSample | None = None,
    known_weights: FloatArray | None = None,
) -> ModelFit:
    """Fit the model of ``design.spec`` to every protein of a long table.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``protein``, ``feature``, ``run``, ``y`` (log2 intensity; observed cells only).
    design : RunDesign
        Run-level design.
    contrasts : sequence of (name, numerator, denominator), default ()
        Condition contrasts to test.
    compress : bool, default True
        Use count-class compression (``False`` only for tests).
    what : str, default "proteins"
        What the log line says was fitted (``"fitted <n> <what> (<k> ok)"``).
    encoded : Encoded, optional
        ``table`` already encoded (``ModelFit.encoded`` of an earlier fit of the same table);
        used when it codes the same runs as ``design``, else the table is encoded again.
    prior : VariancePrior, optional
        Variance-ratio prior (:func:`pepmix.model.shrinkage.fit_variance_prior`, estimated on
        all proteins); default None: plain REML.
    robust : {"none", "huber", "bisquare"}, default "none"
        ``"huber"``: M-estimation with Huber weights by iteratively reweighted REML
        (:mod:`pepmix.model.robust`); ``"bisquare"``: the Huber fit followed by Tukey bisquare
        steps at its scale (MM-type); BLUPs gain per-level weight summaries.
    start_weights : ndarray, shape (N,), optional
        Robust fits: the observation weights (order of the encoded table) the iteration starts
        from, e.g. the final weights of a related fit; default None: the weights of the median
        polish residuals (:func:`pepmix.model.robust.initial_weights`).
    theta0 : ndarray, shape (P, F), optional
        Start of the first fit per protein (proteins in encoded order); NaN entries are chosen
        by a grid search with the others held (:func:`pepmix.model.optimize.minimize`).
        Default None: the optimiser's grid.
    feature_weights : {"none", "empirical_bayes"}, default "none"
        ``"empirical_bayes"``: after the (robust) fit, per-feature residual variances shrunk
        by an empirical-Bayes prior become precision weights and the proteins are refitted
        once (:mod:`pepmix.model.feature_weights`).
    feature_prior : FeaturePrior, optional
        The prior of those variances (estimated on all proteins by the workflow); default
        None: fitted on the proteins of this call.
    robust_scale : {"additive", "pure_error"}, default "additive"
        Scale of the robust weights: ``"additive"`` (the workflow's) the MAD of each round's
        residuals (Huber) or of the median polish's (bisquare, fixed); ``"pure_error"`` a fixed
        scale from a fit saturated in feature x condition
        (:func:`pepmix.model.robust.pure_error_scale`; the additive one where it is NaN). A
        library option for ``benchmarks/robust_scale_eval.py``, not a config key: measured,
        not adopted.
    inference : bool, default True
        False: point estimates only (:func:`fit_problem_light`): ``cov_beta``, ``dcov_beta``,
        ``vcov_varpar`` and the contrast columns stay NaN, every other array (``theta,
        sigma, reml_crit, beta``, BLUPs, weights, statuses, details) is bit for bit what the
        full fit gives (the same optima; inference is computed after them and feeds nothing
        else). For callers that report variances and BLUPs only (the usage refit's job,
        :func:`pepmix.model.usage.usage_shard_from_start`). Not with ``feature_weights`` or
        the fixed run-means model; ignored by the random-slope model (its own fit).
    stratum : bool, default False
        Also compute each protein's residual floor covariance and the replicate factor's
        between/within mean-square ratio (:attr:`ModelFit.cov_beta_floor`,
        :attr:`ModelFit.stratum_ratio`; for ``testing.variance_prior: stratum``, measured at
        ~3 % of the fit's CPU time); NaN otherwise.
    feature_majority : bool, default False
        Robust fits only: before the fit, exclude features whose condition profile disagrees
        with the protein's other features while the excluded stay a strict minority
        (:mod:`pepmix.model.majority`; ``model.feature_majority``). Their observations are
        left out of the fit; in ``weights`` they carry :data:`EXCLUDED_WEIGHT` (positive, for
        later fits that start from these weights, e.g. the usage refit), in the BLUP table
        weight 0 and a NaN BLUP; ``detail`` names them; ``n_features`` and ``n_obs`` count
        the fitted ones. Default off here (the workflow's and :func:`pepmix.fit`'s default is
        on: :data:`pepmix.model.majority.DEFAULT`).
    majority_prior : (float, float) or ShardSample, optional
        With ``feature_majority``: the prior of its pure-error variances fitted on all
        proteins (:func:`pepmix.model.majority.fit_majority_prior`), or the sample of all
        shards it is fitted from with ``table``'s proteins
        (:class:`pepmix.model.majority_shards.ShardSample`: the workflow's sharded fits);
        default None: fitted on the proteins of ``table``.
    known_weights : ndarray, shape (N,), optional
        Observation weights (order of the encoded table) held fixed as known precision
        weights (weighted REML, as ``lme4``'s ``weights=``; no robust iteration, so only
        with ``robust: none``): the peptide-usage test at the default fit's weights
        (:mod:`pepmix.model.usage`, ``peptide_usage_weights: default_fit``); stored in
        ``weights``. Default None: unweighted (or the robust weights).
    """
    if SLOPE_TERM in design.spec.random:  # (condition|batch): its own per-protein fit
        from pepmix.model.slopes_fit import fit_slopes

        if prior is not None or robust != "none" or feature_weights != "none":
            from pepmix.alerts import alert

            alert(
                log,
                "slopes_plain_reml",
                "model.random has condition|batch: the random-slope model is fitted by plain "
                "REML (model.robust, model.shrinkage and model.feature_weights do not apply to it)",
            )
        return fit_slopes(table, design, contrasts, encoded)
    same_runs = encoded is not None and encoded.runs == list(design.runs)
    enc = encoded if encoded is not None and same_runs else encode(table, design)
    full_enc, excluded = enc, None
    if feature_majority and robust != "none":
        enc, excluded, start_weights = _exclude_features(enc, design, start_weights,
                                                         majority_prior)  # fmt: skip
    proteins, prot, feat = enc.proteins, enc.prot, enc.feat
    n_prot = len(proteins)
    if robust not in ("none", "huber", "bisquare"):
        raise ValueError(f"unknown robust method {robust!r}")
    if robust_scale not in ("additive", "pure_error"):
        raise ValueError(f"unknown robust scale {robust_scale!r}")
    weights = None
    huber_scale = None
    if known_weights is not None and (robust != "none" or feature_weights != "none"):
        raise ValueError("known_weights: only for a plain REML fit (robust none)")
    if robust != "none":
        from pepmix.model import robust as huber

        start_scale = None
        pure = huber.pure_error_scale(enc, design) if robust_scale == "pure_error" else None
        huber_scale = pure if robust == "huber" else None
        if start_weights is None or robust == "bisquare":  # bisquare: the polish's scale
            weights, start_scale = huber.initial_weights(enc, robust, pure)
        if start_weights is not None:
            weights = np.asarray(start_weights, dtype=np.float64)
    given = weights if known_weights is None else known_weights
    problem, builder = _first_problem(enc, design, compress, given)
    n_features = np.zeros(n_prot, dtype=np.intp)
    if "feature" in problem.factors:
        n_features = problem.n_levels[:, problem.factors.index("feature")].copy()
    else:
        n_features = np.bincount(
            prot, weights=np.r_[True, np.diff(feat) != 0], minlength=n_prot
        ).astype(np.intp)
    cmat = contrast_matrix(design, [(c[1], c[2]) for c in contrasts])
    result = _allocate(problem, design, proteins, [c[0] for c in contrasts], n_features)
    result.prior = prior
    result.stratum = stratum
    result.theta_reml = np.full(result.theta.shape, np.nan)
    if feature_weights not in ("none", "empirical_bayes"):
        raise ValueError(f"unknown feature_weights method {feature_weights!r}")
    if not inference and (feature_weights != "none" or problem.e_fixed):
        raise ValueError("inference=False is for the differential model without feature weights")
    first = None
    if inference and not (weights is not None and LIGHT_FIRST and feature_weights == "none"):
        pieces = fit_problem(problem, cmat, result, theta0)
    else:
        coded, first = fit_problem_light(problem, result, theta0)
        pieces = [_coded_frame(coded)]
        first = first if inference else None
    if weights is not None:
        pieces, result.weights, notes, factor = huber.irls(
            problem,
            enc,
            design,
            cmat,
            result,
            pieces,
            weights,
            robust,
            start_scale,
            huber_scale=huber_scale,
            inference=inference,
            first=first,
            builder=builder,
        )
        if feature_weights != "none":
            pieces, result.weights, notes = _feature_refit(
                problem, enc, design, cmat, result, pieces, result.weights, factor != 1.0,
                feature_prior, notes,
            )  # fmt: skip
        _finish_status(problem, result)
        fitted = np.isin(np.asarray(result.status, dtype=object), FITTED)
        corrected = fitted & (factor != 1.0)
        huber.correct_variance(result, corrected, factor)
        result.theta_scale = np.where(corrected, np.sqrt(factor), 1.0)
        result.detail = [
            "; ".join(x for x in (d, n) if x) for d, n in zip(result.detail, notes, strict=True)
        ]
    else:
        if feature_weights != "none":
            pieces, result.weights, notes = _feature_refit(
                problem, enc, design, cmat, result, pieces, None, np.ones(n_prot, dtype=bool),
                feature_prior, [""] * n_prot,
            )  # fmt: skip
            result.detail = [
                "; ".join(x for x in (d, n) if x) for d, n in zip(result.detail, notes, strict=True)
            ]
        _finish_status(problem, result)
        if known_weights is not None:
            result.weights = np.asarray(known_weights, dtype=np.float64)
    _label_outputs(problem, design, enc, result, pieces)
    if excluded is not None:
        result.weights = _restore_excluded(full_enc, excluded, result, result.weights)
        notes = excluded.notes(full_enc)
        result.detail = [
            "; ".join(x for x in (d, n) if x) for d, n in zip(result.detail, notes, strict=True)
        ]
    result.encoded = full_enc
    result.samples_per_condition = _samples_per_condition(enc, design, n_prot)
    n_ok = sum(s == "ok" for s in result.status)
    log.info("fitted %d %s (%d ok)", n_prot, what, n_ok)
    return result


def _first_problem(
    enc: Encoded, design: RunDesign, compress: bool, weights: FloatArray | None
) -> tuple[Problem, SubsetBuilder | None]:
    """The problem of the first fit of all proteins of ``enc`` (with ``weights``), and for a
    robust fit (``weights`` given, :data:`FIRST_FROM_BUILDER`) the
    :class:`pepmix.model.subset_problem.SubsetBuilder` of its refits, which then builds this
    problem too: the weight-independent steps once for both (the same problem as
    :func:`pepmix.model.suffstats.build_problem`'s, bit for bit)."""
    n_prot = len(enc.proteins)
    builder = None
    if weights is not None and compress and FIRST_FROM_BUILDER:
        from pepmix.model.subset_problem import SubsetBuilder

        builder = SubsetBuilder(enc.prot, enc.feat, enc.run, enc.y, design, n_prot)
        if builder.cached:
            return builder.build(np.arange(n_prot), weights), builder
    problem = build_problem(
        enc.prot, enc.feat, enc.run, enc.y, design, n_proteins=n_prot, compress=compress,
        weights=weights,
    )  # fmt: skip
    return problem, builder


#: weight of an excluded feature's observations in ``ModelFit.weights`` (the fit left them out;
#: a later fit started from these weights, e.g. the usage refit, needs positive weights)
EXCLUDED_WEIGHT = 1e-3


def _exclude_features(
    enc: Encoded,
    design: RunDesign,
    start_weights: FloatArray | None,
    prior: tuple[float, float] | ShardSample | None = None,
) -> tuple[Encoded, Exclusions | None, FloatArray | None]:
    """The observations left by the feature majority rule (:mod:`pepmix.model.majority`; their
    features renumbered without gaps, as :func:`encode` numbers them), the exclusions (None
    when nothing is excluded) and the start weights of those observations."""
    from pepmix.model.majority import majority_exclusions

    excluded = majority_exclusions(enc, design, prior=prior)
    if not excluded.features.size:
        return enc, None, start_weights
    keep = ~excluded.observations
    codes, feat = np.unique(enc.feat[keep], return_inverse=True)
    sub = Encoded(
        proteins=enc.proteins, features=enc.features[codes], prot=enc.prot[keep],
        feat=feat.astype(np.intp).ravel(), run=enc.run[keep], y=enc.y[keep], runs=enc.runs,
    )  # fmt: skip
    if start_weights is not None:
        start_weights = np.asarray(start_weights, dtype=np.float64)[keep]
    return sub, excluded, start_weights


def _restore_excluded(
    enc: Encoded, excluded: Exclusions, out: ModelFit, weights: FloatArray | None
) -> FloatArray:
    """Weights in the order of all observations ``enc`` (:data:`EXCLUDED_WEIGHT` for the
    excluded; returned) and a row in ``out.blups`` per excluded feature of a fitted protein
    (BLUP NaN, level weights 0)."""
    full = np.full(enc.y.size, EXCLUDED_WEIGHT)
    full[~excluded.observations] = 1.0 if weights is None else weights
    blups = out.blups
    if "feature" not in out.factors or not len(blups):
        return full
    fprot = np.zeros(int(enc.feat.max()) + 1, dtype=np.intp)
    fprot[enc.feat] = enc.prot
    prot = fprot[excluded.features]
    fitted = np.isin(np.asarray(out.status, dtype=object)[prot], FITTED)
    rows = pd.DataFrame(
        {
            "protein": np.asarray(enc.proteins, dtype=object)[prot[fitted]],
            "factor": "feature",
            "level": [str(x) for x in enc.features[excluded.features[fitted]]],
            "blup": np.nan,
            "weight_mean": 0.0,
            "weight_min": 0.0,
        }
    )
    for col in ("protein", "factor", "level"):
        cats = blups[col].cat.categories.union(pd.Index(rows[col].unique()), sort=False)
        blups[col] = blups[col].cat.set_categories(cats)
        rows[col] = pd.Categorical(rows[col], categories=cats)
    both = pd.concat([blups, rows[blups.columns]], ignore_index=True)
    factor_order = pd.Index(out.factors).get_indexer(pd.Index(both["factor"].astype(str)))
    order = np.lexsort((factor_order, both["protein"].cat.codes.to_numpy()))
    out.blups = both.iloc[order].reset_index(drop=True)
    return full


def _coded_frame(coded: FloatArray) -> pd.DataFrame:
    """The coded predictions of :func:`fit_problem_light` as the frame :func:`fit_problem`
    returns per bucket (codes as float64, as :func:`pepmix.model.robust.irls` reads them)."""
    return pd.DataFrame(coded, columns=["protein_code", "factor_code", "level_code", "blup"])


def _feature_refit(
    problem: Problem,
    enc: Encoded,
    design: RunDesign,
    cmat: FloatArray,
    out: ModelFit,
    pieces: list[pd.DataFrame],
    weights: FloatArray | None,
    eligible: NDArray[np.bool_],
    prior: FeaturePrior | None,
    notes: list[str],
) -> tuple[list[pd.DataFrame], FloatArray, list[str]]:
    """Feature precision weights and one refit (:mod:`pepmix.model.feature_weights`) of the
    fitted, converged ``eligible`` proteins; the notes gain the feature-weight notes."""
    from pepmix.model.feature_weights import reweight_features

    ok = eligible & problem.fittable & out.converged & np.isfinite(out.sigma)
    pieces, combined, extra, used = reweight_features(
        problem, enc, design, cmat, out, pieces, weights, ok, prior
    )
    out.feature_prior = used
    notes = ["; ".join(x for x in (n, e) if x) for n, e in zip(notes, extra, strict=True)]
    return pieces, combined, notes


def fit_problem(
    problem: Problem, cmat: FloatArray, out: ModelFit, theta0: FloatArray | None = None
) -> list[pd.DataFrame]:
    """Fit every bucket of ``problem`` into ``out``; return the coded predictions per bucket.

    ``theta0`` (shape ``(P, F)``, optional) warm-starts the optimiser instead of its grid.
    """
    pieces: list[pd.DataFrame] = []
    for k, (idx, bucket) in enumerate(problem.buckets):
        start = None if theta0 is None else theta0[idx]
        pieces.append(_fit_bucket(problem, k, idx, bucket, cmat, out, start))
    return pieces


def _allocate(
    problem: Problem,
    design: RunDesign,
    proteins: list[str],
    names: list[str],
    n_features: NDArray[np.intp],
) -> ModelFit:
    n_prot = problem.n_proteins
    n_f = len(problem.factors)
    p = design.n_fixed
    m = len(names)
    nan = np.nan
    return ModelFit(
        proteins=proteins,
        design=design,
        factors=problem.factors,
        status=["" for _ in range(n_prot)],
        detail=list(problem.detail),
        n_features=n_features,
        n_obs=problem.n_obs,
        theta=np.full((n_prot, n_f), nan),
        sigma=np.full(n_prot, nan),
        reml_crit=np.full(n_prot, nan),
        nu=problem.nu.copy(),
        beta=np.full((n_prot, p), nan),
        cov_beta=np.full((n_prot, p, p), nan),
        contrast_names=names,
        estimate=np.full((n_prot, m), nan),
        se=np.full((n_prot, m), nan),
        df=np.full((n_prot, m), nan),
        contrast_ok=np.zeros((n_prot, m), dtype=bool),
        converged=np.zeros(n_prot, dtype=bool),
        iterations=np.zeros(n_prot, dtype=np.intp),
        blups=pd.DataFrame(),
        not_identifiable=np.zeros((n_prot, n_f), dtype=bool),
        beta_centred=np.full((n_prot, p), nan),
        dcov_beta=np.full((n_prot, n_f + 1, p, p), nan),
        vcov_varpar=np.full((n_prot, n_f + 1, n_f + 1), nan),
        cov_beta_floor=np.full((n_prot, p, p), nan),
        stratum_ratio=np.full(n_prot, nan),
    )


def _snap_to_boundary(
    bucket: Bucket, theta: FloatArray, dev: FloatArray
) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Set free variances to zero when that costs less than :data:`SNAP_TOL` deviance units.

    This moves near-boundary estimates onto the boundary and resolves flat criteria (a variance
    the data cannot inform, left at its start value) to the simpler model. Returns the new theta
    and which variances were snapped from a non-small value (not identifiable).
    """
    theta, flat, _, _ = _snap_evaluated(bucket, theta, dev)
    return theta, flat


def _snap_evaluated(
    bucket: Bucket, theta: FloatArray, dev: FloatArray
) -> tuple[FloatArray, NDArray[np.bool_], Evaluation | None, NDArray[np.bool_]]:
    """:func:`_snap_to_boundary`, also returning the criterion evaluated at the new theta of
    the snapped proteins (rows where the returned mask holds; the criterion is evaluated row
    by row, so only the candidates' rows are evaluated)."""
    flat = np.zeros(theta.shape, dtype=bool)
    nb = theta.shape[0]
    snapped = np.zeros(nb, dtype=bool)
    snap_ev: Evaluation | None = None
    for f in range(theta.shape[1]):
        cand = bucket.free[:, f] & (theta[:, f] > 0)
        if not cand.any():
            continue
        rows = np.flatnonzero(cand)
        trial = theta.copy()
        trial[:, f] = 0.0
        part = bucket if rows.size == nb else bucket.take_shared(rows)
        tried = evaluate(part, trial[rows])
        new = dev.copy()
        new[rows] = tried.dev
        snap = cand & (new - dev < SNAP_TOL)
        flat[:, f] = snap & (theta[:, f] >= SNAP_THETA)
        theta = np.where(snap[:, None], trial, theta)
        dev = np.where(snap, new, dev)
        if snap.any():
            pick = np.flatnonzero(snap[rows])
            snap_ev = _put_rows(snap_ev, nb, rows[pick], tried, pick)
            snapped |= snap
    return theta, flat, snap_ev, snapped


def _final_evaluation(
    bucket: Bucket, theta: FloatArray, known: list[tuple[Evaluation | None, NDArray[np.bool_]]]
) -> Evaluation:
    """The criterion at ``theta``: rows from the evaluations ``known`` (each with the mask of
    its rows made at ``theta``; earlier ones first, later ones override), the rest evaluated
    (row by row exact: the same numbers as evaluating all)."""
    nb = theta.shape[0]
    out: Evaluation | None = None
    have = np.zeros(nb, dtype=bool)
    for ev, rows in known:
        if ev is not None and rows.any():
            idx = np.flatnonzero(rows)
            out = _put_rows(out, nb, idx, ev, idx)
            have |= rows
    if out is None or not have.any():
        return evaluate(bucket, theta)
    missing = np.flatnonzero(~have)
    if missing.size:
        out = _put_rows(out, nb, missing, evaluate(bucket.take_shared(missing), theta[missing]),
                        np.arange(missing.size))  # fmt: skip
    return out


def _fit_bucket(
    problem: Problem,
    k: int,
    idx: NDArray[np.intp],
    bucket: Bucket,
    cmat: FloatArray,
    out: ModelFit,
    theta0: FloatArray | None = None,
) -> pd.DataFrame:
    """Fit one bucket; fill ``out`` and return its random-effect predictions (coded)."""
    bucket, theta, ev, _ = _optimum(problem, idx, bucket, out, theta0)
    der = derivatives(bucket, theta, ev)
    est = estimates(bucket, theta, ev, der)
    _store_point(problem, idx, theta, ev, est.sigma, est.beta, out)
    _store_inference(problem.xkeep[idx], idx, bucket, est, der, cmat, out)
    _store_floor(problem, idx, idx, bucket, theta, out)
    return _predictions(problem, k, idx, bucket, theta, ev, der.s0inv, est.u_k, est.beta, out)


@dataclass
class LightBucket:
    """A bucket fitted by :func:`fit_problem_light`: what :func:`finish_light` needs.

    Attributes
    ----------
    idx : ndarray of int
        Protein codes (of the problem) of the bucket's rows.
    bucket : Bucket
        The bucket the optimum was found in (with the prior, if any).
    theta : ndarray, shape (B, F)
        Optimum after the boundary snap.
    ev : Evaluation
        The criterion evaluated there.
    """

    idx: NDArray[np.intp]
    bucket: Bucket
    theta: FloatArray
    ev: Evaluation
    unfinished: NDArray[np.bool_] | None = None


def fit_problem_light(
    problem: Problem,
    out: ModelFit,
    theta0: FloatArray | None = None,
    max_iter: int = MAX_ITER,
) -> tuple[FloatArray, list[LightBucket]]:
    """Fit every bucket of ``problem`` up to its point estimates (an intermediate fit).

    Fills ``theta, sigma, reml_crit, beta, beta_centred, converged, iterations,
    not_identifiable`` of ``out`` with exactly the numbers :func:`fit_problem` gives, but
    skips what only inference needs (derivatives of the criterion, covariances and their
    derivatives, contrast tests: left NaN). :func:`finish_light` completes chosen proteins
    later. Returns the coded predictions (array with columns ``protein_code, factor_code,
    level_code, blup``, as the frames of :func:`fit_problem`) and the fitted buckets. Not for
    the fixed run-means model.

    With ``max_iter`` below the optimiser's :data:`pepmix.model.optimize.MAX_ITER` (without a
    variance-ratio prior only) the optimiser stops after that many Newton iterations: a
    truncated fit, whose unconverged proteins are marked in ``LightBucket.unfinished`` and
    counted as ``converged`` in ``out`` (the fit did not fail; it was stopped). Such a fit is
    never reported: the robust iteration refits those proteins in full before finishing them.
    """
    if problem.e_fixed:
        raise ValueError("light fits are for the differential model")
    coded = []
    light = []
    for k, (idx, bucket) in enumerate(problem.buckets):
        start = None if theta0 is None else theta0[idx]
        fitted, theta, ev, unfinished = _optimum(problem, idx, bucket, out, start, max_iter)
        _, s0inv = _inverses(ev)
        _, sigma, beta, u_k = point_estimates(fitted, ev, s0inv)
        _store_point(problem, idx, theta, ev, sigma, beta, out)
        resid = _level_residuals(problem, k, fitted, u_k, beta)
        cols = _prediction_columns(problem, k, idx, fitted, theta, u_k, resid)
        coded.append(np.column_stack([c.astype(np.float64) for c in cols]))
        light.append(LightBucket(idx=idx, bucket=fitted, theta=theta, ev=ev, unfinished=unfinished))
    return (np.concatenate(coded) if coded else np.zeros((0, 4))), light


def finish_light(
    problem: Problem,
    light: LightBucket,
    rows: NDArray[np.intp],
    cmat: FloatArray,
    out: ModelFit,
    dest: NDArray[np.intp],
) -> None:
    """Complete the light fit of the bucket rows ``rows``: covariances, their derivatives,
    lmerTest's covariance of the variance parameters and contrast tests, written into ``out``
    at the protein codes ``dest`` (what :func:`fit_problem` writes for these proteins)."""
    bucket = light.bucket.take_shared(rows)
    theta = light.theta[rows]
    ev = light.ev.take(rows)
    der = derivatives(bucket, theta, ev)
    est = estimates(bucket, theta, ev, der)
    _store_inference(problem.xkeep[light.idx[rows]], dest, bucket, est, der, cmat, out)
    _store_floor(problem, light.idx[rows], dest, bucket, theta, out)


def _optimum(
    problem: Problem,
    idx: NDArray[np.intp],
    bucket: Bucket,
    out: ModelFit,
    theta0: FloatArray | None,
    max_iter: int = MAX_ITER,
) -> tuple[Bucket, FloatArray, Evaluation, NDArray[np.bool_]]:
    """Minimise the bucket's criterion (prior, divergence rule, boundary snap); record
    convergence, iterations and non-identifiable variances in ``out``; return the bucket the
    optimum belongs to, the optimum, the evaluation there and which proteins the optimiser
    stopped at ``max_iter`` (default :data:`MAX_ITER`: none) Newton iterations, unconverged
    (recorded as converged: see :func:`fit_problem_light`)."""
    unfinished = np.zeros(bucket.size, dtype=bool)
    if out.prior is None:
        opt = minimize(bucket, theta0, max_iter)
        if max_iter < MAX_ITER:
            unfinished = ~opt.converged & (opt.iterations >= max_iter) & np.isfinite(opt.dev)
    else:
        from pepmix.model.shrinkage import penalised_optimum

        bucket, opt, theta_reml = penalised_optimum(bucket, problem.factors, out.prior)
        _note_shrunk(problem, idx, bucket, theta_reml, out)
    if out.reduce_divergent:
        before = opt.theta.copy()
        bucket, opt, dropped = reduce_divergent(bucket, opt)
        _note_dropped(problem, idx, dropped, out)
        if opt.has_ev is not None:  # refitted proteins: their optimiser's evaluation is stale
            opt.has_ev &= np.all(opt.theta == before, axis=1)
    theta, flat, snap_ev, snapped = _snap_evaluated(bucket, opt.theta, opt.dev)
    out.not_identifiable[idx] = flat
    if out.prior is None and opt.has_ev is not None:
        # the optimiser's and the snap's evaluations at theta (exact: evaluated row by row)
        ev = _final_evaluation(bucket, theta, [(opt.ev, opt.has_ev & ~snapped), (snap_ev, snapped)])
    else:
        ev = evaluate(bucket, theta)
    out.converged[idx] = (opt.converged | unfinished) & ev.ok
    out.iterations[idx] = opt.iterations
    return bucket, theta, ev, unfinished


def _store_point(
    problem: Problem,
    idx: NDArray[np.intp],
    theta: FloatArray,
    ev: Evaluation,
    sigma: FloatArray,
    beta_c: FloatArray,
    out: ModelFit,
) -> None:
    """Write variance parameters, criterion and fixed effects of the proteins ``idx``."""
    xkeep = problem.xkeep[idx]
    beta = np.where(xkeep, beta_c, np.nan)
    n_cond = len(out.design.conditions)
    beta[:, :n_cond] += problem.ybar[idx, None]
    out.theta[idx] = np.where(problem.active[idx], theta, 0.0)
    out.sigma[idx] = sigma
    out.reml_crit[idx] = ev.reml_crit + problem.neg_logw[idx]
    out.beta[idx] = beta
    out.beta_centred[idx] = np.where(xkeep, beta_c, 0.0)


def _store_inference(
    xkeep: NDArray[np.bool_],
    idx: NDArray[np.intp],
    bucket: Bucket,
    est: Estimates,
    der: Derivatives,
    cmat: FloatArray,
    out: ModelFit,
) -> None:
    """Write covariances, their derivatives and contrast tests of the proteins ``idx``
    (``xkeep``: their estimable fixed-effect columns)."""
    cov = np.where(xkeep[:, :, None] & xkeep[:, None, :], est.cov_beta, np.nan)
    out.cov_beta[idx] = cov
    both = xkeep[:, None, :, None] & xkeep[:, None, None, :]
    out.dcov_beta[idx] = np.where(both, cov_derivatives(bucket, est, der), np.nan)
    out.vcov_varpar[idx] = est.vcov_varpar
    if cmat.shape[0]:
        uses = cmat != 0
        ok = ~np.any(uses[None, :, :] & ~xkeep[:, None, :], axis=2)
        cm = np.where(ok[:, :, None], cmat[None, :, :], 0.0) * xkeep[:, None, :]
        estimate, se, df = contrast_tests(bucket, est, der, cm)
        out.estimate[idx] = np.where(ok, estimate, np.nan)
        out.se[idx] = np.where(ok, se, np.nan)
        out.df[idx] = np.where(ok, df, np.nan)
        out.contrast_ok[idx] = ok


def replicate_factor(factors: Sequence[str], design: RunDesign) -> int | None:
    """Index in ``factors`` of the replicate stratum's factor (``sample``; ``run`` with
    technical replication), None when the model has none."""
    name = "run" if design.spec.replication == "technical" else "sample"
    return factors.index(name) if name in factors else None


#: :math:`\theta` of the replicate factor standing for "its effects unpenalised" when the
#: within-replicate residual sum of squares is computed (:func:`stratum_split`): the penalty
#: left is :math:`1/\theta^2 = 10^{-6}` of the effects' squared size, far below the optimiser's
#: tolerance
THETA_FREE = 1e3


def stratum_split(
    bucket: Bucket, theta: FloatArray, f: int, df_between: FloatArray
) -> tuple[FloatArray, FloatArray]:
    r"""The replicate stratum's floor covariance and between-replicate variance ratio.

    With the other variance parameters at their estimates, the penalised residual sum of
    squares is evaluated with factor ``f``'s effects absent (:math:`\theta_f = 0`:
    :math:`R_0`) and unpenalised (:math:`\theta_f =` :data:`THETA_FREE`: :math:`R_\infty`).
    On :math:`\nu_b` = ``df_between`` and :math:`\nu_w = \nu - \nu_b` df
    (:math:`\nu = n - p`),

    .. math::

        \hat\sigma^2_w = R_\infty / \nu_w, \qquad
        F = \frac{(R_0 - R_\infty)/\nu_b}{\hat\sigma^2_w}, \qquad
        V_0 = \hat\sigma^2_w\, S_0^{-1}(\theta_0)_{\beta\beta},

    the within-replicate residual variance, the between-replicate mean square over it (the
    ANOVA F statistic of the replicate factor, unconstrained: below 1 where REML puts the
    variance at zero) and the fixed effects' covariance with the replicate variance zero and
    the residual variance :math:`\hat\sigma^2_w`. For a balanced design without weights they
    are the ANOVA's mean squares exactly: a contrast's variance at replicate variance zero is
    :math:`L V_0 L'` and its unconstrained between-replicate mean square
    :math:`F\,L V_0 L'` (:mod:`pepmix.inference.stratum`); otherwise (missing cells, Huber
    weights, random feature effects) an approximation. Unlike the REML :math:`\hat\sigma^2`,
    which at a boundary fit pools the (small) between-replicate spread into the residual
    variance, :math:`\hat\sigma^2_w` does not depend on whether the fit is at the boundary.

    Returns
    -------
    cov_floor : ndarray, shape (B, p, p)
        :math:`V_0` (unscaled by the robust variance factor, as the fit's ``cov_beta``).
    ratio : ndarray, shape (B,)
        :math:`F`; NaN (and ``cov_floor`` NaN) where :math:`\nu_b < 1` or :math:`\nu_w < 1`.
    """
    d = bucket.dim
    xs = slice(d - 1 - bucket.n_x, d - 1)
    zero, free = theta.copy(), theta.copy()
    zero[:, f] = 0.0
    free[:, f] = np.where(bucket.free[:, f], THETA_FREE, 0.0)  # not free: must stay 0
    ev0 = evaluate(bucket, zero)
    r_inf = evaluate(bucket, free).pwrss
    df_w = bucket.nu - df_between
    usable = (df_between >= 1) & (df_w >= 1) & ev0.ok & (r_inf > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        s2_w = np.where(usable, r_inf / df_w, np.nan)
        ratio = (ev0.pwrss - r_inf) / df_between / s2_w
    _, s0inv = _inverses(ev0)
    cov_floor = s2_w[:, None, None] * s0inv[:, xs, xs]
    return cov_floor, np.where(usable, np.maximum(ratio, 0.0), np.nan)


def _store_floor(
    problem: Problem,
    codes: NDArray[np.intp],
    idx: NDArray[np.intp],
    bucket: Bucket,
    theta: FloatArray,
    out: ModelFit,
) -> None:
    """Write :attr:`ModelFit.cov_beta_floor` and :attr:`ModelFit.stratum_ratio` of the proteins
    ``idx`` of ``out`` (``codes``: their codes in ``problem``; :func:`stratum_split`), when
    :attr:`ModelFit.stratum` is set. NaN without a replicate factor, where its variance is not
    free (dropped or not estimable, e.g. one observation per replicate: the residual variance
    then holds the replicate stratum's), and for the fixed run-means model."""
    f = replicate_factor(problem.factors, out.design)
    if not out.stratum or f is None or problem.e_fixed:
        return
    xkeep = problem.xkeep[codes]
    df_between = (problem.n_levels[codes, f] - xkeep.sum(axis=1)).astype(np.float64)
    active = problem.active[codes, f] & bucket.free[:, f]
    cov_floor, ratio = stratum_split(bucket, theta, f, df_between)
    both = xkeep[:, :, None] & xkeep[:, None, :] & active[:, None, None]
    out.cov_beta_floor[idx] = np.where(both, cov_floor, np.nan)
    out.stratum_ratio[idx] = np.where(active, ratio, np.nan)


def _note_shrunk(
    problem: Problem, idx: NDArray[np.intp], bucket: Bucket, theta_reml: FloatArray, out: ModelFit
) -> None:
    """Keep the plain REML estimates; say where a shrunk variance had a REML estimate of 0 or
    REML had no finite optimum (its estimates are then NaN)."""
    diverged = np.max(theta_reml, axis=1, initial=0.0) > DIVERGENT_THETA
    out.theta_reml[idx] = np.where(problem.active[idx], theta_reml, 0.0)
    out.theta_reml[idx[diverged]] = np.nan
    for pos in np.flatnonzero(diverged):
        i = int(idx[pos])
        note = "no finite REML optimum without the prior"
        out.detail[i] = f"{out.detail[i]}; {note}" if out.detail[i] else note
    assert bucket.prior_df is not None
    for pos, f in zip(*np.nonzero((bucket.prior_df > 0) & (theta_reml <= 0)), strict=True):
        i = int(idx[pos])
        note = f"{problem.factors[f]} variance shrunk: REML estimate 0"
        out.detail[i] = f"{out.detail[i]}; {note}" if out.detail[i] else note


def _note_dropped(
    problem: Problem, idx: NDArray[np.intp], dropped: list[tuple[int, int]], out: ModelFit
) -> None:
    """Record factors dropped because the criterion had no finite optimum (reduced model)."""
    for pos, f in dropped:
        i = int(idx[pos])
        problem.active[i, f] = False
        note = (
            f"{problem.factors[f]}: dropped, its variance and the residual variance are not "
            "separable (no finite REML optimum)"
        )
        out.detail[i] = f"{out.detail[i]}; {note}" if out.detail[i] else note
    if dropped:
        log.info("%d proteins without a finite REML optimum fitted as reduced models", len(dropped))


def _predictions(
    problem: Problem,
    k: int,
    idx: NDArray[np.intp],
    bucket: Bucket,
    theta: FloatArray,
    ev: Evaluation,
    s0inv: FloatArray,
    u_k: FloatArray,
    beta: FloatArray,
    out: ModelFit,
) -> pd.DataFrame:
    r"""BLUPs of the bucket's random-effect levels, or run means of the abundance model.

    Kept dimensions: :math:`b = \tilde\Lambda \tilde u`. Eliminated level ``j`` with ``n_j``
    observations and residual sum :math:`r_j = w_j'(y) - w_j'(K)\,b_K - w_j'(X)\,\beta`:
    :math:`b_j = t_E r_j / (1 + t_E n_j)`; for fixed run means (:math:`t_E \to \infty`)
    :math:`\hat\mu_j = r_j / n_j` with
    :math:`\mathrm{Var}(\hat\mu_j) = \sigma^2 (1/n_j + a_j' S_0^{-1} a_j / n_j^2)`,
    :math:`a_j = \tilde\Lambda w_j` restricted to random-effect dimensions.
    """
    resid = _level_residuals(problem, k, bucket, u_k, beta)
    lv = problem.levels[k]
    if not bucket.e_fixed:
        cols = _prediction_columns(problem, k, idx, bucket, theta, u_k, resid)
        frame = pd.DataFrame(
            {"protein_code": cols[0], "factor_code": cols[1], "level_code": cols[2]}
        )
        frame["blup"] = cols[3]
        return frame
    kdims = bucket.dimfactor >= 0
    rows, cols_k = np.nonzero(kdims)
    frame = pd.DataFrame(
        {
            "protein_code": idx[rows],
            "factor_code": bucket.dimfactor[rows, cols_k],
            "level_code": problem.dim_level[k][rows, cols_k],
            "blup": u_k[rows, cols_k],
        }
    )
    count = lv.wsum
    lam_k = np.where(kdims, ev.lam, 0.0)
    a = lv.rows * lam_k[lv.position]
    quad = _quad_forms(a, s0inv, lv.position)
    sigma = out.sigma[idx][lv.position]
    out.run_effects_parts.append(
        pd.DataFrame(
            {
                "protein_code": idx[lv.position],
                "run_code": lv.level,
                "abundance": resid / count + problem.ybar[idx][lv.position],
                "se": sigma * np.sqrt(1.0 / count + quad / count**2),
                "n_features": lv.count,
            }
        )
    )
    return frame


def _quad_forms(a: FloatArray, s: FloatArray, position: NDArray[np.intp]) -> FloatArray:
    """:math:`a_j' S_{p_j} a_j` for every row ``j`` of ``a`` (``p_j = position[j]``), in one
    compiled pass (:func:`pepmix.model._kernel.quad_forms`; the einsum over
    ``s[position]`` it replaces gathered a ``d x d`` matrix per level: ~0.4 GB at 10,000
    proteins x 200 runs). Equal to the einsum up to the order of the sums (rounding)."""
    from pepmix.model._kernel import quad_forms

    out = np.empty(a.shape[0])
    quad_forms(
        np.ascontiguousarray(a, dtype=np.float64),
        np.ascontiguousarray(s, dtype=np.float64),
        np.asarray(position, dtype=np.int64),
        out,
    )
    return out


def _level_residuals(
    problem: Problem, k: int, bucket: Bucket, u_k: FloatArray, beta: FloatArray
) -> FloatArray:
    """Residual sum :math:`r_j` of each eliminated level of bucket ``k`` (:func:`_predictions`)."""
    d = bucket.dim
    n_x = bucket.n_x
    sol = -u_k.copy()
    sol[:, d - 1 - n_x : d - 1] = -beta
    sol[:, d - 1] = 1.0
    lv = problem.levels[k]
    return np.asarray(np.einsum("ja,ja->j", lv.rows, sol[lv.position]), dtype=np.float64)


def _prediction_columns(
    problem: Problem,
    k: int,
    idx: NDArray[np.intp],
    bucket: Bucket,
    theta: FloatArray,
    u_k: FloatArray,
    resid: FloatArray,
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp], FloatArray]:
    """``protein_code, factor_code, level_code, blup`` of the kept dimensions' levels, then of
    the eliminated levels (random eliminated factor; ``resid`` from :func:`_level_residuals`)."""
    rows, cols = np.nonzero(bucket.dimfactor >= 0)
    pcode = [idx[rows]]
    fcode = [bucket.dimfactor[rows, cols]]
    lcode = [problem.dim_level[k][rows, cols]]
    blup = [u_k[rows, cols]]
    lv = problem.levels[k]
    if lv.count.size:
        e = bucket.efactor[lv.position]
        t = theta[lv.position, np.maximum(e, 0)] ** 2
        pcode.append(idx[lv.position])
        fcode.append(e)
        lcode.append(lv.level)
        blup.append(t * resid / (1.0 + t * lv.wsum))
    return (
        np.concatenate(pcode).astype(np.intp),
        np.concatenate(fcode).astype(np.intp),
        np.concatenate(lcode).astype(np.intp),
        np.concatenate(blup).astype(np.float64),
    )


def reml_optima(problem: Problem) -> list[tuple[FloatArray, NDArray[np.bool_]]]:
    """Plain REML optimum of each bucket (after the boundary snap) and whether it is finite."""
    out = []
    for _, bucket in problem.buckets:
        opt = minimize(bucket)
        theta, _ = _snap_to_boundary(bucket, opt.theta, opt.dev)
        good = opt.converged & np.isfinite(opt.dev) & ~(theta.max(axis=1) > DIVERGENT_THETA)
        out.append((theta, good))
    return out


def _finish_status(problem: Problem, out: ModelFit) -> None:
    for i in range(problem.n_proteins):
        notes = [out.detail[i]] if out.detail[i] else []
        if not problem.fittable[i]:
            out.status[i] = "too_few_observations"
            notes.append(
                f"{int(problem.n_obs[i])} observations for {int(problem.xkeep[i].sum())}"
                " fixed effects"
            )
        elif not out.converged[i] or not np.isfinite(out.reml_crit[i]):
            out.status[i] = "not_estimable"
            notes.append("REML optimisation did not converge (no finite optimum)")
        elif np.nanmax(out.theta[i], initial=0.0) > DIVERGENT_THETA:
            out.status[i] = "not_estimable"
            notes.append(
                "no finite REML optimum: a variance ratio grows without bound (e.g. the random "
                "effects fit every observation and the residual variance goes to zero)"
            )
        else:
            for f in np.flatnonzero(out.not_identifiable[i]):
                notes.append(f"{problem.factors[f]}: variance not identifiable, set to zero")
            zero = [
                problem.factors[f]
                for f in range(len(problem.factors))
                if problem.active[i, f] and out.theta[i, f] == 0.0
            ]
            if zero:
                notes.append("variance at zero: " + ", ".join(zero))
            if not problem.active[i].all():
                out.status[i] = "reduced_model"
            elif zero:
                out.status[i] = "boundary"
            else:
                out.status[i] = "ok"
        out.detail[i] = "; ".join(notes)


def _samples_per_condition(enc: Encoded, design: RunDesign, n_prot: int) -> NDArray[np.intp]:
    """Number of replication units (``design.sample_code``) each protein was observed in, per
    condition."""
    n_cond = max(len(design.conditions), 1)
    if design.sample_code.size == 0 or enc.prot.size == 0:
        return np.zeros((n_prot, n_cond), dtype=np.intp)
    n_samples = int(design.sample_code.max()) + 1
    seen = np.zeros(n_prot * n_samples, dtype=bool)
    seen[enc.prot.astype(np.int64) * n_samples + design.sample_code[enc.run]] = True
    cond_of_sample = np.zeros(n_samples, dtype=np.intp)
    cond_of_sample[design.sample_code] = design.condition_code
    prot_idx, sample_idx = np.divmod(np.flatnonzero(seen), n_samples)
    key = prot_idx * n_cond + cond_of_sample[sample_idx]
    return np.bincount(key, minlength=n_prot * n_cond).reshape(n_prot, n_cond).astype(np.intp)


def _label_outputs(
    problem: Problem, design: RunDesign, enc: Encoded, out: ModelFit, pieces: list[pd.DataFrame]
) -> None:
    """Name proteins, factors and levels of the predictions collected per bucket."""
    allb = (
        pd.concat(pieces, ignore_index=True)
        if pieces
        else pd.DataFrame(columns=["protein_code", "factor_code", "level_code", "blup"])
    )
    fitted = np.isin(np.asarray(out.status, dtype=object), FITTED)
    allb = allb[fitted[allb["protein_code"].to_numpy(dtype=np.intp)]]
    out.blups = _label_blups(allb, problem, design, enc)
    out.run_effects = pd.DataFrame(
        {"protein": [], "run": [], "abundance": [], "se": [], "n_features": []}
    ).astype({"protein": object, "run": object, "n_features": np.intp})
    if out.run_effects_parts:
        runs = pd.concat(out.run_effects_parts, ignore_index=True)
        out.run_effects = pd.DataFrame(
            {
                "protein": np.asarray(enc.proteins, dtype=object)[runs["protein_code"]],
                "run": np.asarray(design.runs, dtype=object)[runs["run_code"]],
                "abundance": runs["abundance"],
                "se": runs["se"],
                "n_features": runs["n_features"],
            }
        )
        out.run_effects_parts = []


def _label_blups(
    allb: pd.DataFrame, problem: Problem, design: RunDesign, enc: Encoded
) -> pd.DataFrame:
    """Protein, factor and level names as categoricals (cheap for millions of levels)."""
    fcode = allb["factor_code"].to_numpy(dtype=np.intp)
    lcode = allb["level_code"].to_numpy(dtype=np.intp)
    names: list[str] = []
    label_code = np.zeros(fcode.size, dtype=np.intp)
    for f, name in enumerate(problem.factors):
        rows = fcode == f
        if name == USAGE_FACTOR:
            # cell code feature * n_conditions + condition; name only the cells present
            cells, local = np.unique(lcode[rows], return_inverse=True)
            feat_of, cond_of = np.divmod(cells, max(len(design.conditions), 1))
            label_code[rows] = local.ravel() + len(names)
            names.extend(
                f"{enc.features[a]}:{design.conditions[c] if design.conditions else ''}"
                for a, c in zip(feat_of.tolist(), cond_of.tolist(), strict=True)
            )
            continue
        levels = (
            enc.features
            if name == "feature"
            else np.asarray(design.factor_levels[name], dtype=object)
        )
        label_code[rows] = lcode[rows] + len(names)
        names.extend(str(v) for v in levels)
    categories = pd.Index(names).unique()
    remap = categories.get_indexer(pd.Index(names)) if names else np.zeros(0, dtype=np.intp)
    out = pd.DataFrame(
        {
            "protein": pd.Categorical.from_codes(
                allb["protein_code"].to_numpy(dtype=np.intp), categories=pd.Index(enc.proteins)
            ),
            "factor": pd.Categorical.from_codes(fcode, categories=pd.Index(problem.factors)),
            "level": pd.Categorical.from_codes(remap[label_code], categories=categories),
            "blup": allb["blup"].to_numpy(dtype=np.float64),
        }
    )
    for extra in ("weight_mean", "weight_min"):  # robust fit: observation weights per level
        if extra in allb:
            out[extra] = allb[extra].to_numpy(dtype=np.float64)
    order = np.lexsort((fcode, allb["protein_code"].to_numpy(dtype=np.intp)))
    return out.iloc[order].reset_index(drop=True)
