r"""Feature majority rule: exclude a minority feature that disagrees with the protein's others.

A feature (peptide, precursor) shifted in all runs of one condition -- a modified, shared or
interfered peptide -- is a feature x condition interaction. Huber's M-estimator is monotone and
its scale is inflated by that very interaction, so with three features it keeps about a third of
the shift in the protein's log2 fold change (``benchmarks/README.md``, "Where the *outliers*
false positives come from"). MSstats' median polish (Tukey 1977) takes the median of the
features' changes instead and keeps none of it. This module applies the majority argument at the
level of whole features, by a test, before the robust fit: a feature whose condition profile is
significantly different from that of the other features is left out, provided the excluded are
a strict minority.

Model and notation
------------------
For one protein, feature :math:`j`, condition :math:`c`, run :math:`r` (in :math:`c`):

.. math:: y_{jr} = a_{jc} + b_r + e_{jr},

saturated in feature x condition (the *pure-error* fit: Huber M-estimation from the median
polish, iterated until the weights settle, each round an exact weighted least squares;
:mod:`pepmix.model._majority_kernel`, "Saturated fit", states the model, the solver and its
guarantee). :math:`\hat a_{jc}` is estimated up to one constant per condition (the run levels
absorb it), so only differences between features within a condition are used; the run
(sample) effects cancel in them, and the interaction is measured against the *within-cell*
(pure-error) variance, which the shift does not inflate: :math:`s^2 = \sum_i r_i^2 / \nu`
over the residuals of the fit without the observations the model fits exactly (the only one
of their cell or run), :math:`\nu = n -` rank. (The MAD of those
residuals was tried first: its equivalent df, about 0.37 :math:`\nu`, left too little power with
missing values; a single outlying observation inflates :math:`s^2`, which only makes the test
more conservative.) The per-protein variances are moderated by limma's empirical Bayes
(``squeezeVar``, Smyth 2004, *Stat Appl Genet Mol Biol* 3:3) over the proteins tested, giving
:math:`\tilde s^2` with :math:`\nu + d_0` df (proteins without pure error get the prior).

The prior's sample
------------------
The prior :math:`(d_0, s_0^2)` is fitted on at most :data:`PRIOR_SAMPLE` (2,000) of the proteins
tested (:func:`prior_sample`): those with the smallest CRC-32 of the UTF-8 protein name (ties by
name), a deterministic choice that depends on each protein alone, so the one-job fit
(:func:`majority_exclusions` without ``prior``) and the sharded workflow (every fit job, from
all shards' tables: :mod:`pepmix.model.majority_shards`) use the same proteins and get the same
prior, bit for bit; with fewer candidates all are used (the demo's 1,842 proteins: nothing
changes). Only the sample's saturated fits are needed for the prior, so a fit job computes those
of the other shards' sampled proteins (about 2,000 (N - 1) / N of them) besides its own.
Precision (same cohort): the prior of all candidates is :math:`d_0 = 38.1`,
:math:`s_0^2 = 0.06036`; that of the sample 40.1 and 0.05980; over 20 other hash-chosen
samples of 2,000, :math:`d_0` 38.4 (SD 3.0) and :math:`s_0^2` 0.06036 (SD 0.55 %). :math:`s_0^2`
is known to well under 1 %; :math:`d_0` to about 8 %, which moves the moderated variance
:math:`(\nu s^2 + d_0 s_0^2)/(\nu + d_0)` and its df :math:`\nu + d_0` by a fraction of that
(less, the larger :math:`\nu`).

Test of feature :math:`j` against the set :math:`S` of the other active features: the additive
fit :math:`\hat a_{kc} = f_k + g_c` (:math:`k \in S`, least squares weighted by the cell counts
:math:`n_{kc}`, by backfitting) gives the others' profile :math:`\hat g_c`; per condition where
both are observed

.. math:: d_c = \hat a_{jc} - \hat g_c, \qquad v_c = \tilde s^2 \left(\frac{1}{n_{jc}} +
   \frac{1}{\sum_{k \in S} n_{kc}}\right),

and :math:`Q_j = \sum_c (d_c - \bar d)^2 / v_c` with :math:`\bar d` the :math:`1/v_c`-weighted
mean. With complete, balanced data and known :math:`\sigma`, :math:`Q_j \sim \chi^2_{C_j - 1}`
exactly (:math:`C_j` conditions); with :math:`\tilde s^2`, :math:`Q_j / (C_j - 1)` is referred
to :math:`F(C_j - 1, \nu + d_0)`. With missing values :math:`v_c` neglects the noise of the run
levels (approximate). Measured on null data (``benchmarks/README.md``, "A feature majority
rule"): proteins with a feature falsely excluded 0.3-2.2 % at ``alpha`` 0.01.

Rule (per protein with :math:`J \ge` :data:`MIN_SHARED` *active* features, i.e. observed in two
or more conditions): test every active feature against the other active ones; if the smallest
p-value times the number of active features (Bonferroni over the protein's features) is below
``alpha`` (default :data:`ALPHA`), exclude that feature and test again on the rest, until the
rest agree (no p-value below the Bonferroni level) -- a backward step-down outlier rule. The
excluded must be a strict minority (fewer than :math:`J/2`): when the rest still disagree once
that many are excluded, no majority defines the protein's change and nothing is excluded (two
features against two: which pair is wrong is not identifiable). With two active features
nothing tells which one disagrees, so proteins with two are never touched. The excluded
features' observations are left out of the robust fit that follows (which then reports its
usual standard errors and df for the rest); the protein's ``detail`` says which features were
excluded and their interaction p-value.

Measured (``benchmarks/README.md``, "A feature majority rule"): one shifted feature of three
leaves none of the shift in the estimate (Huber: 0.30-0.32 of it); on the *outliers* scenario
FDP 6.9 -> 4.8 % and ranking power 161 -> 179.5, other scenarios and null p-values unchanged
within the decision rule; but on the demo a feature is excluded in 14 % of the proteins (real
peptides often disagree) and one more background protein is called: an option, off by default.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from scipy import special

from pepmix.model.design import RunDesign
from pepmix.model.fit import Encoded

if TYPE_CHECKING:
    import pandas as pd

    from pepmix.model.majority_shards import ShardSample

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

#: ``model.feature_majority``'s default (the workflow's, :func:`pepmix.fit`'s)
DEFAULT = True
#: proteins need this many features observed in two or more conditions (two: not identifiable)
MIN_SHARED = 3
#: family-wise level of the exclusion test per protein (Bonferroni over its active features)
ALPHA = 0.01
#: proteins needed to fit the prior of the pure-error variances (fewer: each its own)
MIN_PRIOR = 20
#: backfitting sweeps of the others' additive profile (exact after one for complete tables)
SWEEPS = 30
#: the prior of the pure-error variances is fitted on at most this many candidate proteins
#: (:func:`prior_sample`; module docstring, "The prior's sample")
PRIOR_SAMPLE = 2000


@dataclass(frozen=True)
class Exclusions:
    """Features excluded by the majority rule.

    Attributes
    ----------
    observations : ndarray of bool, shape (N,)
        Per observation of the encoded table: True where its feature is excluded.
    features : ndarray of int
        Feature codes excluded.
    pvalues : ndarray
        Interaction p-value of each excluded feature (unadjusted).
    """

    observations: NDArray[np.bool_]
    features: IntArray
    pvalues: FloatArray

    def notes(self, enc: Encoded) -> list[str]:
        """``detail`` note per protein (empty where nothing was excluded)."""
        notes = [""] * len(enc.proteins)
        fprot = np.zeros(int(enc.feat.max()) + 1 if enc.feat.size else 0, dtype=np.intp)
        fprot[enc.feat] = enc.prot
        for f, p in zip(self.features.tolist(), self.pvalues.tolist(), strict=True):
            k = int(fprot[f])
            part = f"{enc.features[f]} (interaction p {p:.2g})"
            notes[k] = part if not notes[k] else f"{notes[k]}, {part}"
        return [
            f"excluded feature(s) {n}: inconsistent with the other features" if n else ""
            for n in notes
        ]


def cell_levels(
    enc: Encoded, design: RunDesign
) -> tuple[NDArray[np.int64], FloatArray, FloatArray, FloatArray, FloatArray]:
    r"""Cell levels of the pure-error fit (module docstring), protein by protein with
    :func:`saturated_reference`: the plain implementation of
    :func:`pepmix.model._majority_kernel.saturated_tables`.

    Returns the cell codes (``feature * n_conditions + condition``), their levels
    :math:`\hat a_{jc}` and observation counts, and per protein the scale :math:`s` and the
    residual df :math:`\nu` (NaN where :math:`\nu < 1`). The scale and df are those of the
    fit without the observations the saturated model fits exactly (the only one of their cell
    or run, pruned until none is left, as :func:`pepmix.model.robust.pure_error_scale`:
    :math:`s^2 = \sum_i r_i^2 / \nu`); the levels come from the exact weighted least squares
    of all observations (a cell with one observation has a level, only no pure error) at that
    fit's settled weights, weight 1 for the pruned observations (:mod:`pepmix.model.
    _majority_kernel`, "Saturated fit"). Cells
    outside the largest connected component of their condition's cell-run incidence get NaN
    levels (not comparable with the others).
    """
    from pepmix.model.robust import _prune_exact, _saturated_rank

    n_prot = len(enc.proteins)
    n_cond = max(len(design.conditions), 1)
    n_runs = max(len(enc.runs), 1)
    raw = enc.feat.astype(np.int64) * n_cond + design.condition_code[enc.run]
    kept = _prune_exact(raw, enc.prot.astype(np.int64) * n_runs + enc.run)
    nu = np.full(n_prot, np.nan)
    if kept.any():
        sub, n_sub = _cell_encoded(enc, raw, kept)
        n = np.bincount(sub.prot, minlength=n_prot).astype(np.float64)
        nu = n - _saturated_rank(sub, n_sub, n_prot)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(nu >= 1.0, np.sqrt(np.bincount(enc.prot[kept], minlength=n_prot) / nu),
                          np.nan)  # fmt: skip
    scale = np.full(n_prot, np.nan)
    cells = np.unique(raw)
    levels = np.full(cells.size, np.nan)
    starts = np.searchsorted(enc.prot, np.arange(n_prot + 1))
    for p in range(n_prot):
        rows = np.arange(starts[p], starts[p + 1])
        if not rows.size:
            continue
        w = np.ones(rows.size)  # pruned rows: weight 1, fitted exactly
        if nu[p] >= 1.0:
            part = rows[kept[rows]]
            resid, lev, _, w[kept[rows]] = saturated_reference(
                enc.y[part], raw[part], enc.run[part], factor[p])  # fmt: skip
            scale[p] = np.sqrt(np.sum(resid**2) / nu[p])
        if not (nu[p] >= 1.0 and kept[rows].all()):
            _, lev = exact_reference(enc.y[rows], raw[rows], enc.run[rows], w)
        own = np.unique(raw[rows])
        levels[np.searchsorted(cells, own)] = lev[own - own[0]]
    full, n_cells = _cell_encoded(enc, raw, np.ones(raw.size, dtype=bool))
    count = np.bincount(full.feat, minlength=n_cells).astype(np.float64)
    levels = np.where(_main_component(full, n_cells, n_cond, cells), levels, np.nan)
    return cells, levels, count, scale, np.where(nu >= 1.0, nu, np.nan)


def saturated_reference(
    y: FloatArray, cell: NDArray[np.int64], run: IntArray, factor: float
) -> tuple[FloatArray, FloatArray, int, FloatArray]:
    r"""Huber M-fit of one protein's :math:`y_i = a_{c(i)} + b_{r(i)} + e_i`
    (:mod:`pepmix.model._majority_kernel`, "Saturated fit"), plainly: median polish, then IRLS
    rounds (Anderson-accelerated), each an exact weighted least squares
    (:func:`exact_reference`).

    Returns the residuals, the levels ``a[c - min(cell)]`` (NaN for codes without rows), the
    rounds made (negative: the weights did not settle within
    :data:`~pepmix.model._majority_kernel.MAX_ROUNDS`) and the weights of the last round.
    ``factor`` scales the MAD.
    """
    from pepmix.model import _majority_kernel as kernel

    _, c = np.unique(cell, return_inverse=True)
    _, r = np.unique(run, return_inverse=True)
    resid = np.asarray(y, dtype=np.float64).copy()
    for _ in range(kernel.POLISH_SWEEPS):
        for code in (c, r):
            resid -= np.array([np.median(resid[code == g]) for g in range(code.max() + 1)])[code]

    def weights(res: FloatArray) -> FloatArray:
        limit = kernel.HUBER_K * kernel.MAD_SCALE * np.median(np.abs(res - np.median(res)))
        limit *= factor
        absr = np.abs(res)
        with np.errstate(divide="ignore"):
            return np.where(absr > limit, limit / absr, 1.0) if limit > 0 else np.ones(res.size)

    x_next = resid
    past_g: list[FloatArray] = []
    past_f: list[FloatArray] = []
    rounds = -kernel.MAX_ROUNDS
    for it in range(1, kernel.MAX_ROUNDS + 1):
        w = weights(x_next)
        resid, levels = exact_reference(y, cell, run, w)
        if float(np.max(np.abs(weights(resid) - w))) < kernel.WEIGHT_TOL:
            rounds = it
            break
        x_next = _anderson_step(resid, x_next, past_g, past_f)
    return resid, levels, rounds, w


def exact_reference(
    y: FloatArray, cell: NDArray[np.int64], run: IntArray, w: FloatArray
) -> tuple[FloatArray, FloatArray]:
    r"""Weighted least squares of :math:`y_i = a_{c(i)} + b_{r(i)} + e_i` at the weights ``w``
    by ``numpy.linalg.lstsq``, shifted so that :math:`\sum_r W_r b_r = 0` in every connected
    component of the cell-run incidence (:mod:`pepmix.model._majority_kernel`, "Saturated
    fit"): the residuals and
    the levels ``a[c - min(cell)]`` (NaN for codes without rows)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    cells, c = np.unique(cell, return_inverse=True)
    _, r = np.unique(run, return_inverse=True)
    nc, nr = int(c.max()) + 1, int(r.max()) + 1
    x = np.zeros((y.size, nc + nr))
    x[np.arange(y.size), c] = 1.0
    x[np.arange(y.size), nc + r] = 1.0
    graph = coo_matrix((np.ones(y.size), (c, nc + r)), shape=(nc + nr, nc + nr))
    _, comp = connected_components(graph, directed=False)
    sw = np.sqrt(w)
    coef = np.linalg.lstsq(x * sw[:, None], y * sw, rcond=None)[0]
    w_run = np.bincount(r, weights=w, minlength=nr)
    with np.errstate(invalid="ignore"):
        shift = np.bincount(comp[nc:], weights=w_run * coef[nc:]) / np.bincount(
            comp[nc:], weights=w_run)  # fmt: skip
    coef += np.r_[shift[comp[:nc]], -shift[comp[nc:]]]
    levels = np.full(int(cells[-1] - cells[0]) + 1, np.nan)
    levels[cells - cells[0]] = coef[:nc]
    return np.asarray(y - x @ coef, dtype=np.float64), levels


def _anderson_step(
    g: FloatArray, x: FloatArray, past_g: list[FloatArray], past_f: list[FloatArray]
) -> FloatArray:
    """Anderson's step of :func:`saturated_reference` (:mod:`pepmix.model._majority_kernel`):
    the next residuals after the round that took ``x`` to ``g``; ``past_g`` and ``past_f``
    (the last rounds' ``g`` and ``g - x``) are updated in place."""
    from pepmix.model._majority_kernel import ANDERSON_MEMORY

    f = g - x
    if past_f and np.linalg.norm(f) > np.linalg.norm(past_f[-1]):
        past_g.clear()  # no progress: restart from the plain step
        past_f.clear()
    past_g.append(g)
    past_f.append(f)
    if len(past_f) > ANDERSON_MEMORY + 1:
        del past_g[0], past_f[0]
    if len(past_f) < 2:
        return g
    d_f = np.diff(np.array(past_f), axis=0).T
    d_g = np.diff(np.array(past_g), axis=0).T
    try:  # the normal equations of min || f - d_f gam ||
        fac = np.linalg.cholesky(d_f.T @ d_f)
    except np.linalg.LinAlgError:  # dependent differences: restart
        del past_g[:-1], past_f[:-1]
        return g
    gam = np.linalg.solve(fac.T, np.linalg.solve(fac, d_f.T @ f))
    return np.asarray(g - d_g @ gam, dtype=np.float64)


def _cell_encoded(
    enc: Encoded, raw: NDArray[np.int64], rows: NDArray[np.bool_]
) -> tuple[Encoded, int]:
    """The observations ``rows`` with ``feat`` recoded to their cells' ranks (``raw`` codes)."""
    cells, cell = np.unique(raw[rows], return_inverse=True)
    sub = Encoded(
        proteins=enc.proteins, features=np.empty(cells.size, dtype=object), prot=enc.prot[rows],
        feat=cell.astype(np.intp).ravel(), run=enc.run[rows], y=enc.y[rows], runs=enc.runs,
    )  # fmt: skip
    return sub, int(cells.size)


def _main_component(
    sub: Encoded, n_cells: int, n_cond: int, cells: NDArray[np.int64]
) -> NDArray[np.bool_]:
    """Per cell: in the largest connected component (most cells) of its protein and condition."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n_runs = max(len(sub.runs), 1)
    _, prun = np.unique(sub.prot.astype(np.int64) * n_runs + sub.run, return_inverse=True)
    prun = prun.ravel()
    n_nodes = n_cells + int(prun.max()) + 1
    edges = (np.ones(sub.feat.size), (sub.feat, n_cells + prun))
    graph = coo_matrix(edges, shape=(n_nodes, n_nodes)).tocsr()
    _, label = connected_components(graph, directed=False)
    comp = label[:n_cells]
    cell_prot = np.zeros(n_cells, dtype=np.int64)
    cell_prot[sub.feat] = sub.prot
    group = cell_prot * n_cond + cells % n_cond
    size = np.bincount(comp)[comp]
    order = np.lexsort((-size, group))
    best = np.zeros(n_cells, dtype=np.int64)
    first = np.r_[True, np.diff(group[order]) != 0]
    head = np.maximum.accumulate(np.where(first, np.arange(order.size), 0))
    best[order] = comp[order[head]]
    return np.asarray(comp == best)


def feature_contrast(
    levels: FloatArray, counts: FloatArray, j: int, others: list[int]
) -> tuple[FloatArray, FloatArray]:
    r"""Feature ``j``'s profile against that of ``others`` (module docstring): per condition
    where both are observed, :math:`d_c` and its variance over :math:`s^2`,
    :math:`1/n_{jc} + 1/\sum_k n_{kc}`.

    ``levels`` and ``counts`` are the protein's features x conditions tables (NaN / 0 where the
    cell is missing).
    """
    a = levels[others]
    w = np.where(np.isfinite(a), counts[others], 0.0)
    a = np.where(w > 0, a, 0.0)
    w_cond = w.sum(axis=0)
    w_feat = w.sum(axis=1)
    g = np.zeros(a.shape[1])
    for _ in range(SWEEPS):
        f = (w * (a - g)).sum(axis=1) / np.maximum(w_feat, 1e-300)
        g_new = (w * (a - f[:, None])).sum(axis=0) / np.maximum(w_cond, 1e-300)
        moved = float(np.max(np.abs(g_new - g)))
        g = g_new
        if moved < 1e-10:
            break
    n_j = counts[j]
    use = (n_j > 0) & np.isfinite(levels[j]) & (w_cond > 0)
    d = levels[j, use] - g[use]
    pure = 1.0 / n_j[use] + 1.0 / w_cond[use]
    return np.asarray(d), np.asarray(pure)


def contrast_statistic(d: FloatArray, v: FloatArray) -> float:
    r""":math:`Q = \sum_c (d_c - \bar d)^2 / v_c`, :math:`\bar d` the :math:`1/v`-weighted
    mean."""
    u = 1.0 / v
    return float(np.sum(u * (d - np.sum(u * d) / np.sum(u)) ** 2))


def interaction_pvalue(
    levels: FloatArray, counts: FloatArray, j: int, others: list[int], s2: float, df2: float
) -> float:
    """p-value of feature ``j``'s interaction with the profile of ``others`` (module docstring).

    ``levels`` and ``counts`` are the protein's features x conditions tables (NaN / 0 where the
    cell is missing); ``s2`` the pure-error variance, ``df2`` its df. 1.0 where fewer than two
    conditions are comparable.
    """
    d, pure = feature_contrast(levels, counts, j, others)
    if d.size < 2:
        return 1.0
    q = contrast_statistic(d, s2 * pure)
    df1 = d.size - 1
    if not np.isfinite(df2):  # the prior took over (d0 infinite): s2 known
        return float(special.chdtrc(df1, q))
    return float(special.fdtrc(df1, df2, q / df1))  # the F(df1, df2) upper tail


def protein_exclusions(
    levels: FloatArray, counts: FloatArray, s2: float, df2: float, alpha: float = ALPHA
) -> list[tuple[int, float]]:
    """Rows (features) of one protein's tables to exclude, with their p-values (module
    docstring, "Rule"); ``alpha`` default :data:`ALPHA`."""
    observed = (counts > 0) & np.isfinite(levels)
    active = [int(k) for k in np.flatnonzero(observed.sum(axis=1) >= 2)]
    n_active = len(active)
    out: list[tuple[int, float]] = []
    if n_active < MIN_SHARED or not (s2 > 0 and df2 > 0):
        return out
    while True:
        p = [
            interaction_pvalue(levels, counts, j, [k for k in active if k != j], s2, df2)
            for j in active
        ]
        best = int(np.argmin(p))
        if p[best] * len(active) >= alpha:
            return out  # the rest agree
        if 2 * (len(out) + 1) >= n_active:
            return []  # the disagreeing features are no minority: no majority, none excluded
        out.append((active[best], p[best]))
        del active[best]


def variance_prior(s2: FloatArray, df: FloatArray) -> tuple[float, float]:
    """``(df_prior, var_prior)`` of limma's ``squeezeVar`` (Smyth 2004) fitted to ``s2`` with
    ``df`` each; ``(nan, nan)`` (no moderation) for fewer than :data:`MIN_PRIOR` proteins with
    ``df > 0``."""
    from pepmix.inference.limma.squeeze import squeeze_var

    if int(np.sum(df > 0)) < MIN_PRIOR:
        return float("nan"), float("nan")
    fit = squeeze_var(s2, df)
    return float(np.asarray(fit.df_prior)), float(np.asarray(fit.var_prior))


def moderated_scale(
    s2: FloatArray, df: FloatArray, prior: tuple[float, float] | None = None
) -> tuple[FloatArray, FloatArray]:
    """Empirical-Bayes posterior variances and their df (limma's ``squeezeVar``, Smyth 2004):
    ``s2`` with ``df`` each, squeezed towards the scaled inverse chi-square prior ``prior``
    (``(df_prior, var_prior)``; default None: :func:`variance_prior` of these ``s2``);
    unchanged (df as given) where the prior is NaN (too few proteins). The posterior is
    limma's, :math:`(\nu s^2 + d_0 s_0^2) / (\nu + d_0)` with df :math:`\nu + d_0`
    (:math:`s_0^2` with infinite df when :math:`d_0` is infinite)."""
    d0, s0 = variance_prior(s2, df) if prior is None else prior
    if np.isnan(d0):
        return np.where(df > 0, s2, np.nan), df
    if np.isinf(d0):
        return np.full(s2.shape, s0), np.full(s2.shape, np.inf)
    return np.asarray((df * s2 + d0 * s0) / (df + d0), dtype=np.float64), df + d0


def majority_exclusions(
    enc: Encoded,
    design: RunDesign,
    alpha: float = ALPHA,
    prior: tuple[float, float] | ShardSample | None = None,
) -> Exclusions:
    """Features of every protein that the majority rule excludes (module docstring).

    Compiled (:mod:`pepmix.model._majority_kernel`): the saturated fits protein by protein,
    only for proteins with :data:`MIN_SHARED` or more features observed in two or more
    conditions, and the step-down vectorised over proteins. The same exclusions and p-values
    (within the fits' tolerance) as :func:`reference_exclusions`. Saturated fits whose
    weights did not settle are counted in one warning.

    Parameters
    ----------
    enc : Encoded
        The protein table as encoded by :func:`pepmix.model.fit.encode` (features numbered by
        protein, observations sorted by protein).
    design : RunDesign
        The run design (its conditions).
    alpha : float, default 0.01
        Family-wise level per protein (Bonferroni over its active features).
    prior : (float, float) or ShardSample, optional
        ``(df_prior, var_prior)`` of the pure-error variances, fitted on the
        :func:`prior_sample` of all proteins (:func:`fit_majority_prior`), or, in the
        workflow's sharded fit jobs, the sample of all shards with the other shards' sampled
        variances (:class:`pepmix.model.majority_shards.ShardSample`: the prior is fitted here
        with this table's, the same as on all proteins, so that the result does not depend on
        the sharding); default None: fitted here, on the :func:`prior_sample` of the proteins
        of ``enc`` (the same prior when ``enc`` holds them all).
    """
    n_cond = max(len(design.conditions), 1)
    if n_cond < 2 or not enc.feat.size:
        return _none(enc)
    fprot, candidates, tables, s2, df = _pure_error(enc, design, n_cond)
    if prior is None:
        prior = _sample_prior(enc, candidates, s2, df)
    elif not isinstance(prior, tuple):  # sharded: with the other shards' sampled variances
        prior = prior.prior(np.asarray(enc.proteins, dtype=object)[candidates], s2, df)
    s2_post, df_post = moderated_scale(s2, df, prior)
    active = ((tables[1] > 0) & np.isfinite(tables[0])).reshape(-1, n_cond).sum(axis=1) >= 2
    feats, pvals = _step_down(tables, fprot, active, candidates, s2_post, df_post, alpha)
    return _exclusions(enc, fprot, feats, pvals, candidates.size)


def fit_majority_prior(enc: Encoded, design: RunDesign) -> tuple[float, float]:
    """``(df_prior, var_prior)`` of the pure-error variances of the proteins of ``enc``
    that the rule tests, on their :func:`prior_sample` (:func:`variance_prior`; NaN: too few
    proteins, no moderation): only the sample's saturated fits are computed."""
    n_cond = max(len(design.conditions), 1)
    if n_cond < 2 or not enc.feat.size:
        return float("nan"), float("nan")
    *_, s2, df = _pure_error(enc, design, n_cond, sample_only=True)
    return variance_prior(s2, df)


def condition_design(sheet: pd.DataFrame) -> RunDesign:
    """The run design the rule needs, from a resolved sample sheet alone: it uses only each
    run's condition (:attr:`RunDesign.condition_code`), the same whatever the ``model:``
    terms (random intercepts of feature only, no batch or covariate)."""
    from pepmix.model.design import ModelSpec, build_run_design

    return build_run_design(sheet, ModelSpec(random=("feature",)))


def prior_sample(names: NDArray[np.object_] | list[str], size: int | None = None) -> IntArray:
    """Positions (ascending) of the proteins ``names`` the prior is fitted on: the ``size``
    (default None: :data:`PRIOR_SAMPLE`) with the smallest CRC-32 of the UTF-8 name (ties by name),
    all of them when there are fewer.

    The hash is of the name alone, so a protein is in the sample whatever else is in the table:
    the sample of all proteins is the same in one job and across shards (module docstring,
    "The prior's sample").
    """
    n = len(names)
    size = PRIOR_SAMPLE if size is None else size
    if n <= size:
        return np.arange(n, dtype=np.intp)
    return np.sort(sample_order(names)[:size]).astype(np.intp)


def sample_order(names: NDArray[np.object_] | list[str]) -> IntArray:
    """Positions of ``names`` by increasing CRC-32 of the UTF-8 name, ties by name: the order
    in which :func:`prior_sample` takes them."""
    text = [str(x) for x in names]
    crc = np.fromiter(
        (zlib.crc32(x.encode("utf-8")) for x in text), dtype=np.int64, count=len(text)
    )
    return np.lexsort((np.asarray(text, dtype=object), crc)).astype(np.intp)


def count_candidates(enc: Encoded, design: RunDesign) -> int:
    """How many proteins of ``enc`` the rule tests (:data:`MIN_SHARED` or more features
    observed in two or more conditions): those :func:`prior_sample` chooses from."""
    n_cond = max(len(design.conditions), 1)
    if n_cond < 2 or not enc.feat.size:
        return 0
    return int(_candidates(enc, design, n_cond)[1].size)


def _pure_error(enc: Encoded, design: RunDesign, n_cond: int, sample_only: bool = False) -> tuple[
    IntArray, IntArray, tuple[FloatArray, FloatArray, NDArray[np.int64], int], FloatArray,
    FloatArray,
]:  # fmt: skip
    """Protein of each feature, the candidate proteins, the cell tables (levels, counts,
    feature starts, conditions) and the candidates' pure-error variances and df (0 and 0
    without pure error, limma's rule for df 0); with ``sample_only`` (default False) the
    candidates are only those of :func:`prior_sample`."""
    from pepmix.model._majority_kernel import saturated_tables

    n_prot = len(enc.proteins)
    fprot, candidates = _candidates(enc, design, n_cond)
    if sample_only:
        candidates = candidates[prior_sample(np.asarray(enc.proteins)[candidates])]
    feat_start = np.searchsorted(fprot, np.arange(n_prot + 1)).astype(np.int64)
    row_start = np.searchsorted(enc.prot, np.arange(n_prot + 1)).astype(np.int64)
    n_feat = fprot.size
    canon, y, feat, run = _canonical(enc, fprot)
    levels = np.full(n_feat * n_cond, np.nan)
    counts = np.zeros(n_feat * n_cond)
    scale = np.full(n_prot, np.nan)
    nu = np.full(n_prot, np.nan)
    rounds = np.zeros(n_prot, dtype=np.int64)
    saturated_tables(
        y, feat, run, np.asarray(design.condition_code, dtype=np.int64), row_start, feat_start,
        candidates.astype(np.int64), n_cond, max(len(enc.runs), 1), levels, counts, scale, nu,
        rounds,
    )  # fmt: skip
    levels = levels.reshape(n_feat, n_cond)[canon].ravel()  # back to the codes of enc
    counts = counts.reshape(n_feat, n_cond)[canon].ravel()
    _log_rounds(rounds[candidates])
    has = np.isfinite(scale[candidates]) & (scale[candidates] > 0)
    s2 = np.where(has, scale[candidates] ** 2, 0.0)
    df = np.where(has, np.nan_to_num(nu[candidates]), 0.0)
    return fprot, candidates, (levels, counts, feat_start, n_cond), s2, df


def _canonical(
    enc: Encoded, fprot: IntArray
) -> tuple[IntArray, FloatArray, NDArray[np.int64], NDArray[np.int64]]:
    """Each feature code's code when the features of every protein are numbered by name, and
    the observations ``y, feat, run`` in that numbering, ordered by feature and run.

    :func:`pepmix.model.fit.encode` numbers features by first appearance in the table, so a
    subset (a shard, the prior's sample) may number a protein's features differently; the
    saturated fits' sums (and so their last bits) follow the numbering, and in this one the
    numbers do not depend on the rest of the table."""
    names = np.asarray([str(x) for x in enc.features[: fprot.size]], dtype=object)
    order = np.lexsort((names, fprot))
    canon = np.empty(fprot.size, dtype=np.intp)
    canon[order] = np.arange(fprot.size)
    feat = canon[enc.feat].astype(np.int64)
    y, run = enc.y.astype(np.float64), enc.run.astype(np.int64)
    if feat.size > 1 and np.any(feat[1:] < feat[:-1]):
        rows = np.argsort(feat * max(len(enc.runs), 1) + run, kind="stable")
        y, feat, run = y[rows], feat[rows], run[rows]
    return canon, y, feat, run


def _log_rounds(rounds: NDArray[np.int64]) -> None:
    """Log once how many saturated fits did not settle (``rounds`` < 0: weights still moving
    after :data:`pepmix.model._majority_kernel.MAX_ROUNDS` IRLS rounds) and the rounds used."""
    from pepmix.model._majority_kernel import MAX_ROUNDS, WEIGHT_TOL

    if not rounds.size:
        return
    unsettled = int(np.sum(rounds < 0))
    log.debug("feature majority rule: saturated fits settled in %s IRLS rounds (median %.0f, "
              "max %d)", rounds.size, float(np.median(np.abs(rounds))),
              int(np.max(np.abs(rounds))))  # fmt: skip
    if unsettled:
        log.warning(
            "feature majority rule: the saturated fit of %d of %d proteins did not settle "
            "(Huber weights still moving by %g or more after %d rounds); their last "
            "round's fit is used",
            unsettled, rounds.size, WEIGHT_TOL, MAX_ROUNDS,
        )  # fmt: skip


def _sample_prior(
    enc: Encoded, candidates: IntArray, s2: FloatArray, df: FloatArray
) -> tuple[float, float]:
    """:func:`variance_prior` of the candidates' variances ``s2`` (df ``df``) in their
    :func:`prior_sample`: the prior :func:`fit_majority_prior` gives."""
    keep = prior_sample(np.asarray(enc.proteins)[candidates])
    return variance_prior(s2[keep], df[keep])


def _none(enc: Encoded) -> Exclusions:
    """No exclusion."""
    return Exclusions(np.zeros(enc.y.size, dtype=bool), np.zeros(0, np.intp), np.zeros(0))


def _candidates(enc: Encoded, design: RunDesign, n_cond: int) -> tuple[IntArray, IntArray]:
    """Protein of every feature code (codes without observations, a subset's gaps, join the
    protein before them) and the proteins with :data:`MIN_SHARED` or more features observed in
    two or more conditions."""
    n_prot = len(enc.proteins)
    n_feat = int(enc.feat.max()) + 1
    seen = np.zeros((n_feat, n_cond), dtype=bool)
    seen[enc.feat, design.condition_code[enc.run]] = True
    fprot = np.full(n_feat, -1, dtype=np.intp)
    fprot[enc.feat] = enc.prot
    fprot = np.maximum.accumulate(np.maximum(fprot, 0))
    shared = np.bincount(fprot, weights=seen.sum(axis=1) >= 2, minlength=n_prot)
    return fprot, np.flatnonzero(shared >= MIN_SHARED)


def _pvalues(q: FloatArray, df1: FloatArray, df2: FloatArray) -> FloatArray:
    """p-values of :func:`interaction_pvalue` from :math:`Q`, its df and the variance's df
    (1 where ``df1`` is 0; chi-square where ``df2`` is infinite)."""
    safe = np.maximum(df1, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(np.isfinite(df2), special.fdtrc(safe, df2, q / safe), special.chdtrc(safe, q))
    return np.asarray(np.where(df1 >= 1, p, 1.0), dtype=np.float64)


def _step_down(
    tables: tuple[FloatArray, FloatArray, NDArray[np.int64], int],
    fprot: IntArray,
    active: NDArray[np.bool_],
    candidates: IntArray,
    s2: FloatArray,
    df2: FloatArray,
    alpha: float,
) -> tuple[list[tuple[int, int, int]], list[float]]:
    """The rule of :func:`protein_exclusions` for all candidates at once: each round tests
    the active features of the proteins still going (:func:`pepmix.model._majority_kernel.
    interaction_q`). Returns (protein, step, feature) of each exclusion and its p-value."""
    from pepmix.model._majority_kernel import interaction_q

    levels, counts, feat_start, n_cond = tables
    n_prot = feat_start.size - 1
    var = np.full(n_prot, np.nan)
    dfs = np.full(n_prot, np.nan)
    var[candidates], dfs[candidates] = s2, df2
    n_active = np.bincount(fprot, weights=active, minlength=n_prot).astype(np.intp)
    going = candidates[(n_active[candidates] >= MIN_SHARED) & (var[candidates] > 0)
                       & (dfs[candidates] > 0)]  # fmt: skip
    active = active & np.isin(fprot, going)
    found: dict[int, list[tuple[int, float]]] = {}
    q = np.zeros(fprot.size)
    df1 = np.zeros(fprot.size, dtype=np.int64)
    while going.size:
        interaction_q(levels, counts, feat_start, active, going.astype(np.int64), var[going],
                      n_cond, q, df1)  # fmt: skip
        rows = np.flatnonzero(active)
        prot = fprot[rows]
        p = _pvalues(q[rows], df1[rows].astype(np.float64), dfs[prot])
        order = np.lexsort((rows, p, prot))
        first = order[np.r_[True, np.diff(prot[order]) != 0]]
        best, pbest, pprot = rows[first], p[first], prot[first]
        left = np.bincount(prot, minlength=n_prot)[pprot]
        moving = pbest * left < alpha
        done = np.array([len(found.get(int(k), [])) for k in pprot], dtype=np.intp)
        for k, f, pv, mv, n_done in zip(pprot.tolist(), best.tolist(), pbest.tolist(),
                                        moving.tolist(), done.tolist(), strict=True):  # fmt: skip
            if not mv:
                continue
            if 2 * (n_done + 1) >= n_active[k]:
                found.pop(k, None)  # no minority disagrees: nothing excluded
                active[feat_start[k] : feat_start[k + 1]] = False
                continue
            found.setdefault(k, []).append((f, pv))
            active[f] = False
        going = np.unique(fprot[active])
        going = going[np.isin(going, pprot[moving])]
        active &= np.isin(fprot, going)
    triples = [(k, i, f) for k in sorted(found) for i, (f, _) in enumerate(found[k])]
    return triples, [pv for k in sorted(found) for _, pv in found[k]]


def _exclusions(
    enc: Encoded, fprot: IntArray, triples: list[tuple[int, int, int]], pvals: list[float],
    n_tested: int,
) -> Exclusions:  # fmt: skip
    """:class:`Exclusions` of the features in ``triples`` (protein, step, feature); logged."""
    feats = [f for _, _, f in triples]
    excluded = np.zeros(fprot.size, dtype=bool)
    excluded[feats] = True
    log.info(
        "feature majority rule: %d features of %d proteins excluded (of %d proteins tested)",
        len(feats),
        len({k for k, _, _ in triples}),
        n_tested,
    )
    return Exclusions(excluded[enc.feat], np.asarray(feats, dtype=np.intp), np.asarray(pvals))


def reference_exclusions(enc: Encoded, design: RunDesign, alpha: float = ALPHA) -> Exclusions:
    """:func:`majority_exclusions` by the whole-table saturated fits of :func:`cell_levels` and
    a loop over proteins (:func:`protein_exclusions`): the plain implementation the compiled one
    is tested against (``alpha`` default :data:`ALPHA`)."""
    n_prot = len(enc.proteins)
    n_cond = max(len(design.conditions), 1)
    if n_cond < 2 or not enc.feat.size:
        return _none(enc)
    cells, levels, count, scale, nu = cell_levels(enc, design)
    fprot, candidates = _candidates(enc, design, n_cond)
    n_feat = fprot.size
    table = np.full((n_feat, n_cond), np.nan)
    counts = np.zeros((n_feat, n_cond))
    table[cells // n_cond, cells % n_cond] = levels
    counts[cells // n_cond, cells % n_cond] = count
    starts = np.searchsorted(fprot, np.arange(n_prot + 1))
    # no pure error (nu < 1): df 0, the prior's variance (limma's rule for df 0)
    has = np.isfinite(scale[candidates]) & (scale[candidates] > 0)
    s2 = np.where(has, scale[candidates] ** 2, 0.0)
    df = np.where(has, np.nan_to_num(nu[candidates]), 0.0)
    s2_post, df_post = moderated_scale(s2, df, _sample_prior(enc, candidates, s2, df))
    triples: list[tuple[int, int, int]] = []
    pvals: list[float] = []
    for i, k in enumerate(candidates.tolist()):
        lo, hi = int(starts[k]), int(starts[k + 1])
        var, df2 = float(s2_post[i]), float(df_post[i])
        out = protein_exclusions(table[lo:hi], counts[lo:hi], var, df2, alpha)
        for step, (row, p) in enumerate(out):
            triples.append((k, step, lo + row))
            pvals.append(p)
    return _exclusions(enc, fprot, triples, pvals, candidates.size)
