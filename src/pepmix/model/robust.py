r"""Robust fitting: M-estimation with Huber (or bisquare) weights by iteratively reweighted REML.

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
half of its residuals equal) keeps its weights. The refits are light
(:func:`pepmix.model.fit.fit_problem_light`): the next weights need only :math:`\theta`,
:math:`\hat\beta`, the BLUPs and :math:`\sigma`, so the derivatives of the criterion, the
covariances, their derivatives and the contrast tests are computed only for a protein's last
refit, once its weights have settled (:func:`pepmix.model.fit.finish_light`, on the same bucket
at the same optimum: the numbers are those of a full refit, bit for bit).

Truncated intermediate refits
-----------------------------
An intermediate refit only feeds the next weights, so it need not reach the optimum of its
criterion: with :data:`INNER_NEWTON` (default 2) the optimiser of an intermediate refit stops
after that many Newton iterations (warm-started at the previous :math:`\theta`, it continues
where the last round stopped, so :math:`\theta` converges together with the weights). A protein
whose weights settle on a truncated fit is refitted to the optimum with the same weights, and
its weights are checked again against that fit's residuals; only when they are within
:data:`WEIGHT_TOL` of it is the protein finished. So the stopping rule is unchanged: **every
reported fit is a converged REML optimum (the optimiser's own criterion) for weights that
differ by at most** :data:`WEIGHT_TOL` **from the Huber weights of its own residuals** (or the
protein is noted as unsettled after :data:`MAX_ITER` rounds, as before; then its last fit, too,
is completed to the optimum). The estimates are another point of the same tolerance region as
with refits to convergence: measured against the fixed point of a 10x tighter tolerance (1e-3),
the distance of the two schemes is alike (``benchmarks/README.md``, "Cheaper Huber IRLS").
``INNER_NEWTON = None`` refits every round to convergence (the scheme before 2026-12-07).

Bookkeeping of the rounds (none of it changes a number: every array of the fit is bit for bit
what the plain computation gives, ``tests/unit/test_subset_problem.py``,
``tests/unit/test_robust_cost.py``, ``tests/unit/test_irls_build.py``): the problem of each
round's refits is built from the weight-independent steps of
:func:`pepmix.model.suffstats.build_problem`, computed once
(:class:`pepmix.model.subset_problem.SubsetBuilder`; it builds the first fit's problem too,
:data:`pepmix.model.fit.FIRST_FROM_BUILDER`); the observation codes the weight update reads are
derived once per fit (:class:`_ObsCodes`), the rows of the refitted proteins' predictions are
selected by runs of one protein (:class:`_Predictions`); the median polish (stopping a
protein's sweeps once a sweep changes nothing) and the MAD scale with the Huber weights run
protein by protein in compiled kernels (:func:`pepmix.model._kernel.median_polish`,
:func:`pepmix.model._kernel.mad_huber`), whose medians of more than 24 values are found by a
histogram selection (:func:`pepmix.model._kernel._select_median`: ``np.median``'s value); and
the criterion at each refit's optimum comes from the optimiser's own evaluations
(:func:`pepmix.model.fit._final_evaluation`).

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
estimated weights beyond this first-order factor (no per-protein sandwich estimate). The factor
is derived for the residual stratum but multiplies the whole covariance, including the part
that comes from the sample variance; measured on the calibration scenarios' null data the
contrast variances come out ~15 % too large (true ratio to least squares 1.02, reported 1.175;
4.4 % of null p < 0.05), while factor 1 (0.957) and the factor on the residual variance only
(0.983; the weights also shrink the fitted sample variance) are anti-conservative: no constant
fits every protein (``benchmarks/README.md``, "Where the null non-uniformity comes from"). Measured
side effect: limma's prior df across proteins is smaller than without weights (one simulation:
10.2 against 16.3; the variances of small proteins reweighted by the MAD of a few residuals are
more dispersed), which costs about half a point of power. The reported REML criterion is that of
the final weighted fit, including :math:`-\sum_i \log w_i` (lme4's ``REMLcrit`` with
``weights=``).

Bisquare (``model.robust: bisquare``, an option)
------------------------------------------------
Huber's :math:`\psi` is monotone: an observation off by 2-5 log2 keeps the bounded influence
:math:`k s` however far it lies, and a feature off in all runs of one condition moves the
contrast by about :math:`k s` times its share of the observations in every run of that
condition. Tukey's bisquare (Beaton & Tukey 1974, *Technometrics* 16:147),
:math:`w(z) = (1 - (z/c)^2)^2` for :math:`|z| < c`, 0 beyond, :math:`c = 4.685` (95 %
efficiency at the normal model), redescends: such observations get weight 0. A redescending
M-estimate is only as good as its start and its scale (the IRLS converges to the local solution
nearest the start), so, as in MM-estimation (Yohai 1987, *Ann Stat* 15:642), the start is a
high-breakdown fit and the scale comes from it and stays fixed: the weights start from the
residuals of the median polish and the scale is their MAD, multiplied by
:math:`\sqrt{n/\nu}` with :math:`\nu = n - (\text{features} + \text{runs} - 1)` the residual df
of the additive fit the polish makes (:func:`polish_df_factor`; without it the MAD of a
2-feature protein's polish residuals, :math:`\pm(e_1 - e_2)/2`, is :math:`\sigma/\sqrt 2`, and
normal observations lose weight). Proteins with :math:`\nu < 1` are fitted with weights 1.
Weights are floored at :data:`BISQUARE_FLOOR` (weighted REML needs positive weights). The
variance factor is the same normal-model expression for the bisquare (1.271, by quadrature).
With two peptides that disagree nothing tells which one is wrong, yet a redescending fit picks
one (whichever the missing values favour) and then reports the SE of the survivor alone. So a
protein with at least two features observed in two or more conditions, whose bisquare weights
leave fewer than two features with an observation of weight >= :data:`LOW_WEIGHT` in two or
more conditions, is refitted with Huber weights (``detail``: :data:`NO_MAJORITY`).

Measured (``benchmarks/README.md``, "Tukey bisquare"): with 3 % outlier features (2-5 log2 in all
runs of one condition; 4 seeds x 1,500 proteins) FDP 4.8 % against Huber's 7.1 % and ranking
power (TP at observed FDP <= 5 %) 173 against 165; without outliers (``both20``) FDP 2.3 %
against 2.6 %, ranking power 187 against 191. But null p-values are conservative on simulated
normal data (3.8-4.2 % below 0.05, KS p 0.0001-0.009) and on the demo its standard errors of
background proteins are ~20 % smaller than Huber's (heavier than normal tails: the normal-model
factor is too small there), giving 4-7 false positives per contrast where Huber gives none.
It is therefore an option, not the default.

Scale from pure error (``fit_proteins(robust_scale="pure_error")``, measured, not adopted)
-----------------------------------------------------------------------------------------
With the default (additive) scale, a feature shifted in all runs of one condition (a feature x
condition interaction) inflates the MAD of its own protein's residuals: in the 2 x J table of
cell means its residual is :math:`(J - 1)/1.4826` MAD units, 1.35 at J = 3, about :math:`k`,
so Huber does not down-weight it (``benchmarks/README.md``, "Where the *outliers* false
positives come from"). As in MM-estimation (Yohai 1987, *Ann Stat* 15:642) the library option
takes the scale from a fit that this contamination does not inflate and holds it fixed over
the rounds: :func:`pure_error_scale`, the MAD scale of a Huber M-fit of
:math:`y = a_{fc} + b_r + e` (one level per feature:condition cell and per run; the cells
absorb the interaction, so the residuals are pure error), with the df factor
:math:`\sqrt{n/\nu}` of that fit. Under the model without interactions it estimates the same
:math:`\sigma` as the additive scale. Held fixed, not a floor on the per-round MAD (which
would return the inflated scale) nor a cap (the minimum of two estimates is biased low, and
the normal-model variance factor assumes an unbiased scale). Proteins with fewer than
:data:`PURE_ERROR_SHARED` features observed in two or more conditions keep the additive
scale: with two such features no majority defines the protein's change, and measured, a
small fixed scale then makes the M-fit follow whichever feature has more observations (with
missing values) and shrinks the standard error. The median polish residuals are only the
start of that fit: with an odd number of cells per run the polish leaves one residual per run
exactly 0, and their MAD is far below :math:`\sigma` (measured: 0.04-0.29 for residual SD
0.2-0.3 with 3 features; the same holds for the bisquare's polish scale above).

Measured (``benchmarks/robust_scale_eval.py``; ``benchmarks/README.md``, "A Huber scale from
pure error"): *outliers* FDP 6.4 % against 6.9 % (ranking power equal), but null p-values
less uniform (KS p at seed 11: ``no_change`` 0.0088, ``mnar`` 0.0016 against 0.037, 0.014)
and one more background protein called on the demo. Huber's bounded influence still lets a
down-weighted shifted feature move a 3-feature protein's estimate by 0.11-0.25 of the shift
(``benchmarks/huber_shifted_feature.py``: 0.30-0.32 with the additive scale), and 4.25 of the
7.25 false positives per seed with a shifted feature and <= 3 shared features have fewer than
3, where the scale does not apply. With the bisquare (``robust="bisquare"``: its fixed scale
replaced by this one, MM-estimation proper) *outliers* FDP 4.2 % and ranking power 179
(bisquare 4.8 %, 172), but null p-values more conservative still (3.6-4.2 % below 0.05, KS p
<= 0.0008) and 3 / 4 / 1 background proteins called on the demo (bisquare 4 / 7 / 4). Not a
workflow option.

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
from pepmix.model.design import USAGE_FACTOR, RunDesign, usage_code
from pepmix.model.fit import (
    Encoded,
    LightBucket,
    ModelFit,
    _allocate,
    finish_light,
    fit_problem,
    fit_problem_light,
)
from pepmix.model.optimize import DIVERGENT_THETA
from pepmix.model.subset_problem import SubsetBuilder
from pepmix.model.suffstats import Problem, build_problem

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

#: Huber tuning constant (95 % asymptotic efficiency at the normal distribution)
#: default ``model.robust`` of the workflow (the config schema's default is checked against it);
#: :func:`pepmix.model.fit.fit_proteins` itself fits plain REML unless asked
DEFAULT_METHOD = "huber"
HUBER_K = 1.345
#: Tukey bisquare tuning constant (95 % asymptotic efficiency at the normal distribution;
#: ``MASS::psi.bisquare``, ``robustbase::lmrob`` MM step)
BISQUARE_C = 4.685
#: bisquare weights are floored here (weighted REML needs positive weights; an observation at
#: this weight carries a thousandth of a normal one)
BISQUARE_FLOOR = 1e-3
#: ``detail`` of a protein whose bisquare weights left no majority of features
NO_MAJORITY = "bisquare weights left fewer than 2 features: Huber weights"
#: the ``model.robust`` methods of :func:`pepmix.model.fit.fit_proteins`
METHODS = ("none", "huber", "bisquare")
#: MAD to standard deviation at the normal distribution
MAD_SCALE = 1.482602218505602
#: weights have converged when none changes by more than this (measured against 1e-3 on 2,000
#: simulated proteins x 12 and 200 runs: log2 FC moves by at most 0.06 SE, 99 % by < 0.015 SE,
#: SEs by < 2.1 %; ~30 % fewer refits)
WEIGHT_TOL = 1e-2
#: refits at most
MAX_ITER = 10
#: Newton iterations of an intermediate refit (module docstring, "Truncated intermediate
#: refits"); None: every refit to convergence. Measured (2,000 simulated proteins x 12 and 200
#: runs, the demo): log2 FC within 0.08 / 0.01 / 0.05 SE of the full refits, the distance of
#: either scheme to the fixed point of WEIGHT_TOL 1e-3 alike; 1 iteration moved p-values more
INNER_NEWTON: int | None = 2
#: the Huber weights of each round from one compiled pass over the refitted proteins' rows
#: (:func:`_huber_update`; bit-identical); False: the array version (:func:`fitted_values`,
#: :func:`huber_scale_weights` on a copy of their observations)
COMPILED_UPDATE = True
#: the prediction rows of the refits kept as blocks (:class:`_Predictions`; bit-identical);
#: False: one array rebuilt at every refit
BLOCK_PREDICTIONS = True
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
    "cov_beta_floor", "stratum_ratio",
)  # fmt: skip


def variance_factor(k: float = HUBER_K, method: str = "huber") -> float:
    """Normal-model factor :math:`c = E[\\psi^2] E[w] / E[\\psi']^3` (module docstring).

    Parameters
    ----------
    k : float, default 1.345
        Huber tuning constant (``method="huber"``; closed form).
    method : {"huber", "bisquare"}, default "huber"
        ``"bisquare"``: Tukey's bisquare with :data:`BISQUARE_C`, by quadrature (``k`` unused).
    """
    if method == "bisquare":
        return _bisquare_factor(BISQUARE_C)
    # the normal cdf, pdf and upper tail exactly as scipy.stats.norm computes them (ndtr,
    # exp(-k^2/2)/sqrt(2 pi), ndtr(-k)), without importing scipy.stats (~0.15 s per fit job)
    pdf = float(np.exp(-(k**2) / 2.0) / np.sqrt(2 * np.pi))
    d_psi = 2.0 * float(special.ndtr(k)) - 1.0
    psi2 = d_psi - 2.0 * k * pdf + 2.0 * k * k * float(special.ndtr(-k))
    mean_w = d_psi + k * float(special.exp1(k * k / 2.0)) / np.sqrt(2.0 * np.pi)
    return float(psi2 * mean_w / d_psi**3)


def _bisquare_factor(c: float) -> float:
    """:math:`E[\\psi^2] E[w] / E[\\psi']^3` for the bisquare at the standard normal,
    :math:`w(z) = (1 - (z/c)^2)^2` for :math:`|z| < c`, :math:`\\psi = z w`,
    :math:`\\psi' = (1 - u)(1 - 5u)`, :math:`u = (z/c)^2` (Gauss-Legendre on [-c, c])."""
    z, g = np.polynomial.legendre.leggauss(200)
    z = z * c
    g = g * c * np.exp(-(z**2) / 2.0) / np.sqrt(2.0 * np.pi)  # standard normal density
    u = (z / c) ** 2
    w = (1.0 - u) ** 2
    e_w = float(g @ w)
    e_psi2 = float(g @ (z * w) ** 2)
    e_dpsi = float(g @ ((1.0 - u) * (1.0 - 5.0 * u)))
    return e_psi2 * e_w / e_dpsi**3


def bisquare_weights(resid: FloatArray, scale: FloatArray, c: float = BISQUARE_C) -> FloatArray:
    """Tukey's bisquare weights :math:`(1 - (r / c s)^2)^2` (0 beyond :math:`c s`), floored at
    :data:`BISQUARE_FLOOR`; 1 where ``scale`` is not positive.

    Parameters
    ----------
    resid : ndarray
        Residuals.
    scale : ndarray
        Robust scale of each residual (broadcast against ``resid``).
    c : float, default 4.685
        Tuning constant.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        u = (resid / (c * scale)) ** 2
    w = np.where(u < 1.0, (1.0 - u) ** 2, 0.0)
    w = np.maximum(w, BISQUARE_FLOOR)
    return np.asarray(np.where(scale > 0, w, 1.0), dtype=np.float64)


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
    feat_range = _feature_ranges(enc, n_prot, n_feat)
    if feat_range is not None:
        # protein by protein in the compiled kernel: the same operations on every value
        from pepmix.model._kernel import median_polish

        feat_order = np.argsort(enc.feat, kind="stable").astype(np.int64)
        median_polish(
            resid,
            feat_order,
            _starts(enc.feat, n_feat),
            feat_range,
            cell_order.astype(np.int64),
            _starts(cell, n_prot * n_runs),
            n_runs,
            n_sweeps,
        )
        return resid
    for _ in range(n_sweeps):
        resid -= group_median(resid, enc.feat, n_feat)[enc.feat]
        resid -= group_median(resid, cell, n_prot * n_runs, cell_order)[cell]
    return resid


def _starts(group: IntArray, n_groups: int) -> NDArray[np.int64]:
    """Offsets of each group's rows in the stable sort order of ``group``."""
    counts = np.bincount(group, minlength=n_groups)
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def _feature_ranges(enc: Encoded, n_prot: int, n_feat: int) -> NDArray[np.int64] | None:
    """Feature codes ``range[p]:range[p + 1]`` of each protein, or None when a protein's
    features are not one such range (features numbered by protein, as :func:`encode` does)."""
    if n_feat == 0:
        return None
    fprot = np.full(n_feat, -1, dtype=np.intp)
    fprot[enc.feat] = enc.prot
    if np.any(fprot < 0) or np.any(np.diff(fprot) < 0):
        return None
    return np.searchsorted(fprot, np.arange(n_prot + 1)).astype(np.int64)


def polish_df_factor(enc: Encoded) -> FloatArray:
    """:math:`\\sqrt{n / \\nu}` per protein, :math:`\\nu = n - (\\text{features} + \\text{runs}
    - 1)`, the residual df of the additive feature + run fit that the median polish makes;
    NaN where :math:`\\nu < 1`."""
    n_prot = len(enc.proteins)
    n = np.bincount(enc.prot, minlength=n_prot).astype(np.float64)
    first_feat = np.r_[True, np.diff(enc.feat) != 0] if enc.feat.size else np.zeros(0, bool)
    n_feat = np.bincount(enc.prot, weights=first_feat, minlength=n_prot)
    n_runs = max(len(enc.runs), 1)
    cell = np.unique(enc.prot.astype(np.int64) * n_runs + enc.run)
    n_run = np.bincount(cell // n_runs, minlength=n_prot).astype(np.float64)
    nu = n - n_feat - n_run + 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(nu >= 1.0, np.sqrt(n / nu), np.nan), dtype=np.float64)


#: proteins need this many features observed in two or more conditions for the pure-error
#: scale (fewer: no majority of features defines the protein's change; the additive scale)
PURE_ERROR_SHARED = 3


def pure_error_scale(enc: Encoded, design: RunDesign) -> FloatArray:
    r"""Robust "pure error" scale per protein: the MAD scale of a Huber M-fit that is
    saturated in feature x condition (module docstring, "Scale from pure error").

    Observations that the saturated model :math:`y = a_{fc} + b_r + e` (one level per
    feature:condition cell and per run) fits exactly (leverage 1: the only observation of its
    cell or of its run among those left, found by pruning such observations until none is
    left) carry no pure error and are left out, as least squares would. On the rest the model
    is fitted by Huber M-estimation with the MAD scale of its residuals
    (:func:`saturated_residuals`); the scale is that MAD, scaled to a normal standard
    deviation, times :math:`\sqrt{n / \nu}`, :math:`\nu = n - (\text{cells} + \text{runs} -
    \text{components})`, the components of the bipartite cell-run incidence (one per
    condition when nothing is missing). NaN where :math:`\nu < 1`, and for proteins with fewer
    than :data:`PURE_ERROR_SHARED` features observed in two or more conditions (no majority of
    features: the caller falls back to the additive scale).
    """
    n_prot = len(enc.proteins)
    n_cond = max(len(design.conditions), 1)
    cond = design.condition_code[enc.run]
    raw = enc.feat.astype(np.int64) * n_cond + cond
    kept = _prune_exact(raw, enc.prot.astype(np.int64) * max(len(enc.runs), 1) + enc.run)
    scale = np.full(n_prot, np.nan)
    if not kept.any():
        return scale
    cells, cell = np.unique(raw[kept], return_inverse=True)
    sub = Encoded(
        proteins=enc.proteins, features=np.empty(cells.size, dtype=object),
        prot=enc.prot[kept], feat=cell.astype(np.intp).ravel(), run=enc.run[kept], y=enc.y[kept],
        runs=enc.runs,
    )  # fmt: skip
    n = np.bincount(sub.prot, minlength=n_prot).astype(np.float64)
    nu = n - _saturated_rank(sub, cells.size, n_prot)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(nu >= 1.0, np.sqrt(n / nu), np.nan)
    _, scale = saturated_residuals(sub, cells.size, factor)
    return np.asarray(np.where(_shared_features(enc, cond, n_cond) >= PURE_ERROR_SHARED,
                               scale, np.nan), dtype=np.float64)  # fmt: skip


def _prune_exact(cell: NDArray[np.int64], prun: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Observations left after removing, until none is left, every observation that is the
    only one of its cell or of its (protein, run) among those left."""
    kept = np.ones(cell.size, dtype=bool)
    _, c = np.unique(cell, return_inverse=True)
    _, r = np.unique(prun, return_inverse=True)
    c, r = c.ravel(), r.ravel()
    while True:
        deg_c = np.bincount(c[kept], minlength=int(c.max()) + 1 if c.size else 0)
        deg_r = np.bincount(r[kept], minlength=int(r.max()) + 1 if r.size else 0)
        drop = kept & ((deg_c[c] == 1) | (deg_r[r] == 1))
        if not drop.any():
            return kept
        kept &= ~drop


def _shared_features(enc: Encoded, cond: IntArray, n_cond: int) -> FloatArray:
    """Features observed in two or more conditions, per protein."""
    n_prot = len(enc.proteins)
    if not enc.feat.size:
        return np.zeros(n_prot)
    n_feat = int(enc.feat.max()) + 1
    seen = np.zeros((n_feat, n_cond), dtype=bool)
    seen[enc.feat, cond] = True
    fprot = np.zeros(n_feat, dtype=np.intp)
    fprot[enc.feat] = enc.prot
    shared = (seen.sum(axis=1) >= 2).astype(np.float64)
    return np.asarray(np.bincount(fprot, weights=shared, minlength=n_prot), dtype=np.float64)


#: IRLS rounds of the saturated Huber fit (:func:`saturated_residuals`)
SATURATED_ROUNDS = 10
#: backfitting sweeps of each weighted least-squares fit (at most; stops when the levels move
#: by less than 1e-10)
SATURATED_SWEEPS = 50


def saturated_residuals(
    enc: Encoded, n_cells: int, factor: FloatArray
) -> tuple[FloatArray, FloatArray]:
    r"""Residuals and scale of :func:`saturated_fit` (its docstring)."""
    resid, scale, _ = saturated_fit(enc, n_cells, factor)
    return resid, scale


def saturated_fit(
    enc: Encoded, n_cells: int, factor: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    r"""Residuals and scale of the Huber M-fit of :math:`y = a_{c} + b_{pr} + e` (``enc.feat``:
    cell codes ``c``; ``pr``: protein x run), with scale ``factor`` times the MAD of its
    residuals per protein, iterated (:data:`SATURATED_ROUNDS` rounds).

    Start: Huber weights of the median polish residuals (:func:`polish_residuals`) at their
    MAD times ``factor``. Each round fits the weighted least squares by backfitting (weighted
    cell means and run means in turn, at most :data:`SATURATED_SWEEPS` sweeps; exact after one
    sweep for a complete unweighted table), then recomputes the scale and the weights. The
    least-squares residuals have mean square :math:`\nu \sigma^2 / n`, hence ``factor``
    :math:`\sqrt{n/\nu}`; median polish residuals are not used for the scale itself (with an
    odd number of cells per run the polish makes one residual per run exactly 0: a third of
    them with 3 features, and their MAD is then far below :math:`\sigma`).

    Returns the residuals, the scale per protein and the cell levels :math:`a_c` (each
    connected component of the cell-run incidence leaves one constant free: only differences
    of levels within a component are estimated).
    """
    n_prot = len(enc.proteins)
    n_runs = max(len(enc.runs), 1)
    _, prun = np.unique(enc.prot.astype(np.int64) * n_runs + enc.run, return_inverse=True)
    prun = prun.ravel()
    n_prun = int(prun.max()) + 1
    resid = polish_residuals(enc)
    scale = robust_scale(resid, enc.prot, n_prot) * factor
    for _ in range(SATURATED_ROUNDS):
        w = huber_weights(resid, scale[enc.prot])
        w_cell = np.bincount(enc.feat, weights=w, minlength=n_cells)
        w_run = np.bincount(prun, weights=w, minlength=n_prun)
        a = np.zeros(n_cells)
        b = np.zeros(n_prun)
        for _ in range(SATURATED_SWEEPS):
            a_sum = np.bincount(enc.feat, weights=w * (enc.y - b[prun]), minlength=n_cells)
            a_new = np.asarray(a_sum / w_cell, dtype=np.float64)
            b_sum = np.bincount(prun, weights=w * (enc.y - a_new[enc.feat]), minlength=n_prun)
            b_new = np.asarray(b_sum / w_run, dtype=np.float64)
            moved = max(float(np.max(np.abs(a_new - a))), float(np.max(np.abs(b_new - b))))
            a, b = a_new, b_new
            if moved < 1e-10:
                break
        resid = enc.y - a[enc.feat] - b[prun]
        scale = robust_scale(resid, enc.prot, n_prot) * factor
    return resid, scale, a


def _saturated_rank(enc: Encoded, n_cells: int, n_prot: int) -> FloatArray:
    """Rank of the (feature:condition cell) + run design of each protein (``enc.feat``: cell
    codes): cells + runs - connected components of the bipartite cell-run graph (each
    component leaves one level free)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n_runs = max(len(enc.runs), 1)
    pruns, prun = np.unique(enc.prot.astype(np.int64) * n_runs + enc.run, return_inverse=True)
    prun = prun.ravel()
    n_nodes = n_cells + pruns.size
    edges = (np.ones(enc.feat.size), (enc.feat, n_cells + prun))
    graph = coo_matrix(edges, shape=(n_nodes, n_nodes)).tocsr()
    n_comp, label = connected_components(graph, directed=False)
    node_prot = np.zeros(n_nodes, dtype=np.intp)
    node_prot[enc.feat] = enc.prot
    node_prot[n_cells + prun] = enc.prot
    comp_prot = np.zeros(n_comp, dtype=np.intp)
    comp_prot[label] = node_prot
    comps = np.bincount(comp_prot, minlength=n_prot).astype(np.float64)
    nodes = np.bincount(node_prot, minlength=n_prot).astype(np.float64)
    return np.asarray(nodes - comps, dtype=np.float64)


def initial_weights(
    enc: Encoded, method: str = "huber", scale: FloatArray | None = None
) -> tuple[FloatArray, FloatArray]:
    """Robust weights of the median polish residuals and their MAD scale per protein.

    ``method`` (default ``"huber"``): Huber or (``"bisquare"``) bisquare weights. ``scale``
    (default None: the MAD of the polish residuals, for the bisquare times
    :func:`polish_df_factor`) is a fixed scale per protein, e.g. :func:`pure_error_scale`;
    where it is NaN that MAD is used.
    """
    resid = polish_residuals(enc)
    if method == "bisquare":
        mad = robust_scale(resid, enc.prot, len(enc.proteins)) * polish_df_factor(enc)
        if scale is not None:
            mad = np.where(np.isfinite(scale), scale, mad)
        return bisquare_weights(resid, mad[enc.prot]), mad
    mad, weights = huber_scale_weights(resid, enc.prot, len(enc.proteins))
    if scale is None:
        return weights, mad
    used = np.where(np.isfinite(scale), scale, mad)
    return huber_weights(resid, used[enc.prot]), used


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
        elif name == USAGE_FACTOR:
            cell = usage_code(enc.feat, enc.run, design)
            table = np.zeros(int(cell.max()) + 1)
            table[lcode[rows]] = blup[rows]
            yhat += table[cell]
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
    light: bool = False,
    max_iter: int | None = None,
    builder: SubsetBuilder | None = None,
) -> tuple[FloatArray, _Pending | None]:
    """Refit the proteins ``subset`` with ``weights``; scatter into ``out``; return predictions
    (coded, global protein codes) and, for a ``light`` fit (:func:`fit_problem_light`: no
    covariances or contrast tests yet), what :meth:`_Pending.finish` needs to complete it.
    ``builder`` (default None: :func:`build_problem` on the subset's rows) builds the subset's
    weighted problem reusing what does not depend on the weights (the same problem, bit for
    bit)."""
    if builder is not None:
        sub = builder.build(subset, weights)
    else:
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
    sub_out.stratum = out.stratum  # and exports what the stratum prior needs
    # a weighted fit without finite optimum falls back to least squares (rule of this module),
    # not to a reduced model (pepmix.model.divergent, the rule of unweighted fits)
    sub_out.reduce_divergent = False
    sub_out.theta_reml = np.full(sub_out.theta.shape, np.nan)
    theta0 = np.nan_to_num(out.theta[subset]) if warm else None
    pending = None
    if light:
        if max_iter is None:
            pieces, buckets = fit_problem_light(sub, sub_out, theta0)
        else:
            pieces, buckets = fit_problem_light(sub, sub_out, theta0, max_iter)
        pending = _Pending(sub, buckets, subset)
    else:
        pieces = _coded(fit_problem(sub, cmat, sub_out, theta0))
    pieces[:, 0] = subset[pieces[:, 0].astype(np.intp)]
    for name in _PROTEIN_ARRAYS:
        getattr(out, name)[subset] = getattr(sub_out, name)
    return pieces, pending


class _Pending:
    """A light refit (:func:`pepmix.model.fit.fit_problem_light`) whose covariances and
    contrast tests are computed only for the proteins whose weights then settle."""

    def __init__(self, problem: Problem, buckets: list[LightBucket], subset: IntArray) -> None:
        self.problem, self.buckets, self.subset = problem, buckets, subset

    def unfinished(self) -> IntArray:
        """Global codes of the proteins whose (truncated) fit stopped before converging."""
        parts = [self.subset[b.idx[b.unfinished]] for b in self.buckets if b.unfinished is not None]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.intp)

    def finish(self, proteins: NDArray[np.bool_], cmat: FloatArray, out: ModelFit) -> None:
        """Complete the fit of ``proteins`` (global mask) into ``out``: the numbers
        :func:`pepmix.model.fit.fit_problem` would have written (same bucket, same optimum)."""
        for light in self.buckets:
            codes = self.subset[light.idx]
            rows = np.flatnonzero(proteins[codes])
            if rows.size:
                finish_light(self.problem, light, rows, cmat, out, codes[rows])


def irls(
    problem: Problem,
    enc: Encoded,
    design: RunDesign,
    cmat: FloatArray,
    out: ModelFit,
    pieces: list[pd.DataFrame],
    weights: FloatArray,
    method: str = "huber",
    start_scale: FloatArray | None = None,
    huber_scale: FloatArray | None = None,
    inference: bool = True,
    first: list[LightBucket] | None = None,
    builder: SubsetBuilder | None = None,
) -> tuple[list[pd.DataFrame], FloatArray, list[str], FloatArray]:
    """Iterate robust weights and weighted refits from the fit in ``out`` (with ``weights``).

    ``method`` (default ``"huber"``): ``"huber"`` iterates Huber weights with the MAD scale of
    each fit's residuals; ``"bisquare"`` iterates bisquare weights with ``start_scale`` (the
    scale of :func:`initial_weights`, held fixed; module docstring, "Bisquare").
    ``huber_scale`` (default None: the MAD of each fit's residuals) is a fixed Huber scale per
    protein (:func:`pure_error_scale`; NaN: that protein's MAD), held over the rounds.

    Returns the final coded predictions, the observation weights (order of ``enc``), a
    ``detail`` note per protein (empty when no observation has a weight below
    :data:`LOW_WEIGHT`) and the variance factor of each protein's final fit
    (:func:`variance_factor` of the method; 1 for a least-squares fallback). ``out`` is updated
    in place (fixed effects, variances, contrasts); :func:`correct_variance` is left to the
    caller. ``inference`` (default True) False: the light refits are never completed
    (covariances and contrast tests stay as the first fit left them: NaN for a light first
    fit, :func:`pepmix.model.fit.fit_proteins`); every other number is unchanged.
    ``first`` (default None: the first fit in ``out`` is complete) are the buckets of a light
    first fit (:func:`pepmix.model.fit.fit_problem_light` of ``problem``): like the light
    refits, it is completed only for the proteins whose weights settle on it (the numbers of
    a complete first fit, bit for bit). ``builder`` (default None: made here) is the
    :class:`pepmix.model.subset_problem.SubsetBuilder` of ``enc`` and ``design`` for the
    refits (e.g. the one that built ``problem``).
    """
    n_prot = problem.n_proteins
    if problem.e_fixed:
        raise ValueError("robust fitting is for the differential model, not fixed run means")
    if method not in METHODS[1:]:
        raise ValueError(f"unknown robust method {method!r}")
    fixed = start_scale if method == "bisquare" else None
    if method == "bisquare" and fixed is None:
        raise ValueError("bisquare weights need the start scale of initial_weights")
    state = _Irls(problem, enc, design, cmat, out, _coded(pieces), builder)
    state.huber_scale = huber_scale if method == "huber" else None
    state.inference = inference
    if first is not None:
        state.pending[0] = _Pending(problem, first, np.arange(n_prot))
        state.owner[:] = 0
        state._next = 1
    weights = state.iterate(weights, fixed)
    out.builder = state.builder
    factor = np.where(state.given_up, 1.0, variance_factor(method=method))
    unsettled = state.delta > UNSETTLED
    no_majority = np.zeros(n_prot, dtype=bool)
    if method == "bisquare":
        no_majority = _no_majority(enc, design, weights, n_prot) & ~state.given_up
        if no_majority.any():
            weights = _huber_instead(state, weights, no_majority)
            factor = np.where(no_majority, variance_factor(), factor)
            factor = np.where(state.given_up, 1.0, factor)
            unsettled = np.where(no_majority, state.delta > UNSETTLED, unsettled)
    given_up = state.given_up
    log.info(
        "robust (%s) fit: %d protein refits in %d rounds; %d proteins fitted by least squares "
        "(weighted fit degenerate); %d with weights still changing by more than %g after %d "
        "refits",
        method,
        state.n_refit,
        state.rounds,
        int(given_up.sum()),
        int(unsettled.sum()),
        UNSETTLED,
        MAX_ITER,
    )
    current = state.current
    final = blup_frame(current, enc, design, problem.factors, weights)
    notes = _notes(enc.prot, weights, n_prot, unsettled, given_up)
    notes = [
        "; ".join(x for x in (n, NO_MAJORITY * bool(m)) if x)
        for n, m in zip(notes, no_majority.tolist(), strict=True)
    ]
    return [final], weights, notes, factor


def _no_majority(
    enc: Encoded, design: RunDesign, weights: FloatArray, n_prot: int
) -> NDArray[np.bool_]:
    """Proteins with at least two features observed in two or more conditions, of which fewer
    than two keep an observation of weight >= :data:`LOW_WEIGHT` in two or more conditions:
    the weights chose one peptide over another without a majority."""
    cond = design.condition_code[enc.run]
    n_cond = max(len(design.conditions), 1)
    n_feat = int(enc.feat.max()) + 1 if enc.feat.size else 0
    seen = np.zeros((n_feat, n_cond), dtype=bool)
    seen[enc.feat, cond] = True
    kept = np.zeros((n_feat, n_cond), dtype=bool)
    heavy = weights >= LOW_WEIGHT
    kept[enc.feat[heavy], cond[heavy]] = True
    fprot = np.zeros(n_feat, dtype=np.intp)
    fprot[enc.feat] = enc.prot
    before = np.bincount(fprot, weights=seen.sum(axis=1) >= 2, minlength=n_prot)
    after = np.bincount(fprot, weights=kept.sum(axis=1) >= 2, minlength=n_prot)
    return np.asarray((before >= 2) & (after < 2))


def _huber_instead(state: _Irls, weights: FloatArray, proteins: NDArray[np.bool_]) -> FloatArray:
    """Refit ``proteins`` with Huber weights (from the median polish, then iterated), leaving
    the others as they are; returns the weights of all."""
    enc = state.enc
    start, _ = initial_weights(enc, "huber")
    weights = np.where(proteins[enc.prot], start, weights)
    state.refit(np.flatnonzero(proteins), weights, np.zeros(proteins.size, dtype=bool))
    state.blocked = ~proteins
    weights = state.iterate(weights, None)
    state.blocked = np.zeros(proteins.size, dtype=bool)
    return weights


class _Irls:
    """Iteratively reweighted fits of all proteins (the loop of :func:`irls`)."""

    def __init__(
        self,
        problem: Problem,
        enc: Encoded,
        design: RunDesign,
        cmat: FloatArray,
        out: ModelFit,
        current: FloatArray,
        builder: SubsetBuilder | None = None,
    ) -> None:
        self.problem, self.enc, self.design, self.cmat, self.out = problem, enc, design, cmat, out
        n_prot = problem.n_proteins
        #: the coded predictions of every protein's latest fit (:attr:`current`)
        self.predictions = _Predictions(current, n_prot)
        self.rounds = 1
        self.n_refit = 0
        #: proteins whose weighted fit degenerated (least squares from then on)
        self.given_up = np.zeros(n_prot, dtype=bool)
        #: per protein, how far the weights of the reported fit are from those of its residuals
        self.delta = np.zeros(n_prot)
        #: proteins :meth:`iterate` leaves as they are
        self.blocked = np.zeros(n_prot, dtype=bool)
        #: light refits not yet completed, and which of them holds each protein's latest fit
        #: (-1: the latest fit is complete)
        self.pending: dict[int, _Pending] = {}
        self.owner = np.full(n_prot, -1, dtype=np.intp)
        self._next = 0
        #: Newton iterations of an intermediate refit (None: to convergence)
        self.inner_newton = INNER_NEWTON
        #: proteins whose latest fit is truncated (stopped before the optimum)
        self.truncated = np.zeros(n_prot, dtype=bool)
        #: whether :meth:`finish` completes the light fits (False: point estimates only)
        self.inference = True
        #: builds the weighted problems of the refits (the weight-independent steps once)
        self.builder = builder or SubsetBuilder(enc.prot, enc.feat, enc.run, enc.y, design, n_prot)
        #: fixed Huber scale per protein (NaN: the MAD of its residuals); None: MAD for all
        self.huber_scale: FloatArray | None = None
        #: the observation codes of the compiled weight update (derived at its first use)
        self._codes: _ObsCodes | None = None

    @property
    def codes(self) -> _ObsCodes:
        """The :class:`_ObsCodes` of :attr:`enc` (made once)."""
        if self._codes is None:
            self._codes = _ObsCodes(self.enc, self.design)
        return self._codes

    def refit(
        self,
        subset: IntArray,
        weights: FloatArray,
        touched: NDArray[np.bool_],
        warm: bool = True,
        light: bool = True,
        max_iter: int | None = None,
    ) -> None:
        """Refit ``subset`` with ``weights`` (warm start unless ``warm`` is False) and replace
        its predictions. A ``light`` refit (default) leaves covariances and contrast tests to
        :meth:`finish`, which the caller must call once the weights of ``subset`` settle.
        ``max_iter`` (light refits; default None: to convergence) truncates the optimiser."""
        n_prot = self.problem.n_proteins
        part, pending = _refit(
            self.problem,
            self.enc,
            self.design,
            self.cmat,
            self.out,
            subset,
            weights,
            warm,
            light,
            max_iter if light else None,
            self.builder,
        )
        self.truncated[subset] = False
        if pending is not None:
            self.truncated[pending.unfinished()] = True
        self.owner[subset] = -1
        if pending is not None:
            self.pending[self._next] = pending
            self.owner[subset] = self._next
            self._next += 1
        self.pending = {j: p for j, p in self.pending.items() if np.any(self.owner == j)}
        if BLOCK_PREDICTIONS:
            self.predictions.replace(subset, part)
        else:
            current = self.predictions.current()
            replaced = np.zeros(n_prot, dtype=bool)
            replaced[subset] = True
            keep = ~replaced[current[:, 0].astype(np.intp)]
            self.predictions = _Predictions(np.concatenate([current[keep], part]), n_prot)
        self.n_refit += subset.size
        touched[subset] = True

    @property
    def current(self) -> FloatArray:
        """The coded predictions (protein, factor, level codes, BLUP) of every protein's
        latest fit: the first fit's rows of the proteins never refitted, then each refit's
        rows of the proteins not refitted since, in the order of the refits."""
        return self.predictions.current()

    def finish(self, proteins: NDArray[np.bool_]) -> None:
        """Complete the light fits that are the latest fits of ``proteins`` (global mask)."""
        for j, pending in self.pending.items():
            done = proteins & (self.owner == j)
            if done.any():
                if self.inference:
                    pending.finish(done, self.cmat, self.out)
                self.owner[done] = -1
        self.pending = {j: p for j, p in self.pending.items() if np.any(self.owner == j)}

    def iterate(self, weights: FloatArray, fixed_scale: FloatArray | None) -> FloatArray:
        """Reweight and refit until the weights settle or :data:`MAX_ITER` refits.

        Huber weights with the MAD scale of each fit's residuals when ``fixed_scale`` is None,
        else bisquare weights with that scale. A protein whose weighted fit has no finite
        optimum is refitted by least squares (weights 1, cold start) for good; one whose fit did
        not converge or has no finite scale gets weights 1. Returns the final weights.
        """
        enc, problem, out = self.enc, self.problem, self.out
        n_prot = problem.n_proteins
        touched = ~self.blocked
        new = weights.copy()
        scale = np.full(n_prot, np.nan) if fixed_scale is None else fixed_scale
        # the round's bookkeeping on the refitted proteins' rows only (_Settle)
        settle = _Settle(enc.prot, n_prot) if COMPILED_UPDATE and not self.blocked.any() else None
        if settle is not None:
            weights = weights.copy()  # updated in place from here
        for it in range(1, MAX_ITER + 2):
            # a weighted fit without finite optimum (down-weighting let the random effects fit
            # the rest exactly: the residual scale collapses) falls back to least squares
            collapsed = _diverged(out) & ~self.given_up & ~self.blocked
            if collapsed.any():
                collapsed &= np.bincount(enc.prot, weights=weights < 1.0, minlength=n_prot) > 0
            if collapsed.any():
                self.given_up |= collapsed
                weights = np.where(collapsed[enc.prot], 1.0, weights)
                self.refit(np.flatnonzero(collapsed), weights, touched, warm=False, light=False)
            _update_weights(
                enc, self.design, problem.factors, out, self.predictions.rows_of(touched),
                touched, new, scale, fixed_scale, self.huber_scale, self.codes,
            )  # fmt: skip
            groups = np.flatnonzero(touched)
            touched[:] = False
            eligible = problem.fittable & out.converged & np.isfinite(scale) & ~self.given_up
            if settle is not None:
                settle.deltas(groups, new, weights, eligible, self.delta)
            else:
                target = np.where(eligible[enc.prot], new, 1.0)
                target = np.where(self.blocked[enc.prot], weights, target)
                self.delta = _protein_max(np.abs(target - weights), enc.prot, n_prot)
            changing = self.delta > WEIGHT_TOL
            # settled on a truncated fit: refit to the optimum (same weights), then check again
            exact = ~changing & self.truncated
            if not (changing.any() or exact.any()) or it > MAX_ITER:
                break
            # the others keep their fit: only now do they need covariances and contrast tests
            self.finish(~changing & ~self.truncated)
            if settle is not None:
                settle.take(np.flatnonzero(changing), weights)
            else:
                weights = np.where(changing[enc.prot], target, weights)
            if changing.any():
                self.refit(np.flatnonzero(changing), weights, touched, max_iter=self.inner_newton)
            if exact.any():
                self.refit(np.flatnonzero(exact), weights, touched)
            self.rounds += 1
        if self.truncated.any():
            # out of rounds: the reported fit of every protein is at its optimum
            self.refit(np.flatnonzero(self.truncated), weights, touched)
            _update_weights(
                enc, self.design, problem.factors, out, self.predictions.rows_of(touched),
                touched, new, scale, fixed_scale, self.huber_scale, self.codes,
            )  # fmt: skip
            eligible = problem.fittable & out.converged & np.isfinite(scale) & ~self.given_up
            target = np.where(eligible[enc.prot], new, 1.0)
            target = np.where(self.blocked[enc.prot], weights, target)
            redone = touched[enc.prot]
            delta = _protein_max(np.where(redone, np.abs(target - weights), 0.0), enc.prot, n_prot)
            self.delta = np.where(touched, delta, self.delta)
            touched[:] = False
        self.finish(np.ones(n_prot, dtype=bool))
        return weights


class _Predictions:
    """The coded prediction rows (protein, factor, level codes, BLUP) of every protein's latest
    fit, kept as the blocks the fits returned instead of one array rebuilt at every refit.

    A refit of some proteins drops their earlier rows and appends its rows: the array is the
    rows of each block whose protein's latest block it is, blocks in the order of the fits
    (:meth:`current`), which is the order the rebuilt array had, row for row. Blocks without
    such rows are dropped, and when the rows kept exceed twice the rows in use the blocks are
    merged into one (memory stays within about twice one array). Each block also keeps its
    runs of consecutive rows of one protein (:func:`_protein_runs`), so that :meth:`rows_of`
    selects runs instead of testing every row (the same rows in the same order)."""

    def __init__(self, first: FloatArray, n_prot: int) -> None:
        self.blocks = [first]
        self.prot = [first[:, 0].astype(np.intp)]
        self.runs = [_protein_runs(self.prot[0])]
        #: block holding each protein's rows (-1: none)
        self.owner = np.full(n_prot, -1, dtype=np.intp)
        self.owner[self.prot[0]] = 0
        #: each protein's number of rows (in its block)
        self.n_rows = np.bincount(self.prot[0], minlength=n_prot)

    def replace(self, subset: IntArray, part: FloatArray) -> None:
        """The rows ``part`` replace those of the proteins ``subset``."""
        prot = part[:, 0].astype(np.intp)
        self.blocks.append(part)
        self.prot.append(prot)
        self.runs.append(_protein_runs(prot))
        self.owner[subset] = len(self.blocks) - 1
        self.n_rows[subset] = np.bincount(prot, minlength=self.owner.size)[subset]
        has = self.owner >= 0
        live = np.bincount(self.owner[has], weights=self.n_rows[has], minlength=len(self.blocks))
        if sum(b.shape[0] for b in self.blocks) > 2 * live.sum() + 1024:
            self.current()  # merges
        elif np.any(live == 0):
            kept = np.flatnonzero(live > 0)
            if kept.size == 0:  # no rows in use at all (every latest fit without rows)
                self.blocks, self.prot = [part[:0]], [prot[:0]]
                self.runs = [_protein_runs(prot[:0])]
                self.owner = np.where(has, 0, -1)
                return
            index = np.full(len(self.blocks), -1, dtype=np.intp)
            index[kept] = np.arange(kept.size)
            self.blocks = [self.blocks[k] for k in kept.tolist()]
            self.prot = [self.prot[k] for k in kept.tolist()]
            self.runs = [self.runs[k] for k in kept.tolist()]
            self.owner = np.where(has, index[self.owner], -1)

    def current(self) -> FloatArray:
        """All rows in use, as one array (merged into one block)."""
        if len(self.blocks) > 1 or self.blocks[0].shape[0] != self.n_rows.sum():
            pairs = enumerate(zip(self.blocks, self.prot, strict=True))
            parts = [b[self.owner[p] == k] for k, (b, p) in pairs]
            merged = np.concatenate(parts) if parts else np.zeros((0, 4))
            self.blocks = [merged]
            self.prot = [merged[:, 0].astype(np.intp)]
            self.runs = [_protein_runs(self.prot[0])]
            self.owner = np.where(self.owner >= 0, 0, -1)
        return self.blocks[0]

    def rows_of(self, proteins: NDArray[np.bool_]) -> FloatArray:
        """The rows of the proteins ``proteins`` (mask), in the order of :meth:`current`."""
        parts = []
        for k, (b, (lo, hi, p)) in enumerate(zip(self.blocks, self.runs, strict=True)):
            chosen = proteins[p] & (self.owner[p] == k)
            if chosen.any():
                parts.append(b[_ranges(lo[chosen], hi[chosen])])
        return np.concatenate(parts) if parts else np.zeros((0, 4))


def _protein_runs(prot: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    """Start, end and protein of each run of equal consecutive values of ``prot``."""
    if prot.size == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty, empty
    lo = np.flatnonzero(np.r_[True, prot[1:] != prot[:-1]])
    hi = np.r_[lo[1:], prot.size]
    return lo, hi, prot[lo]


def _ranges(lo: IntArray, hi: IntArray) -> IntArray:
    """The indices ``lo[j]:hi[j]`` of every ``j``, concatenated."""
    n = hi - lo
    first = np.cumsum(n) - n
    return np.asarray(np.repeat(lo - first, n) + np.arange(int(n.sum())), dtype=np.intp)


class _Settle:
    """The per-round steps of :meth:`_Irls.iterate` after the weights, on the rows of the
    proteins just reweighted (:func:`pepmix.model._kernel.settle_rows`): their target weights,
    the largest change per protein, and (:meth:`take`) the changing proteins' new weights.
    The other proteins' rows are as in the round before (same fit, same weights, same
    target), so the numbers are those of the whole-array steps, bit for bit. Not with blocked
    proteins (their target is their weight)."""

    def __init__(self, prot: IntArray, n_prot: int) -> None:
        self.starts = _starts(prot, n_prot)
        self.target = np.zeros(prot.size)

    def deltas(
        self,
        groups: IntArray,
        new: FloatArray,
        weights: FloatArray,
        eligible: NDArray[np.bool_],
        delta: FloatArray,
    ) -> None:
        """Targets (``new``, or 1 where not ``eligible``) and ``delta`` (in place) of the
        proteins ``groups``."""
        from pepmix.model._kernel import settle_rows

        settle_rows(self.starts, groups.astype(np.int64), new, weights, eligible, self.target,
                    delta)  # fmt: skip

    def take(self, groups: IntArray, weights: FloatArray) -> None:
        """The targets of the proteins ``groups`` become their weights (in place)."""
        from pepmix.model._kernel import copy_rows

        copy_rows(self.starts, groups.astype(np.int64), self.target, weights)


def _update_weights(
    enc: Encoded,
    design: RunDesign,
    factors: tuple[str, ...],
    out: ModelFit,
    current: FloatArray,
    touched: NDArray[np.bool_],
    weights: FloatArray,
    scale: FloatArray,
    fixed_scale: FloatArray | None = None,
    huber_scale: FloatArray | None = None,
    codes: _ObsCodes | None = None,
) -> None:
    """Robust weights (into ``weights``) of the proteins ``touched``, from their current fit
    (``current``: coded predictions): Huber weights with the MAD scale (written into ``scale``)
    when ``fixed_scale`` is None, else bisquare weights with ``fixed_scale``. Other proteins keep
    theirs, which are what recomputing them would give (same fit, same residuals).
    ``huber_scale`` (default None) replaces the MAD by a fixed scale where it is finite.
    ``codes`` (default None: derived here) are ``enc``'s :class:`_ObsCodes`."""
    if not touched.any():
        return
    if fixed_scale is None and huber_scale is None and COMPILED_UPDATE:
        if codes is None:
            codes = _ObsCodes(enc, design)
        _huber_update(codes, design, factors, out, current, touched, weights, scale)
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
    if fixed_scale is not None:
        weights[rows] = bisquare_weights(resid, fixed_scale[sub.prot])
        return
    s, w = huber_scale_weights(resid, sub.prot, len(enc.proteins), np.flatnonzero(touched))
    if huber_scale is not None:
        s = np.where(np.isfinite(huber_scale), huber_scale, s)
        w = huber_weights(resid, s[sub.prot])
    scale[touched] = s[touched]
    weights[rows] = w


class _ObsCodes:
    """What :func:`_huber_update` reads of the observations ``enc`` besides the fit, derived
    once per robust fit instead of at every round: the protein offsets, the feature and run
    codes as int64, the number of feature codes and (made at first use) the feature x
    condition cell of each observation."""

    def __init__(self, enc: Encoded, design: RunDesign) -> None:
        self.enc, self.design = enc, design
        n_prot = len(enc.proteins)
        self.starts = _starts(enc.prot, n_prot)
        self.feat = enc.feat.astype(np.int64, copy=False)
        self.run = enc.run.astype(np.int64, copy=False)
        self.y = np.ascontiguousarray(enc.y, dtype=np.float64)
        self.n_feat = int(enc.feat.max()) + 1 if enc.feat.size else 0
        self._cell: NDArray[np.int64] | None = None

    @property
    def cell(self) -> NDArray[np.int64]:
        """The feature x condition cell (:func:`pepmix.model.design.usage_code`) of each
        observation."""
        if self._cell is None:
            self._cell = usage_code(self.enc.feat, self.enc.run, self.design).astype(np.int64)
        return self._cell


def _huber_update(
    codes: _ObsCodes,
    design: RunDesign,
    factors: tuple[str, ...],
    out: ModelFit,
    current: FloatArray,
    touched: NDArray[np.bool_],
    weights: FloatArray,
    scale: FloatArray,
) -> None:
    """The Huber branch of :func:`_update_weights` in one compiled pass
    (:func:`pepmix.model._kernel.residual_mad_huber`): residuals of the ``touched`` proteins
    from the fixed part per (protein, run) cell and one prediction table per factor, their MAD
    scales and Huber weights, without copying their observations. The numbers of
    :func:`fitted_values` and :func:`huber_scale_weights`, bit for bit (the same additions in
    the same order)."""
    from pepmix.model._kernel import residual_mad_huber

    n_prot = len(codes.enc.proteins)
    n_runs = design.x.shape[0]
    fixed = np.ascontiguousarray((np.nan_to_num(out.beta) @ design.x.T).ravel())
    pcode = current[:, 0].astype(np.intp)
    part = current
    mine = touched[pcode]
    if not mine.all():  # (the rounds pass the rows of the touched proteins only)
        part = current[mine]
        pcode = pcode[mine]
    fcode = part[:, 1].astype(np.intp)
    lcode = part[:, 2].astype(np.intp)
    blup = part[:, 3]
    n_f = len(factors)
    kind = np.full(n_f, -1, dtype=np.int64)
    n_lev = np.zeros(n_f, dtype=np.int64)
    run_codes = np.zeros((n_f, n_runs), dtype=np.int64)
    tables: list[FloatArray] = []
    cell = np.zeros(0, dtype=np.int64)
    for f, name in enumerate(factors):
        rows = fcode == f
        if not rows.any():
            tables.append(np.zeros(0))
            continue
        if name == "feature":
            kind[f], index = 0, lcode[rows]
            table = np.zeros(codes.n_feat)
        elif name == USAGE_FACTOR:
            cell = codes.cell
            kind[f], index = 1, lcode[rows]
            table = np.zeros(int(cell.max()) + 1)
        else:
            level_codes = design.factor_codes[name]
            n_lev[f] = int(level_codes.max()) + 1
            run_codes[f] = level_codes
            kind[f], index = 2, pcode[rows] * n_lev[f] + lcode[rows]
            table = np.zeros(n_prot * int(n_lev[f]))
        table[index] = blup[rows]
        tables.append(table)
    tab_off = np.concatenate([[0], np.cumsum([t.size for t in tables])]).astype(np.int64)
    residual_mad_huber(
        codes.y,
        codes.starts,
        np.flatnonzero(touched).astype(np.int64),
        codes.feat,
        codes.run,
        cell,
        fixed,
        n_runs,
        kind,
        run_codes,
        n_lev,
        tab_off,
        np.concatenate(tables) if tables else np.zeros(0),
        MAD_SCALE,
        HUBER_K,
        scale,
        weights,
    )


def huber_scale_weights(
    resid: FloatArray, prot: IntArray, n_prot: int, groups: IntArray | None = None
) -> tuple[FloatArray, FloatArray]:
    """:func:`robust_scale` and the :func:`huber_weights` with that scale in one compiled pass
    (the same numbers): the scale of the proteins ``groups`` (default None: all; NaN for the
    others) and the weight of every residual (``prot`` sorted ascending)."""
    from pepmix.model._kernel import mad_huber

    if groups is None:
        groups = np.arange(n_prot)
    scale = np.full(n_prot, np.nan)
    weights = np.ones(resid.size)
    mad_huber(
        np.ascontiguousarray(resid, dtype=np.float64),
        _starts(prot, n_prot),
        groups.astype(np.int64),
        MAD_SCALE,
        HUBER_K,
        scale,
        weights,
    )
    return scale, weights


def _protein_max(values: FloatArray, prot: IntArray, n_prot: int) -> FloatArray:
    """Maximum of ``values`` per protein (``prot`` sorted ascending); 0 without observations."""
    counts = np.bincount(prot, minlength=n_prot)
    out = np.zeros(n_prot)
    has = counts > 0
    if values.size:
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        out[has] = np.maximum.reduceat(values, starts[has])
    return out


def correct_variance(
    out: ModelFit, fitted: NDArray[np.bool_], factor: FloatArray | None = None
) -> None:
    """Apply the variance factor to the proteins ``fitted`` (module docstring).

    ``factor`` (per protein, default None: Huber's :func:`variance_factor` for all) is what
    :func:`irls` returns. Called after the statuses are set: the rule for a divergent variance
    ratio looks at the fitted :math:`\theta`.
    """
    c_all = np.full(out.sigma.shape, variance_factor()) if factor is None else factor
    c = c_all[fitted]
    root = np.sqrt(c)
    out.sigma[fitted] *= root
    out.theta[fitted] /= root[:, None]
    out.cov_beta[fitted] *= c[:, None, None]
    # the df are scale-free: V and its derivatives scale together (pepmix.model.stored)
    out.dcov_beta[fitted] *= c[:, None, None, None]
    out.cov_beta_floor[fitted] *= c[:, None, None]
    out.se[fitted] *= root[:, None]


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


def blup_frame(
    coded: FloatArray, enc: Encoded, design: RunDesign, factors: tuple[str, ...], w: FloatArray
) -> pd.DataFrame:
    """The coded prediction rows (protein, factor, level codes and BLUP) as a frame, with the
    mean and minimum observation weight of each row's level (``weight_mean, weight_min``)."""
    final = pd.DataFrame(
        {
            "protein_code": coded[:, 0].astype(np.intp),
            "factor_code": coded[:, 1].astype(np.intp),
            "level_code": coded[:, 2].astype(np.intp),
            "blup": coded[:, 3],
        }
    )
    final["weight_mean"], final["weight_min"] = _level_weights(coded, enc, design, factors, w)
    return final


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
        elif name == USAGE_FACTOR:
            obs_key = usage_code(enc.feat, enc.run, design)
            size, row_key = int(obs_key.max()) + 1, lcode[rows]
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
