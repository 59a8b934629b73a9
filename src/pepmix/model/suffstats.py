"""From observations to per-protein sufficient statistics, in one grouping pass.

Input: for every observation its protein code, feature code (contiguous within a protein when the
table is sorted by protein), run code and log2 intensity, plus the :class:`RunDesign`. Output: a
:class:`Problem` holding, per protein, the checks of :mod:`pepmix.model.checks`, the choice of the
eliminated factor and the padded buckets of :class:`pepmix.model.reml.Bucket` that the optimiser
works on. After this step nothing scales with the number of observations.

Cross-products are formed as sparse products: ``V`` has one row per observation and one column
per (protein, dimension); ``V'V`` is block diagonal with the proteins' ``G`` blocks, and the rows
of ``A V`` (``A`` the eliminated-factor incidence) are the ``w_j`` vectors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from pepmix.model.checks import greedy_independent
from pepmix.model.design import RunDesign
from pepmix.model.reml import DIM_FIXED, DIM_PAD, Bucket

log = logging.getLogger(__name__)

IntArray = NDArray[np.intp]
FloatArray = NDArray[np.float64]

#: padded sizes of the random-effect block, to keep the number of buckets small
_Q_SIZES = (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64)
#: upper bound on elements of one bucket's W array (memory of a chunk)
_MAX_W_ELEMENTS = 1 << 24


@dataclass
class Problem:
    """Everything the optimiser and the result assembly need.

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
    e_offset : ndarray of int, shape (P + 1,)
        First eliminated level of each protein in :attr:`w_rows`.
    buckets : list of (ndarray, Bucket)
        Protein indices and their padded statistics.
    """

    e_fixed: bool
    e_offset: IntArray
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
    buckets: list[tuple[IntArray, Bucket]] = field(default_factory=list)
    # layout, for turning solutions into BLUPs
    dim_offset: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    q_k: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    kdim_factor: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    kdim_level: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    elevel_protein: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    elevel_level: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    elevel_count: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    w_rows: sp.csr_matrix | None = None


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


def _same_partition(
    prot: IntArray, a: IntArray, b: IntArray, qa: IntArray, qb: IntArray, n_prot: int
) -> NDArray[np.bool_]:
    """Whether local codes ``a`` and ``b`` define the same partition within each protein."""
    nb = int(b.max()) + 1 if b.size else 1
    key = np.unique((a.astype(np.int64) * nb + b) * n_prot + prot)
    pairs = np.bincount(key % n_prot, minlength=n_prot)
    return np.asarray((pairs == qa) & (pairs == qb), dtype=bool)


def build_problem(
    prot: IntArray,
    feat: IntArray,
    run: IntArray,
    y: FloatArray,
    design: RunDesign,
    n_proteins: int | None = None,
    compress: bool = True,
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
        Sum eliminated-factor levels with equal counts (count classes). ``False`` keeps one class
        per level: slower, identical results; used by tests.
    """
    n_obs_total = int(prot.size)
    n_prot = int(n_proteins if n_proteins is not None else (prot.max() + 1 if prot.size else 0))
    if n_obs_total and np.any(np.diff(prot) < 0):
        raise ValueError("observations must be sorted by protein")
    factors = tuple(design.spec.random)
    n_f = len(factors)
    n_x = design.n_fixed
    n_obs = np.bincount(prot, minlength=n_prot).astype(np.intp)
    first_feat = np.full(n_prot, 0, dtype=np.intp)
    if n_obs_total:
        starts = np.concatenate([[0], np.cumsum(n_obs)[:-1]])
        has = n_obs > 0
        first_feat[has] = feat[starts[has]]

    # --- levels of every factor ------------------------------------------------------------
    local = np.zeros((n_f, n_obs_total), dtype=np.intp)
    global_level = np.zeros((n_f, n_obs_total), dtype=np.intp)
    n_levels = np.zeros((n_prot, n_f), dtype=np.intp)
    max_count = np.zeros((n_prot, n_f), dtype=np.intp)
    for f, name in enumerate(factors):
        if name == "feature":
            lvl = feat - first_feat[prot]
            n_lvl = int(lvl.max()) + 1 if lvl.size else 1
            global_level[f] = feat
        else:
            codes = design.factor_codes[name]
            lvl = codes[run]
            n_lvl = int(codes.max()) + 1 if codes.size else 1
            global_level[f] = lvl
        local[f], n_levels[:, f], max_count[:, f] = _levels(prot, lvl, n_prot, n_lvl)

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
    run_level = [f for f, name in enumerate(factors) if name != "feature"]
    for i, fa in enumerate(run_level):
        for fb in run_level[i + 1 :]:
            same = _same_partition(
                prot, local[fa], local[fb], n_levels[:, fa], n_levels[:, fb], n_prot
            )
            drop(same & active[:, fa], fb, f"same grouping as {factors[fa]}")
    n_cond = len(design.conditions)
    cond_of_obs = design.condition_code[run]
    for f in run_level:
        if factors[f] == "batch":
            continue
        # levels per observed condition (levels of sample/run are nested in conditions)
        key = np.unique((prot.astype(np.int64) * n_cond + cond_of_obs) * (1 << 20) + local[f])
        pc = key >> 20
        per_cond = np.bincount(pc, minlength=n_prot * n_cond).reshape(n_prot, n_cond)
        nested_single = np.all(per_cond <= 1, axis=1)
        drop(nested_single, f, "at most one level per condition (confounded with condition)")

    # fixed effects: X'X per protein from (protein, run) counts
    pr_key = prot.astype(np.int64) * design.x.shape[0] + run
    pr_counts = np.bincount(pr_key, minlength=n_prot * design.x.shape[0]).reshape(n_prot, -1)
    xtx = np.einsum("pr,ri,rj->pij", pr_counts.astype(np.float64), design.x, design.x)
    xkeep = greedy_independent(xtx)
    p_kept = xkeep.sum(axis=1)
    fixed_runs = design.spec.fixed_runs
    if fixed_runs:
        # fixed run means, eliminated like a random factor with infinite variance
        run_local, runs_seen, _ = _levels(prot, run, n_prot, design.x.shape[0])
        p_kept = p_kept + runs_seen
    nu = (n_obs - p_kept).astype(np.float64)
    fittable = (nu >= 1) & (n_obs > 0)
    detail = ["; ".join(r) for r in reasons]

    ybar = np.zeros(n_prot)
    np.add.at(ybar, prot, y)
    with np.errstate(invalid="ignore", divide="ignore"):
        ybar = np.where(n_obs > 0, ybar / np.maximum(n_obs, 1), 0.0)
    yc = y - ybar[prot]

    # --- eliminated factor and layout -------------------------------------------------------
    q_active = np.where(active, n_levels, 0)
    efactor = np.where(q_active.max(axis=1) > 0, np.argmax(q_active, axis=1), -1).astype(np.intp)
    efactor = np.where(fittable & ~fixed_runs, efactor, -1)
    is_k = active & (np.arange(n_f)[None, :] != efactor[:, None])
    q_k = np.where(is_k, n_levels, 0)
    q_tot = q_k.sum(axis=1)
    k_offset = np.concatenate([np.zeros((n_prot, 1), dtype=np.intp), np.cumsum(q_k, axis=1)], 1)
    d_p = q_tot + n_x + 1
    dim_offset = np.concatenate([[0], np.cumsum(d_p)]).astype(np.intp)
    n_dims = int(dim_offset[-1])

    # --- V: observations x (protein, dimension) ---------------------------------------------
    rows_list = []
    cols_list = []
    vals_list = []
    obs_idx = np.arange(n_obs_total)
    fit_obs = fittable[prot]
    for f in range(n_f):
        m = is_k[prot, f] & fit_obs
        rows_list.append(obs_idx[m])
        cols_list.append(dim_offset[prot[m]] + k_offset[prot[m], f] + local[f][m])
        vals_list.append(np.ones(int(m.sum())))
    xr = design.x[run]
    for j in range(n_x):
        m = xkeep[prot, j] & fit_obs & (xr[:, j] != 0)
        rows_list.append(obs_idx[m])
        cols_list.append(dim_offset[prot[m]] + q_tot[prot[m]] + j)
        vals_list.append(xr[m, j])
    rows_list.append(obs_idx[fit_obs])
    cols_list.append(dim_offset[prot[fit_obs]] + d_p[prot[fit_obs]] - 1)
    vals_list.append(yc[fit_obs])
    v = sp.csr_matrix(
        (np.concatenate(vals_list), (np.concatenate(rows_list), np.concatenate(cols_list))),
        shape=(n_obs_total, n_dims),
    )
    g_all = (v.T @ v).tocoo()

    # --- eliminated-factor levels: w_j rows and count classes ------------------------------
    if fixed_runs:
        has_e = fittable.copy()
        e_obs = has_e[prot]
        e_local = run_local
        e_global = run
        n_e = np.where(has_e, runs_seen, 0)
    else:
        has_e = (efactor >= 0) & fittable
        e_obs = has_e[prot]
        e_of_obs = efactor[prot]
        e_local = np.where(e_obs, local[np.where(e_obs, e_of_obs, 0), obs_idx], 0)
        e_global = np.where(e_obs, global_level[np.where(e_obs, e_of_obs, 0), obs_idx], 0)
        n_e = np.where(has_e, n_levels[np.arange(n_prot), np.where(has_e, efactor, 0)], 0)
    e_offset = np.concatenate([[0], np.cumsum(n_e)]).astype(np.intp)
    n_elevels = int(e_offset[-1])
    e_row = e_offset[prot[e_obs]] + e_local[e_obs]
    a = sp.csr_matrix(
        (np.ones(e_row.size), (e_row, obs_idx[e_obs])), shape=(n_elevels, n_obs_total)
    )
    w_rows = (a @ v).tocsr()
    elevel_count = np.bincount(e_row, minlength=n_elevels).astype(np.intp)
    elevel_protein = np.repeat(np.arange(n_prot), n_e).astype(np.intp)
    elevel_level = np.zeros(n_elevels, dtype=np.intp)
    elevel_level[e_row] = e_global[e_obs]
    if compress:
        ckey = elevel_protein.astype(np.int64) * (n_obs_total + 1) + elevel_count
        uniq, cls_inv = np.unique(ckey, return_inverse=True)
        cls_protein = (uniq // (n_obs_total + 1)).astype(np.intp)
        cls_value = (uniq % (n_obs_total + 1)).astype(np.float64)
        cls_m = np.bincount(cls_inv, minlength=uniq.size).astype(np.float64)
    else:
        cls_inv = np.arange(n_elevels)
        cls_protein = elevel_protein
        cls_value = elevel_count.astype(np.float64)
        cls_m = np.ones(n_elevels)
    n_cls = np.bincount(cls_protein, minlength=n_prot).astype(np.intp)
    cls_offset = np.concatenate([[0], np.cumsum(n_cls)]).astype(np.intp)
    cls_local = np.arange(cls_protein.size) - cls_offset[cls_protein]
    # remap columns of w_rows to (class, local dim) blocks and form sum_j w_j w_j' per class
    wr = w_rows.tocoo()
    row_prot = elevel_protein[wr.row]
    row_cls = cls_inv[wr.row]
    local_dim = wr.col - dim_offset[row_prot]
    cls_dim_offset = np.concatenate([[0], np.cumsum(d_p[cls_protein])]).astype(np.intp)
    new_col = cls_dim_offset[row_cls] + local_dim
    wr2 = sp.csr_matrix((wr.data, (wr.row, new_col)), shape=(n_elevels, int(cls_dim_offset[-1])))
    w_all = (wr2.T @ wr2).tocoo()

    problem = Problem(
        e_fixed=fixed_runs,
        e_offset=e_offset,
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
        dim_offset=dim_offset,
        q_k=q_k,
        elevel_protein=elevel_protein,
        elevel_level=elevel_level,
        elevel_count=elevel_count,
        w_rows=w_rows,
    )
    # K-dimension labels (factor, global level) for BLUP output
    kdim_factor = np.full(n_dims, -1, dtype=np.intp)
    kdim_level = np.full(n_dims, -1, dtype=np.intp)
    for f in range(n_f):
        m = is_k[prot, f] & fit_obs
        cols = dim_offset[prot[m]] + k_offset[prot[m], f] + local[f][m]
        kdim_factor[cols] = f
        kdim_level[cols] = global_level[f][m]
    problem.kdim_factor = kdim_factor
    problem.kdim_level = kdim_level

    # --- buckets ------------------------------------------------------------------------------
    sizes = np.asarray(_Q_SIZES)
    q_pad = np.where(q_tot <= sizes[-1], sizes[np.searchsorted(sizes, q_tot)], q_tot)
    fit_idx = np.flatnonzero(fittable)
    g_prot = np.searchsorted(dim_offset, g_all.row, side="right") - 1
    w_cls = np.searchsorted(cls_dim_offset, w_all.row, side="right") - 1
    w_prot = cls_protein[w_cls]
    order_g = np.argsort(g_prot, kind="stable")
    order_w = np.argsort(w_prot, kind="stable")
    g_start = np.searchsorted(g_prot[order_g], np.arange(n_prot + 1))
    w_start = np.searchsorted(w_prot[order_w], np.arange(n_prot + 1))
    for qp in np.unique(q_pad[fit_idx]):
        members = fit_idx[q_pad[fit_idx] == qp]
        d = int(qp) + n_x + 1
        c_max = max(int(n_cls[members].max()), 1)
        chunk = max(1, _MAX_W_ELEMENTS // (c_max * d * d))
        for lo in range(0, members.size, chunk):
            idx = members[lo : lo + chunk]
            bucket = _fill_bucket(
                idx,
                d,
                c_max,
                n_x,
                n_f,
                problem,
                q_tot,
                d_p,
                k_offset,
                is_k,
                g_all,
                order_g,
                g_start,
                w_all,
                order_w,
                w_start,
                cls_dim_offset,
                w_cls,
                cls_local,
                cls_value,
                cls_m,
                cls_offset,
                n_cls,
            )
            problem.buckets.append((idx, bucket))
    log.debug("built %d buckets for %d fittable proteins", len(problem.buckets), fit_idx.size)
    return problem


def _fill_bucket(
    idx: IntArray,
    d: int,
    c_max: int,
    n_x: int,
    n_f: int,
    problem: Problem,
    q_tot: IntArray,
    d_p: IntArray,
    k_offset: IntArray,
    is_k: NDArray[np.bool_],
    g_all: sp.coo_matrix,
    order_g: IntArray,
    g_start: IntArray,
    w_all: sp.coo_matrix,
    order_w: IntArray,
    w_start: IntArray,
    cls_dim_offset: IntArray,
    w_cls: IntArray,
    cls_local: IntArray,
    cls_value: FloatArray,
    cls_m: FloatArray,
    cls_offset: IntArray,
    n_cls: IntArray,
) -> Bucket:
    nb = idx.size
    q_pad = d - n_x - 1
    pos = np.arange(nb)

    def remap(local_dim: IntArray, prot_of: IntArray) -> IntArray:
        shift = q_pad - q_tot[prot_of]
        return np.where(local_dim < q_tot[prot_of], local_dim, local_dim + shift)

    # G
    sel: IntArray = np.concatenate(
        [order_g[g_start[p] : g_start[p + 1]] for p in idx] or [np.zeros(0, dtype=np.intp)]
    ).astype(np.intp)
    counts = g_start[idx + 1] - g_start[idx]
    bpos = np.repeat(pos, counts)
    gp = idx[bpos]
    r = remap(g_all.row[sel] - problem.dim_offset[gp], gp)
    c = remap(g_all.col[sel] - problem.dim_offset[gp], gp)
    g = np.zeros((nb, d, d))
    g[bpos, r, c] = g_all.data[sel]
    # dummy unit columns for dropped fixed effects
    xk = problem.xkeep[idx]
    for j in range(n_x):
        dropped = ~xk[:, j]
        g[dropped, q_pad + j, q_pad + j] = 1.0
    # W
    sel_w: IntArray = np.concatenate(
        [order_w[w_start[p] : w_start[p + 1]] for p in idx] or [np.zeros(0, dtype=np.intp)]
    ).astype(np.intp)
    counts_w = w_start[idx + 1] - w_start[idx]
    bpos_w = np.repeat(pos, counts_w)
    wp = idx[bpos_w]
    cl = w_cls[sel_w]
    rw = remap(w_all.row[sel_w] - cls_dim_offset[cl], wp)
    cw = remap(w_all.col[sel_w] - cls_dim_offset[cl], wp)
    w = np.zeros((nb, c_max, d, d))
    w[bpos_w, cls_local[cl], rw, cw] = w_all.data[sel_w]
    # classes
    cls_n = np.zeros((nb, c_max))
    cls_mm = np.zeros((nb, c_max))
    for i, p in enumerate(idx):
        k = int(n_cls[p])
        sl = slice(int(cls_offset[p]), int(cls_offset[p]) + k)
        cls_n[i, :k] = cls_value[sl]
        cls_mm[i, :k] = cls_m[sl]
    # dimension labels
    dimfactor = np.full((nb, d), DIM_PAD, dtype=np.intp)
    dimfactor[:, q_pad:] = DIM_FIXED
    for i, p in enumerate(idx):
        for f in range(n_f):
            if is_k[p, f]:
                dimfactor[i, k_offset[p, f] : k_offset[p, f + 1]] = f
    return Bucket(
        G=g,
        W=w,
        cls_n=cls_n,
        cls_m=cls_mm,
        dimfactor=dimfactor,
        efactor=problem.efactor[idx],
        e_fixed=problem.e_fixed,
        free=problem.active[idx].copy(),
        nu=problem.nu[idx],
        n_x=n_x,
    )
