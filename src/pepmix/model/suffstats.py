r"""From observations to per-protein sufficient statistics, in one grouping pass.

Input: for every observation its protein code, feature code (contiguous within a protein when the
table is sorted by protein), run code and log2 intensity, plus the :class:`RunDesign`. Output: a
:class:`Problem` holding, per protein, the checks of :mod:`pepmix.model.checks`, the choice of the
eliminated factor and the padded buckets of :class:`pepmix.model.reml.Bucket` that the optimiser
works on. After this step nothing scales with the number of observations.

Level counts and the checks come from the (protein, run) count table; the cross-products are
accumulated by the compiled pass of :mod:`pepmix.model._kernel`, straight into each bucket's
padded layout (proteins are ordered by bucket so that a bucket is one contiguous block).

Observation weights (``e_i ~ N(0, sigma^2 / w_i)``, used by the robust fit of
:mod:`pepmix.model.robust`): weighted REML is the unweighted model on rows scaled by
:math:`\sqrt{w_i}` (``y``, ``X`` and ``Z``). The cross-products become weighted sums, and the
eliminated factor's diagonal :math:`n_j` becomes the weight sum :math:`\sum_{i \in j} w_i` of level
``j``. Weight sums are nearly always distinct, so count classes would hold one level each:
weighted problems store every level as a rank-one class, its row :math:`w_j` (see "Rank-one
classes" in :mod:`pepmix.model.reml`; memory :math:`O(L d)` instead of :math:`O(L d^2)` per
protein for :math:`L` levels). The log-likelihood gains the constant
:math:`-\sum_i \log w_i` (in deviance units), kept in :attr:`Problem.neg_logw` and added to
the reported criterion (as lme4's ``REMLcrit`` does with ``weights=``). Without weights (or all
weights 1) nothing changes.

Peptide usage: the feature x condition factor
---------------------------------------------
With ``feature:condition`` in ``model.random`` (lme4's ``(1|feature:condition)``; off by default)
the model gains :math:`Z_U w`, :math:`w \sim N(0, \sigma^2\theta_U^2 I)`, with one level per
observed cell :math:`(f, c)` (feature :math:`f` observed in some run of condition :math:`c`):
:math:`Z_U[i, (f, c)] = 1` when observation :math:`i` is of feature :math:`f` in a run of
condition :math:`c`. Although nested in the feature, :math:`U` is an ordinary random-intercept
factor: every observation is in exactly one cell, so :math:`Z_U'Z_U = \mathrm{diag}(n_{fc})`
(observations per cell) is diagonal and the factor fits either slot of the engine exactly,
without new algebra:

- eliminated (the usual case, more cells than samples): the diagonal block
  :math:`1 + t_U n_{fc}`, count classes by :math:`n_{fc}` (at most the number of runs of a
  condition, so a handful of classes), :math:`w_{fc} = Z_U[:, (f, c)]'[Z_K X y]` with
  :math:`K` = feature and the run-level factors; or
- kept in the dense block :math:`K` next to the features (few features, many samples: the
  samples are eliminated), :math:`m (1 + C)` dimensions for :math:`m` features and :math:`C`
  conditions.

The rule "eliminate the factor with the most observed levels" of the default model chooses, so the
dense block has :math:`m + \min(S, \text{cells})` random dimensions (:math:`S` run-level levels):
memory :math:`O(d^2)` per protein with :math:`d` that plus the fixed effects, an evaluation
:math:`O(C_n d^2 + d^3)`. The criterion, its exact gradient and Hessian, the GLS estimates, the
fixed-effect covariance and the Satterthwaite derivatives of :mod:`pepmix.model.reml` and
:mod:`pepmix.model.satterthwaite` are written for any set of random-intercept factors (per-factor
masks of the kept dimensions, or the eliminated factor), so they hold unchanged. The kernel reads
an observation's cell from :attr:`UsageCells.local` (``run_codes`` row ``-2``).

Checks specific to the term (it is dropped, with a reason in ``detail``): a protein with one
feature (the cells are the conditions: the term is confounded with the condition effect and the
REML criterion does not depend on :math:`\theta_U`), and a protein whose every feature is observed
in one condition only (the cells are the features: same grouping as ``feature``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from pepmix.model.checks import greedy_independent
from pepmix.model.design import OBSERVATION_FACTORS, USAGE_FACTOR, RunDesign, usage_code
from pepmix.model.reml import DIM_FIXED, DIM_PAD, Bucket

log = logging.getLogger(__name__)

IntArray = NDArray[np.intp]
FloatArray = NDArray[np.float64]

#: padded sizes of the random-effect block, to keep the number of buckets small
_Q_SIZES = (0, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64)
#: upper bound on elements of one bucket's W array (memory of a chunk)
_MAX_W_ELEMENTS = 1 << 23


@dataclass
class UsageCells:
    """Observed (feature, condition) cells of every protein: the levels of the usage factor.

    Cells of protein ``p`` are ``first[p]:first[p + 1]`` in (feature, condition) order.

    Attributes
    ----------
    first : ndarray of int, shape (P + 1,)
        Offset of each protein's cells.
    code : ndarray of int, shape (J,)
        Global cell code ``feature * n_conditions + condition``.
    count : ndarray of int, shape (J,)
        Observations per cell.
    index : ndarray of int, shape (N,)
        Cell (global index into ``code``) of every observation.
    local : ndarray of int32, shape (N,)
        Protein-local cell index of every observation.
    """

    first: IntArray
    code: IntArray
    count: IntArray
    index: IntArray
    local: NDArray[np.int32]


def usage_cells(
    prot: IntArray, feat: IntArray, run: IntArray, design: RunDesign, n_prot: int
) -> UsageCells:
    """The (feature, condition) cells of every protein (see :class:`UsageCells`)."""
    cell = usage_code(feat, run, design).astype(np.int64)
    span = int(cell.max()) + 1 if cell.size else 1
    uniq, index = np.unique(prot.astype(np.int64) * span + cell, return_inverse=True)
    index = index.ravel().astype(np.intp)
    n_cells = np.bincount((uniq // span).astype(np.intp), minlength=n_prot)
    first = np.concatenate([[0], np.cumsum(n_cells)]).astype(np.intp)
    return UsageCells(
        first=first,
        code=(uniq % span).astype(np.intp),
        count=np.bincount(index, minlength=uniq.size).astype(np.intp),
        index=index,
        local=(index - first[prot]).astype(np.int32),
    )


@dataclass
class EliminatedLevels:
    """Levels of the eliminated factor of the proteins of one bucket.

    Attributes
    ----------
    rows : ndarray, shape (J, d)
        :math:`w_j` of every level (padded layout of the bucket).
    position : ndarray of int, shape (J,)
        Position of the level's protein in the bucket.
    count : ndarray of int, shape (J,)
        Observations in the level.
    wsum : ndarray, shape (J,)
        Weight sum of the level's observations (``count`` without weights).
    level : ndarray of int, shape (J,)
        Global level code (feature code, or level code of the run-level factor / run).
    """

    rows: FloatArray
    position: IntArray
    count: IntArray
    level: IntArray
    wsum: FloatArray


@dataclass
class Problem:
    r"""Everything the optimiser and the result assembly need.

    Attributes
    ----------
    n_proteins : int
    factors : tuple of str
        Model random factors (``F`` of them).
    n_obs : ndarray of int, shape (P,)
    n_levels : ndarray of int, shape (P, F)
        Observed levels per factor.
    active : ndarray of bool, shape (P, F)
        Factors kept in each protein's model (free variance).
    xkeep : ndarray of bool, shape (P, p)
        Fixed-effect columns kept.
    nu : ndarray, shape (P,)
        Residual degrees of freedom ``n - p_kept``.
    fittable : ndarray of bool, shape (P,)
    detail : list of str
        Reasons for dropped terms (empty when none).
    ybar : ndarray, shape (P,)
        Mean of ``y`` per protein (``y`` is centred before forming cross-products).
    efactor : ndarray of int, shape (P,)
        Eliminated random factor per protein (-1 if none).
    e_fixed : bool
        Whether the eliminated levels are fixed run means (protein abundance model).
    buckets : list of (ndarray, Bucket)
        Protein indices and their padded statistics.
    levels : list of EliminatedLevels
        Eliminated levels of each bucket (same order as ``buckets``).
    cells : UsageCells or None
        Levels of the feature x condition factor (None when the model has none).
    dim_level : list of ndarray
        Per bucket, shape ``(B, d)``: global level code of each random-effect dimension
        (-1 elsewhere), for labelling BLUPs.
    neg_logw : ndarray, shape (P,)
        :math:`-\sum_i \log w_i` per protein (zeros without weights): the constant that the
        weighted criterion adds to the criterion of the scaled rows.
    """

    n_proteins: int
    factors: tuple[str, ...]
    n_obs: IntArray
    n_levels: IntArray
    active: NDArray[np.bool_]
    xkeep: NDArray[np.bool_]
    nu: FloatArray
    fittable: NDArray[np.bool_]
    detail: list[str]
    ybar: FloatArray
    efactor: IntArray
    e_fixed: bool
    buckets: list[tuple[IntArray, Bucket]] = field(default_factory=list)
    levels: list[EliminatedLevels] = field(default_factory=list)
    dim_level: list[IntArray] = field(default_factory=list)
    neg_logw: FloatArray = field(default_factory=lambda: np.zeros(0))
    cells: UsageCells | None = None


def _levels(
    prot: IntArray, level: IntArray, n_prot: int, n_level: int
) -> tuple[IntArray, IntArray, IntArray]:
    """Local level index of each observation, levels per protein, largest level count."""
    counts = np.bincount(prot * n_level + level, minlength=n_prot * n_level).reshape(
        n_prot, n_level
    )
    present = counts > 0
    local_table = np.cumsum(present, axis=1) - 1
    local = local_table[prot, level]
    return local.astype(np.intp), present.sum(axis=1), counts.max(axis=1)


def _group_columns(
    table: NDArray[np.generic], codes: IntArray, n_groups: int, dtype: type = np.intp
) -> NDArray[Any]:
    """Sum the columns of ``table`` (shape ``(P, R)``) by group ``codes`` (shape ``(R,)``)."""
    out: NDArray[Any] = np.zeros((table.shape[0], n_groups), dtype=dtype)
    if table.shape[1] == 0:
        return out
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    sums = np.add.reduceat(table[:, order].astype(dtype), starts, axis=1)
    out[:, sorted_codes[starts]] = sums
    return out


def build_problem(
    prot: IntArray,
    feat: IntArray,
    run: IntArray,
    y: FloatArray,
    design: RunDesign,
    n_proteins: int | None = None,
    compress: bool = True,
    weights: FloatArray | None = None,
) -> Problem:
    """Group observations by protein and build the padded buckets.

    Parameters
    ----------
    prot : ndarray of int, shape (N,)
        Protein code of each observation, sorted ascending.
    feat : ndarray of int, shape (N,)
        Feature code, contiguous and ascending within each protein.
    run : ndarray of int, shape (N,)
        Run code (row of ``design.x``).
    y : ndarray, shape (N,)
        log2 intensity.
    design : RunDesign
        Fixed-effect design and run-level factor codes.
    n_proteins : int, optional
        Number of proteins (default ``prot.max() + 1``).
    compress : bool, default True
        Sum eliminated-factor levels with equal counts (count classes; with weights: rank-one
        classes). ``False`` keeps one class matrix per level: slower, identical results; used by
        tests.
    weights : ndarray, shape (N,), optional
        Observation weights (positive, finite): residual variance ``sigma^2 / w_i``. Default (or
        all weights 1): the unweighted model, computed exactly as without the argument.
    """
    n_obs_total = int(prot.size)
    n_prot = int(n_proteins if n_proteins is not None else (prot.max() + 1 if prot.size else 0))
    if n_obs_total and np.any(np.diff(prot) < 0):
        raise ValueError("observations must be sorted by protein")
    weights = _check_weights(weights, n_obs_total)
    factors = tuple(design.spec.random)
    n_f = len(factors)
    n_x = design.n_fixed
    n_runs = design.x.shape[0]
    n_obs = np.bincount(prot, minlength=n_prot).astype(np.intp)
    prot_start = np.concatenate([[0], np.cumsum(n_obs)]).astype(np.int64)
    first_feat = np.zeros(n_prot, dtype=np.intp)
    has_obs = n_obs > 0
    first_feat[has_obs] = feat[prot_start[:-1][has_obs]]
    feat_local = (feat - first_feat[prot]).astype(np.int32)

    # --- levels of every factor, from the (protein, run) count table -----------------------
    pr_counts = np.bincount(prot.astype(np.int64) * n_runs + run, minlength=n_prot * n_runs)
    pr_counts = pr_counts.reshape(n_prot, n_runs)
    n_levels = np.zeros((n_prot, n_f), dtype=np.intp)
    level_counts: dict[int, IntArray] = {}
    # run_codes[f] < 0 marks the feature factor; the last row is the run itself (fixed runs)
    run_codes = np.full((n_f + 1, max(n_runs, 1)), -1, dtype=np.int32)
    max_levels = max(
        [n_runs]
        + [int(design.factor_codes[f].max()) + 1 for f in factors if f not in OBSERVATION_FACTORS]
    )
    local_tables = np.zeros((n_f + 1, n_prot, max_levels), dtype=np.int32)
    feature_counts = np.bincount(feat, minlength=int(feat.max()) + 1 if feat.size else 0)
    n_feat = np.bincount(prot, weights=np.r_[True, np.diff(feat) != 0], minlength=n_prot)
    n_feat = n_feat.astype(np.intp)
    cells = usage_cells(prot, feat, run, design, n_prot) if USAGE_FACTOR in factors else None
    for f, name in enumerate(factors):
        if name == "feature":
            n_levels[:, f] = n_feat
            continue
        if name == USAGE_FACTOR:
            assert cells is not None
            n_levels[:, f] = np.diff(cells.first)
            run_codes[f, :] = -2
            continue
        codes = design.factor_codes[name]
        counts = _group_columns(pr_counts, codes, int(codes.max()) + 1)
        level_counts[f] = counts
        present = counts > 0
        n_levels[:, f] = present.sum(axis=1)
        run_codes[f, :n_runs] = codes
        local_tables[f, :, : counts.shape[1]] = np.cumsum(present, axis=1) - 1
    run_codes[n_f, :n_runs] = np.arange(n_runs)
    local_tables[n_f, :, :n_runs] = np.cumsum(pr_counts > 0, axis=1) - 1

    # --- checks ------------------------------------------------------------------------------
    active = np.ones((n_prot, n_f), dtype=bool)
    reasons: list[list[str]] = [[] for _ in range(n_prot)]

    def drop(mask: NDArray[np.bool_], f: int, why: str) -> None:
        hit = mask & active[:, f]
        active[hit, f] = False
        for i in np.flatnonzero(hit):
            reasons[i].append(f"{factors[f]}: {why}")

    for f in range(n_f):
        drop(n_levels[:, f] <= 1, f, "one level")
        drop((n_levels[:, f] == n_obs) & (n_obs > 1), f, "one observation per level")
    if cells is not None:
        f = factors.index(USAGE_FACTOR)
        drop(n_feat <= 1, f, "one feature (confounded with condition)")
        if "feature" in factors:
            same = active[:, factors.index("feature")] & (n_levels[:, f] == n_feat)
            drop(same, f, "each feature in one condition (same grouping as feature)")
    run_level = [f for f, name in enumerate(factors) if name not in OBSERVATION_FACTORS]
    run_seen = pr_counts > 0
    for i, fa in enumerate(run_level):
        for fb in run_level[i + 1 :]:
            ca = design.factor_codes[factors[fa]]
            cb = design.factor_codes[factors[fb]]
            pair_codes, _ = pd.factorize(ca.astype(np.int64) * (int(cb.max()) + 1) + cb)
            pairs = (_group_columns(run_seen, pair_codes, int(pair_codes.max()) + 1) > 0).sum(1)
            same = (pairs == n_levels[:, fa]) & (pairs == n_levels[:, fb])
            drop(same & active[:, fa], fb, f"same grouping as {factors[fa]}")
    n_cond = len(design.conditions)
    for f in run_level:
        if factors[f] == "batch" or n_cond == 0:
            continue
        # levels of sample/run are nested in conditions: observed levels per condition
        codes = design.factor_codes[factors[f]]
        cond_of_level = np.zeros(int(codes.max()) + 1, dtype=np.intp)
        cond_of_level[codes] = design.condition_code
        present = (level_counts[f] > 0).astype(np.intp)
        per_cond = _group_columns(present, cond_of_level, n_cond)
        nested_single = np.all(per_cond <= 1, axis=1)
        drop(nested_single, f, "at most one level per condition (confounded with condition)")

    # fixed effects: X'X per protein from (protein, run) counts
    xtx = np.einsum("pr,ri,rj->pij", pr_counts.astype(np.float64), design.x, design.x)
    xkeep = greedy_independent(xtx)
    p_kept = xkeep.sum(axis=1)
    fixed_runs = design.spec.fixed_runs
    if fixed_runs:
        # fixed run means, eliminated like a random factor with infinite variance
        runs_seen = (pr_counts > 0).sum(axis=1)
        p_kept = p_kept + runs_seen
    nu = (n_obs - p_kept).astype(np.float64)
    fittable = (nu >= 1) & (n_obs > 0)
    detail = ["; ".join(r) for r in reasons]

    ybar = np.bincount(prot, weights=y, minlength=n_prot) / np.maximum(n_obs, 1)
    yc = np.ascontiguousarray(y - ybar[prot], dtype=np.float64)

    # --- eliminated factor and layout -------------------------------------------------------
    q_active = np.where(active, n_levels, 0)
    efactor = np.where(q_active.max(axis=1) > 0, np.argmax(q_active, axis=1), -1).astype(np.intp)
    efactor = np.where(fittable & ~fixed_runs, efactor, -1)
    is_k = active & (np.arange(n_f)[None, :] != efactor[:, None]) & fittable[:, None]
    q_k = np.where(is_k, n_levels, 0)
    q_tot = q_k.sum(axis=1)
    k_offset = np.concatenate([np.zeros((n_prot, 1), dtype=np.intp), np.cumsum(q_k, axis=1)], 1)
    # kernel's view of the eliminated factor: index into run_codes (n_f = the run itself)
    kernel_e = np.where(efactor >= 0, efactor, np.where(fixed_runs & fittable, n_f, -1))
    n_e = np.zeros(n_prot, dtype=np.intp)
    for f in range(n_f):
        sel = kernel_e == f
        n_e[sel] = n_levels[sel, f]
    if fixed_runs:
        n_e[kernel_e == n_f] = runs_seen[kernel_e == n_f]

    # counts of the eliminated levels (in local order) and their count classes
    e_counts = _eliminated_counts(
        kernel_e, n_e, factors, level_counts, pr_counts, feature_counts, first_feat, cells
    )
    e_offset = np.concatenate([[0], np.cumsum(n_e)]).astype(np.int64)
    e_protein = np.repeat(np.arange(n_prot), n_e)
    e_wsum: FloatArray = e_counts.astype(np.float64)
    if weights is not None:
        e_wsum = _eliminated_weights(
            kernel_e,
            n_e,
            factors,
            design,
            (prot, feat, run, weights),
            first_feat,
            pr_counts,
            level_counts,
            cells,
        )
    # weighted and compressed: rank-one classes (one level each, stored as its row w_j)
    rank_one = compress and weights is not None
    if compress and not rank_one:
        ckey = e_protein.astype(np.int64) * (n_obs_total + 1) + e_counts
        uniq, inverse = np.unique(ckey, return_inverse=True)
        cls_protein = (uniq // (n_obs_total + 1)).astype(np.intp)
        cls_value = (uniq % (n_obs_total + 1)).astype(np.float64)
        cls_m = np.bincount(inverse, minlength=uniq.size).astype(np.float64)
    else:
        inverse = np.arange(e_counts.size)
        cls_protein = e_protein
        cls_value = e_wsum
        cls_m = np.ones(e_counts.size)
    n_cls = np.bincount(cls_protein, minlength=n_prot).astype(np.intp)
    cls_offset = np.concatenate([[0], np.cumsum(n_cls)]).astype(np.intp)
    e_class = (inverse - cls_offset[e_protein]).astype(np.int64)

    # --- buckets: proteins ordered by padded size, then chunked ----------------------------
    sizes = np.asarray(_Q_SIZES)
    q_pad = np.where(
        q_tot <= sizes[-1], sizes[np.minimum(np.searchsorted(sizes, q_tot), sizes.size - 1)], q_tot
    )
    fit_idx = np.flatnonzero(fittable)
    chunks: list[tuple[IntArray, int, int]] = []
    for qp in np.unique(q_pad[fit_idx]):
        in_q = fit_idx[q_pad[fit_idx] == qp]
        d = int(qp) + n_x + 1
        # rank-one rows are reduced by a matrix product over the padded level axis: pad it to a
        # size that depends on the protein alone, so that a protein's numbers do not depend on
        # which proteins share its bucket (shard invariance to the last bit)
        l_pad = _level_pad(n_cls[in_q]) if rank_one else np.zeros(in_q.size, dtype=np.intp)
        for lp in np.unique(l_pad):
            members = in_q[l_pad == lp]
            c_max = int(lp) if rank_one else max(int(n_cls[members].max()), 1)
            chunk = max(1, _MAX_W_ELEMENTS // (c_max * d * (1 if rank_one else d)))
            for lo in range(0, members.size, chunk):
                chunks.append((members[lo : lo + chunk], d, c_max))
    order = np.concatenate([c[0] for c in chunks]) if chunks else np.zeros(0, dtype=np.intp)
    d_of = np.zeros(n_prot, dtype=np.int64)
    c_of = np.zeros(n_prot, dtype=np.int64)
    for members, d, c_max in chunks:
        d_of[members] = d
        c_of[members] = c_max
    g_size = np.zeros(n_prot, dtype=np.int64)
    g_size[order] = d_of[order] ** 2
    w_size = np.zeros(n_prot, dtype=np.int64)
    if not rank_one:
        w_size[order] = c_of[order] * d_of[order] ** 2
    r_size = np.zeros(n_prot, dtype=np.int64)
    r_size[order] = n_e[order] * d_of[order]
    g_offset = _offsets_in_order(g_size, order)
    w_offset = _offsets_in_order(w_size, order)
    erow_offset = _offsets_in_order(r_size, order)
    g_flat = np.zeros(int(g_size.sum()))
    w_flat = np.zeros(int(w_size.sum()))
    erow_flat = np.zeros(int(r_size.sum()))
    # imported here: numba (~0.2-0.4 s to import and load the cached kernel) only in jobs that
    # fit, not in those that read a stored fit (rule test imports this module through it)
    from pepmix.model._kernel import accumulate

    accumulate(
        prot_start,
        order.astype(np.int64),
        feat_local,
        run.astype(np.int32),
        yc,
        np.ascontiguousarray(design.x, dtype=np.float64),
        xkeep,
        run_codes,
        local_tables,
        is_k,
        k_offset.astype(np.int64),
        kernel_e.astype(np.int64),
        q_pad.astype(np.int64),
        g_offset,
        w_offset,
        e_offset,
        e_class,
        g_flat,
        w_flat,
        erow_flat,
        erow_offset,
        np.zeros(0) if weights is None else weights,
        np.zeros(0, dtype=np.int32) if cells is None else cells.local,
    )

    problem = Problem(
        n_proteins=n_prot,
        factors=factors,
        n_obs=n_obs,
        n_levels=n_levels,
        active=active,
        xkeep=xkeep,
        nu=nu,
        fittable=fittable,
        detail=detail,
        ybar=ybar,
        efactor=efactor,
        e_fixed=fixed_runs,
        cells=cells,
    )
    problem.neg_logw = (
        np.zeros(n_prot)
        if weights is None
        else -np.bincount(prot, weights=np.log(weights), minlength=n_prot).astype(np.float64)
    )
    global_levels = _global_level_tables(factors, level_counts, n_prot)
    for members, d, c_max in chunks:
        nb = members.size
        first = members[0]
        g = g_flat[g_offset[first] : g_offset[first] + nb * d * d].reshape(nb, d, d)
        slot = cls_offset[members][:, None] + np.arange(c_max)[None, :]
        valid = np.arange(c_max)[None, :] < n_cls[members][:, None]
        w: FloatArray
        if rank_one:
            w = np.zeros((nb, c_max, d))
            n_rows = int(n_cls[members].sum())
            w[valid] = erow_flat[erow_offset[first] : erow_offset[first] + n_rows * d].reshape(
                n_rows, d
            )
        else:
            size = nb * c_max * d * d
            w = w_flat[w_offset[first] : w_offset[first] + size].reshape(nb, c_max, d, d)
        qp = d - n_x - 1
        for j in range(n_x):
            dropped = ~xkeep[members, j]
            g[dropped, qp + j, qp + j] = 1.0
        cls_n = np.zeros((nb, c_max))
        cls_mm = np.zeros((nb, c_max))
        cls_n[valid] = cls_value[slot[valid]]
        cls_mm[valid] = cls_m[slot[valid]]
        dimfactor = np.full((nb, d), DIM_PAD, dtype=np.intp)
        dimfactor[:, qp:] = DIM_FIXED
        dim_level = np.full((nb, d), -1, dtype=np.intp)
        for f in range(n_f):
            width = np.where(is_k[members, f], n_levels[members, f], 0)
            for row in np.flatnonzero(width).tolist():
                start = int(k_offset[members[row], f])
                stop = start + int(width[row])
                dimfactor[row, start:stop] = f
                if factors[f] == "feature":
                    first_code = first_feat[members[row]]
                    dim_level[row, start:stop] = first_code + np.arange(stop - start)
                elif factors[f] == USAGE_FACTOR:
                    assert cells is not None
                    first_cell = cells.first[members[row]]
                    dim_level[row, start:stop] = cells.code[first_cell : first_cell + stop - start]
                else:
                    dim_level[row, start:stop] = global_levels[f][members[row]]
        bucket = Bucket(
            G=g,
            W=w,
            cls_n=cls_n,
            cls_m=cls_mm,
            dimfactor=dimfactor,
            efactor=efactor[members],
            free=active[members].copy(),
            nu=nu[members],
            n_x=n_x,
            e_fixed=fixed_runs,
        )
        problem.buckets.append((members, bucket))
        problem.dim_level.append(dim_level)
        problem.levels.append(
            _bucket_levels(
                members,
                d,
                kernel_e,
                n_e,
                e_offset,
                e_counts,
                e_wsum,
                erow_flat,
                erow_offset,
                factors,
                first_feat,
                global_levels,
                pr_counts,
                cells,
            )
        )
    log.debug("built %d buckets for %d fittable proteins", len(chunks), fit_idx.size)
    return problem


def _level_pad(n_levels: NDArray[np.integer[Any]]) -> IntArray:
    """Padded number of rank-one level rows: the smallest of 1, 2, 3, 4, 6, 8, 12, 16, ... (powers
    of two and 1.5 times them) that holds ``n_levels`` (at most 1.5 times the rows needed)."""
    n = np.maximum(np.asarray(n_levels, dtype=np.int64), 1)
    power = 2 ** np.floor(np.log2(n)).astype(np.int64)
    return np.asarray(
        np.where(n <= power, power, np.where(n <= (3 * power) // 2, (3 * power) // 2, 2 * power)),
        dtype=np.intp,
    )


def _offsets_in_order(size: NDArray[np.int64], order: IntArray) -> NDArray[np.int64]:
    """Start of each protein's block when blocks are laid out in ``order``."""
    offsets = np.zeros(size.size, dtype=np.int64)
    if order.size:
        starts = np.concatenate([[0], np.cumsum(size[order])[:-1]])
        offsets[order] = starts
    return offsets


def _eliminated_counts(
    kernel_e: IntArray,
    n_e: IntArray,
    factors: tuple[str, ...],
    level_counts: dict[int, IntArray],
    pr_counts: IntArray,
    feature_counts: IntArray,
    first_feat: IntArray,
    cells: UsageCells | None = None,
) -> IntArray:
    """Observation count of every eliminated level, proteins in code order, levels in local
    order."""
    parts = []
    n_f = len(factors)
    for p in np.flatnonzero(kernel_e >= 0):
        e = int(kernel_e[p])
        if e == n_f:
            row = pr_counts[p]
            parts.append(row[row > 0])
        elif factors[e] == "feature":
            parts.append(feature_counts[first_feat[p] : first_feat[p] + n_e[p]])
        elif factors[e] == USAGE_FACTOR:
            assert cells is not None
            parts.append(cells.count[cells.first[p] : cells.first[p + 1]])
        else:
            row = level_counts[e][p]
            parts.append(row[row > 0])
    if not parts:
        return np.zeros(0, dtype=np.intp)
    return np.concatenate(parts).astype(np.intp)


def _check_weights(weights: FloatArray | None, n_obs: int) -> FloatArray | None:
    """Validated weights as float64, or ``None`` when absent or all exactly 1."""
    if weights is None:
        return None
    w = np.ascontiguousarray(weights, dtype=np.float64)
    if w.shape != (n_obs,):
        raise ValueError("weights must have one value per observation")
    if not np.all(np.isfinite(w) & (w > 0)):
        raise ValueError("weights must be positive and finite")
    return None if bool(np.all(w == 1.0)) else w


def _eliminated_weights(
    kernel_e: IntArray,
    n_e: IntArray,
    factors: tuple[str, ...],
    design: RunDesign,
    obs: tuple[IntArray, IntArray, IntArray, FloatArray],
    first_feat: IntArray,
    pr_counts: IntArray,
    level_counts: dict[int, IntArray],
    cells: UsageCells | None = None,
) -> FloatArray:
    """Weight sum of every eliminated level, in the order of :func:`_eliminated_counts`.

    ``obs`` holds the protein, feature and run codes and the weight of every observation.
    """
    prot, feat, run, weights = obs
    n_prot, n_runs = pr_counts.shape
    pr_w = np.bincount(
        prot.astype(np.int64) * n_runs + run, weights=weights, minlength=n_prot * n_runs
    ).reshape(n_prot, n_runs)
    feat_w = np.bincount(feat, weights=weights)
    cell_w = (
        np.bincount(cells.index, weights=weights, minlength=cells.code.size)
        if cells is not None
        else np.zeros(0)
    )
    grouped = {
        f: _group_columns(pr_w, design.factor_codes[factors[f]], counts.shape[1], np.float64)
        for f, counts in level_counts.items()
        if bool(np.any(kernel_e == f))
    }
    n_f = len(factors)
    parts = []
    for p in np.flatnonzero(kernel_e >= 0):
        e = int(kernel_e[p])
        if e == n_f:
            parts.append(pr_w[p][pr_counts[p] > 0])
        elif factors[e] == "feature":
            parts.append(feat_w[first_feat[p] : first_feat[p] + n_e[p]])
        elif factors[e] == USAGE_FACTOR:
            assert cells is not None
            parts.append(cell_w[cells.first[p] : cells.first[p + 1]])
        else:
            parts.append(grouped[e][p][level_counts[e][p] > 0])
    if not parts:
        return np.zeros(0)
    return np.concatenate(parts).astype(np.float64)


def _global_level_tables(
    factors: tuple[str, ...], level_counts: dict[int, IntArray], n_prot: int
) -> dict[int, list[IntArray]]:
    """For run-level factors: the observed global level codes of each protein (local order)."""
    tables: dict[int, list[IntArray]] = {}
    for f, counts in level_counts.items():
        rows, cols = np.nonzero(counts > 0)
        split = np.searchsorted(rows, np.arange(1, n_prot))
        tables[f] = np.split(cols.astype(np.intp), split)
    del factors
    return tables


def _bucket_levels(
    members: IntArray,
    d: int,
    kernel_e: IntArray,
    n_e: IntArray,
    e_offset: NDArray[np.int64],
    e_counts: IntArray,
    e_wsum: FloatArray,
    erow_flat: FloatArray,
    erow_offset: NDArray[np.int64],
    factors: tuple[str, ...],
    first_feat: IntArray,
    global_levels: dict[int, list[IntArray]],
    pr_counts: IntArray,
    cells: UsageCells | None = None,
) -> EliminatedLevels:
    counts = n_e[members]
    total = int(counts.sum())
    first = members[0]
    rows = erow_flat[erow_offset[first] : erow_offset[first] + total * d].reshape(total, d)
    position = np.repeat(np.arange(members.size), counts)
    count = np.concatenate(
        [e_counts[e_offset[p] : e_offset[p + 1]] for p in members] or [np.zeros(0, np.intp)]
    ).astype(np.intp)
    wsum = np.concatenate(
        [e_wsum[e_offset[p] : e_offset[p + 1]] for p in members] or [np.zeros(0)]
    ).astype(np.float64)
    n_f = len(factors)
    levels = []
    for p in members:
        e = int(kernel_e[p])
        if e < 0:
            continue
        if e == n_f:
            levels.append(np.flatnonzero(pr_counts[p] > 0))
        elif factors[e] == "feature":
            levels.append(first_feat[p] + np.arange(n_e[p]))
        elif factors[e] == USAGE_FACTOR:
            assert cells is not None
            levels.append(cells.code[cells.first[p] : cells.first[p + 1]])
        else:
            levels.append(global_levels[e][p])
    level = np.concatenate(levels or [np.zeros(0, np.intp)]).astype(np.intp)
    return EliminatedLevels(rows=rows, position=position, count=count, level=level, wsum=wsum)
