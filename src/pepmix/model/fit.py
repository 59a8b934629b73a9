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
    rules in :mod:`pepmix.model.checks`)
``too_few_observations``
    no residual degree of freedom; not fitted
``not_estimable``
    the criterion could not be evaluated or did not converge (``detail`` says which)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from pepmix.model.design import RunDesign
from pepmix.model.optimize import minimize
from pepmix.model.reml import Bucket, derivatives, evaluate
from pepmix.model.satterthwaite import contrast_tests, estimates
from pepmix.model.suffstats import Problem, build_problem

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]

#: statuses of proteins that were fitted
FITTED = ("ok", "boundary", "reduced_model")
#: a free variance whose removal changes the criterion by less than this is set to zero
SNAP_TOL = 1e-7
#: only relative standard deviations below this are candidates for snapping
SNAP_THETA = 1e-2


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
        Columns ``protein, factor, level, blup`` (data units, like ``lme4::ranef``).
    run_effects : pandas.DataFrame
        Protein abundance model only: ``protein, run, abundance, se, n_features``.
    elevel_quad : ndarray
        Work array of the abundance model's standard errors.
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
    elevel_quad: FloatArray = field(default_factory=lambda: np.zeros(0))

    def variance_components(self) -> pd.DataFrame:
        """One row per protein: ``protein, var_<factor>..., var_residual, n_features,
        n_observations, status, detail`` plus ``reml_crit`` and ``df_residual``."""
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
        return out

    def contrast_table(
        self, numerators: Sequence[str], denominators: Sequence[str]
    ) -> pd.DataFrame:
        """Long table of contrast estimates, one row per protein and contrast.

        Columns ``protein, contrast, estimate, se, df, status, detail, n_features,
        n_observations, sigma, df_residual``. A contrast involving a condition in which the
        protein was never observed gets status ``one_condition_missing`` (one side observed) or
        ``not_estimable`` (neither side) and NaN statistics.

        Parameters
        ----------
        numerators, denominators : sequence of str
            Conditions of each contrast, in the order of :attr:`contrast_names`.
        """
        conditions = self.design.conditions
        observed = ~np.isnan(self.beta[:, : len(conditions)])
        fit_status = np.asarray(self.status, dtype=object)
        frames = []
        for m, name in enumerate(self.contrast_names):
            num_obs = observed[:, conditions.index(numerators[m])]
            den_obs = observed[:, conditions.index(denominators[m])]
            status = fit_status.copy()
            fitted = np.isin(status, FITTED)
            status[fitted & (num_obs ^ den_obs)] = "one_condition_missing"
            status[fitted & ~num_obs & ~den_obs] = "not_estimable"
            good = np.isin(status, FITTED)
            frames.append(
                pd.DataFrame(
                    {
                        "protein": self.proteins,
                        "contrast": name,
                        "estimate": np.where(good, self.estimate[:, m], np.nan),
                        "se": np.where(good, self.se[:, m], np.nan),
                        "df": np.where(good, self.df[:, m], np.nan),
                        "status": status,
                        "detail": self.detail,
                        "n_features": self.n_features,
                        "n_observations": self.n_obs,
                        "sigma": self.sigma,
                        "df_residual": self.nu,
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)

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
    """

    proteins: list[str]
    features: NDArray[np.object_]
    prot: NDArray[np.intp]
    feat: NDArray[np.intp]
    run: NDArray[np.intp]
    y: FloatArray


def encode(table: pd.DataFrame, design: RunDesign) -> Encoded:
    """Integer codes for a long table with ``protein, feature, run, y`` (see :class:`Encoded`)."""
    prot_codes, proteins = pd.factorize(table["protein"], sort=True)
    run_index = pd.Index(design.runs)
    run_codes = run_index.get_indexer(pd.Index(table["run"]))
    if np.any(run_codes < 0):
        missing = sorted(set(table["run"][run_codes < 0]))
        raise ValueError(f"runs not in the design: {', '.join(map(str, missing))}")
    fcode, fnames = pd.factorize(table["feature"])
    pair_key = prot_codes.astype(np.int64) * max(len(fnames), 1) + fcode
    pair_codes, pair_uniques = pd.factorize(pair_key)
    by_protein = np.argsort(pair_uniques, kind="stable")
    rank = np.empty_like(by_protein)
    rank[by_protein] = np.arange(by_protein.size)
    feat_codes = rank[pair_codes]
    feature_names = np.asarray(fnames, dtype=object)[pair_uniques[by_protein] % max(len(fnames), 1)]
    order = np.argsort(feat_codes.astype(np.int64) * len(design.runs) + run_codes, kind="stable")
    y = table["y"].to_numpy(dtype=np.float64)[order]
    if not np.all(np.isfinite(y)):
        raise ValueError("log2 intensities must be finite")
    return Encoded(
        proteins=[str(p) for p in proteins],
        features=feature_names,
        prot=prot_codes[order].astype(np.intp),
        feat=feat_codes[order].astype(np.intp),
        run=run_codes[order].astype(np.intp),
        y=y,
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
    """
    enc = encode(table, design)
    proteins, prot, feat = enc.proteins, enc.prot, enc.feat
    n_prot = len(proteins)
    problem = build_problem(
        prot, feat, enc.run, enc.y, design, n_proteins=n_prot, compress=compress
    )
    n_features = np.zeros(n_prot, dtype=np.intp)
    if "feature" in problem.factors:
        n_features = problem.n_levels[:, problem.factors.index("feature")].copy()
    else:
        n_features = np.bincount(
            prot, weights=np.r_[True, np.diff(feat) != 0], minlength=n_prot
        ).astype(np.intp)
    cmat = contrast_matrix(design, [(c[1], c[2]) for c in contrasts])
    result = _allocate(problem, design, proteins, [c[0] for c in contrasts], n_features)
    sols: list[tuple[NDArray[np.intp], Bucket, FloatArray, FloatArray]] = []
    for idx, bucket in problem.buckets:
        _fit_bucket(problem, idx, bucket, cmat, result, sols)
    _finish_status(problem, result)
    result.blups = _blups(problem, design, enc, result, sols)
    n_ok = sum(s == "ok" for s in result.status)
    log.info("fitted %d proteins (%d ok)", n_prot, n_ok)
    return result


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
        elevel_quad=np.zeros(problem.elevel_count.size),
    )


def _snap_to_boundary(bucket: Bucket, theta: FloatArray, dev: FloatArray) -> FloatArray:
    """Set tiny free variances to zero when that costs less than :data:`SNAP_TOL`."""
    for f in range(theta.shape[1]):
        cand = bucket.free[:, f] & (theta[:, f] > 0) & (theta[:, f] < SNAP_THETA)
        if not cand.any():
            continue
        trial = theta.copy()
        trial[:, f] = 0.0
        new = evaluate(bucket, trial).dev
        snap = cand & (new - dev < SNAP_TOL)
        theta = np.where(snap[:, None], trial, theta)
        dev = np.where(snap, new, dev)
    return theta


def _fit_bucket(
    problem: Problem,
    idx: NDArray[np.intp],
    bucket: Bucket,
    cmat: FloatArray,
    out: ModelFit,
    sols: list[tuple[NDArray[np.intp], Bucket, FloatArray, FloatArray]],
) -> None:
    opt = minimize(bucket)
    theta = _snap_to_boundary(bucket, opt.theta, opt.dev)
    ev = evaluate(bucket, theta)
    der = derivatives(bucket, theta, ev)
    est = estimates(bucket, theta, ev, der)
    xkeep = problem.xkeep[idx]
    beta = np.where(xkeep, est.beta, np.nan)
    n_cond = len(out.design.conditions)
    beta[:, :n_cond] += problem.ybar[idx, None]
    cov = np.where(xkeep[:, :, None] & xkeep[:, None, :], est.cov_beta, np.nan)
    out.theta[idx] = np.where(bucket.free, theta, np.where(problem.active[idx], 0.0, np.nan))
    # dropped factors have variance 0 by construction
    out.theta[idx] = np.where(~problem.active[idx], 0.0, out.theta[idx])
    out.sigma[idx] = est.sigma
    out.reml_crit[idx] = ev.dev
    out.beta[idx] = beta
    out.cov_beta[idx] = cov
    out.converged[idx] = opt.converged & ev.ok
    out.iterations[idx] = opt.iterations
    if cmat.shape[0]:
        uses = cmat != 0
        ok = ~np.any(uses[None, :, :] & ~xkeep[:, None, :], axis=2)
        cm = np.where(ok[:, :, None], cmat[None, :, :], 0.0) * xkeep[:, None, :]
        estimate, se, df = contrast_tests(bucket, est, der, cm)
        out.estimate[idx] = np.where(ok, estimate, np.nan)
        out.se[idx] = np.where(ok, se, np.nan)
        out.df[idx] = np.where(ok, df, np.nan)
        out.contrast_ok[idx] = ok
    sols.append((idx, bucket, theta, np.concatenate([est.u_k, est.beta], axis=1)))
    if problem.e_fixed and problem.w_rows is not None:
        _elevel_quadratic_forms(problem, idx, bucket, ev.lam, der.s0inv, out.elevel_quad)


def _elevel_quadratic_forms(
    problem: Problem,
    idx: NDArray[np.intp],
    bucket: Bucket,
    lam: FloatArray,
    s0inv: FloatArray,
    target: FloatArray,
) -> None:
    """:math:`a_j' S_0^{-1} a_j` for every eliminated level ``j`` of the bucket's proteins."""
    if problem.w_rows is None:
        return
    starts = problem.e_offset[idx]
    stops = problem.e_offset[idx + 1]
    rows = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops, strict=True)])
    if rows.size == 0:
        return
    pos = np.repeat(np.arange(idx.size), stops - starts)
    block = problem.w_rows[rows].tocoo()
    prot = idx[pos[block.row]]
    local = block.col - problem.dim_offset[prot]
    q_tot = problem.q_k[prot].sum(axis=1)
    d = bucket.dim
    keep = local < q_tot  # random-effect dimensions only (no fixed columns in this model)
    dense_rows = np.zeros((rows.size, d))
    dense_rows[block.row[keep], local[keep]] = block.data[keep]
    a = dense_rows * lam[pos]
    target[rows] = np.einsum("ji,jik,jk->j", a, s0inv[pos], a)


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
            notes.append("REML optimisation did not converge")
        else:
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


def _blups(
    problem: Problem,
    design: RunDesign,
    enc: Encoded,
    out: ModelFit,
    sols: list[tuple[NDArray[np.intp], Bucket, FloatArray, FloatArray]],
) -> pd.DataFrame:
    """BLUPs of every kept random-effect level (``K`` dimensions and eliminated levels)."""
    n_dims = int(problem.dim_offset[-1])
    sol = np.zeros(n_dims)
    theta_e = np.zeros(problem.n_proteins)
    n_x = design.n_fixed
    for idx, bucket, theta, packed in sols:
        d = bucket.dim
        u_k = packed[:, :d]
        beta = packed[:, d:]
        q_tot = problem.q_k[idx].sum(axis=1)
        for i, p in enumerate(idx):
            off = int(problem.dim_offset[p])
            q = int(q_tot[i])
            sol[off : off + q] = -u_k[i, :q]
            sol[off + q : off + q + n_x] = -beta[i]
            sol[off + q + n_x] = 1.0
        e = bucket.efactor
        has = e >= 0
        theta_e[idx[has]] = theta[has, e[has]]
    frames = []
    kf = problem.kdim_factor
    sel = np.flatnonzero(kf >= 0)
    if sel.size:
        prot_of_dim = np.searchsorted(problem.dim_offset, sel, side="right") - 1
        frames.append(
            pd.DataFrame(
                {
                    "protein_code": prot_of_dim,
                    "factor_code": kf[sel],
                    "level_code": problem.kdim_level[sel],
                    "blup": -sol[sel],
                }
            )
        )
    if problem.e_fixed and problem.w_rows is not None:
        out.run_effects = _run_effects(problem, design, enc, out, problem.w_rows @ sol)
    elif problem.w_rows is not None and problem.w_rows.shape[0]:
        resid = problem.w_rows @ sol
        p_of = problem.elevel_protein
        t = theta_e[p_of] ** 2
        blup = t * resid / (1.0 + t * problem.elevel_count)
        frames.append(
            pd.DataFrame(
                {
                    "protein_code": p_of,
                    "factor_code": problem.efactor[p_of],
                    "level_code": problem.elevel_level,
                    "blup": blup,
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=["protein", "factor", "level", "blup"])
    allb = pd.concat(frames, ignore_index=True)
    fitted = np.isin(np.asarray(out.status, dtype=object), FITTED)
    allb = allb[fitted[allb["protein_code"].to_numpy()]]
    return _label_blups(allb, problem, design, enc)


def _run_effects(
    problem: Problem, design: RunDesign, enc: Encoded, out: ModelFit, resid: FloatArray
) -> pd.DataFrame:
    r"""Run means of the protein abundance model with their standard errors.

    For run ``r`` with ``n_r`` observations, :math:`\hat\mu_r = (\sum y - \sum \hat u)/n_r` and
    :math:`\mathrm{Var}(\hat\mu_r) = \sigma^2 (1/n_r + a_r' S_0^{-1} a_r / n_r^2)` with
    :math:`a_r = \tilde\Lambda w_r` (block inverse of the mixed-model equations).
    """
    p_of = problem.elevel_protein
    n_r = problem.elevel_count.astype(np.float64)
    estimate = resid / n_r + problem.ybar[p_of]
    se = out.sigma[p_of] * np.sqrt(1.0 / n_r + out.elevel_quad / n_r**2)
    runs = np.asarray(design.runs, dtype=object)
    return pd.DataFrame(
        {
            "protein": np.asarray(enc.proteins, dtype=object)[p_of],
            "run": runs[problem.elevel_level],
            "abundance": estimate,
            "se": se,
            "n_features": problem.elevel_count,
        }
    )


def _label_blups(
    allb: pd.DataFrame, problem: Problem, design: RunDesign, enc: Encoded
) -> pd.DataFrame:
    factor_names = np.asarray(problem.factors, dtype=object)
    labels = []
    for f, name in enumerate(problem.factors):
        rows = allb["factor_code"].to_numpy() == f
        codes = allb.loc[rows, "level_code"].to_numpy()
        if name == "feature":
            labels.append(pd.Series(enc.features[codes], index=allb.index[rows]))
        else:
            levels = np.asarray(design.factor_levels[name], dtype=object)
            labels.append(pd.Series(levels[codes], index=allb.index[rows]))
    level = pd.concat(labels).reindex(allb.index) if labels else pd.Series(dtype=object)
    prot_names = np.asarray(enc.proteins, dtype=object)
    return pd.DataFrame(
        {
            "protein": prot_names[allb["protein_code"].to_numpy()],
            "factor": factor_names[allb["factor_code"].to_numpy()],
            "level": level.to_numpy(),
            "blup": allb["blup"].to_numpy(),
        }
    ).sort_values(["protein", "factor"], kind="stable", ignore_index=True)
