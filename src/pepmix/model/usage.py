r"""Per-protein summary of the peptide-usage term (issue 13, item 3a): which proteins' peptides do
not move together.

With ``feature:condition`` in ``model.random`` (:mod:`pepmix.model.suffstats`, "Peptide usage")
every protein has a usage variance :math:`\sigma_U^2` (the variance of the feature x condition
interaction) and, from :mod:`pepmix.model.variance_tests`, the boundary REML likelihood-ratio
test of :math:`H_0: \sigma_U^2 = 0` (p-value from the :math:`\tfrac12\chi^2_0 + \tfrac12\chi^2_1`
mixture, BH-adjusted over proteins). A usage variance above zero means that some peptide's
change between conditions differs from the protein's (isoforms, modifications, interferences);
the most deviating cells are those with the largest usage BLUPs :math:`|\hat w_{fc}|` (log2
units, like ``lme4::ranef``).

Workflow output ``results/tables/peptide_usage.tsv`` (config ``peptide_usage: true``): per shard
the rule ``usage_refit`` calls :func:`usage_shard_from_start` with the default fit's end that the
fit job stored (:class:`UsageStart`; the fit job itself calls :func:`usage_shard` when the
contrasts need the usage model, ``peptide_usage_contrasts``), rule ``peptide_usage`` gathers with
:func:`gather_usage_table`. When the model (``model.random``) has no ``feature:condition`` term,
the shard's proteins are fitted a second time with the term added (plain REML, the model's
``model.robust`` setting, no variance-ratio prior) and only the usage term is tested: the null
model is the default model, refitted at the usage fit's observation weights (with
``robust: none`` exactly rule fit's model; with Huber weights the weights of the larger model,
held fixed in both fits as in :mod:`pepmix.model.variance_tests`). When the model already has
the term, the fitted model is tested against the model without it, reusing the test the fit job
computes for ``variance_components.tsv``. The p-value is the 50:50 chi-bar-square mixture,
BH-adjusted over all tested proteins.

Cost (:func:`refit_with_usage`, the default ``peptide_usage: true``): only proteins whose model
keeps the term are refitted (:func:`usage_estimable`: at least two features, some feature seen
in two conditions); the others' row says ``reduced_model`` with no test. The refit starts where
the default fit ended: its relative SDs, a five-point grid for :math:`\theta_U`
(:func:`pepmix.model.optimize.partial_start`) and, for a robust fit, the default fit's final
weights, from which the usage model's weights are iterated to their fixed point as usual
(:mod:`pepmix.model.robust`). A protein whose usage variance is 0 there has exactly the default
fit's residuals, so its weights are settled after one fit and its LRT is 0 without a null refit
(:func:`usage_lrt`); only proteins with a positive usage variance are iterated and tested.
Iteratively reweighted M-estimation with a rescaled MAD can have more than one fixed point:
started from the median polish (as the default fit) instead, 2-3 % of simulated proteins reach
another one (measured: LRT changes above 0.1 for 22 of 1,000 proteins); the share of p < 0.05
was the same within 0.5 % under the null and with a usage SD of 0.3 (0.688 against 0.689), at
half the cost. With ``robust: none`` the refit reaches the same optima as a cold start (LRTs
equal to 1e-10 on simulated data).

Boundary screen (:data:`SCREEN`, :mod:`pepmix.model.usage_screen`): before the refit, each
protein's start is checked, at the refit's weights, for what makes the refit stay at
:math:`\theta_U = 0`: the start is a stationary point of the other components (the default
fit's optimum), the criterion curves upwards along every component at 0 (exact slope in
:math:`\lambda = \theta^2`; the usage term's is its score), the refit's own grid for
:math:`\theta_U` has no point below 0, and (Huber) the start's weights are the Huber weights
of its residuals to within the robust iteration's tolerance. Such a protein is not refitted;
its row is the one the refit gives it (usage variance 0, LRT 0, status ``boundary``, no
cells). Guarantee: the refit started there would end there (its Newton steps keep
:math:`\theta_U = 0` on the face, where the criterion's gradient and mixed second derivatives
in :math:`\theta_U` vanish, and its weights are settled); not that 0 is the global optimum of
the usage variance, which the refit does not promise either. Not checked: the curvature of the
default fit's positive components, which its optimiser left at a minimum (a saddle there would
only arise from a stopped line search). ``bisquare`` is not screened; nor, in the fit job,
when ``peptide_usage_contrasts`` takes every refitted protein's usage fit (``always``,
``no_majority``). The screen evaluates the refit's grid for :math:`\theta_U` anyway, so the
refitted proteins start from its choice (:func:`pepmix.model.optimize.partial_start`'s, not
evaluated twice). Measured (``benchmarks/README.md``, "The usage refit, boundary screen"):
``results/tables/peptide_usage.tsv`` byte-identical on the demo and a 3,000-protein
simulation, the rows in full precision identical on simulations with usage SD 0 and 0.3
(Huber and ``none``) and on a 4,441-protein x 200-run cohort shard (Huber). No screened row
differs; a refitted protein that shares a bucket with other proteins than before can move in
the last bits (padding: LRT by 2e-12 with ``robust: none`` on the demo, not in the six
printed digits).
About half of the proteins are screened (demo 784 of 1,222; cohort shard 2,414 of 4,441);
the job's CPU drops by 5-10 % (the Huber iteration of the others dominates).

The null model of the LRT is the default model at the usage fit's weights, so the default
fit's optimum (its relative SDs before the robust variance factor, :func:`_null_start`) is
next to the null optimum: the null fits start there, or at the grid's best point where that
has the lower criterion (:func:`pepmix.model.variance_tests.bucket_lrts`, ``null_start``), so
the start is never worse than the grid's. Guarantee: every null fit is a converged REML
optimum of the null model at the usage fit's weights, as before; where the null criterion has
one optimum the LRT is the grid start's to the optimiser's tolerance (measured: max
:math:`|\Delta \mathrm{LRT}|` 3e-11 on the demo, 7e-12 on a 3,000-protein simulation, no
call changed; the warm start alone, without the grid's point, reached a worse null optimum for
2 of 769 simulated proteins). Cost: 40 % fewer Newton iterations of the null fits
(``benchmarks/README.md``, "The usage refit, cheaper"). The usage job
(:func:`usage_shard_from_start`) reports the table only and fits point estimates only
(``fit_proteins(inference=False)``: no covariances or contrast tests; the variances, BLUPs,
weights and statuses bit for bit those of the full fit).

Weights of the test (config ``peptide_usage_weights``, issue 12; Huber fits only)
-------------------------------------------------------------------------------
``usage_fit`` (the default, above): the usage model's own Huber weights, iterated to its fixed
point, and the null refitted at them. ``default_fit`` (:func:`_fixed_shard`): the default
fit's final weights :math:`w` held fixed as known precision weights (weighted REML, as
``lme4``'s and msqrob2's ``weights=``; the observations the feature majority rule left out
get :data:`EXCLUDED_KNOWN_WEIGHT`, :func:`known_weights`). Then the null model at :math:`w` is
the default model the default fit already fitted at :math:`w`: the boundary screen's evaluation
at the default fit's optimum gives its criterion where that point is a minimum of the model
without the term (:func:`pepmix.model.usage_screen.screen_at_weights`; no null refit), the
alternative is one warm-started weighted REML fit (:func:`fit_weighted_usage`; no robust
rounds), the LRT their difference (:func:`fixed_weight_lrt`; proteins with left-out
observations, or whose start is no minimum, get a null fit as before). The screen applies
without its weight check (the weights are fixed). Guarantee: every LRT is the REML LRT of the
usage term at the known weights :math:`w` (both optima to the optimiser's tolerance;
``tests/unit/test_usage_weights.py`` checks it against both models fitted from the grid).
Measured (``benchmarks/README.md``, "The usage test at the default fit's weights"): the usage
part of a 4,441-protein cohort shard 9.2 -> 4.0 CPU s; on simulations the null p-values are
conservative (p < 0.05: 2.0 % against 5.0 %; Huber weights of the null fit down-weight
deviations under the null as well) and the ranking is at least as good (true calls at an
observed FDP of 5 % 383 against 378 at usage SD 0.3, 82 against 45 at 0.15), but the calls at
BH 5 % are fewer (power 0.52 against 0.55 at SD 0.3, 0.09 against 0.13 at 0.15, where
``usage_fit``'s observed FDP is 9 %). Not the default: the power at BH 5 % is not within a few
percent. ``peptide_usage_contrasts`` other than ``never`` take contrasts from the usage
model's fit and keep ``usage_fit``.

Problems from cached structure (issue 12): the usage model's robust rounds build each round's
weighted problem with :class:`pepmix.model.subset_problem.SubsetBuilder`, which covers the
usage factor (``subset_problem.USAGE_CACHED``: the protein's cells and their counts computed
once, restricted per subset), and the LRT's problem comes from the same builder
(:func:`_lrt_problem`, :data:`LRT_FROM_BUILDER`); the screen's grid reads its bucket's
rows without a copy and its weight check runs on the candidate proteins' rows only. The same
problems and rows, bit for bit
(``tests/unit/test_subset_problem.py``, ``test_usage_cost.py``); measured in
``benchmarks/README.md``, "The usage refit from cached structure".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from pepmix.model.design import (
    RANDOM_FACTORS,
    USAGE_FACTOR,
    ModelSpec,
    RunDesign,
    build_run_design,
    usage_code,
)
from pepmix.model.fit import FITTED, Encoded, ModelFit, encode, fit_proteins
from pepmix.model.suffstats import Problem

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
BoolArray = NDArray[np.bool_]

#: start the LRT's null fits at the default fit's optimum (:func:`_null_start`) instead of the
#: optimiser's grid
WARM_NULL = True
#: skip the refit of proteins whose usage variance provably stays at zero (the boundary screen,
#: :mod:`pepmix.model.usage_screen`); False refits every protein (the rows are the same)
SCREEN = True
#: prefix of the relative-SD columns of a usage start file (:class:`UsageStart`)
THETA_PREFIX = "theta_"
#: values of config ``peptide_usage_weights`` (module docstring, "Weights of the test")
WEIGHT_SCHEMES = ("default_fit", "usage_fit")
#: default of ``peptide_usage_weights``
DEFAULT_WEIGHTS = "usage_fit"
#: ``default_fit``: the known weight of the observations the feature majority rule left out
#: of the default fit (:data:`pepmix.model.fit.EXCLUDED_WEIGHT` there)
EXCLUDED_KNOWN_WEIGHT = 1.0


class UsageBase(Protocol):
    """What the usage refit reads of the default fit (:class:`pepmix.model.fit.ModelFit`, or
    the :class:`UsageStart` a usage job reads back): proteins in code order, random factors,
    statuses, relative SDs, final robust weights and the encoded observations."""

    @property
    def proteins(self) -> list[str]: ...
    @property
    def factors(self) -> tuple[str, ...]: ...
    @property
    def status(self) -> list[str]: ...
    @property
    def theta(self) -> FloatArray: ...
    @property
    def weights(self) -> FloatArray | None: ...
    @property
    def encoded(self) -> Encoded | None: ...


#: columns of :func:`peptide_usage_table`
USAGE_COLUMNS = (
    "protein",
    "var_usage",
    "lrt",
    "pvalue",
    "adj_pvalue",
    "status",
    "top_cells",
)


def _top_cells(blups: pd.DataFrame, n_top: int) -> pd.Series:
    """``"<feature>:<condition> (+x.xx); ..."`` of the ``n_top`` largest usage BLUPs per
    protein, largest first."""
    usage = blups.loc[blups["factor"].astype(str) == USAGE_FACTOR]
    if usage.empty:
        return pd.Series(dtype=object)
    usage = usage.assign(
        protein=usage["protein"].astype(str),
        size=usage["blup"].abs(),
        text=usage["level"].astype(str) + " (" + usage["blup"].map("{:+.2f}".format) + ")",
    )
    usage = usage.loc[usage["size"] > 0].sort_values(["protein", "size"], ascending=[True, False])
    top = usage.groupby("protein", sort=False).head(n_top)
    return top.groupby("protein", sort=False)["text"].agg("; ".join)


def peptide_usage_table(
    components: pd.DataFrame, blups: pd.DataFrame, n_top: int = 3
) -> pd.DataFrame:
    """One row per protein: usage variance, its LRT and the most deviating cells.

    Parameters
    ----------
    components : pandas.DataFrame
        The variance-components table (``results/tables/variance_components.tsv``): ``protein``,
        ``status``, ``var_feature:condition`` and, when the variance tests ran,
        ``lrt_feature:condition``, ``p_feature:condition``, ``adj_p_feature:condition``.
    blups : pandas.DataFrame
        BLUPs ``protein, factor, level, blup`` (:attr:`pepmix.model.fit.ModelFit.blups`).
    n_top : int, default 3
        Cells listed per protein in ``top_cells``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`USAGE_COLUMNS`; ``top_cells`` is empty where the usage variance is 0, the
        test columns NaN where the tests did not run. Sorted by ``pvalue`` (NaN last).

    Raises
    ------
    ValueError
        When ``components`` has no usage column (the model has no ``feature:condition`` term).
    """
    var_col = f"var_{USAGE_FACTOR}"
    if var_col not in components.columns:
        raise ValueError("the model has no feature:condition term (model.random)")
    nan = pd.Series(np.nan, index=components.index)
    out = pd.DataFrame(
        {
            "protein": components["protein"].astype(str),
            "var_usage": components[var_col],
            "lrt": components.get(f"lrt_{USAGE_FACTOR}", nan),
            "pvalue": components.get(f"p_{USAGE_FACTOR}", nan),
            "adj_pvalue": components.get(f"adj_p_{USAGE_FACTOR}", nan),
            "status": components["status"],
        }
    )
    top = _top_cells(blups, n_top)
    out["top_cells"] = out["protein"].map(top).astype(object).fillna("")
    out = out.sort_values("pvalue", kind="stable", na_position="last")
    return out.reset_index(drop=True).loc[:, list(USAGE_COLUMNS)]


def usage_lrt(
    fit: ModelFit,
    active: BoolArray | None = None,
    theta_scale: float = 1.0,
    null_start: FloatArray | None = None,
) -> FloatArray:
    """REML LRT of the usage term of every protein of ``fit`` (a model with the term).

    Only the usage term is tested (:func:`pepmix.model.variance_tests.term_lrts` with
    ``terms``), at the fit's observation weights; NaN where the protein was not fitted or the
    term is not in its model (one feature, or every feature seen in one condition).

    ``active`` (per protein, default None: unknown) marks proteins whose model is known to
    have the term (:func:`usage_estimable`). One fitted with every term (status ``ok`` or
    ``boundary``) whose usage variance is 0 has LRT 0 without a refit (the full optimum is on
    the null model's face, the test of :func:`pepmix.model.variance_tests.bucket_lrts` gives
    exactly 0 there); only the others are refitted. ``theta_scale`` (default 1) multiplies
    the fit's relative SDs to give the refits' start: the square root of the robust variance
    factor undoes :func:`pepmix.model.robust.correct_variance` (a start only: the optimum is
    the same). ``null_start`` (shape ``(P, F)`` in ``fit.factors`` columns, default None: the
    optimiser's grid) starts the null model's fits (:func:`_null_start`).
    """
    from pepmix.model.variance_tests import term_lrts

    n_prot = len(fit.proteins)
    if fit.encoded is None:
        return np.full(n_prot, np.nan)
    fitted = np.isin(np.asarray(fit.status, dtype=object), FITTED)
    u = fit.factors.index(USAGE_FACTOR)
    lrt = np.full(n_prot, np.nan)
    todo = np.ones(n_prot, dtype=bool)
    if active is not None:
        # not a reduced model (a term dropped for lack of a finite optimum is tested as before)
        whole = np.isin(np.asarray(fit.status, dtype=object), ("ok", "boundary"))
        zero = active & whole & (fit.theta[:, u] == 0.0)
        lrt[zero] = 0.0
        todo = active & fitted & ~zero
    idx = np.flatnonzero(todo)
    if idx.size == 0:
        return lrt
    problem, start = _lrt_problem(fit, idx)
    if start is not None:
        start = start * theta_scale
    null = None if null_start is None else null_start[idx]
    tests = term_lrts(problem, start, terms=(USAGE_FACTOR,), null_start=null)
    lrt[idx] = tests.lrt[:, u]
    lrt[~fitted] = np.nan
    return lrt


#: build the LRT's problem with the robust iteration's builder (:func:`_lrt_problem`; False:
#: :func:`pepmix.model.variance_tests.refit_problem` of the subset, the same problem)
LRT_FROM_BUILDER = True


def _lrt_problem(fit: ModelFit, idx: IntArray) -> tuple[Problem, FloatArray | None]:
    """The problem of the proteins ``idx`` of ``fit`` at its final weights and the refits'
    start, as :func:`pepmix.model.variance_tests.refit_problem` builds it from their rows: from
    the builder of the fit's robust iteration (:attr:`pepmix.model.fit.ModelFit.builder`, its
    structure cached for these observations and design: the same problem, bit for bit,
    :class:`pepmix.model.subset_problem.SubsetBuilder`) when there is one, else afresh."""
    from pepmix.model.variance_tests import refit_problem

    builder, enc = fit.builder, fit.encoded
    same = (
        LRT_FROM_BUILDER
        and builder is not None
        and enc is not None
        and builder.prot is enc.prot
        and builder.y is enc.y
        and builder.design is fit.design
    )
    if same and builder is not None and fit.weights is not None:
        return builder.build(idx, fit.weights), (fit.theta[idx] if fit.prior is None else None)
    part = fit if idx.size == len(fit.proteins) else _fit_subset(fit, idx)
    return refit_problem(part)


def _fit_subset(fit: ModelFit, idx: IntArray) -> ModelFit:
    """The parts of ``fit`` that :func:`pepmix.model.variance_tests.refit_problem` reads
    (encoded observations, weights, theta, prior), for the proteins ``idx`` only."""
    assert fit.encoded is not None
    enc, rows, _ = _subset_encoded(fit.encoded, idx)
    return dataclasses.replace(
        fit,
        proteins=list(enc.proteins),
        status=[fit.status[i] for i in idx],
        theta=fit.theta[idx],
        encoded=enc,
        weights=None if fit.weights is None else fit.weights[rows],
    )


def _subset_encoded(enc: Encoded, idx: IntArray) -> tuple[Encoded, BoolArray, IntArray]:
    """The observations of proteins ``idx`` (sorted codes), recoded 0..len(idx)-1; feature and
    run codes are kept. Returns the encoding, the row mask and the old-to-new protein codes."""
    local = np.full(len(enc.proteins), -1, dtype=np.intp)
    local[idx] = np.arange(idx.size)
    rows = local[enc.prot] >= 0
    sub = Encoded(
        proteins=[enc.proteins[i] for i in idx],
        features=enc.features,
        prot=local[enc.prot[rows]],
        feat=enc.feat[rows],
        run=enc.run[rows],
        y=enc.y[rows],
        runs=enc.runs,
    )
    return sub, rows, local


def usage_estimable(enc: Encoded, design: RunDesign) -> BoolArray:
    """Per protein: whether the model with the usage term keeps it
    (:func:`pepmix.model.suffstats.build_problem`'s checks on ``feature:condition``).

    The term is dropped for a protein with one feature, one observed cell, one observation per
    cell, or (``feature`` in the model and kept) as many cells as features (every feature seen
    in one condition only).
    """
    n_prot = len(enc.proteins)
    n_obs = np.bincount(enc.prot, minlength=n_prot)
    new_feat = np.r_[True, np.diff(enc.feat) != 0] if enc.feat.size else np.zeros(0, bool)
    n_feat = np.bincount(enc.prot, weights=new_feat, minlength=n_prot).astype(np.intp)
    cells, first = np.unique(usage_code(enc.feat, enc.run, design), return_index=True)
    n_cell = np.bincount(enc.prot[first], minlength=n_prot).astype(np.intp)
    del cells
    keep = (n_feat > 1) & (n_cell > 1) & ~((n_cell == n_obs) & (n_obs > 1))
    if "feature" in design.spec.random:
        feature_kept = (n_feat > 1) & ~((n_feat == n_obs) & (n_obs > 1))
        keep &= ~(feature_kept & (n_cell == n_feat))
    return np.asarray(keep)


def with_usage(spec: ModelSpec) -> ModelSpec:
    """``spec`` with ``feature:condition`` added to its random terms (canonical order)."""
    random = set(spec.random) | {USAGE_FACTOR}
    return dataclasses.replace(spec, random=tuple(f for f in RANDOM_FACTORS if f in random))


def _theta_scale(robust: str) -> float:
    """Square root of the robust variance factor (1 for ``robust: none``): the reported
    relative SDs times this are those of the weighted REML optimum."""
    from pepmix.model.robust import variance_factor

    return 1.0 if robust == "none" else float(np.sqrt(variance_factor(method=robust)))


def _usage_start(fit: UsageBase, design: RunDesign, idx: IntArray, robust: str) -> FloatArray:
    """Start of the usage fit of proteins ``idx``: the default fit's relative SDs (before the
    robust variance factor, :func:`pepmix.model.robust.correct_variance`) and NaN for the
    usage term (grid, :func:`pepmix.model.optimize.partial_start`); all NaN (full grid) for a
    protein the default fit did not fit."""
    factors = tuple(design.spec.random)
    theta0 = np.full((idx.size, len(factors)), np.nan)
    root = _theta_scale(robust)
    fitted = np.isin(np.asarray(fit.status, dtype=object)[idx], FITTED)
    for f, name in enumerate(factors):
        if name in fit.factors:
            theta0[:, f] = fit.theta[idx, fit.factors.index(name)] * root
    theta0[~fitted] = np.nan
    return theta0


def _null_start(
    base: UsageBase, design: RunDesign, idx: IntArray, robust: str, factors: tuple[str, ...]
) -> FloatArray:
    """Start of the null model's fits in :func:`usage_lrt` for the proteins ``idx`` of
    ``base``: the default fit's optimum (its relative SDs before the robust variance factor,
    as :func:`_usage_start`; NaN where it did not fit: the grid), the usage term 0, in the
    columns ``factors``."""
    start = _usage_start(base, design, idx, robust)
    names = tuple(design.spec.random)
    out = np.full((idx.size, len(factors)), np.nan)
    for f, name in enumerate(factors):
        out[:, f] = 0.0 if name == USAGE_FACTOR else start[:, names.index(name)]
    return out


def refit_with_usage(
    fit: UsageBase,
    design: RunDesign,
    robust: str = "none",
    warm_weights: bool = True,
    inference: bool = True,
    idx: IntArray | None = None,
    theta0: FloatArray | None = None,
) -> tuple[ModelFit, IntArray]:
    """Fit the model with the usage term to the proteins of ``fit`` that keep the term.

    Parameters
    ----------
    fit : ModelFit or UsageStart
        The model stage's fit (without the term), holding its encoded observations.
    design : RunDesign
        The design with the usage term (:func:`with_usage` of the fit's spec).
    robust : str, default "none"
        ``model.robust``.
    warm_weights : bool, default True
        Start a robust fit's weights at ``fit.weights`` (False: at the median polish's).
    inference : bool, default True
        False: point estimates only (``fit_proteins(inference=False)``: no covariances or
        contrast tests; variances, BLUPs, weights and statuses bit for bit the same).
    idx : ndarray of int, optional
        Codes (in ``fit``, ascending) of the proteins to refit, a subset of those where
        :func:`usage_estimable` (e.g. without the screened ones, :func:`_refit_shard`);
        default None: all of those.
    theta0 : ndarray, shape (len(idx), F), optional
        The fits' start (columns ``design.spec.random``; NaN entries from the optimiser's grid,
        :func:`pepmix.model.optimize.partial_start`); default None: :func:`_usage_start`.

    Returns
    -------
    full : ModelFit
        The fit of the proteins ``fit.proteins[idx]`` with the term (plain REML).
    idx : ndarray of int
        Codes (in ``fit``) of the refitted proteins: those where :func:`usage_estimable`;
        the others' model with the term is the fitted one (the term is dropped).

    Notes
    -----
    The fit starts where the default fit ended: its relative SDs, a grid for the usage SD and,
    for a robust fit, its final observation weights. The usage model's robust iteration then
    runs as from the median polish (:mod:`pepmix.model.robust`) to its fixed point; a protein
    whose usage variance is 0 at those weights has the default fit's residuals, so its weights
    are settled at once. The fixed point reached agrees with the cold start's to the
    iteration's tolerance (:data:`pepmix.model.robust.WEIGHT_TOL`); plain REML fits (robust
    ``none``) reach the same optimum.
    """
    if fit.encoded is None:
        raise ValueError("refit_with_usage: the fit holds no encoded observations")
    if idx is None:
        idx = np.flatnonzero(usage_estimable(fit.encoded, design))
    enc, rows, _ = _subset_encoded(fit.encoded, idx)
    weights = None
    if warm_weights and fit.weights is not None and robust != "none":
        weights = fit.weights[rows]
    full = fit_proteins(
        pd.DataFrame(),
        design,
        encoded=enc,
        what="proteins with the usage term",
        robust=robust,
        start_weights=weights,
        theta0=_usage_start(fit, design, idx, robust) if theta0 is None else theta0,
        inference=inference,
    )
    return full, idx


def _skipped_rows(fit: UsageBase, keep: IntArray) -> pd.DataFrame:
    """Variance-components rows of the proteins outside ``keep`` for the usage table: their
    model with the term is the default model (status ``reduced_model`` when fitted, the
    default fit's status otherwise), usage variance 0 (NaN when not fitted), no test."""
    other = np.setdiff1d(np.arange(len(fit.proteins)), keep)
    status = np.asarray(fit.status, dtype=object)[other]
    fitted = np.isin(status, FITTED)
    return pd.DataFrame(
        {
            "protein": [fit.proteins[i] for i in other],
            f"var_{USAGE_FACTOR}": np.where(fitted, 0.0, np.nan),
            "status": np.where(fitted, "reduced_model", status),
            f"lrt_{USAGE_FACTOR}": np.nan,
        }
    )


@dataclasses.dataclass(frozen=True)
class UsageShard:
    """The peptide-usage test of one shard, with the usage model's fit kept for the contrasts.

    Attributes
    ----------
    table : pandas.DataFrame
        The shard's usage rows (:data:`USAGE_COLUMNS`; p-values are added by
        :func:`gather_usage_table`).
    fit : ModelFit or None
        The usage model's fit of the refitted proteins (:func:`refit_with_usage`); None when the
        model already has the term or the fit held no encoded observations.
    idx : ndarray of int
        Codes (in the default fit) of the proteins of ``fit``.
    lrt : ndarray
        The usage LRT of each protein of ``fit`` (NaN: not tested).
    """

    table: pd.DataFrame
    fit: ModelFit | None = None
    idx: IntArray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    lrt: FloatArray = dataclasses.field(default_factory=lambda: np.zeros(0))


def usage_shard_table(
    fit: ModelFit,
    components: pd.DataFrame,
    table: pd.DataFrame,
    sheet: pd.DataFrame,
    robust: str = "none",
    n_top: int = 3,
    weights: str = DEFAULT_WEIGHTS,
) -> pd.DataFrame:
    """The peptide-usage rows of one shard (p-values are added by :func:`gather_usage_table`).

    Parameters
    ----------
    fit : ModelFit
        The model stage's fit of the shard.
    components : pandas.DataFrame
        Its protein table (``fit.variance_components()`` plus the ``lrt_<t>`` test columns,
        when the variance tests ran).
    table : pandas.DataFrame
        The shard's model input (``protein, feature, run, y``); used only when ``fit`` holds
        no encoded observations.
    sheet : pandas.DataFrame
        Resolved sample sheet.
    robust : str, default "none"
        ``model.robust`` (used for the fit with the usage term added).
    n_top : int, default 3
        Most deviating cells listed per protein.
    weights : {"usage_fit", "default_fit"}, default :data:`DEFAULT_WEIGHTS`
        Config ``peptide_usage_weights`` (module docstring, "Weights of the test").

    Returns
    -------
    pandas.DataFrame
        Columns :data:`USAGE_COLUMNS`.

    Notes
    -----
    Only the rows are kept, so the refit skips the proteins of the boundary screen (module
    docstring, "Boundary screen"; :data:`SCREEN`).
    """
    return usage_shard(
        fit, components, table, sheet, robust, n_top, screen=True, weights=weights
    ).table


def usage_shard(
    fit: ModelFit,
    components: pd.DataFrame,
    table: pd.DataFrame,
    sheet: pd.DataFrame,
    robust: str = "none",
    n_top: int = 3,
    screen: bool = False,
    inference: bool = True,
    weights: str = DEFAULT_WEIGHTS,
) -> UsageShard:
    """:func:`usage_shard_table` with the usage model's fit and LRTs kept
    (:mod:`pepmix.model.pretest` takes the contrasts of some proteins from it); same
    parameters, and ``screen`` (default False): skip the refit of the proteins the boundary
    screen finds (:func:`_refit_shard`; the rows are the same, but those proteins are then
    not in ``fit``: only where no contrast takes a protein's usage fit unless its usage test
    rejects, ``peptide_usage_contrasts`` ``never``, ``pretest`` or ``no_majority_pretest``);
    ``inference`` (default True) False: the usage model's refit computes point estimates only
    (:func:`refit_with_usage`; the rows are the same, bit for bit, but ``fit`` has no
    covariances or contrasts: only where no contrast is taken from it, ``never``);
    ``weights`` (default :data:`DEFAULT_WEIGHTS`) config ``peptide_usage_weights``."""
    lrt_col = f"lrt_{USAGE_FACTOR}"
    if USAGE_FACTOR in fit.factors:
        comp, blups = components, fit.blups
        if lrt_col not in comp.columns:  # variance_tests.lrt: false
            comp = comp.assign(**{lrt_col: usage_lrt(fit)})
        return UsageShard(peptide_usage_table(comp, blups, n_top))
    design = build_run_design(sheet, with_usage(fit.design.spec))
    if fit.encoded is None:  # a fit without its observations: fit every protein afresh
        full = fit_proteins(table, design, robust=robust)
        comp = full.variance_components().assign(**{lrt_col: usage_lrt(full)})
        return UsageShard(peptide_usage_table(comp, full.blups, n_top))
    return _refit_shard(
        fit, design, robust, n_top, inference=inference, screen=screen, weights=weights
    )


def _refit_shard(
    base: UsageBase,
    design: RunDesign,
    robust: str,
    n_top: int,
    inference: bool = True,
    screen: bool = True,
    weights: str = DEFAULT_WEIGHTS,
) -> UsageShard:
    """The usage test of the proteins of ``base`` by the refit with the term
    (:func:`refit_with_usage`, :func:`usage_lrt`); ``design`` has the usage term;
    ``inference`` (default True) as in :func:`refit_with_usage`; ``screen`` (default True,
    with :data:`SCREEN`) skips the proteins :func:`screen_boundary` finds (their rows are the
    refit's; they are not in the returned fit); ``weights`` (default
    :data:`DEFAULT_WEIGHTS`) config ``peptide_usage_weights``: ``default_fit`` tests a Huber
    fit at the default fit's weights held fixed (:func:`_fixed_shard`)."""
    lrt_col = f"lrt_{USAGE_FACTOR}"
    if base.encoded is None:
        raise ValueError("the usage refit needs the default fit's encoded observations")
    if _fixed_scheme(weights, robust, base):
        return _fixed_shard(base, design, n_top, inference, screen)
    todo = np.flatnonzero(usage_estimable(base.encoded, design))
    screened = np.zeros(0, dtype=np.intp)
    theta0 = _usage_start(base, design, todo, robust)
    if screen and SCREEN:
        at_zero, start_u = screen_boundary(base, design, todo, robust)
        # the refit starts where its grid would (the screen evaluated it): same start
        u = design.spec.random.index(USAGE_FACTOR)
        theta0[:, u] = start_u
        screened, todo, theta0 = todo[at_zero], todo[~at_zero], theta0[~at_zero]
    full, idx = refit_with_usage(base, design, robust, inference=inference, idx=todo, theta0=theta0)
    active = np.ones(len(full.proteins), dtype=bool)
    null = _null_start(base, design, idx, robust, full.factors) if WARM_NULL else None
    lrt = usage_lrt(full, active, _theta_scale(robust), null)
    full.builder = None  # its cached structure served the LRT: released (the shard keeps full)
    comp = full.variance_components().assign(**{lrt_col: lrt})
    parts = [comp, _screened_rows(base, screened)] if screened.size else [comp]
    parts.append(_skipped_rows(base, np.union1d(idx, screened)))
    comp = pd.concat(parts, ignore_index=True)
    return UsageShard(peptide_usage_table(comp, full.blups, n_top), full, idx, lrt)


def _fixed_scheme(weights: str, robust: str, base: UsageBase) -> bool:
    """Whether the test is made at the default fit's weights held fixed (``default_fit``;
    only for Huber fits with their weights: ``none`` has no weights to re-iterate and
    ``bisquare`` restarts from the median polish)."""
    if weights not in WEIGHT_SCHEMES:
        raise ValueError(f"peptide_usage_weights: unknown value {weights!r} ({WEIGHT_SCHEMES})")
    return weights == "default_fit" and robust == "huber" and base.weights is not None


def known_weights(weights: FloatArray) -> FloatArray:
    """The default fit's final weights as the usage test's known weights: those of the
    observations the feature majority rule left out of the default fit
    (:data:`pepmix.model.fit.EXCLUDED_WEIGHT`) become :data:`EXCLUDED_KNOWN_WEIGHT` (the
    majority rule's features are the ones whose profile disagrees: the test must see them)."""
    from pepmix.model.fit import EXCLUDED_WEIGHT

    return np.asarray(np.where(weights == EXCLUDED_WEIGHT, EXCLUDED_KNOWN_WEIGHT, weights))


def _fixed_shard(
    base: UsageBase, design: RunDesign, n_top: int, inference: bool, screen: bool
) -> UsageShard:
    """``peptide_usage_weights: default_fit``: the usage test of the proteins of ``base`` with
    the observation weights held at the default fit's (:func:`known_weights`).

    The screen (:func:`pepmix.model.usage_screen.screen_at_weights`, ``"fixed"``: no weight
    check) evaluates the model without the term at the default fit's optimum; where that is a
    minimum it is the null fit (its criterion, no refit). The others are fitted once with the
    term, warm-started (:func:`fit_weighted_usage`), and tested by :func:`fixed_weight_lrt`.
    """
    from pepmix.model.usage_screen import screen_at_weights

    assert base.encoded is not None and base.weights is not None
    lrt_col = f"lrt_{USAGE_FACTOR}"
    weights = known_weights(base.weights)
    todo = np.flatnonzero(usage_estimable(base.encoded, design))
    theta0 = _usage_start(base, design, todo, "huber")
    enc, rows, _ = _subset_encoded(base.encoded, todo)
    status = [base.status[i] for i in todo]
    found = screen_at_weights(enc, status, weights[rows], theta0, design, "fixed")
    theta0[:, design.spec.random.index(USAGE_FACTOR)] = found.start_u
    at_zero = found.screened if screen and SCREEN else np.zeros(todo.size, dtype=bool)
    screened, idx = todo[at_zero], todo[~at_zero]
    full = fit_weighted_usage(base, design, weights, idx, theta0[~at_zero], inference)
    null = _null_start(base, design, idx, "huber", full.factors) if WARM_NULL else None
    lrt = fixed_weight_lrt(full, found.null_crit[~at_zero], null)
    comp = full.variance_components().assign(**{lrt_col: lrt})
    parts = [comp, _screened_rows(base, screened)] if screened.size else [comp]
    parts.append(_skipped_rows(base, np.union1d(idx, screened)))
    comp = pd.concat(parts, ignore_index=True)
    return UsageShard(peptide_usage_table(comp, full.blups, n_top), full, idx, lrt)


def fit_weighted_usage(
    base: UsageBase,
    design: RunDesign,
    weights: FloatArray,
    idx: IntArray,
    theta0: FloatArray,
    inference: bool = True,
) -> ModelFit:
    """One weighted REML fit of the usage model (``design``) to the proteins ``idx`` of
    ``base`` at the known observation ``weights`` (all of ``base``'s rows), started at
    ``theta0`` (NaN: the grid): no robust iteration (``fit_proteins(known_weights=...)``)."""
    assert base.encoded is not None
    enc, rows, _ = _subset_encoded(base.encoded, idx)
    return fit_proteins(
        pd.DataFrame(),
        design,
        encoded=enc,
        what="proteins with the usage term (known weights)",
        known_weights=weights[rows],
        theta0=theta0,
        inference=inference,
    )


def fixed_weight_lrt(
    full: ModelFit, null_crit: FloatArray, null_start: FloatArray | None = None
) -> FloatArray:
    """Usage LRT of every protein of ``full`` (the usage model at known weights,
    :func:`fit_weighted_usage`) from the null criterion ``null_crit`` at the same weights
    (NaN: unknown, e.g. the default fit left observations out or is not a minimum there).

    A protein whose usage variance is 0 has LRT 0; one with a known null criterion has LRT
    ``null_crit - full.reml_crit`` (0 below the boundary snap, and 0 where the null lies below
    the full fit by more than :data:`pepmix.model.optimize.OPTIMUM_TOL`: the full fit is not
    at its global optimum, :data:`pepmix.model.variance_tests.OPTIMUM_TOL`, as
    :func:`pepmix.model.variance_tests.bucket_lrts`); the others are
    tested by :func:`usage_lrt` (null fit started at ``null_start``, default None: the grid).
    """
    from pepmix.model.variance_tests import OPTIMUM_TOL, _snap

    u = full.factors.index(USAGE_FACTOR)
    status = np.asarray(full.status, dtype=object)
    whole = np.isin(status, ("ok", "boundary"))
    zero = whole & (full.theta[:, u] == 0.0)
    known = whole & ~zero & np.isfinite(null_crit) & np.isfinite(full.reml_crit)
    lrt = np.full(len(full.proteins), np.nan)
    lrt[zero] = 0.0
    diff = null_crit[known] - full.reml_crit[known]
    lrt[known] = np.where(diff < -OPTIMUM_TOL, 0.0, _snap(diff))
    rest = np.isin(status, FITTED) & ~zero & ~known
    if rest.any():
        other = usage_lrt(full, rest, 1.0, null_start)
        lrt[rest] = other[rest]
    return lrt


def screen_boundary(
    base: UsageBase, design: RunDesign, idx: IntArray, robust: str
) -> tuple[BoolArray, FloatArray]:
    """Per protein ``idx`` of ``base`` (codes, ascending; proteins that keep the usage term):
    whether its refit provably ends with the usage variance at 0 at its start, so that it need
    not be refitted, and the refit's grid start of the usage term (NaN: not evaluated; the
    refit's grid) (:func:`pepmix.model.usage_screen.boundary_screen`: the start of
    :func:`_usage_start`, the weights the refit starts from)."""
    from pepmix.model.usage_screen import boundary_screen

    if base.encoded is None or idx.size == 0:
        return np.zeros(idx.size, dtype=bool), np.full(idx.size, np.nan)
    enc, rows, _ = _subset_encoded(base.encoded, idx)
    weights = None if base.weights is None else base.weights[rows]
    status = [base.status[i] for i in idx]
    theta0 = _usage_start(base, design, idx, robust)
    return boundary_screen(enc, status, weights, theta0, design, robust)


def _screened_rows(base: UsageBase, screened: IntArray) -> pd.DataFrame:
    """Variance-components rows of the screened proteins: what the refit reports for them
    (usage variance 0, LRT 0 without a null fit, :func:`usage_lrt`; status ``boundary``, a
    variance at zero in a whole model, :func:`pepmix.model.fit._finish_status`)."""
    return pd.DataFrame(
        {
            "protein": [base.proteins[i] for i in screened],
            f"var_{USAGE_FACTOR}": np.zeros(screened.size),
            "status": ["boundary"] * screened.size,
            f"lrt_{USAGE_FACTOR}": np.zeros(screened.size),
        }
    )


def needs_refit(fit: ModelFit) -> bool:
    """Whether the usage test of ``fit`` is a refit with the term (:func:`usage_shard`): the
    model has no ``feature:condition`` term and the fit holds its encoded observations. Only
    then can the refit run in a job of its own from a :class:`UsageStart`."""
    return USAGE_FACTOR not in fit.factors and fit.encoded is not None


@dataclasses.dataclass(frozen=True)
class UsageStart:
    """The default fit's end, from which the usage refit starts (:func:`refit_with_usage`), as
    the workflow's fit job stores it for the usage job (``usage_start.parquet``).

    Attributes
    ----------
    proteins : list of str
        Proteins in code order (sorted, :func:`pepmix.model.fit.encode`).
    factors : tuple of str
        Random factors of the default model (the columns of ``theta``).
    status : list of str
        The default fit's status per protein.
    theta : ndarray, shape (P, F)
        Its relative SDs (after the robust variance factor, as :attr:`ModelFit.theta`).
    weights : ndarray, shape (N,), optional
        Its final observation weights in encoded order (robust fits; None for ``robust:
        none``).
    encoded : Encoded, optional
        The encoded observations (:meth:`with_table`); not stored.
    """

    proteins: list[str]
    factors: tuple[str, ...]
    status: list[str]
    theta: FloatArray
    weights: FloatArray | None = None
    encoded: Encoded | None = None

    @classmethod
    def from_fit(cls, fit: ModelFit) -> UsageStart:
        """The start of ``fit``'s usage refit (its arrays, not copies)."""
        return cls(
            list(fit.proteins), tuple(fit.factors), list(fit.status), fit.theta, fit.weights,
            fit.encoded,
        )  # fmt: skip

    def write(self, path: str | Path) -> None:
        """One row per protein: ``protein, status, theta_<factor>...`` and, for a robust fit,
        ``weights`` (the protein's observation weights, a list in encoded order). Parquet
        stores the float64 values exactly, so the refit read back is the in-process one."""
        import pyarrow as pa

        from pepmix.io import write_arrow

        columns: dict[str, pa.Array] = {
            "protein": pa.array(self.proteins, type=pa.string()),
            "status": pa.array(self.status, type=pa.string()),
        }
        for f, name in enumerate(self.factors):
            columns[f"{THETA_PREFIX}{name}"] = pa.array(self.theta[:, f], type=pa.float64())
        if self.weights is not None:
            if self.encoded is None:
                raise ValueError("UsageStart.write: weights need the encoded observations")
            counts = np.bincount(self.encoded.prot, minlength=len(self.proteins))
            offsets = np.r_[0, np.cumsum(counts)].astype(np.int64)
            values = pa.array(np.asarray(self.weights, dtype=np.float64))
            columns["weights"] = pa.LargeListArray.from_arrays(pa.array(offsets), values)
        write_arrow(pa.table(columns), path)

    @classmethod
    def read(cls, path: str | Path) -> UsageStart:
        """Read what :meth:`write` wrote (without the encoded observations)."""
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        names = [n for n in table.column_names if n.startswith(THETA_PREFIX)]
        theta = np.column_stack(
            [table.column(n).to_numpy().astype(np.float64) for n in names]
            or [np.zeros((table.num_rows, 0))]
        )
        weights = None
        if "weights" in table.column_names:
            flat = table.column("weights").combine_chunks().flatten()
            weights = flat.to_numpy(zero_copy_only=False).astype(np.float64)
        return cls(
            proteins=[str(p) for p in table.column("protein").to_pylist()],
            factors=tuple(n.removeprefix(THETA_PREFIX) for n in names),
            status=[str(s) for s in table.column("status").to_pylist()],
            theta=theta.reshape(table.num_rows, len(names)),
            weights=weights,
        )

    def with_table(self, table: pd.DataFrame, design: RunDesign) -> UsageStart:
        """This start with ``table`` (the default fit's ``protein, feature, run, y``) encoded
        as the default fit encoded it; ``ValueError`` when the table does not match."""
        enc = encode(table, design)
        if enc.proteins != self.proteins:
            raise ValueError("usage start: the proteins differ from the fitted table's")
        if self.weights is not None and self.weights.size != enc.y.size:
            raise ValueError("usage start: the weights do not match the fitted table")
        return dataclasses.replace(self, encoded=enc)


def usage_shard_from_start(
    start: UsageStart,
    table: pd.DataFrame,
    sheet: pd.DataFrame,
    spec: ModelSpec,
    robust: str = "none",
    n_top: int = 3,
    weights: str = DEFAULT_WEIGHTS,
) -> UsageShard:
    """:func:`usage_shard` in a job of its own: the refit with the usage term from the default
    fit's stored end (:class:`UsageStart`) instead of the fit in memory; the same rows.

    Parameters
    ----------
    start : UsageStart
        Read from the fit job's ``usage_start.parquet``.
    table : pandas.DataFrame
        The shard's model input (``protein, feature, run, y``, identifiers categorical), as
        the fit read it.
    sheet : pandas.DataFrame
        Resolved sample sheet.
    spec : ModelSpec
        The default model (without the usage term).
    robust : str, default "none"
        ``model.robust``.
    n_top : int, default 3
        Most deviating cells listed per protein.
    weights : {"usage_fit", "default_fit"}, default :data:`DEFAULT_WEIGHTS`
        Config ``peptide_usage_weights``.

    Notes
    -----
    The job reports the table only, so the usage model's fit is made without inference
    (:func:`refit_with_usage` with ``inference=False``): the returned ``fit`` has NaN
    covariances and contrast columns; its variances, BLUPs, weights, statuses and the LRTs
    are bit for bit those of :func:`usage_shard` (``tests/unit/test_usage_refit.py``).
    """
    if USAGE_FACTOR in spec.random:
        raise ValueError("usage_shard_from_start: the model already has the usage term")
    design = build_run_design(sheet, with_usage(spec))
    return _refit_shard(
        start.with_table(table, design), design, robust, n_top, inference=False, weights=weights
    )


def gather_usage_table(
    parts: Sequence[pd.DataFrame], removed: pd.DataFrame | None = None
) -> pd.DataFrame:
    """``results/tables/peptide_usage.tsv`` from the shards' rows.

    Adds the mixture p-value (:func:`pepmix.model.variance_tests.mixture_pvalue`) and its
    Benjamini-Hochberg adjustment over all proteins with a test; the ``removed`` proteins
    (the merge stage's list, :mod:`pepmix.stages.merge`; default None: none) follow with
    status ``filtered``.
    Sorted by ``pvalue`` (NaN last), then ``protein``, one row per input protein (the same
    table for any number of shards).
    """
    from pepmix.inference.fdr import bh_adjust
    from pepmix.model.variance_tests import mixture_pvalue

    frame = pd.concat(list(parts), ignore_index=True)
    pvalue = mixture_pvalue(frame["lrt"].to_numpy(dtype=np.float64))
    frame["pvalue"] = pvalue
    frame["adj_pvalue"] = bh_adjust(pvalue)
    if removed is not None and len(removed):
        extra = pd.DataFrame(
            {"protein": removed["protein"].astype(str), "status": "filtered", "top_cells": ""}
        )
        frame = pd.concat([frame, extra], ignore_index=True)
    # ties (many p = 1) by protein: the same rows in the same order for any number of shards
    frame = frame.sort_values(["pvalue", "protein"], kind="stable", na_position="last")
    return frame.reset_index(drop=True).loc[:, list(USAGE_COLUMNS)]
