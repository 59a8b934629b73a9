r"""All proteins of a table with the random slope ``condition|batch`` (:mod:`pepmix.model.slopes`).

:func:`fit_slopes` is what :func:`pepmix.model.fit.fit_proteins` runs when ``model.random``
holds ``condition|batch``: per protein the fixed effects are the observed conditions (treatment
coding, reference = first observed condition of the design's order) and the design's
covariates; random terms ``(1|feature)`` and the run-level intercepts of ``model.random``
(``sample`` or ``run``), each kept when it has at least 2 levels and fewer levels than
observations (lme4's rule), plus ``(condition|batch)`` when the protein is seen in at least 2
batches and has more observations than batch-by-condition random effects. Dropped terms make
the status ``reduced_model`` (``detail`` says which); a singular fit ``boundary``.

The result is a :class:`SlopeFit` (a :class:`pepmix.model.fit.ModelFit`) in the design's
cell-mean coordinates: :math:`\hat\beta, V, \partial V/\partial\psi, A` are mapped from the
protein's treatment coding by :math:`\beta_{cell} = B\beta_{trt}`, :math:`V_{cell} = B V B'`,
so contrasts, the stored fit and the test stage work unchanged. Variance parameters
:math:`\psi` are laid out per protein as ``theta_<factor>`` for the intercept factors, then the
Cholesky elements of the protein's observed conditions (``theta_batch[<i>]``, lme4's order),
then ``sigma``; slots a protein does not use hold 0.

Per protein the cost is a few hundred batched evaluations of a dense Cholesky of order
:math:`q + p + 1` (:math:`q` = features + samples + batches x conditions); proteins are fitted one
after the other.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from pepmix.model import slopes
from pepmix.model.design import BATCH_CONDITION, SLOPE_TERM, RunDesign, batch_condition_df
from pepmix.model.fit import (
    Encoded,
    ModelFit,
    _samples_per_condition,
    contrast_matrix,
    encode,
)

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]


@dataclass
class SlopeFit(ModelFit):
    """:class:`pepmix.model.fit.ModelFit` of the random-slope model.

    Attributes
    ----------
    batch_cov : ndarray, shape (P, C, C)
        Covariance across batches of the batch deviations of the condition means (cell
        coding, data units; NaN for conditions the protein was not seen in, or without the
        term). The between-batch variance of a contrast :math:`\\ell` of conditions is
        :math:`\\ell'\\Sigma\\ell`.
    singular : ndarray of bool, shape (P,)
    heterogeneity_lrt : ndarray, shape (P,)
        REML LRT of ``(condition|batch)`` against ``(1|batch)``
        (:func:`pepmix.model.slopes.heterogeneity_lrt`; NaN without the term).
    n_conditions : ndarray of int, shape (P,)
        Conditions the protein was observed in.
    psi_names : list of str
        Names of the variance parameters (module docstring).
    """

    batch_cov: FloatArray = field(default_factory=lambda: np.zeros((0, 0, 0)))
    singular: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    heterogeneity_lrt: FloatArray = field(default_factory=lambda: np.zeros(0))
    n_conditions: NDArray[np.intp] = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    psi_names: list[str] = field(default_factory=list)

    def varpar_names(self) -> list[str]:
        """Names of the stored variance parameters (module docstring)."""
        return list(self.psi_names)

    def variance_components(self) -> pd.DataFrame:
        """:meth:`ModelFit.variance_components` plus the random-slope summaries.

        ``var_batch`` is the between-batch variance of the reference condition's mean (lme4's
        ``(Intercept)`` variance of ``(condition|batch)``); per other condition ``c``,
        ``sd_batch[<c>-<ref>]`` is the between-batch SD of the effect ``c - ref`` (lme4's SD
        of ``condition<c>``) and ``cor_batch[<a>|<b>]`` the correlations of lme4's terms
        (``(Intercept)`` and the effects); ``sd_effect_batch`` is the root mean square over
        condition pairs of the between-batch SD of the pairwise effect
        (the SD of the effect with two conditions; under compound symmetry every pair's SD);
        ``heterogeneity_lrt`` and ``heterogeneity_p``: the REML LRT of ``(condition|batch)``
        against ``(1|batch)`` and its :math:`\\tfrac12\\chi^2_1 + \\tfrac12\\chi^2_2`
        p-value (two observed conditions only, :func:`pepmix.model.slopes.heterogeneity_pvalue`).
        """
        out = super().variance_components()
        conds = self.design.conditions
        k = len(conds)
        trt = np.eye(k)
        trt[1:, 0] = -1.0  # treatment coding: (mean_ref, mean_c - mean_ref)
        cov = np.einsum("ij,bjk,lk->bil", trt, self.batch_cov, trt)
        names = ["(Intercept)"] + [f"{c}-{conds[0]}" for c in conds[1:]]
        sd = np.sqrt(np.maximum(np.diagonal(cov, axis1=1, axis2=2), 0.0))
        for i in range(1, k):
            out[f"sd_batch[{names[i]}]"] = sd[:, i]
        with np.errstate(invalid="ignore", divide="ignore"):
            for i in range(k):
                for j in range(i + 1, k):
                    out[f"cor_batch[{names[i]}|{names[j]}]"] = cov[:, i, j] / (sd[:, i] * sd[:, j])
        out["sd_effect_batch"] = np.sqrt([_pairwise_var(c) for c in self.batch_cov])
        out["heterogeneity_lrt"] = self.heterogeneity_lrt
        out["heterogeneity_p"] = slopes.heterogeneity_pvalue(
            self.heterogeneity_lrt, self.n_conditions
        )
        return out

    def df_between(self) -> FloatArray:
        """:meth:`ModelFit.df_between` capped by the containment df of the batch-by-condition
        stratum (:func:`pepmix.model.design.batch_condition_df`) where it is at least 1."""
        kept = np.sum(~np.isnan(self.beta), axis=1)
        out = (self.samples_per_condition.sum(axis=1) - kept).astype(np.float64)
        if self.encoded is None:
            return np.asarray(out, dtype=np.float64)
        enc = self.encoded
        design = _with_cells(self.design)
        cells = batch_condition_df(enc.prot, enc.run, design, len(self.proteins))
        return np.asarray(np.where(cells >= 1, np.minimum(out, cells), out), dtype=np.float64)


def _pairwise_var(cov: FloatArray) -> float:
    """Mean over condition pairs of the between-batch variance of the pairwise effect (cell
    coding; NaN when fewer than two conditions have a variance)."""
    ok = np.flatnonzero(~np.isnan(np.diagonal(cov)))
    vals = [cov[a, a] + cov[b, b] - 2 * cov[a, b] for i, a in enumerate(ok) for b in ok[i + 1 :]]
    return float(np.mean(vals)) if vals else float("nan")


def _with_cells(design: RunDesign) -> RunDesign:
    """``design`` with the batch-by-condition cell codes of :func:`batch_condition_df`."""
    batch = design.factor_codes[SLOPE_TERM]
    blevels = design.factor_levels[SLOPE_TERM]
    names = [
        f"{blevels[b]}:{design.conditions[c]}"
        for b, c in zip(batch, design.condition_code, strict=True)
    ]
    levels = list(dict.fromkeys(names))
    codes = dict(design.factor_codes)
    codes[BATCH_CONDITION] = np.array([levels.index(v) for v in names], dtype=np.intp)
    lev = dict(design.factor_levels)
    lev[BATCH_CONDITION] = levels
    return replace(design, factor_codes=codes, factor_levels=lev)


@dataclass
class _Protein:
    """One protein's problem and how it maps to the design."""

    prob: slopes.SlopeProblem
    present: NDArray[np.intp]  # observed conditions (design codes), reference first
    x_cols: NDArray[np.intp]  # design columns of the local fixed effects (cell coordinates)
    factors: list[str]  # intercept factors kept
    notes: list[str]
    mean: float


def _intercepts(design: RunDesign) -> list[str]:
    """Random-intercept factors of the model (``feature`` first, then run-level ones)."""
    return [f for f in design.spec.random if f != SLOPE_TERM]


def _estimable_covariates(
    trt: FloatArray, xrun: FloatArray, n_cond: int, notes: list[str], names: list[str]
) -> NDArray[np.intp]:
    """Design columns of the covariates that are not aliased with the conditions and the
    covariates before them (a note per dropped one; its coefficient is reported as NaN)."""
    keep: list[int] = []
    base = trt
    for j in range(n_cond, xrun.shape[1]):
        trial = np.hstack([base, xrun[:, j : j + 1]])
        if np.linalg.matrix_rank(trial) > base.shape[1]:
            keep.append(j)
            base = trial
        else:
            notes.append(f"covariate {names[j]} dropped: aliased with the conditions")
    return np.asarray(keep, dtype=np.intp)


def _protein(enc: Encoded, rows: slice, design: RunDesign) -> _Protein:
    """Build the problem of the observations ``rows`` of one protein."""
    run, y = enc.run[rows], enc.y[rows]
    n = y.size
    cond = design.condition_code[run]
    present = np.unique(cond)
    local = np.searchsorted(present, cond)
    n_cond = len(design.conditions)
    trt = np.eye(present.size)[local]
    trt[:, 0] = 1.0
    notes: list[str] = []
    facs: list[tuple[str, NDArray[np.intp], list[str]]] = []
    cov_cols = _estimable_covariates(trt, design.x[run], n_cond, notes, design.x_names)
    x = np.hstack([trt, design.x[run][:, cov_cols]])
    for f in _intercepts(design):
        if f == "feature":
            codes, names = pd.factorize(enc.feat[rows])
            labels = [str(enc.features[v]) for v in names]
        else:
            codes, idx = pd.factorize(design.factor_codes[f][run])
            labels = [design.factor_levels[f][v] for v in idx]
        nl = len(labels)
        if nl < 2 or nl >= n:
            notes.append(f"{f} dropped: {nl} level(s) for {n} observations")
            continue
        facs.append((f, codes.astype(np.intp), labels))
    bcode, bidx = pd.factorize(design.factor_codes[SLOPE_TERM][run])
    n_b = len(bidx)
    batch: NDArray[np.intp] | None = bcode.astype(np.intp)
    if n_b < 2 or n_b * present.size >= n:
        notes.append(f"condition|batch dropped: {n_b} batch(es) for {n} observations")
        batch = None
    mean = float(y.mean())
    prob = slopes.build_problem(
        y - mean,
        x,
        facs,
        batch,
        [design.factor_levels[SLOPE_TERM][v] for v in bidx],
        trt,
        [design.conditions[c] for c in present],
    )
    x_cols = np.concatenate([present, cov_cols]).astype(np.intp)
    return _Protein(prob, present, x_cols, [f[0] for f in facs], notes, mean)


def fit_slopes(
    table: pd.DataFrame,
    design: RunDesign,
    contrasts: Sequence[tuple[str, str, str]] = (),
    encoded: Encoded | None = None,
) -> SlopeFit:
    """Fit the random-slope model to every protein of a long table (module docstring).

    Plain REML (no variance-ratio prior, no robust weights).

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``protein``, ``feature``, ``run``, ``y`` (log2 intensity; observed cells only).
    design : RunDesign
        Run-level design with ``condition|batch`` in ``spec.random``.
    contrasts : sequence of (name, numerator, denominator), default ()
        Condition contrasts to test.
    encoded : Encoded, optional
        ``table`` already encoded (used when it codes the design's runs).
    """
    same_runs = encoded is not None and encoded.runs == list(design.runs)
    enc = encoded if encoded is not None and same_runs else encode(table, design)
    out = _allocate(enc, design, [c[0] for c in contrasts])
    bounds = np.searchsorted(enc.prot, np.arange(len(enc.proteins) + 1))
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # small matrices: threads only add overhead
        for i in range(len(enc.proteins)):
            _fit_protein(out, i, _protein(enc, slice(bounds[i], bounds[i + 1]), design))
    out.blups = pd.DataFrame(out.run_effects_parts or None, columns=BLUP_COLUMNS)
    out.run_effects_parts = []
    out.encoded = enc
    out.samples_per_condition = _samples_per_condition(enc, design, len(enc.proteins))
    cmat = contrast_matrix(design, [(c[1], c[2]) for c in contrasts])
    out.estimate, out.se, out.df, out.contrast_ok = _contrasts(out, cmat)
    n_ok = sum(s == "ok" for s in out.status)
    n_sing = int(out.singular.sum())
    log.info(
        "fitted %d proteins with condition|batch (%d ok, %d singular)",
        len(enc.proteins),
        n_ok,
        n_sing,
    )
    return out


BLUP_COLUMNS = ["protein", "factor", "level", "blup"]


def _allocate(enc: Encoded, design: RunDesign, names: list[str]) -> SlopeFit:
    """Empty :class:`SlopeFit` (NaN estimates, status ``not_estimable``)."""
    n, p, c = len(enc.proteins), design.n_fixed, len(design.conditions)
    facs = _intercepts(design)
    n_t = c * (c + 1) // 2
    psi = [f"theta_{f}" for f in facs] + [f"theta_batch[{j}]" for j in range(n_t)] + ["sigma"]
    k = len(psi)
    m = len(names)
    nan = np.full
    return SlopeFit(
        proteins=list(enc.proteins),
        design=design,
        factors=(*facs, "batch"),
        status=["not_estimable"] * n,
        detail=[""] * n,
        n_features=np.bincount(
            enc.prot, weights=np.r_[True, np.diff(enc.feat) != 0], minlength=n
        ).astype(np.intp),
        n_obs=np.bincount(enc.prot, minlength=n).astype(np.intp),
        theta=nan((n, len(facs) + 1), np.nan),
        sigma=nan(n, np.nan),
        reml_crit=nan(n, np.nan),
        nu=nan(n, np.nan),
        beta=nan((n, p), np.nan),
        cov_beta=nan((n, p, p), np.nan),
        contrast_names=names,
        estimate=nan((n, m), np.nan),
        se=nan((n, m), np.nan),
        df=nan((n, m), np.nan),
        contrast_ok=np.zeros((n, m), dtype=bool),
        converged=np.zeros(n, dtype=bool),
        iterations=np.zeros(n, dtype=np.intp),
        blups=pd.DataFrame(columns=BLUP_COLUMNS),
        beta_centred=np.zeros((n, p)),
        dcov_beta=nan((n, k, p, p), np.nan),
        vcov_varpar=np.zeros((n, k, k)),
        batch_cov=nan((n, c, c), np.nan),
        singular=np.zeros(n, dtype=bool),
        heterogeneity_lrt=nan(n, np.nan),
        n_conditions=np.zeros(n, dtype=np.intp),
        psi_names=psi,
    )


def _fit_protein(out: SlopeFit, i: int, prot: _Protein) -> None:
    """Fit protein ``i`` into ``out`` (status rules of the module docstring)."""
    prob = prot.prob
    out.nu[i] = prob.nu
    if prob.nu < 1:
        out.status[i] = "too_few_observations"
        return
    try:
        res = slopes.fit_one(prob)
    except (np.linalg.LinAlgError, ValueError) as err:
        out.detail[i] = f"fit failed: {err}"
        return
    if not (np.isfinite(res.crit) and np.isfinite(res.sigma) and res.sigma > 0):
        out.detail[i] = "REML criterion not finite (fixed effects not estimable?)"
        return
    notes = list(prot.notes)
    if res.singular:
        notes.append("condition|batch covariance singular" if prob.k else "a variance is 0")
    out.status[i] = "reduced_model" if prot.notes else ("boundary" if res.singular else "ok")
    out.detail[i] = "; ".join(notes)
    out.singular[i] = res.singular
    out.converged[i] = res.converged
    out.sigma[i], out.reml_crit[i] = res.sigma, res.crit
    out.n_conditions[i] = prot.present.size
    out.heterogeneity_lrt[i] = slopes.heterogeneity_lrt(prob, res.crit)
    _store_fixed(out, i, prot, res)
    _store_variances(out, i, prot, res)
    _store_blups(out, i, prot, res)


def _cell_map(prot: _Protein) -> FloatArray:
    """:math:`B` with :math:`\\beta_{cell} = B\\beta_{trt}` (local coordinates)."""
    p = prot.prob.p
    b = np.eye(p)
    b[: prot.present.size, 0] = 1.0
    return b


def _store_fixed(out: SlopeFit, i: int, prot: _Protein, res: slopes.SlopeResult) -> None:
    """Fixed effects, covariance and its derivatives in the design's cell coordinates."""
    b = _cell_map(prot)
    cols = prot.x_cols
    beta = b @ res.beta
    out.beta_centred[i, cols] = beta
    shift = np.zeros(cols.size)
    shift[: prot.present.size] = prot.mean
    out.beta[i, cols] = beta + shift
    out.cov_beta[i][np.ix_(cols, cols)] = b @ res.cov_beta @ b.T
    slots = _psi_slots(out, prot)
    dcov = np.einsum("ij,kjl,ml->kim", b, res.dcov_beta, b)
    for local, slot in enumerate(slots):
        out.dcov_beta[i, slot][np.ix_(cols, cols)] = dcov[local]
    others = np.setdiff1d(np.arange(out.dcov_beta.shape[1]), slots)
    for slot in others:
        out.dcov_beta[i, slot][np.ix_(cols, cols)] = 0.0
    out.vcov_varpar[i][np.ix_(slots, slots)] = res.vcov_varpar


def _psi_slots(out: SlopeFit, prot: _Protein) -> NDArray[np.intp]:
    """Global slots of the protein's variance parameters (module docstring)."""
    names = out.psi_names
    slots = [names.index(f"theta_{f}") for f in prot.factors]
    first = names.index("theta_batch[0]")
    n_t = prot.prob.k * (prot.prob.k + 1) // 2
    slots += list(range(first, first + n_t))
    slots.append(len(names) - 1)
    return np.asarray(slots, dtype=np.intp)


def _store_variances(out: SlopeFit, i: int, prot: _Protein, res: slopes.SlopeResult) -> None:
    """Relative SDs of the intercept factors, the batch covariance in cell coding."""
    facs = list(out.factors[:-1])
    out.theta[i, :] = 0.0
    for j, f in enumerate(prot.factors):
        out.theta[i, facs.index(f)] = res.theta[j]
    if not prot.prob.k:
        return
    sig = slopes.batch_covariance(res, prot.prob)
    b = _cell_map(prot)[: prot.present.size, : prot.present.size]
    cells = b @ sig @ b.T
    out.batch_cov[i][np.ix_(prot.present, prot.present)] = cells
    ref = 0 if prot.present[0] == 0 else None
    out.theta[i, -1] = np.sqrt(cells[0, 0]) / res.sigma if ref == 0 else np.nan


def _store_blups(out: SlopeFit, i: int, prot: _Protein, res: slopes.SlopeResult) -> None:
    """BLUPs: intercept levels, and per batch and observed condition the cell deviation."""
    prob = prot.prob
    rows = []
    protein = out.proteins[i]
    k = prob.k
    cells: dict[str, list[float]] = {}
    for (name, level), value in zip(prob.z_levels, res.blups, strict=True):
        if name.startswith("batch_"):
            cells.setdefault(level, []).append(float(value))
        else:
            rows.append((protein, name, level, float(value)))
    conds = [out.design.conditions[c] for c in prot.present]
    for batch, vals in cells.items():
        for c in range(k):
            dev = vals[0] + (vals[c] if c else 0.0)
            rows.append((protein, BATCH_CONDITION, f"{batch}:{conds[c]}", dev))
    out.run_effects_parts.extend(rows)  # type: ignore[arg-type]


def _contrasts(
    out: SlopeFit, cmat: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, NDArray[np.bool_]]:
    """Estimates, SEs, Satterthwaite df of ``cmat`` (as :mod:`pepmix.model.stored`)."""
    from pepmix.model.stored import StoredFit

    stored = StoredFit.from_model_fit(out)
    estimate, se, df = stored.contrast_tests(cmat)
    return estimate, se, df, ~np.isnan(estimate)
