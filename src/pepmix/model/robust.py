r"""Robust fitting: M-estimation with Huber weights by iteratively reweighted REML.

One peptide that misbehaves in some runs (a shared or modified peptide, an interference, a
misquantified fragment) shifts a least-squares protein estimate by a fraction of its deviation.
msqrob (Goeminne et al. 2016, *Mol Cell Proteomics* 15:657; msqrob2, Sticker et al. 2020,
*Mol Cell Proteomics* 19:1209) down-weights such observations with Huber's M-estimator
(Huber 1964, *Ann Math Stat* 35:73), computed by iteratively reweighted (RE)ML. This module does
the same inside the batched engine.

Model and notation
------------------
Weighted model :math:`y = X\beta + Zb + e`, :math:`e_i \sim N(0, \sigma^2 / w_i)` (weighted REML:
see :mod:`pepmix.model.suffstats`).

Start: Huber weights of the residuals of Tukey's median polish of each protein's feature x run
table (:func:`polish_residuals`; the robust summary MSstats uses). Iteratively reweighted fits
started from least squares need many rounds to leave the least-squares solution when a third of
a condition's observations are outliers (measured: 5-10 rounds before the estimate moves); the
median polish residuals show an outlying peptide at once, so the first weighted fit is already
close to the M-estimate. Then one iteration, for every fitted protein:

1. conditional residuals :math:`r_i = y_i - \hat y_i`, :math:`\hat y = X\hat\beta + Z\hat b`
   (fixed effects plus BLUPs, as ``resid()`` of an lme4 fit);
2. robust scale :math:`s = 1.4826\,\mathrm{median}_i |r_i - \mathrm{median}(r)|` (the MAD of the
   protein's residuals, as msqrob2's ``mad(res)``);
3. Huber weights :math:`w_i = \min(1, k / |r_i / s|)`, :math:`k = 1.345` (95 % efficiency at the
   normal model; ``MASS::psi.huber``);
4. refit with these weights, warm-started at the previous :math:`\theta`.

Iteration stops for a protein when its weights change by less than :data:`WEIGHT_TOL` (max
absolute change) or after :data:`MAX_ITER` refits; only proteins whose weights changed are
refitted, each warm-started at its previous :math:`\theta`, and only their residuals, scales and
weights are recomputed (the others' would come out the same). A protein whose MAD is 0 (at least
half of its residuals equal) keeps its weights.

``detail`` notes, per protein: ``down-weighted: N observations with weight < 0.5 (min w)`` when
some observation's residual exceeds :math:`k s / 0.5 = 2.69 s` (under normal errors 0.7 % of
observations do), and ``robust weights not converged after 10 refits`` when the weights would
still change by more than :data:`UNSETTLED`. The status is unchanged.

Inference
---------
Standard errors and Satterthwaite df come from the final weighted fit with the weights treated
as known, as msqrob2 reports them. That alone neglects that the weights depend on the residuals:
at the normal model the weighted fit's variance of a fixed effect,
:math:`\sigma_w^2 (X'WX)^{-1}` with :math:`\sigma_w^2 = r'Wr/\nu \approx E[\psi']\sigma^2`,
is :math:`E[\psi'] / E[w]` times :math:`\sigma^2/n` per unit of design, whereas the M-estimator's
asymptotic variance is :math:`E[\psi^2] / E[\psi']^2` times the same (Huber 1981, *Robust
Statistics*, sections 3.2 and 7.6; :math:`\psi(z) = z\,w(z)`). Measured on null simulations the
uncorrected p-values are anti-conservative (5 % level: 6.4-7.5 % rejections). The reported
residual variance, fixed-effect covariance and contrast standard errors are therefore multiplied
by the normal-model consistency factor

.. math:: c = \frac{E[\psi^2]\,E[w]}{E[\psi']^3} = 1.230 \quad (k = 1.345),

with :math:`E[\psi'] = 2\Phi(k) - 1`, :math:`E[\psi^2] = E[\psi'] - 2k\varphi(k) +
2k^2(1 - \Phi(k))`, :math:`E[w] = E[\psi'] + k\,E_1(k^2/2)/\sqrt{2\pi}`
(:func:`variance_factor`); the relative standard deviations :math:`\theta` are divided by
:math:`\sqrt c` so that the random-effect variances :math:`\theta^2\sigma^2` stay as fitted.
Satterthwaite df are those of the weighted fit. Still neglected: the variability of the
estimated weights beyond this first-order factor (no per-protein sandwich estimate). Measured
side effect: limma's prior df across proteins is smaller than without weights (one simulation:
10.2 against 16.3; the variances of small proteins reweighted by the MAD of a few residuals are
more dispersed), which costs about half a point of power. The reported REML criterion is that of
the final weighted fit, including :math:`-\sum_i \log w_i` (lme4's ``REMLcrit`` with
``weights=``).

Degenerate weighted fits: down-weighting can let the random effects fit the remaining
observations exactly, so that the weighted criterion has no finite optimum (a relative SD beyond
:data:`pepmix.model.optimize.DIVERGENT_THETA`) although the unweighted one has. Such a protein
is refitted by least squares (weights 1, cold start, no variance factor) and keeps that fit;
``detail`` says ``robust fit degenerate ...: least squares``. In the simulations of
``tests/unit/simulate_da.py`` (2-30 features, most with 2-4) this is about 3 % of proteins.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import special

from pepmix.model._kernel import segment_medians
from pepmix.model.design import RunDesign
from pepmix.model.fit import Encoded, ModelFit, _allocate, fit_problem
from pepmix.model.optimize import DIVERGENT_THETA
from pepmix.model.suffstats import Problem, build_problem

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

#: Huber tuning constant (95 % asymptotic efficiency at the normal distribution)
#: default ``model.robust`` of the workflow (the config schema's default is checked against it);
#: :func:`pepmix.model.fit.fit_proteins` itself fits plain REML unless asked
DEFAULT_METHOD = "huber"
HUBER_K = 1.345
#: MAD to standard deviation at the normal distribution
MAD_SCALE = 1.482602218505602
#: weights have converged when none changes by more than this (measured against 1e-3 on 2,000
#: simulated proteins x 12 and 200 runs: log2 FC moves by at most 0.06 SE, 99 % by < 0.015 SE,
#: SEs by < 2.1 %; ~30 % fewer refits)
WEIGHT_TOL = 1e-2
#: refits at most
MAX_ITER = 10
#: weights still changing by more than this after :data:`MAX_ITER` refits are noted in ``detail``
#: (smaller changes are limit cycles of the MAD between neighbouring residuals: measured, they
#: move the estimates by less than 0.2 standard errors)
UNSETTLED = 0.05
#: observations with a weight below this are counted in the protein's ``detail``
LOW_WEIGHT = 0.5
#: median polish sweeps for the start weights (MSstats' ``medpolish`` stops at 10)
POLISH_SWEEPS = 10

#: per-protein arrays of :class:`ModelFit` that a refit replaces
_PROTEIN_ARRAYS = (
    "theta", "sigma", "reml_crit", "beta", "cov_beta", "estimate", "se", "df", "contrast_ok",
    "converged", "iterations", "not_identifiable", "beta_centred", "dcov_beta", "vcov_varpar",
)  # fmt: skip


def variance_factor(k: float = HUBER_K) -> float:
    """Normal-model factor :math:`c = E[\\psi^2] E[w] / E[\\psi']^3` (module docstring).

    Parameters
    ----------
    k : float, default 1.345
        Huber tuning constant.
    """
    # the normal cdf, pdf and upper tail exactly as scipy.stats.norm computes them (ndtr,
    # exp(-k^2/2)/sqrt(2 pi), ndtr(-k)), without importing scipy.stats (~0.15 s per fit job)
    pdf = float(np.exp(-(k**2) / 2.0) / np.sqrt(2 * np.pi))
    d_psi = 2.0 * float(special.ndtr(k)) - 1.0
    psi2 = d_psi - 2.0 * k * pdf + 2.0 * k * k * float(special.ndtr(-k))
    mean_w = d_psi + k * float(special.exp1(k * k / 2.0)) / np.sqrt(2.0 * np.pi)
    return float(psi2 * mean_w / d_psi**3)


def huber_weights(resid: FloatArray, scale: FloatArray, k: float = HUBER_K) -> FloatArray:
    """Huber weights :math:`\\min(1, k s / |r|)`; 1 where ``scale`` is not positive.

    Parameters
    ----------
    resid : ndarray
        Residuals.
    scale : ndarray
        Robust scale of each residual (broadcast against ``resid``).
    k : float, default 1.345
        Tuning constant.
    """
    limit = k * scale
    absr = np.abs(resid)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(absr > limit, limit / absr, 1.0)
    return np.asarray(np.where(scale > 0, w, 1.0), dtype=np.float64)


def group_median(
    values: FloatArray, group: IntArray, n_groups: int, order: IntArray | None = None
) -> FloatArray:
    """Median of ``values`` per group code (NaN for empty groups).

    ``order`` (optional, default None: computed here when ``group`` is not sorted) is a stable
    sort order of ``group``, for callers that take many medians over the same groups.
    """
    presorted = order is None and (group.size < 2 or bool(np.all(group[1:] >= group[:-1])))
    if order is None and not presorted:
        order = np.argsort(group, kind="stable")
    sorted_v = values if order is None else values[order]
    counts = np.bincount(group, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    out = np.empty(n_groups)
    segment_medians(np.ascontiguousarray(sorted_v, dtype=np.float64), starts, out)
    return out


def robust_scale(resid: FloatArray, prot: IntArray, n_prot: int) -> FloatArray:
    """MAD of the residuals per protein, scaled to a normal standard deviation."""
    med = group_median(resid, prot, n_prot)
    mad = group_median(np.abs(resid - med[prot]), prot, n_prot)
    return np.asarray(MAD_SCALE * mad, dtype=np.float64)


def polish_residuals(enc: Encoded, n_sweeps: int = POLISH_SWEEPS) -> FloatArray:
    """Residuals of Tukey's median polish of every protein's feature x run table.

    Alternately subtracts feature (row) and run (column) medians, ``n_sweeps`` times each
    (default :data:`POLISH_SWEEPS`); missing cells are skipped.
    """
    n_prot = len(enc.proteins)
    n_runs = max(len(enc.runs), 1)
    cell = enc.prot.astype(np.intp) * n_runs + enc.run
    n_feat = int(enc.feat.max()) + 1 if enc.feat.size else 0
    resid = enc.y.copy()
    cell_order = np.argsort(cell, kind="stable")
    for _ in range(n_sweeps):
        resid -= group_median(resid, enc.feat, n_feat)[enc.feat]
        resid -= group_median(resid, cell, n_prot * n_runs, cell_order)[cell]
    return resid


def initial_weights(enc: Encoded) -> FloatArray:
    """Huber weights of the median polish residuals, MAD scale per protein."""
    resid = polish_residuals(enc)
    scale = robust_scale(resid, enc.prot, len(enc.proteins))
    return huber_weights(resid, scale[enc.prot])


def fitted_values(
    enc: Encoded, design: RunDesign, factors: tuple[str, ...], out: ModelFit, pieces: FloatArray
) -> FloatArray:
    """Conditional fitted values :math:`X\\hat\\beta + Z\\hat b` of every observation.

    ``pieces`` is the coded prediction table as an array with columns ``protein_code,
    factor_code, level_code, blup``; ``out.beta`` holds the fixed effects (NaN: dropped column,
    which no observation of the protein uses).
    """
    n_prot = len(enc.proteins)
    beta = np.nan_to_num(out.beta)
    # fixed part per (protein, run) cell, then looked up per observation
    n_runs = design.x.shape[0]
    yhat = (beta @ design.x.T).ravel()[enc.prot.astype(np.intp) * n_runs + enc.run]
    pcode = pieces[:, 0].astype(np.intp)
    fcode = pieces[:, 1].astype(np.intp)
    lcode = pieces[:, 2].astype(np.intp)
    blup = pieces[:, 3]
    for f, name in enumerate(factors):
        rows = fcode == f
        if not rows.any():
            continue
        if name == "feature":
            table = np.zeros(int(enc.feat.max()) + 1)
            table[lcode[rows]] = blup[rows]
            yhat += table[enc.feat]
        else:
            codes = design.factor_codes[name]
            n_lev = int(codes.max()) + 1
            table = np.zeros(n_prot * n_lev)
            table[pcode[rows] * n_lev + lcode[rows]] = blup[rows]
            yhat += table[enc.prot * n_lev + codes[enc.run]]
    return np.asarray(yhat, dtype=np.float64)


def _coded(pieces: list[pd.DataFrame]) -> FloatArray:
    cols = ["protein_code", "factor_code", "level_code", "blup"]
    if not pieces:
        return np.zeros((0, 4))
    return np.concatenate([p[cols].to_numpy(dtype=np.float64) for p in pieces])


def _refit(
    problem: Problem,
    enc: Encoded,
    design: RunDesign,
    cmat: FloatArray,
    out: ModelFit,
    subset: IntArray,
    weights: FloatArray,
    warm: bool = True,
) -> FloatArray:
    """Refit the proteins ``subset`` with ``weights``; scatter into ``out``; return predictions
    (coded, global protein codes)."""
    local = np.full(problem.n_proteins, -1, dtype=np.intp)
    local[subset] = np.arange(subset.size)
    rows = local[enc.prot] >= 0
    sub = build_problem(
        local[enc.prot[rows]],
        enc.feat[rows],
        enc.run[rows],
        enc.y[rows],
        design,
        n_proteins=subset.size,
        weights=weights[rows],
    )
    sub_out = _allocate(
        sub, design, [enc.proteins[i] for i in subset], out.contrast_names, out.n_features[subset]
    )
    # the refit uses the same variance-ratio prior (model.shrinkage) as the first fit
    sub_out.prior = out.prior
    # a weighted fit without finite optimum falls back to least squares (rule of this module),
    # not to a reduced model (pepmix.model.divergent, the rule of unweighted fits)
    sub_out.reduce_divergent = False
    sub_out.theta_reml = np.full(sub_out.theta.shape, np.nan)
    theta0 = np.nan_to_num(out.theta[subset]) if warm else None
    pieces = _coded(fit_problem(sub, cmat, sub_out, theta0))
    pieces[:, 0] = subset[pieces[:, 0].astype(np.intp)]
    for name in _PROTEIN_ARRAYS:
        getattr(out, name)[subset] = getattr(sub_out, name)
    return pieces


def irls(
    problem: Problem,
    enc: Encoded,
    design: RunDesign,
    cmat: FloatArray,
    out: ModelFit,
    pieces: list[pd.DataFrame],
    weights: FloatArray,
) -> tuple[list[pd.DataFrame], FloatArray, list[str], NDArray[np.bool_]]:
    """Iterate Huber weights and weighted refits from the fit in ``out`` (with ``weights``).

    Returns the final coded predictions, the observation weights (order of ``enc``), a
    ``detail`` note per protein (empty when no observation has a weight below
    :data:`LOW_WEIGHT`) and which proteins fell back to least squares. ``out`` is updated in
    place (fixed effects, variances, contrasts); :func:`correct_variance` is left to the caller.
    """
    n_prot = problem.n_proteins
    if problem.e_fixed:
        raise ValueError("robust fitting is for the differential model, not fixed run means")
    current = _coded(pieces)
    rounds = 1
    n_refit = 0
    given_up = np.zeros(n_prot, dtype=bool)
    # Huber weights of the current fits; recomputed only for proteins refitted since
    touched = np.ones(n_prot, dtype=bool)
    new = np.ones(enc.y.size)
    scale = np.full(n_prot, np.nan)

    def refit(subset: IntArray, warm: bool = True) -> None:
        nonlocal current, n_refit
        part = _refit(problem, enc, design, cmat, out, subset, weights, warm)
        replaced = np.zeros(n_prot, dtype=bool)
        replaced[subset] = True
        current = np.concatenate([current[~replaced[current[:, 0].astype(np.intp)]], part])
        n_refit += subset.size
        touched[subset] = True

    for it in range(1, MAX_ITER + 2):
        # a weighted fit without finite optimum (down-weighting let the random effects fit the
        # rest exactly: the residual scale collapses) falls back to least squares for good
        collapsed = _diverged(out) & ~given_up
        collapsed &= np.bincount(enc.prot, weights=weights < 1.0, minlength=n_prot) > 0
        if collapsed.any():
            given_up |= collapsed
            weights = np.where(collapsed[enc.prot], 1.0, weights)
            refit(np.flatnonzero(collapsed), warm=False)
        _update_weights(enc, design, problem.factors, out, current, touched, new, scale)
        touched[:] = False
        eligible = problem.fittable & out.converged & np.isfinite(scale) & ~given_up
        delta = _protein_max(
            np.abs(np.where(eligible[enc.prot], new, 1.0) - weights), enc.prot, n_prot
        )
        changing = delta > WEIGHT_TOL
        if not changing.any() or it > MAX_ITER:
            break
        weights = np.where(changing[enc.prot], np.where(eligible[enc.prot], new, 1.0), weights)
        refit(np.flatnonzero(changing))
        rounds += 1
    # the reported fit is that of ``weights``; ``delta`` is how far they still are from the
    # Huber weights of its residuals
    unsettled = delta > UNSETTLED
    log.info(
        "robust weights: %d proteins still changing by more than %g after %d refits, %d by "
        "more than %g",
        int(changing.sum()),
        WEIGHT_TOL,
        MAX_ITER,
        int(unsettled.sum()),
        UNSETTLED,
    )
    log.info(
        "robust (Huber) fit: %d protein refits in %d rounds; %d proteins fitted by least squares "
        "(weighted fit degenerate)",
        n_refit,
        rounds,
        int(given_up.sum()),
    )
    final = pd.DataFrame(
        {
            "protein_code": current[:, 0].astype(np.intp),
            "factor_code": current[:, 1].astype(np.intp),
            "level_code": current[:, 2].astype(np.intp),
            "blup": current[:, 3],
        }
    )
    final["weight_mean"], final["weight_min"] = _level_weights(
        current, enc, design, problem.factors, weights
    )
    notes = _notes(enc.prot, weights, n_prot, unsettled, given_up)
    return [final], weights, notes, given_up


def _update_weights(
    enc: Encoded,
    design: RunDesign,
    factors: tuple[str, ...],
    out: ModelFit,
    current: FloatArray,
    touched: NDArray[np.bool_],
    weights: FloatArray,
    scale: FloatArray,
) -> None:
    """Huber weights (into ``weights``) and MAD scale (into ``scale``) of the proteins
    ``touched``, from their current fit (``current``: coded predictions); other proteins keep
    theirs, which are what recomputing them would give (same fit, same residuals)."""
    if not touched.any():
        return
    rows = touched[enc.prot]
    sub = enc
    part = current
    if not rows.all():
        sub = Encoded(
            proteins=enc.proteins,
            features=enc.features,
            prot=enc.prot[rows],
            feat=enc.feat[rows],
            run=enc.run[rows],
            y=enc.y[rows],
            runs=enc.runs,
        )
        part = current[touched[current[:, 0].astype(np.intp)]]
    resid = sub.y - fitted_values(sub, design, factors, out, part)
    s = robust_scale(resid, sub.prot, len(enc.proteins))
    scale[touched] = s[touched]
    weights[rows] = huber_weights(resid, s[sub.prot])


def _protein_max(values: FloatArray, prot: IntArray, n_prot: int) -> FloatArray:
    """Maximum of ``values`` per protein (``prot`` sorted ascending); 0 without observations."""
    counts = np.bincount(prot, minlength=n_prot)
    out = np.zeros(n_prot)
    has = counts > 0
    if values.size:
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        out[has] = np.maximum.reduceat(values, starts[has])
    return out


def correct_variance(out: ModelFit, fitted: NDArray[np.bool_]) -> None:
    """Apply :func:`variance_factor` to the proteins ``fitted`` (module docstring).

    Called after the statuses are set: the rule for a divergent variance ratio looks at the
    fitted :math:`\theta`.
    """
    c = variance_factor()
    root = np.sqrt(c)
    out.sigma[fitted] *= root
    out.theta[fitted] /= root
    out.cov_beta[fitted] *= c
    # the df are scale-free: V and its derivatives scale together (pepmix.model.stored)
    out.dcov_beta[fitted] *= c
    out.se[fitted] *= root


def _diverged(out: ModelFit) -> NDArray[np.bool_]:
    """Proteins whose fit has no finite optimum (the rule of ``fit._finish_status``)."""
    with np.errstate(invalid="ignore"):
        return np.asarray(np.nanmax(np.nan_to_num(out.theta, nan=0.0), axis=1) > DIVERGENT_THETA)


def _notes(
    prot: IntArray,
    weights: FloatArray,
    n_prot: int,
    moving: NDArray[np.bool_],
    given_up: NDArray[np.bool_],
) -> list[str]:
    """``detail`` note per protein: observations below :data:`LOW_WEIGHT`, unconverged weights,
    least-squares fallback."""
    low = np.bincount(prot, weights=weights < LOW_WEIGHT, minlength=n_prot).astype(np.intp)
    w_min = np.ones(n_prot)
    np.minimum.at(w_min, prot, weights)
    notes = []
    for n, w, m, g in zip(
        low.tolist(), w_min.tolist(), moving.tolist(), given_up.tolist(), strict=True
    ):
        parts = [f"down-weighted: {n} observations with weight < {LOW_WEIGHT} (min {w:.2f})"] * (
            n > 0
        )
        if m:
            parts.append(f"robust weights not converged after {MAX_ITER} refits")
        if g:
            parts.append(
                "robust fit degenerate (down-weighting left no residual variance): least squares"
            )
        notes.append("; ".join(parts))
    return notes


def _level_weights(
    coded: FloatArray, enc: Encoded, design: RunDesign, factors: tuple[str, ...], w: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Mean and minimum observation weight of each coded prediction row's level."""
    n_prot = len(enc.proteins)
    pcode = coded[:, 0].astype(np.intp)
    fcode = coded[:, 1].astype(np.intp)
    lcode = coded[:, 2].astype(np.intp)
    mean = np.full(coded.shape[0], np.nan)
    low = np.full(coded.shape[0], np.nan)
    for f, name in enumerate(factors):
        rows = fcode == f
        if not rows.any():
            continue
        if name == "feature":
            size, obs_key, row_key = int(enc.feat.max()) + 1, enc.feat, lcode[rows]
        else:
            codes = design.factor_codes[name]
            n_lev = int(codes.max()) + 1
            size = n_prot * n_lev
            obs_key = enc.prot * n_lev + codes[enc.run]
            row_key = pcode[rows] * n_lev + lcode[rows]
        total = np.bincount(obs_key, weights=w, minlength=size)
        count = np.bincount(obs_key, minlength=size)
        w_min = np.ones(size)
        np.minimum.at(w_min, obs_key, w)
        mean[rows] = total[row_key] / np.maximum(count[row_key], 1)
        low[rows] = w_min[row_key]
    return mean, low
