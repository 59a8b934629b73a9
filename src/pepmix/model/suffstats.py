r"""From observations to per-protein sufficient statistics, in one grouping pass.

Input: for every observation its protein code, feature code (contiguous within a protein when the
table is sorted by protein), run code and log2 intensity, plus the :class:`RunDesign`. Output: a
:class:`Problem` holding, per protein, the checks of :mod:`pepmix.model.checks`, the choice of the
eliminated factor and the padded buckets of :class:`pepmix.model.reml.Bucket` that the optimiser
works on. After this step nothing scales with the number of observations.

Level counts and the checks come from the (protein, run) count table; the cross-products are
accumulated by the compiled pass of :mod:`pepmix.model._kernel`, straight into each bucket's
padded layout (proteins are ordered by bucket so that a bucket is one contiguous block).

Steps
-----
:func:`build_problem` runs these steps, each a function; small frozen dataclasses carry what a
step passes on:

1. :func:`_count_levels` (:class:`_Levels`): observations per (protein, run), observed levels
   of every factor, features and usage cells per protein, and the kernel's level tables
   (``run_codes``, ``local_tables``).
2. :func:`_degenerate_terms`: the checks that drop a random term (one level; one observation
   per level; the usage term's two checks below; a run-level factor with the same grouping as
   an earlier one; a sample-like factor with at most one level per condition), giving the
   ``active`` mask and the reasons in ``detail``.
3. :func:`_fixed_rank` (:class:`_Fixed`): :math:`X'X` per protein from the count table, the
   kept fixed-effect columns (:func:`pepmix.model.checks.greedy_independent`), the residual df
   ``nu = n - p_kept`` and the fittable proteins (``nu >= 1``).
4. :func:`_layout` (:class:`_Layout`): the eliminated factor (the active factor with the most
   observed levels; the runs themselves with fixed runs) and the offsets of the kept factors
   in the dense block.
5. :func:`_count_classes` (:class:`_Classes`): counts and weight sums of the eliminated levels
   and their count classes (or one class per level).
6. :func:`_chunk_buckets` (:class:`_Chunks`): proteins grouped by padded block size (and, for
   rank-one classes, padded level count), chunked to bound memory, and their offsets in the
   flat arrays.
7. :func:`_accumulate`: the compiled pass over the observations (cross-products).
8. :func:`_assemble_buckets`: each chunk's :class:`pepmix.model.reml.Bucket`, the level code of
   every dimension (:func:`_dimensions`) and the eliminated levels (:func:`_bucket_levels`).

Steps 1-4 and the centring of ``y`` (:func:`_structure`) do not depend on the observation
weights: :class:`pepmix.model.subset_problem.SubsetBuilder` computes them once and builds the
robust fit's refit problems of protein subsets from them (the same problems, bit for bit).

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
from pepmix.model.reml import DIM_FIXED, DIM_PAD, Bucket, RowClasses, row_classes

log = logging.getLogger(__name__)

IntArray = NDArray[np.intp]
FloatArray = NDArray[np.float64]

#: padded sizes of the random-effect block, to keep the number of buckets small
_Q_SIZES = (0, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64)
#: upper bound on elements of one bucket's W array (memory of a chunk)
_MAX_W_ELEMENTS = 1 << 23


#: :func:`usage_cells` finds the cells by counting when their codes are ordered by protein
#: (the same arrays as the sort); False: always sort
USAGE_CELLS_COUNTED = True
#: rank-one buckets: the padded rows and class values copied by a compiled pass
#: (:func:`pepmix.model._kernel.pad_rows`; the same arrays); False: boolean-mask assignments
COMPILED_PADDING = True


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
    """The (feature, condition) cells of every protein (see :class:`UsageCells`).

    The cells are the distinct keys ``protein * span + cell`` in ascending order. When every
    cell code belongs to one protein and the codes ascend with the protein (features numbered
    by protein, as :func:`pepmix.model.fit.encode` does), that order is the order of the cell
    codes, found by one counting pass (:func:`_cells_by_code`) instead of a sort: the same
    arrays.
    """
    cell = usage_code(feat, run, design).astype(np.int64)
    span = int(cell.max()) + 1 if cell.size else 1
    counted = _cells_by_code(prot, cell, span)
    if counted is not None:
        owner, code, index = counted
    else:
        uniq, index = np.unique(prot.astype(np.int64) * span + cell, return_inverse=True)
        index = index.ravel().astype(np.intp)
        owner, code = (uniq // span).astype(np.intp), (uniq % span).astype(np.intp)
    n_cells = np.bincount(owner, minlength=n_prot)
    first = np.concatenate([[0], np.cumsum(n_cells)]).astype(np.intp)
    return UsageCells(
        first=first,
        code=code,
        count=np.bincount(index, minlength=code.size).astype(np.intp),
        index=index,
        local=(index - first[prot]).astype(np.int32),
    )


def _cells_by_code(
    prot: IntArray, cell: NDArray[np.int64], span: int
) -> tuple[IntArray, IntArray, IntArray] | None:
    """The protein, code and observations' index of the distinct cells in code order, when
    that is the order of ``protein * span + cell`` (each code in one protein, the proteins
    non-decreasing along the codes); else None."""
    if not USAGE_CELLS_COUNTED or cell.size == 0:
        return None
    owner_of = np.full(span, -1, dtype=np.intp)
    owner_of[cell] = prot
    if not np.array_equal(owner_of[cell], prot):
        return None  # a cell code in two proteins
    present = np.zeros(span, dtype=bool)
    present[cell] = True
    code = np.flatnonzero(present)
    owner = owner_of[code]
    if owner.size > 1 and np.any(np.diff(owner) < 0):
        return None
    rank = np.cumsum(present) - 1
    return owner, code.astype(np.intp), rank[cell].astype(np.intp)


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


def _usage(cells: UsageCells | None) -> UsageCells:
    """The usage cells, which :func:`_count_levels` builds whenever the model has the factor."""
    if cells is None:
        raise RuntimeError(f"the model has {USAGE_FACTOR!r} but no usage cells were built")
    return cells


@dataclass(frozen=True)
class _Levels:
    """Step 1, the grouping pass: observed levels of every factor per protein.

    Attributes
    ----------
    n_proteins : int
    factors : tuple of str
        Model random factors (``F`` of them).
    n_obs : ndarray of int, shape (P,)
        Observations per protein.
    prot_start : ndarray of int64, shape (P + 1,)
        Offset of each protein's observations.
    first_feat : ndarray of int, shape (P,)
        Global code of each protein's first feature (0 for a protein without observations).
    feat_local : ndarray of int32, shape (N,)
        Protein-local feature index of every observation.
    pr_counts : ndarray of int, shape (P, R)
        Observations per (protein, run): the table the level counts and checks come from.
    n_levels : ndarray of int, shape (P, F)
        Observed levels per factor.
    n_feat : ndarray of int, shape (P,)
        Observed features per protein.
    feature_counts : ndarray of int
        Observations per feature (global code).
    level_counts : dict of int to ndarray
        For each run-level factor ``f``: observations per (protein, global level), shape
        ``(P, L_f)``.
    run_codes : ndarray of int32, shape (F + 1, R)
        The kernel's level code of every run per factor (-1 for the feature, -2 for the usage
        factor); row ``F`` is the run itself (fixed runs).
    local_tables : ndarray of int32, shape (F + 1, P, L)
        Protein-local index of each global level of the run-level factors (row ``F``: runs).
    cells : UsageCells or None
        Levels of the usage factor (None when the model has none).
    """

    n_proteins: int
    factors: tuple[str, ...]
    n_obs: IntArray
    prot_start: NDArray[np.int64]
    first_feat: IntArray
    feat_local: NDArray[np.int32]
    pr_counts: IntArray
    n_levels: IntArray
    n_feat: IntArray
    feature_counts: IntArray
    level_counts: dict[int, IntArray]
    run_codes: NDArray[np.int32]
    local_tables: NDArray[np.int32]
    cells: UsageCells | None


@dataclass(frozen=True)
class _Fixed:
    """Step 3, the fixed-effect rank per protein.

    Attributes
    ----------
    xkeep : ndarray of bool, shape (P, p)
        Fixed-effect columns kept (a greedy independent set of the columns of ``X``).
    nu : ndarray, shape (P,)
        Residual degrees of freedom ``n - p_kept`` (``p_kept`` counts the run means of the
        fixed-runs model).
    fittable : ndarray of bool, shape (P,)
        ``nu >= 1`` and at least one observation.
    runs_seen : ndarray of int, shape (P,)
        Runs in which the protein was observed.
    """

    xkeep: NDArray[np.bool_]
    nu: FloatArray
    fittable: NDArray[np.bool_]
    runs_seen: IntArray


@dataclass(frozen=True)
class _Layout:
    """Step 4, the eliminated factor and the layout of the dense random-effect block.

    Attributes
    ----------
    efactor : ndarray of int, shape (P,)
        Eliminated random factor (-1 if none).
    is_k : ndarray of bool, shape (P, F)
        Factors kept in the dense block ``K``.
    q_tot : ndarray of int, shape (P,)
        Dimensions of the dense random-effect block.
    k_offset : ndarray of int, shape (P, F + 1)
        Offset of each factor's dimensions in the dense block.
    kernel_e : ndarray of int, shape (P,)
        The kernel's view of the eliminated factor: row of ``run_codes`` (``F`` = the run
        itself, with fixed runs), -1 for none.
    n_e : ndarray of int, shape (P,)
        Eliminated levels per protein.
    """

    efactor: IntArray
    is_k: NDArray[np.bool_]
    q_tot: IntArray
    k_offset: IntArray
    kernel_e: IntArray
    n_e: IntArray


@dataclass(frozen=True)
class _Classes:
    """Step 5, the eliminated levels and their classes.

    Attributes
    ----------
    e_counts : ndarray of int, shape (E,)
        Observations of every eliminated level (proteins in code order, levels in local order).
    e_wsum : ndarray, shape (E,)
        Weight sum of every eliminated level (``e_counts`` without weights).
    e_offset : ndarray of int64, shape (P + 1,)
        Offset of each protein's eliminated levels.
    e_class : ndarray of int64, shape (E,)
        Protein-local class of every eliminated level.
    rank_one : bool
        Weighted and compressed: one rank-one class per level, stored as its row ``w_j``.
    cls_value : ndarray, shape (K,)
        Count (or weight sum) of every class, proteins in code order.
    cls_m : ndarray, shape (K,)
        Levels in every class.
    n_cls : ndarray of int, shape (P,)
        Classes per protein.
    cls_offset : ndarray of int, shape (P + 1,)
        Offset of each protein's classes.
    """

    e_counts: IntArray
    e_wsum: FloatArray
    e_offset: NDArray[np.int64]
    e_class: NDArray[np.int64]
    rank_one: bool
    cls_value: FloatArray
    cls_m: FloatArray
    n_cls: IntArray
    cls_offset: IntArray


@dataclass(frozen=True)
class _Chunks:
    """Step 6, the buckets: proteins ordered by padded size, chunked, and their flat offsets.

    Attributes
    ----------
    chunks : list of (ndarray, int, int)
        Per bucket: its proteins, the padded dimension ``d`` and the padded class count.
    order : ndarray of int, shape (B,)
        Fittable proteins in bucket order (the layout of the flat arrays).
    q_pad : ndarray of int, shape (P,)
        Padded size of the dense random-effect block.
    g_offset, w_offset, erow_offset : ndarray of int64, shape (P,)
        Start of each protein's ``G``, ``W`` and eliminated-row block in the flat arrays.
    sizes : tuple of int
        Lengths of the flat ``G``, ``W`` and eliminated-row arrays.
    """

    chunks: list[tuple[IntArray, int, int]]
    order: IntArray
    q_pad: IntArray
    g_offset: NDArray[np.int64]
    w_offset: NDArray[np.int64]
    erow_offset: NDArray[np.int64]
    sizes: tuple[int, int, int]


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

    The steps are listed in the module docstring ("Steps").

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

    Returns
    -------
    Problem
        The per-protein checks, the eliminated factor and the padded buckets.
    """
    n_obs_total = int(prot.size)
    n_prot = int(n_proteins if n_proteins is not None else (prot.max() + 1 if prot.size else 0))
    if n_obs_total and np.any(np.diff(prot) < 0):
        raise ValueError("observations must be sorted by protein")
    weights = _check_weights(weights, n_obs_total)
    st, yc = _structure(prot, feat, run, y, design, n_prot)
    cls = _count_classes(st.lv, st.lay, design, (prot, feat, run), weights, compress)
    ch = _chunk_buckets(st.lay, cls, st.fx.fittable, design.n_fixed)
    flats = _accumulate(st.lv, st.lay, cls, ch, st.fx.xkeep, (run, yc, weights), design)
    neg_logw = (
        np.zeros(n_prot)
        if weights is None
        else -np.bincount(prot, weights=np.log(weights), minlength=n_prot).astype(np.float64)
    )
    return _problem(st, cls, ch, flats, neg_logw)


@dataclass(frozen=True)
class _Structure:
    """Steps 1-4 and the centring of ``y``: everything of a problem that does not depend on
    the observation weights (reused across the refits of the robust fit,
    :class:`pepmix.model.subset_problem.SubsetBuilder`).

    Attributes
    ----------
    lv : _Levels
        Step 1.
    active : ndarray of bool, shape (P, F)
        Factors kept (step 2).
    detail : list of str
        Reasons for dropped terms (step 2).
    fx : _Fixed
        Step 3.
    lay : _Layout
        Step 4.
    ybar : ndarray, shape (P,)
        Mean of ``y`` per protein.
    fixed_runs : bool
        Whether the eliminated levels are fixed run means.
    """

    lv: _Levels
    active: NDArray[np.bool_]
    detail: list[str]
    fx: _Fixed
    lay: _Layout
    ybar: FloatArray
    fixed_runs: bool


def _structure(
    prot: IntArray, feat: IntArray, run: IntArray, y: FloatArray, design: RunDesign, n_prot: int
) -> tuple[_Structure, FloatArray]:
    """Steps 1-4 of :func:`build_problem` and the centred ``y`` of every observation."""
    fixed_runs = design.spec.fixed_runs
    lv = _count_levels(prot, feat, run, design, n_prot)
    active, reasons = _degenerate_terms(lv, design)
    fx = _fixed_rank(lv, design)
    ybar = np.bincount(prot, weights=y, minlength=n_prot) / np.maximum(lv.n_obs, 1)
    yc = np.ascontiguousarray(y - ybar[prot], dtype=np.float64)
    lay = _layout(lv, active, fx, fixed_runs)
    detail = ["; ".join(r) for r in reasons]
    return _Structure(lv, active, detail, fx, lay, ybar, fixed_runs), yc


def _problem(
    st: _Structure,
    cls: _Classes,
    ch: _Chunks,
    flats: tuple[FloatArray, FloatArray, FloatArray],
    neg_logw: FloatArray,
) -> Problem:
    """The :class:`Problem` of steps 1-7 (``st``, ``cls``, ``ch``, the kernel's ``flats``)
    and :math:`-\\sum_i \\log w_i` per protein; step 8 assembles its buckets."""
    lv, lay, fx = st.lv, st.lay, st.fx
    problem = Problem(
        n_proteins=lv.n_proteins,
        factors=lv.factors,
        n_obs=lv.n_obs,
        n_levels=lv.n_levels,
        active=st.active,
        xkeep=fx.xkeep,
        nu=fx.nu,
        fittable=fx.fittable,
        detail=list(st.detail),
        ybar=st.ybar,
        efactor=lay.efactor,
        e_fixed=st.fixed_runs,
        cells=lv.cells,
    )
    problem.neg_logw = neg_logw
    _assemble_buckets(problem, lv, lay, cls, ch, flats)
    log.debug("built %d buckets for %d fittable proteins", len(ch.chunks), ch.order.size)
    return problem


def _count_levels(
    prot: IntArray, feat: IntArray, run: IntArray, design: RunDesign, n_prot: int
) -> _Levels:
    """Step 1: observed levels of every factor per protein, from the (protein, run) count table.

    Parameters
    ----------
    prot, feat, run : ndarray of int, shape (N,)
        Protein, feature and run code of every observation (sorted by protein).
    design : RunDesign
        Run-level factor codes.
    n_prot : int
        Number of proteins.

    Returns
    -------
    _Levels
        Level counts, the kernel's level tables and the usage cells.
    """
    factors = tuple(design.spec.random)
    n_runs = design.x.shape[0]
    n_obs = np.bincount(prot, minlength=n_prot).astype(np.intp)
    prot_start = np.concatenate([[0], np.cumsum(n_obs)]).astype(np.int64)
    first_feat = np.zeros(n_prot, dtype=np.intp)
    has_obs = n_obs > 0
    first_feat[has_obs] = feat[prot_start[:-1][has_obs]]
    pr_counts = np.bincount(prot.astype(np.int64) * n_runs + run, minlength=n_prot * n_runs)
    pr_counts = pr_counts.reshape(n_prot, n_runs)
    n_feat = np.bincount(prot, weights=np.r_[True, np.diff(feat) != 0], minlength=n_prot)
    n_feat = n_feat.astype(np.intp)
    cells = usage_cells(prot, feat, run, design, n_prot) if USAGE_FACTOR in factors else None
    level_counts, run_codes, local_tables = _run_level_tables(factors, design, pr_counts)
    n_levels = np.zeros((n_prot, len(factors)), dtype=np.intp)
    for f, name in enumerate(factors):
        if name == "feature":
            n_levels[:, f] = n_feat
        elif name == USAGE_FACTOR:
            n_levels[:, f] = np.diff(_usage(cells).first)
        else:
            n_levels[:, f] = (level_counts[f] > 0).sum(axis=1)
    return _Levels(
        n_proteins=n_prot,
        factors=factors,
        n_obs=n_obs,
        prot_start=prot_start,
        first_feat=first_feat,
        feat_local=(feat - first_feat[prot]).astype(np.int32),
        pr_counts=pr_counts,
        n_levels=n_levels,
        n_feat=n_feat,
        feature_counts=np.bincount(feat, minlength=int(feat.max()) + 1 if feat.size else 0),
        level_counts=level_counts,
        run_codes=run_codes,
        local_tables=local_tables,
        cells=cells,
    )


def _run_level_tables(
    factors: tuple[str, ...], design: RunDesign, pr_counts: IntArray
) -> tuple[dict[int, IntArray], NDArray[np.int32], NDArray[np.int32]]:
    """Per-level counts of the run-level factors and the kernel's level tables.

    Parameters
    ----------
    factors : tuple of str
        Model random factors.
    design : RunDesign
        Run-level factor codes.
    pr_counts : ndarray of int, shape (P, R)
        Observations per (protein, run).

    Returns
    -------
    level_counts, run_codes, local_tables
        See :class:`_Levels`.
    """
    n_prot, n_runs = pr_counts.shape
    n_f = len(factors)
    level_counts: dict[int, IntArray] = {}
    # run_codes[f] < 0 marks the feature factor; the last row is the run itself (fixed runs)
    run_codes = np.full((n_f + 1, max(n_runs, 1)), -1, dtype=np.int32)
    max_levels = max(
        [n_runs]
        + [int(design.factor_codes[f].max()) + 1 for f in factors if f not in OBSERVATION_FACTORS]
    )
    local_tables = np.zeros((n_f + 1, n_prot, max_levels), dtype=np.int32)
    for f, name in enumerate(factors):
        if name == "feature":
            continue
        if name == USAGE_FACTOR:
            run_codes[f, :] = -2
            continue
        codes = design.factor_codes[name]
        counts = _group_columns(pr_counts, codes, int(codes.max()) + 1)
        level_counts[f] = counts
        run_codes[f, :n_runs] = codes
        local_tables[f, :, : counts.shape[1]] = np.cumsum(counts > 0, axis=1) - 1
    run_codes[n_f, :n_runs] = np.arange(n_runs)
    local_tables[n_f, :, :n_runs] = np.cumsum(pr_counts > 0, axis=1) - 1
    return level_counts, run_codes, local_tables


class _Drops:
    """The random terms kept per protein, and why the others were dropped.

    Parameters
    ----------
    factors : tuple of str
        Model random factors.
    n_prot : int
        Number of proteins.
    """

    def __init__(self, factors: tuple[str, ...], n_prot: int) -> None:
        self.factors = factors
        self.active = np.ones((n_prot, len(factors)), dtype=bool)
        self.reasons: list[list[str]] = [[] for _ in range(n_prot)]

    def drop(self, mask: NDArray[np.bool_], f: int, why: str) -> None:
        """Drop factor ``f`` where ``mask`` holds and it is still active, noting ``why``."""
        hit = mask & self.active[:, f]
        self.active[hit, f] = False
        for i in np.flatnonzero(hit):
            self.reasons[i].append(f"{self.factors[f]}: {why}")


def _degenerate_terms(lv: _Levels, design: RunDesign) -> tuple[NDArray[np.bool_], list[list[str]]]:
    """Step 2: the degenerate-design checks, in order (a term is dropped by the first that hits).

    A factor is dropped where it has one level, or one observation per level; the usage factor
    where the protein has one feature, or every feature in one condition (with ``feature`` in the
    model); a run-level factor with the same grouping as an earlier one; a sample-like factor with
    at most one level per condition.

    Parameters
    ----------
    lv : _Levels
        Level counts of step 1.
    design : RunDesign
        Run-level factor codes and conditions.

    Returns
    -------
    active : ndarray of bool, shape (P, F)
        Factors kept in each protein's model.
    reasons : list of list of str
        Per protein, ``"<factor>: <reason>"`` for every dropped term.
    """
    factors, n_levels, n_obs = lv.factors, lv.n_levels, lv.n_obs
    drops = _Drops(factors, lv.n_proteins)
    for f in range(len(factors)):
        drops.drop(n_levels[:, f] <= 1, f, "one level")
        drops.drop((n_levels[:, f] == n_obs) & (n_obs > 1), f, "one observation per level")
    if lv.cells is not None:
        f = factors.index(USAGE_FACTOR)
        drops.drop(lv.n_feat <= 1, f, "one feature (confounded with condition)")
        if "feature" in factors:
            same = drops.active[:, factors.index("feature")] & (n_levels[:, f] == lv.n_feat)
            drops.drop(same, f, "each feature in one condition (same grouping as feature)")
    run_level = [f for f, name in enumerate(factors) if name not in OBSERVATION_FACTORS]
    _drop_same_grouping(drops, lv, design, run_level)
    _drop_nested_in_condition(drops, lv, design, run_level)
    return drops.active, drops.reasons


def _drop_same_grouping(
    drops: _Drops, lv: _Levels, design: RunDesign, run_level: list[int]
) -> None:
    """Drop the later of two run-level factors that group a protein's runs alike.

    Parameters
    ----------
    drops : _Drops
        Updated in place.
    lv : _Levels
        Level counts of step 1.
    design : RunDesign
        Run-level factor codes.
    run_level : list of int
        Indices of the run-level factors.
    """
    factors, n_levels = lv.factors, lv.n_levels
    run_seen = lv.pr_counts > 0
    for i, fa in enumerate(run_level):
        for fb in run_level[i + 1 :]:
            ca = design.factor_codes[factors[fa]]
            cb = design.factor_codes[factors[fb]]
            pair_codes, _ = pd.factorize(ca.astype(np.int64) * (int(cb.max()) + 1) + cb)
            pairs = (_group_columns(run_seen, pair_codes, int(pair_codes.max()) + 1) > 0).sum(1)
            same = (pairs == n_levels[:, fa]) & (pairs == n_levels[:, fb])
            drops.drop(same & drops.active[:, fa], fb, f"same grouping as {factors[fa]}")


def _drop_nested_in_condition(
    drops: _Drops, lv: _Levels, design: RunDesign, run_level: list[int]
) -> None:
    """Drop run-level factors other than batch with at most one observed level per condition.

    Parameters
    ----------
    drops : _Drops
        Updated in place.
    lv : _Levels
        Level counts of step 1.
    design : RunDesign
        Run-level factor codes and conditions.
    run_level : list of int
        Indices of the run-level factors.
    """
    n_cond = len(design.conditions)
    for f in run_level:
        if lv.factors[f] == "batch" or n_cond == 0:
            continue
        # levels of sample/run are nested in conditions: observed levels per condition
        codes = design.factor_codes[lv.factors[f]]
        cond_of_level = np.zeros(int(codes.max()) + 1, dtype=np.intp)
        cond_of_level[codes] = design.condition_code
        present = (lv.level_counts[f] > 0).astype(np.intp)
        per_cond = _group_columns(present, cond_of_level, n_cond)
        nested_single = np.all(per_cond <= 1, axis=1)
        drops.drop(nested_single, f, "at most one level per condition (confounded with condition)")


def _fixed_rank(lv: _Levels, design: RunDesign) -> _Fixed:
    """Step 3: the fixed-effect columns kept, residual df and fittable proteins.

    :math:`X'X` per protein comes from the (protein, run) counts; with fixed runs (protein
    abundance model) the run means count as fixed effects, eliminated like a random factor with
    infinite variance.

    Parameters
    ----------
    lv : _Levels
        Level counts of step 1.
    design : RunDesign
        Fixed-effect design.

    Returns
    -------
    _Fixed
    """
    xtx = np.einsum("pr,ri,rj->pij", lv.pr_counts.astype(np.float64), design.x, design.x)
    xkeep = greedy_independent(xtx)
    p_kept = xkeep.sum(axis=1)
    runs_seen = (lv.pr_counts > 0).sum(axis=1)
    if design.spec.fixed_runs:
        p_kept = p_kept + runs_seen
    nu = (lv.n_obs - p_kept).astype(np.float64)
    fittable = (nu >= 1) & (lv.n_obs > 0)
    return _Fixed(xkeep=xkeep, nu=nu, fittable=fittable, runs_seen=runs_seen)


def _layout(lv: _Levels, active: NDArray[np.bool_], fx: _Fixed, fixed_runs: bool) -> _Layout:
    """Step 4: the eliminated factor (most observed levels) and the dense block's layout.

    Parameters
    ----------
    lv : _Levels
        Level counts of step 1.
    active : ndarray of bool, shape (P, F)
        Factors kept (step 2).
    fx : _Fixed
        Fittable proteins (step 3).
    fixed_runs : bool
        Whether the runs are fixed means (eliminated instead of a random factor).

    Returns
    -------
    _Layout
    """
    n_levels, fittable = lv.n_levels, fx.fittable
    n_prot, n_f = n_levels.shape
    q_active = np.where(active, n_levels, 0)
    efactor = np.where(q_active.max(axis=1) > 0, np.argmax(q_active, axis=1), -1).astype(np.intp)
    efactor = np.where(fittable & (not fixed_runs), efactor, -1)
    is_k = active & (np.arange(n_f)[None, :] != efactor[:, None]) & fittable[:, None]
    q_k = np.where(is_k, n_levels, 0)
    k_offset = np.concatenate([np.zeros((n_prot, 1), dtype=np.intp), np.cumsum(q_k, axis=1)], 1)
    # kernel's view of the eliminated factor: index into run_codes (n_f = the run itself)
    kernel_e = np.where(efactor >= 0, efactor, np.where(fixed_runs & fittable, n_f, -1))
    n_e = np.zeros(n_prot, dtype=np.intp)
    for f in range(n_f):
        sel = kernel_e == f
        n_e[sel] = n_levels[sel, f]
    if fixed_runs:
        n_e[kernel_e == n_f] = fx.runs_seen[kernel_e == n_f]
    return _Layout(
        efactor=efactor,
        is_k=is_k,
        q_tot=q_k.sum(axis=1),
        k_offset=k_offset,
        kernel_e=kernel_e,
        n_e=n_e,
    )


def _count_classes(
    lv: _Levels,
    lay: _Layout,
    design: RunDesign,
    codes: tuple[IntArray, IntArray, IntArray],
    weights: FloatArray | None,
    compress: bool,
) -> _Classes:
    """Step 5: counts (and weight sums) of the eliminated levels and their classes.

    Parameters
    ----------
    lv : _Levels
        Level counts of step 1.
    lay : _Layout
        Eliminated factor of step 4.
    design : RunDesign
        Run-level factor codes.
    codes : tuple of ndarray
        Protein, feature and run code of every observation.
    weights : ndarray or None
        Observation weights (None: unweighted).
    compress : bool
        Sum levels with equal counts (count classes); with weights: rank-one classes.

    Returns
    -------
    _Classes
    """
    e_counts = _eliminated_counts(lay, lv)
    e_wsum: FloatArray = e_counts.astype(np.float64)
    if weights is not None:
        e_wsum = _eliminated_weights(lay, lv, design, (*codes, weights))
    # weighted and compressed: rank-one classes (one level each, stored as its row w_j)
    rank_one = compress and weights is not None
    return _classes(e_counts, e_wsum, lay.n_e, int(codes[0].size), rank_one, compress)


def _classes(
    e_counts: IntArray,
    e_wsum: FloatArray,
    n_e: IntArray,
    n_obs_total: int,
    rank_one: bool,
    compress: bool,
) -> _Classes:
    """The classes of step 5 from the eliminated levels' counts and weight sums.

    Parameters
    ----------
    e_counts, e_wsum : ndarray, shape (E,)
        Observations and weight sum of every eliminated level (proteins in code order).
    n_e : ndarray of int, shape (P,)
        Eliminated levels per protein.
    n_obs_total : int
        Number of observations (bounds the counts).
    rank_one : bool
        One rank-one class per level (weighted, compressed).
    compress : bool
        Sum levels with equal counts (unweighted).

    Returns
    -------
    _Classes
    """
    n_prot = int(n_e.size)
    e_protein = np.repeat(np.arange(n_prot), n_e)
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
    return _Classes(
        e_counts=e_counts,
        e_wsum=e_wsum,
        e_offset=np.concatenate([[0], np.cumsum(n_e)]).astype(np.int64),
        e_class=(inverse - cls_offset[e_protein]).astype(np.int64),
        rank_one=rank_one,
        cls_value=cls_value,
        cls_m=cls_m,
        n_cls=n_cls,
        cls_offset=cls_offset,
    )


def _padded_q(q_tot: IntArray) -> IntArray:
    """Padded size of the dense random-effect block: the next of :data:`_Q_SIZES` (or itself
    above the largest)."""
    sizes = np.asarray(_Q_SIZES)
    return np.asarray(
        np.where(
            q_tot <= sizes[-1],
            sizes[np.minimum(np.searchsorted(sizes, q_tot), sizes.size - 1)],
            q_tot,
        )
    )


def _chunk_buckets(lay: _Layout, cls: _Classes, fittable: NDArray[np.bool_], n_x: int) -> _Chunks:
    """Step 6: proteins ordered by padded size, chunked into buckets; their flat offsets.

    Parameters
    ----------
    lay : _Layout
        Layout of step 4.
    cls : _Classes
        Classes of step 5.
    fittable : ndarray of bool, shape (P,)
        Proteins to fit (step 3); only they are put in buckets.
    n_x : int
        Number of fixed-effect columns.

    Returns
    -------
    _Chunks
    """
    q_pad = _padded_q(lay.q_tot)
    fit_idx = np.flatnonzero(fittable)
    rank_one, n_cls = cls.rank_one, cls.n_cls
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
    n_prot = q_pad.size
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
    r_size[order] = lay.n_e[order] * d_of[order]
    return _Chunks(
        chunks=chunks,
        order=order,
        q_pad=q_pad,
        g_offset=_offsets_in_order(g_size, order),
        w_offset=_offsets_in_order(w_size, order),
        erow_offset=_offsets_in_order(r_size, order),
        sizes=(int(g_size.sum()), int(w_size.sum()), int(r_size.sum())),
    )


def _accumulate(
    lv: _Levels,
    lay: _Layout,
    cls: _Classes,
    ch: _Chunks,
    xkeep: NDArray[np.bool_],
    obs: tuple[IntArray, FloatArray, FloatArray | None],
    design: RunDesign,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Step 7: the compiled pass of :mod:`pepmix.model._kernel` over the observations.

    Parameters
    ----------
    lv, lay, cls, ch : _Levels, _Layout, _Classes, _Chunks
        Steps 1 and 4 to 6.
    xkeep : ndarray of bool, shape (P, p)
        Fixed-effect columns kept (step 3).
    obs : tuple
        Run code, centred ``y`` and weights (None: unweighted) of every observation.
    design : RunDesign
        Fixed-effect design.

    Returns
    -------
    g_flat, w_flat, erow_flat : ndarray
        ``G``, class matrices ``W`` and eliminated-level rows of every fittable protein, laid out
        in bucket order at the offsets of ``ch``.
    """
    run, yc, weights = obs
    g_flat = np.zeros(ch.sizes[0])
    w_flat = np.zeros(ch.sizes[1])
    erow_flat = np.zeros(ch.sizes[2])
    # imported here: numba (~0.2-0.4 s to import and load the cached kernel) only in jobs that
    # fit, not in those that read a stored fit (rule test imports this module through it)
    from pepmix.model._kernel import accumulate

    accumulate(
        lv.prot_start,
        ch.order.astype(np.int64),
        lv.feat_local,
        run.astype(np.int32),
        yc,
        np.ascontiguousarray(design.x, dtype=np.float64),
        xkeep,
        lv.run_codes,
        lv.local_tables,
        lay.is_k,
        lay.k_offset.astype(np.int64),
        lay.kernel_e.astype(np.int64),
        ch.q_pad.astype(np.int64),
        ch.g_offset,
        ch.w_offset,
        cls.e_offset,
        cls.e_class,
        g_flat,
        w_flat,
        erow_flat,
        ch.erow_offset,
        np.zeros(0) if weights is None else weights,
        np.zeros(0, dtype=np.int32) if lv.cells is None else lv.cells.local,
    )
    return g_flat, w_flat, erow_flat


def _assemble_buckets(
    problem: Problem,
    lv: _Levels,
    lay: _Layout,
    cls: _Classes,
    ch: _Chunks,
    flats: tuple[FloatArray, FloatArray, FloatArray],
) -> None:
    """Step 8: each chunk's :class:`Bucket`, dimension labels and eliminated levels.

    Parameters
    ----------
    problem : Problem
        Gains ``buckets``, ``dim_level`` and ``levels`` (in place).
    lv, lay, cls, ch : _Levels, _Layout, _Classes, _Chunks
        Steps 1 and 4 to 6.
    flats : tuple of ndarray
        The kernel's flat ``G``, ``W`` and eliminated-row arrays (step 7).
    """
    if not ch.chunks:
        return
    global_levels = _global_level_tables(lv.level_counts, lv.n_proteins)
    for members, d, c_max in ch.chunks:
        n_x = problem.xkeep.shape[1]
        dimfactor, dim_level = _dimensions(members, d, n_x, lv, lay, global_levels)
        problem.buckets.append(
            (members, _bucket(problem, members, c_max, dimfactor, cls, ch, flats))
        )
        problem.dim_level.append(dim_level)
        problem.levels.append(
            _bucket_levels(members, d, lv, lay, cls, (flats[2], ch.erow_offset), global_levels)
        )


def _bucket(
    problem: Problem,
    members: IntArray,
    c_max: int,
    dimfactor: IntArray,
    cls: _Classes,
    ch: _Chunks,
    flats: tuple[FloatArray, FloatArray, FloatArray],
) -> Bucket:
    """The :class:`Bucket` of one chunk: views of the kernel's arrays and the classes.

    Parameters
    ----------
    problem : Problem
        Checks, fixed-effect columns and eliminated factor of every protein.
    members : ndarray of int
        Proteins of the chunk.
    c_max : int
        Padded class count.
    dimfactor : ndarray of int, shape (B, d)
        Factor of every dimension (:func:`_dimensions`); ``d`` is the padded dimension (random
        block, fixed effects and ``y``).
    cls, ch : _Classes, _Chunks
        Steps 5 and 6.
    flats : tuple of ndarray
        The kernel's flat ``G``, ``W`` and eliminated-row arrays.

    Returns
    -------
    Bucket
    """
    g_flat, w_flat, erow_flat = flats
    nb, d = dimfactor.shape
    first = members[0]
    g = g_flat[ch.g_offset[first] : ch.g_offset[first] + nb * d * d].reshape(nb, d, d)
    if cls.rank_one and COMPILED_PADDING:
        erows = erow_flat[ch.erow_offset[first] :]
        return _padded_bucket(problem, members, c_max, dimfactor, cls, g, erows)
    slot = cls.cls_offset[members][:, None] + np.arange(c_max)[None, :]
    valid = np.arange(c_max)[None, :] < cls.n_cls[members][:, None]
    w: FloatArray
    if cls.rank_one:
        w = np.zeros((nb, c_max, d))
        n_rows = int(cls.n_cls[members].sum())
        start = ch.erow_offset[first]
        w[valid] = erow_flat[start : start + n_rows * d].reshape(n_rows, d)
    else:
        size = nb * c_max * d * d
        w = w_flat[ch.w_offset[first] : ch.w_offset[first] + size].reshape(nb, c_max, d, d)
    cls_n = np.zeros((nb, c_max))
    cls_mm = np.zeros((nb, c_max))
    cls_n[valid] = cls.cls_value[slot[valid]]
    cls_mm[valid] = cls.cls_m[slot[valid]]
    classes = row_classes(w, cls_n, cls.n_cls[members]) if cls.rank_one else None
    return _assemble(problem, members, dimfactor, g, w, cls_n, cls_mm, classes)


def _assemble(
    problem: Problem,
    members: IntArray,
    dimfactor: IntArray,
    g: FloatArray,
    w: FloatArray,
    cls_n: FloatArray,
    cls_mm: FloatArray,
    classes: RowClasses | None,
) -> Bucket:
    """The :class:`Bucket` of ``members`` from its padded arrays (:func:`_bucket`,
    :func:`_padded_bucket`); a fixed-effect column a protein dropped gets a unit diagonal in
    ``g`` (modified in place: the dummy column of the module docstring's "Padding")."""
    n_x = problem.xkeep.shape[1]
    qp = dimfactor.shape[1] - n_x - 1
    for j in range(n_x):
        dropped = ~problem.xkeep[members, j]
        g[dropped, qp + j, qp + j] = 1.0
    return Bucket(
        G=g,
        W=w,
        cls_n=cls_n,
        cls_m=cls_mm,
        dimfactor=dimfactor,
        efactor=problem.efactor[members],
        free=problem.active[members].copy(),
        nu=problem.nu[members],
        n_x=n_x,
        e_fixed=problem.e_fixed,
        classes=classes,
    )


def _padded_bucket(
    problem: Problem,
    members: IntArray,
    c_max: int,
    dimfactor: IntArray,
    cls: _Classes,
    g: FloatArray,
    erows: FloatArray,
) -> Bucket:
    """:func:`_bucket` of rank-one classes with the padded rows and class values copied by
    :func:`pepmix.model._kernel.pad_rows` (``erows``: the chunk's eliminated rows onwards):
    the same arrays as the boolean-mask assignments."""
    from pepmix.model._kernel import pad_rows

    nb, d = dimfactor.shape
    n_cls = cls.n_cls[members].astype(np.int64)
    starts = (np.cumsum(n_cls) - n_cls).astype(np.int64)
    w = np.zeros((nb, c_max, d))
    pad_rows(erows[: int(n_cls.sum()) * d].reshape(-1, d), starts, n_cls, w)
    offset = cls.cls_offset[members].astype(np.int64)
    cls_n = np.zeros((nb, c_max))
    cls_mm = np.zeros((nb, c_max))
    pad_rows(cls.cls_value.reshape(-1, 1), offset, n_cls, cls_n.reshape(nb, c_max, 1))
    pad_rows(cls.cls_m.reshape(-1, 1), offset, n_cls, cls_mm.reshape(nb, c_max, 1))
    classes = row_classes(w, cls_n, cls.n_cls[members])
    return _assemble(problem, members, dimfactor, g, w, cls_n, cls_mm, classes)


def _dimensions(
    members: IntArray,
    d: int,
    n_x: int,
    lv: _Levels,
    lay: _Layout,
    global_levels: dict[int, list[IntArray]],
) -> tuple[IntArray, IntArray]:
    """Factor and global level code of every dimension of one bucket.

    Parameters
    ----------
    members : ndarray of int, shape (B,)
        Proteins of the bucket.
    d : int
        Padded dimension (random block, fixed effects and ``y``).
    n_x : int
        Number of fixed-effect columns.
    lv, lay : _Levels, _Layout
        Steps 1 and 4.
    global_levels : dict of int to list of ndarray
        Observed global level codes of the run-level factors (:func:`_global_level_tables`).

    Returns
    -------
    dimfactor : ndarray of int, shape (B, d)
        Random factor of each dimension, :data:`DIM_FIXED` for the fixed effects and ``y``,
        :data:`DIM_PAD` for padding.
    dim_level : ndarray of int, shape (B, d)
        Global level code of each dimension (-1 outside the random block).
    """
    nb = members.size
    dimfactor = np.full((nb, d), DIM_PAD, dtype=np.intp)
    dimfactor[:, d - n_x - 1 :] = DIM_FIXED
    dim_level = np.full((nb, d), -1, dtype=np.intp)
    for f, name in enumerate(lv.factors):
        width = np.where(lay.is_k[members, f], lv.n_levels[members, f], 0)
        for row in np.flatnonzero(width).tolist():
            p = members[row]
            start = int(lay.k_offset[p, f])
            stop = start + int(width[row])
            dimfactor[row, start:stop] = f
            if name == "feature":
                dim_level[row, start:stop] = lv.first_feat[p] + np.arange(stop - start)
            elif name == USAGE_FACTOR:
                cells = _usage(lv.cells)
                first_cell = cells.first[p]
                dim_level[row, start:stop] = cells.code[first_cell : first_cell + stop - start]
            else:
                dim_level[row, start:stop] = global_levels[f][p]
    return dimfactor, dim_level


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


def _eliminated_counts(lay: _Layout, lv: _Levels) -> IntArray:
    """Observation count of every eliminated level, proteins in code order, levels in local
    order."""
    parts = []
    n_f = len(lv.factors)
    for p in np.flatnonzero(lay.kernel_e >= 0):
        e = int(lay.kernel_e[p])
        if e == n_f:
            row = lv.pr_counts[p]
            parts.append(row[row > 0])
        elif lv.factors[e] == "feature":
            parts.append(lv.feature_counts[lv.first_feat[p] : lv.first_feat[p] + lay.n_e[p]])
        elif lv.factors[e] == USAGE_FACTOR:
            cells = _usage(lv.cells)
            parts.append(cells.count[cells.first[p] : cells.first[p + 1]])
        else:
            row = lv.level_counts[e][p]
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
    lay: _Layout,
    lv: _Levels,
    design: RunDesign,
    obs: tuple[IntArray, IntArray, IntArray, FloatArray],
) -> FloatArray:
    """Weight sum of every eliminated level, in the order of :func:`_eliminated_counts`.

    ``obs`` holds the protein, feature and run codes and the weight of every observation.
    """
    prot, feat, run, weights = obs
    factors, cells, pr_counts, kernel_e = lv.factors, lv.cells, lv.pr_counts, lay.kernel_e
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
        for f, counts in lv.level_counts.items()
        if bool(np.any(kernel_e == f))
    }
    n_f = len(factors)
    parts = []
    for p in np.flatnonzero(kernel_e >= 0):
        e = int(kernel_e[p])
        if e == n_f:
            parts.append(pr_w[p][pr_counts[p] > 0])
        elif factors[e] == "feature":
            parts.append(feat_w[lv.first_feat[p] : lv.first_feat[p] + lay.n_e[p]])
        elif factors[e] == USAGE_FACTOR:
            first = _usage(cells).first
            parts.append(cell_w[first[p] : first[p + 1]])
        else:
            parts.append(grouped[e][p][lv.level_counts[e][p] > 0])
    if not parts:
        return np.zeros(0)
    return np.concatenate(parts).astype(np.float64)


def _global_level_tables(
    level_counts: dict[int, IntArray], n_prot: int
) -> dict[int, list[IntArray]]:
    """For run-level factors: the observed global level codes of each protein (local order)."""
    tables: dict[int, list[IntArray]] = {}
    for f, counts in level_counts.items():
        rows, cols = np.nonzero(counts > 0)
        split = np.searchsorted(rows, np.arange(1, n_prot))
        tables[f] = np.split(cols.astype(np.intp), split)
    return tables


def _bucket_levels(
    members: IntArray,
    d: int,
    lv: _Levels,
    lay: _Layout,
    cls: _Classes,
    erows: tuple[FloatArray, NDArray[np.int64]],
    global_levels: dict[int, list[IntArray]],
) -> EliminatedLevels:
    """The eliminated levels of one bucket (see :class:`EliminatedLevels`).

    ``erows`` holds the kernel's flat eliminated-level rows and each protein's offset in them.
    """
    erow_flat, erow_offset = erows
    e_offset, n_e = cls.e_offset, lay.n_e
    counts = n_e[members]
    total = int(counts.sum())
    first = members[0]
    rows = erow_flat[erow_offset[first] : erow_offset[first] + total * d].reshape(total, d)
    position = np.repeat(np.arange(members.size), counts)
    count = np.concatenate(
        [cls.e_counts[e_offset[p] : e_offset[p + 1]] for p in members] or [np.zeros(0, np.intp)]
    ).astype(np.intp)
    wsum = np.concatenate(
        [cls.e_wsum[e_offset[p] : e_offset[p + 1]] for p in members] or [np.zeros(0)]
    ).astype(np.float64)
    n_f = len(lv.factors)
    levels = []
    for p in members:
        e = int(lay.kernel_e[p])
        if e < 0:
            continue
        if e == n_f:
            levels.append(np.flatnonzero(lv.pr_counts[p] > 0))
        elif lv.factors[e] == "feature":
            levels.append(lv.first_feat[p] + np.arange(n_e[p]))
        elif lv.factors[e] == USAGE_FACTOR:
            cells = _usage(lv.cells)
            levels.append(cells.code[cells.first[p] : cells.first[p + 1]])
        else:
            levels.append(global_levels[e][p])
    level = np.concatenate(levels or [np.zeros(0, np.intp)]).astype(np.intp)
    return EliminatedLevels(rows=rows, position=position, count=count, level=level, wsum=wsum)
