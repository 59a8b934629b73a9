r"""Parametric bootstrap of the contrasts' tests, for small designs.

Model and notation
------------------
The per-protein model of :mod:`pepmix.model.reml`, :math:`y = X\beta + \sum_k Z_k b_k + e`,
:math:`b_k \sim N(0, \sigma^2\theta_k^2 I)`, :math:`e_i \sim N(0, \sigma^2/w_i)`, and a pairwise
contrast :math:`c'\beta` (numerator minus denominator condition). The statistic is the Wald
:math:`t` of the REML fit,

.. math:: t = c'\hat\beta \,/\, \sqrt{\hat\sigma^2\,c'(X'\hat H^{-1}X)^{-1}c},

the studentised contrast (lmerTest's ``t value``, before the workflow's df cap and
empirical-Bayes moderation, which borrow from other proteins and are not a per-protein
statistic). Its reference distribution in small designs is the issue: Satterthwaite's
:math:`t_\nu` is an approximation, and with 2-4 samples per condition the df are uncertain.

Null model and simulation
-------------------------
As ``pbkrtest::PBmodcomp`` (Halekoh & Hojsgaard 2014, *J. Stat. Softw.* 59(9)), the data are
simulated from the model *fitted under* :math:`H_0: c'\beta = 0` (the "small model"): here
the same random terms and the fixed-effect design :math:`X_0 = X N` with the numerator and
denominator columns merged (:func:`null_design`), fitted by REML. Restricted (null) estimates
for the bootstrap data-generating process give bootstrap tests with smaller size distortion
than unrestricted ones (Davidson & MacKinnon 1999, *Econometric Theory* 15:361). :math:`t` is
invariant to :math:`y \mapsto a y + X_0 c_0` (:math:`a > 0`), so its null distribution
depends on the null fit's ratios :math:`\theta_0` only: the replicates are drawn with
:math:`\beta = 0, \sigma = 1` at the protein's own cells and observation weights, the full
model is refitted to each with the batched engine, and

.. math:: p = \frac{1 + \#\{|t^*_b| \ge |t|\}}{1 + B'}

over the :math:`B'` replicates whose refit has a finite optimum (Davison & Hinkley 1997, eq.
4.11). With ``model.robust`` the weights are held at their final values (as in
:mod:`pepmix.model.variance_tests`): the statistic is then :math:`t` of weighted REML at those
weights, i.e. the reported :math:`t` without Huber's variance factor (a constant that cancels
in the comparison). With ``model.shrinkage`` the plain REML criterion is used.

Why :math:`t` and not ``PBmodcomp``'s likelihood ratio: ``PBmodcomp`` refits both models by
maximum likelihood; the engine optimises the REML criterion, whose likelihoods are not
comparable across fixed-effect designs. For one contrast (1 df) the Wald :math:`t^2` and the
LRT are asymptotically equivalent, and both are calibrated here by simulation from the same
null fit, so their bootstrap p-values agree up to Monte Carlo error and small-sample
differences between the two statistics (measured in ``tests/reference/bootstrap``).

Seeds: one generator per protein and contrast, seeded by the base seed, ``contrast:<name>``
and a CRC32 of the protein's name (:func:`pepmix.model.variance_tests.protein_seed`): results
do not depend on sharding or on which other proteins are bootstrapped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from pepmix.model.design import RunDesign
from pepmix.model.fit import FITTED, ModelFit
from pepmix.model.optimize import minimize
from pepmix.model.reml import Bucket, evaluate
from pepmix.model.suffstats import Problem, build_problem
from pepmix.model.variance_tests import (
    BOOT_TIE,
    Observations,
    _chunks,
    _finite,
    _replicate,
    _simulate,
    protein_seed,
    refit_problem,
)

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
BoolArray = NDArray[np.bool_]

#: columns of :func:`bootstrap_contrasts`
COLUMNS = ["protein", "contrast", "log2fc", "t", "p_boot", "n_boot", "B"]


def null_design(design: RunDesign, numerator: str, denominator: str) -> RunDesign:
    """``design`` under :math:`H_0`: the numerator's and denominator's fixed-effect columns
    merged into one (the random terms, conditions and factor codes are unchanged)."""
    i = design.conditions.index(numerator)
    j = design.conditions.index(denominator)
    x0 = design.x.copy()
    x0[:, i] += x0[:, j]
    names = list(design.x_names)
    names[i] = f"{names[i]}+{names[j]}"
    del names[j]
    return replace(design, x=np.delete(x0, j, axis=1), x_names=names)


def _plain(bucket: Bucket) -> Bucket:
    return replace(bucket, prior_df=None, prior_ratio=None)


def bucket_t(bucket: Bucket, theta: FloatArray, cvec: FloatArray) -> tuple[FloatArray, FloatArray]:
    r"""Contrast estimate and Wald :math:`t` at ``theta`` for every protein of a bucket.

    ``cvec`` (length ``n_x``) is the contrast over the fixed effects. With :math:`S = LL'`
    (:mod:`pepmix.model.reml`; dimensions: random, fixed, response) and :math:`L_0` its leading
    block, :math:`c'\hat\beta = (L_0^{-1}\tilde c)'\ell` where :math:`\ell` is the last row of
    :math:`L` without its diagonal, and :math:`\mathrm{Var} = \hat\sigma^2 |L_0^{-1}\tilde c|^2`
    with :math:`\hat\sigma^2 = r^2/\nu`: one triangular solve per protein.
    """
    ev = evaluate(bucket, theta)
    d = bucket.dim
    ctil = np.zeros(d - 1)
    ctil[d - 1 - bucket.n_x :] = cvec
    low = ev.chol[:, :-1, :-1]
    zc = np.linalg.solve(low, np.broadcast_to(ctil, (low.shape[0], d - 1))[:, :, None])[:, :, 0]
    zb = ev.chol[:, -1, :-1]
    est = np.sum(zc * zb, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(ev.pwrss / bucket.nu * np.sum(zc * zc, axis=1))
        t = est / se
    bad = ~ev.ok
    return np.where(bad, np.nan, est), np.where(bad, np.nan, t)


def _estimable(problem: Problem, i: int, j: int) -> BoolArray:
    return np.asarray(problem.fittable & problem.xkeep[:, i] & problem.xkeep[:, j])


def observed_t(
    problem: Problem, cvec: FloatArray, estimable: BoolArray, theta_start: FloatArray | None
) -> tuple[FloatArray, FloatArray]:
    """Estimate and :math:`t` of contrast ``cvec`` for every estimable protein (REML refit
    warm-started at ``theta_start``, the reported fit's theta; NaN elsewhere)."""
    est = np.full(problem.n_proteins, np.nan)
    t = np.full(problem.n_proteins, np.nan)
    for idx, bucket in problem.buckets:
        rows = np.flatnonzero(estimable[idx])
        if rows.size == 0:
            continue
        sub = _plain(bucket).take(rows)
        start = None if theta_start is None else np.nan_to_num(theta_start[idx[rows]])
        res = minimize(sub, start)
        good = _finite(res.theta, res.dev, res.converged)
        e, tt = bucket_t(sub, res.theta, cvec)
        est[idx[rows]] = np.where(good, e, np.nan)
        t[idx[rows]] = np.where(good, tt, np.nan)
    return est, t


def null_theta(problem0: Problem, rows: IntArray) -> FloatArray:
    """REML estimates of the null model's ratios for proteins ``rows`` (NaN where the null fit
    has no finite optimum)."""
    theta = np.full((problem0.n_proteins, len(problem0.factors)), np.nan)
    want = np.zeros(problem0.n_proteins, dtype=bool)
    want[rows] = True
    for idx, bucket in problem0.buckets:
        sel = np.flatnonzero(want[idx])
        if sel.size == 0:
            continue
        res = minimize(_plain(bucket).take(sel))
        good = _finite(res.theta, res.dev, res.converged)
        theta[idx[sel]] = np.where(good[:, None], res.theta, np.nan)
    return theta[rows]


def _boot_t(
    obs: Observations,
    rows: IntArray,
    design: RunDesign,
    cvec: FloatArray,
    theta0: FloatArray,
    rngs: Sequence[np.random.Generator],
    n_boot: int,
) -> FloatArray:
    """Bootstrap :math:`t^*` for proteins ``rows``: shape ``(len(rows), n_boot)``; the refits
    start from the optimiser's grid, as the observed fits do."""
    copies, _ = _replicate(obs, rows, n_boot)
    y = _simulate(copies, design, tuple(design.spec.random), theta0, rngs, n_boot)
    weighted = bool(np.any(copies.weights != 1.0))
    problem = build_problem(
        copies.prot,
        copies.feat,
        copies.run,
        y,
        design,
        n_proteins=rows.size * n_boot,
        weights=copies.weights if weighted else None,
    )
    i = int(np.flatnonzero(cvec > 0)[0])
    j = int(np.flatnonzero(cvec < 0)[0])
    ok = _estimable(problem, i, j)
    out = np.full(rows.size * n_boot, np.nan)
    for idx, bucket in problem.buckets:
        sel = np.flatnonzero(ok[idx])
        if sel.size == 0:
            continue
        sub = _plain(bucket).take(sel)
        res = minimize(sub)
        good = _finite(res.theta, res.dev, res.converged)
        _, t = bucket_t(sub, res.theta, cvec)
        out[idx[sel]] = np.where(good, t, np.nan)
    return out.reshape(rows.size, n_boot)


def _one_contrast(
    fit: ModelFit,
    problem: Problem,
    start: FloatArray | None,
    contrast: tuple[str, str, str],
    select: BoolArray,
    n_boot: int,
    seed: int,
) -> pd.DataFrame:
    """Rows of :func:`bootstrap_contrasts` for one contrast ``(name, numerator, denominator)``."""
    name, num, den = contrast
    design = fit.design
    enc = fit.encoded
    if enc is None:
        raise ValueError("bootstrap_contrasts: the fit holds no encoded observations")
    i, j = design.conditions.index(num), design.conditions.index(den)
    cvec = np.zeros(design.n_fixed)
    cvec[i], cvec[j] = 1.0, -1.0
    estimable = _estimable(problem, i, j) & select
    est, t = observed_t(problem, cvec, estimable, start)
    todo = np.flatnonzero(np.isfinite(t))
    weights = fit.weights if fit.weights is not None else np.ones(enc.y.size)
    obs = Observations(prot=enc.prot, feat=enc.feat, run=enc.run, weights=weights)
    p_boot = np.full(problem.n_proteins, np.nan)
    n_valid = np.zeros(problem.n_proteins, dtype=np.intp)
    if todo.size:
        problem0 = build_problem(
            enc.prot,
            enc.feat,
            enc.run,
            enc.y,
            null_design(design, num, den),
            n_proteins=problem.n_proteins,
            weights=fit.weights,
        )
        theta0 = null_theta(problem0, todo)
        keep = np.all(np.isfinite(theta0), axis=1)
        todo, theta0 = todo[keep], theta0[keep]
        sizes = np.bincount(enc.prot, minlength=problem.n_proteins)
        pos = {int(r): k for k, r in enumerate(todo)}
        for rows in _chunks(todo, sizes, n_boot):
            rngs = [
                np.random.default_rng(protein_seed(seed, fit.proteins[r], f"contrast:{name}"))
                for r in rows
            ]
            th = theta0[[pos[int(r)] for r in rows]]
            star = _boot_t(obs, rows, design, cvec, th, rngs, n_boot)
            valid = np.isfinite(star)
            hits = np.sum(valid & (np.abs(star) >= np.abs(t[rows, None]) - BOOT_TIE), axis=1)
            n_valid[rows] = valid.sum(axis=1)
            p_boot[rows] = (1.0 + hits) / (1.0 + n_valid[rows])
    chosen = np.flatnonzero(select)
    log.info("bootstrap (B=%d): contrast %s, %d proteins refitted", n_boot, name, todo.size)
    return pd.DataFrame(
        {
            "protein": np.asarray(fit.proteins, dtype=object)[chosen],
            "contrast": name,
            "log2fc": est[chosen],
            "t": t[chosen],
            "p_boot": p_boot[chosen],
            "n_boot": n_valid[chosen],
            "B": n_boot,
        }
    )


def bootstrap_contrasts(
    fit: ModelFit,
    contrasts: Sequence[tuple[str, str, str]],
    n_boot: int,
    seed: int = 1,
    proteins: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Parametric-bootstrap p-values of the contrasts' :math:`t` tests (module docstring).

    Parameters
    ----------
    fit : ModelFit
        A fit holding its encoded observations (:func:`pepmix.model.fit.fit_proteins`).
    contrasts : sequence of (name, numerator, denominator)
        Pairwise condition contrasts.
    n_boot : int
        Replicates ``B`` per protein and contrast.
    seed : int, default 1
        Base seed.
    proteins : sequence of str, optional
        Proteins to bootstrap (default None: every fitted protein).

    Returns
    -------
    pandas.DataFrame
        :data:`COLUMNS`, one row per selected fitted protein and contrast (contrasts in the
        given order): ``log2fc`` and ``t`` of the REML fit at the fit's weights (NaN where the
        contrast is not estimable), ``p_boot`` (NaN where not bootstrapped), ``n_boot`` the
        replicates with a finite refit, ``B`` the replicates asked for.
    """
    if fit.encoded is None:
        raise ValueError("bootstrap_contrasts: the fit holds no encoded observations")
    problem, start = refit_problem(fit)
    select = np.isin(np.asarray(fit.status, dtype=object), FITTED)
    if proteins is not None:
        select &= np.isin(np.asarray(fit.proteins, dtype=object), list(proteins))
    frames = [_one_contrast(fit, problem, start, c, select, n_boot, seed) for c in contrasts]
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(frames, ignore_index=True)[COLUMNS]
