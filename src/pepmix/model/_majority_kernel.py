r"""Compiled passes of the feature majority rule (numba; :mod:`pepmix.model.majority`).

:func:`saturated_tables` makes, protein by protein, what
:func:`pepmix.model.majority.cell_levels` makes with plain numpy (the tests compare the two):
the observations the saturated model :math:`y_i = a_{c(i)} + b_{r(i)} + e_i` (cell :math:`c` =
feature x condition, run :math:`r`) fits exactly are pruned (the only one of their cell or run
among those left, until none is left), the model's rank (cells + runs - components of the
cell-run incidence) and residual df :math:`\nu` are counted, the model is fitted to the rest
by Huber M-estimation ("Saturated fit" below), and the cell levels outside the largest
component of their condition are set to NaN.

Saturated fit
-------------
Huber M-estimation with the MAD scale of the residuals times the df factor
:math:`\sqrt{n/\nu}` (least-squares residuals have mean square :math:`\nu\sigma^2/n`), by
iteratively reweighted least squares (IRLS) started from Tukey's median polish (10 sweeps of
cell and run medians; a sweep that subtracts only zeros leaves the table as it is, and the
polish stops there). Each round takes the Huber weights :math:`w_i = \min(1, k s / |x_i|)`
(:math:`k` = 1.345) of residuals :math:`x` at their scale :math:`s`, and solves the weighted
least squares *exactly*: with :math:`W_g, T_g` the sums of :math:`w_i` and :math:`w_i y_i`
over cell :math:`g`, :math:`W_r, S_r` over run :math:`r` and :math:`N_{gr}` the weight of
cell :math:`g` in run :math:`r`, the run levels are eliminated,
:math:`b_r = (S_r - \sum_g N_{gr} a_g) / W_r`, leaving per connected component the cell
system

.. math:: \Big(\operatorname{diag}(W_g) - \sum_r N_{\cdot r} N_{\cdot r}' / W_r\Big) a
   = T - \sum_r N_{\cdot r} S_r / W_r,

singular along the component's constant; adding :math:`W W' / \sum_g W_g` to the matrix and
:math:`W \sum_g T_g / \sum_g W_g` to the right-hand side fixes
:math:`\sum_g W_g a_g = \sum_i w_i y_i` (i.e. :math:`\sum_r W_r b_r = 0`) and makes it positive
definite (Cholesky). A component's cells are one condition's features, so the system is
small. Cost per round :math:`O(\sum_r n_r^2 + \sum_K |K|^3)`. The :math:`\sum_r` terms are
added run by run, row pair by row pair, from the rows' weights and cell positions gathered in
run order once per round (positions once per protein, :func:`_run_positions`); where no cell
has two rows in a run (precursor or peptide features: one value per run) the loop needs no
test for them. Every entry takes its terms in the same order either way, so the sums are the
same bit for bit (``benchmarks/README.md``, "The majority rule's saturated fits, cheaper").

The rounds stop when no Huber weight of the new residuals (at their own MAD scale) differs
from the weights just used by :data:`WEIGHT_TOL` (1e-6) or more. **Guarantee:** every fit
reported as settled is the exact weighted least-squares solution (to rounding) at weights
within :data:`WEIGHT_TOL` of the Huber weights of its own residuals at their scale -- a fixed
point of the Huber IRLS, which does not depend on how it was reached. At most
:data:`MAX_ROUNDS` (100) rounds; a fit that has not settled by then is reported (the caller
counts them: :func:`pepmix.model.majority.majority_exclusions` logs one warning).

The rounds are a fixed-point iteration :math:`x \mapsto g(x)` on the residual vector (weights
from :math:`x`, exact fit, its residuals :math:`g`). Re-estimating the scale each round makes
it slow for some proteins (the scale creeps by a ratio of 0.99 per round: hundreds of rounds;
on the demo 15 of 985 proteins were still moving after 100 rounds at 1e-8), so it is
accelerated by Anderson mixing (Anderson 1965; Walker & Ni 2011, *SIAM J Numer Anal* 49:1715):
the next :math:`x` is :math:`g_k - \sum_j \gamma_j (g_{j+1} - g_j)` with :math:`\gamma`
minimising :math:`\|f_k - \sum_j \gamma_j (f_{j+1} - f_j)\|`, :math:`f = g - x`, over the
last :data:`ANDERSON_MEMORY` (3) differences; the memory is cleared when :math:`\|f\|` grows
or the differences are dependent. An extrapolated :math:`x` is only where the next weights
come from; the stopping rule, and so the guarantee, are those of the plain iteration (median
15 rounds on the demo, 12 on a cohort shard; 1 of 985 demo proteins, 0 of 3,759 cohort ones
not settled).

The pruned observations do not enter the Huber fit: each is fitted exactly by its own level,
whatever the weights, so it carries no information on the scale (with them the MAD, over many
exact zeros, collapsed and the weights with it). The levels of all cells (a cell with one
observation has a level, only no pure error) come from one exact weighted least squares of all
observations at the settled weights, weight 1 for the pruned ones: the Huber fit of all
observations at the pure-error scale, whose residuals are those of the fit without them and 0
for them. Proteins without pure error (:math:`\nu < 1`: every observation pruned) get the
exact fit of all observations (all weights 1).

(Until 2026-12-07 the rounds were a fixed 10, each solved by at most 50 sweeps of
backfitting, and the levels came from a second Huber fit of all observations: neither loop
converged for some proteins, so exclusions depended on the solver: ``benchmarks/README.md``,
"A feature majority rule: a converging saturated fit".)

:func:`interaction_q` makes the statistic :math:`Q_j` of
:func:`pepmix.model.majority.feature_contrast` and
:func:`pepmix.model.majority.contrast_statistic` for every active feature of the listed
proteins (the p-values and the step-down stay in numpy/scipy).

The kernels are compiled once and cached next to this module (``cache=True``).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

from pepmix.model._kernel import (
    MEDIAN_BINS,
    MEDIAN_SMALL,
    cholesky_into,
    median_of,
    sweep_groups,
)

#: the constants of :mod:`pepmix.model.robust` the saturated fit uses (copied: importing that
#: module here would load it into every numba cache check; checked by the tests)
MAD_SCALE = 1.482602218505602
HUBER_K = 1.345
POLISH_SWEEPS = 10
#: IRLS rounds of the saturated fit at most (module docstring, "Saturated fit")
MAX_ROUNDS = 100
#: the IRLS stops when no Huber weight changes by this much or more
WEIGHT_TOL = 1e-6
#: Anderson acceleration of the IRLS: differences of this many past rounds (module docstring)
ANDERSON_MEMORY = 3
#: Anderson's memory is cleared when a round's change grows by more than this factor
ANDERSON_RESTART = 1.0
#: backfitting sweeps of the others' additive profile (:data:`pepmix.model.majority.SWEEPS`)
PROFILE_SWEEPS = 30


@njit(cache=True, nogil=True)
def _group(
    key: NDArray[np.int64],
    m: int,
    n_groups: int,
    starts: NDArray[np.int64],
    order: NDArray[np.int64],
) -> None:
    """Counting sort of ``key[:m]``: rows of group ``g`` are ``order[starts[g]:starts[g+1]]``."""
    starts[: n_groups + 1] = 0
    for i in range(m):
        starts[key[i] + 1] += 1
    for g in range(n_groups):
        starts[g + 1] += starts[g]
    pos = starts[:n_groups].copy()
    for i in range(m):
        order[pos[key[i]]] = i
        pos[key[i]] += 1


@njit(cache=True, nogil=True)
def _mad(
    resid: NDArray[np.float64],
    m: int,
    buf: NDArray[np.float64],
    small: NDArray[np.float64],
    work: NDArray[np.float64],
    hist: NDArray[np.int64],
) -> float:
    """MAD of ``resid[:m]`` scaled to a normal SD (:func:`pepmix.model.robust.robust_scale`)."""
    for i in range(m):
        buf[i] = resid[i]
    med = median_of(buf, m, small, work, hist)
    for i in range(m):
        buf[i] = np.abs(resid[i] - med)
    return MAD_SCALE * median_of(buf, m, small, work, hist)


@njit(cache=True, nogil=True)
def _huber(
    resid: NDArray[np.float64],
    m: int,
    scale: float,
    w_old: NDArray[np.float64],
    w: NDArray[np.float64],
) -> float:
    """Huber weights of ``resid[:m]`` at ``scale`` into ``w[:m]`` (1 where ``scale`` is 0);
    returns the largest difference from ``w_old[:m]``."""
    limit = HUBER_K * scale
    moved = 0.0
    for i in range(m):
        absr = np.abs(resid[i])
        wi = limit / absr if absr > limit else 1.0
        wi = wi if scale > 0 else 1.0
        moved = max(moved, np.abs(wi - w_old[i]))
        w[i] = wi
    return moved


@njit(cache=True, nogil=True)
def _blocks(
    cell: NDArray[np.int64],
    run: NDArray[np.int64],
    m: int,
    n_cells: int,
    n_runs: int,
    comp_of: NDArray[np.int64],
    pos: NDArray[np.int64],
    c_starts: NDArray[np.int64],
    members: NDArray[np.int64],
    r_starts: NDArray[np.int64],
    runs: NDArray[np.int64],
) -> int:
    """Connected components of the cell-run incidence of ``cell[:m]``, ``run[:m]``: returns
    their number ``K``; component ``k`` has the cells ``members[c_starts[k]:c_starts[k + 1]]``
    (cell ``g`` at position ``pos[g]`` of its component's, ``comp_of[g]`` its component, -1
    for cells without rows) and the runs ``runs[r_starts[k]:r_starts[k + 1]]``."""
    parent = np.empty(n_cells + n_runs, dtype=np.int64)
    use = np.ones(m, dtype=np.bool_)
    _components(cell, run, use, m, n_cells, parent)
    label = np.full(n_cells + n_runs, -1, dtype=np.int64)
    seen = np.zeros(n_cells + n_runs, dtype=np.bool_)
    for i in range(m):
        seen[cell[i]] = True
        seen[n_cells + run[i]] = True
    n_comp = 0
    for x in range(n_cells + n_runs):
        if seen[x] and _find(parent, x) == x:
            label[x] = n_comp
            n_comp += 1
    c_starts[: n_comp + 1] = 0
    r_starts[: n_comp + 1] = 0
    for x in range(n_cells + n_runs):
        if seen[x]:
            k = label[_find(parent, x)]
            if x < n_cells:
                c_starts[k + 1] += 1
            else:
                r_starts[k + 1] += 1
    for k in range(n_comp):
        c_starts[k + 1] += c_starts[k]
        r_starts[k + 1] += r_starts[k]
    c_fill = c_starts[:n_comp].copy()
    r_fill = r_starts[:n_comp].copy()
    for g in range(n_cells):
        comp_of[g] = -1
        if seen[g]:
            k = label[_find(parent, g)]
            comp_of[g] = k
            pos[g] = c_fill[k] - c_starts[k]
            members[c_fill[k]] = g
            c_fill[k] += 1
    for r in range(n_runs):
        if seen[n_cells + r]:
            k = label[_find(parent, n_cells + r)]
            runs[r_fill[k]] = r
            r_fill[k] += 1
    return n_comp


@njit(cache=True, nogil=True)
def _cholesky_solve(chol: NDArray[np.float64], v: NDArray[np.float64]) -> None:
    """Solve ``L L' x = v`` in place (``chol`` the lower factor ``L``)."""
    n = v.size
    for i in range(n):
        acc = v[i]
        for j in range(i):
            acc -= chol[i, j] * v[j]
        v[i] = acc / chol[i, i]
    for i in range(n - 1, -1, -1):
        acc = v[i]
        for j in range(i + 1, n):
            acc -= chol[j, i] * v[j]
        v[i] = acc / chol[i, i]


@njit(cache=True, nogil=True)
def _cell_system(
    k: int,
    sums: NDArray[np.float64],
    members: NDArray[np.int64],
    c_starts: NDArray[np.int64],
    runs: NDArray[np.int64],
    k_starts: NDArray[np.int64],
    r_starts: NDArray[np.int64],
    rpos: NDArray[np.int64],
    rw: NDArray[np.float64],
    simple: bool,
    mat: NDArray[np.float64],
    rhs: NDArray[np.float64],
) -> None:
    r"""Lower triangle of the cell system of component ``k`` into ``mat`` and its right-hand
    side into ``rhs`` (module docstring, "Saturated fit"; ``sums`` rows: :math:`W_g`,
    :math:`T_g` per cell, :math:`W_r`, :math:`S_r` per run; ``rpos``, ``rw``: the position
    of the row's cell in its component and its weight, rows grouped by run, ``simple``: the
    positions increase within every run, :func:`_run_positions`).

    Each entry of ``mat`` takes its terms in the order of the runs, then of the rows in the
    run, ``simple`` or not (the simple loop only skips the tests for two rows of one cell)."""
    c0 = c_starts[k]
    n = c_starts[k + 1] - c0
    mat[:n, :n] = 0.0
    tot_w, tot_t = 0.0, 0.0
    for q in range(n):
        g = members[c0 + q]
        mat[q, q] = sums[0, g]
        rhs[q] = sums[1, g]
        tot_w += sums[0, g]
        tot_t += sums[1, g]
    for rr in range(k_starts[k], k_starts[k + 1]):
        r = runs[rr]
        lo, hi = r_starts[r], r_starts[r + 1]
        w_r, s_r = sums[2, r], sums[3, r]
        if simple and hi - lo == n:  # every cell once, in order: rpos[lo + q] == q
            for ii in range(lo, hi):
                f = rw[ii] / w_r
                pi = ii - lo
                rhs[pi] -= f * s_r
                row = mat[pi]
                for q in range(pi + 1):
                    row[q] -= f * rw[lo + q]
            continue
        for ii in range(lo, hi):
            f = rw[ii] / w_r
            pi = rpos[ii]
            rhs[pi] -= f * s_r
            if simple:  # pj < pi for jj < ii: no cell twice in a run
                for jj in range(lo, ii + 1):
                    mat[pi, rpos[jj]] -= f * rw[jj]
                continue
            for jj in range(lo, ii + 1):
                pj = rpos[jj]
                x = f * rw[jj]
                if jj != ii and pi == pj:  # two rows of one cell in one run: (i, j) and (j, i)
                    x += x
                mat[max(pi, pj), min(pi, pj)] -= x
    for q in range(n):  # + W W' / sum(W): fixes sum_g W_g a_g = sum_i w_i y_i
        wq = sums[0, members[c0 + q]] / tot_w
        rhs[q] += wq * tot_t
        for p in range(q + 1):
            mat[q, p] += wq * sums[0, members[c0 + p]]


@njit(cache=True, nogil=True)
def _run_positions(
    cell: NDArray[np.int64],
    pos: NDArray[np.int64],
    r_order: NDArray[np.int64],
    r_starts: NDArray[np.int64],
    m: int,
    rpos: NDArray[np.int64],
) -> bool:
    """Position of each row's cell in its component (``pos[cell]``) into ``rpos[:m]``, rows
    grouped by run (``r_order``); True when the positions increase within every run (no cell
    twice in a run and the rows of a run in cell order: :func:`_cell_system`'s simple loop)."""
    simple = True
    for ii in range(m):
        rpos[ii] = pos[cell[r_order[ii]]]
    for r in range(r_starts.size - 1):
        for ii in range(r_starts[r] + 1, r_starts[r + 1]):
            simple = simple and rpos[ii] > rpos[ii - 1]
    return simple


@njit(cache=True, nogil=True)
def _wls(
    y: NDArray[np.float64],
    cell: NDArray[np.int64],
    run: NDArray[np.int64],
    m: int,
    w: NDArray[np.float64],
    n_comp: int,
    members: NDArray[np.int64],
    c_starts: NDArray[np.int64],
    runs: NDArray[np.int64],
    k_starts: NDArray[np.int64],
    r_order: NDArray[np.int64],
    r_starts: NDArray[np.int64],
    rpos: NDArray[np.int64],
    simple: bool,
    a: NDArray[np.float64],
    b: NDArray[np.float64],
    sums: NDArray[np.float64],
    mat: NDArray[np.float64],
    chol: NDArray[np.float64],
    rhs: NDArray[np.float64],
    rw: NDArray[np.float64],
) -> bool:
    """Exact weighted least squares of ``y[:m] = a[cell] + b[run] + e`` at the weights ``w``
    (module docstring, "Saturated fit"), component by component (``rpos``, ``simple``:
    :func:`_run_positions`; ``sums``, ``mat``, ``chol``, ``rhs``, ``rw``: work space); False
    where a cell system is not numerically positive definite (those levels NaN)."""
    sums[:] = 0.0
    for i in range(m):
        wy = w[i] * y[i]
        sums[0, cell[i]] += w[i]
        sums[1, cell[i]] += wy
        sums[2, run[i]] += w[i]
        sums[3, run[i]] += wy
    for ii in range(m):
        rw[ii] = w[r_order[ii]]
    ok = True
    for k in range(n_comp):
        c0, n = c_starts[k], c_starts[k + 1] - c_starts[k]
        _cell_system(k, sums, members, c_starts, runs, k_starts, r_starts, rpos, rw, simple,
                     mat, rhs)  # fmt: skip
        fac = chol[:n, :n]
        if not cholesky_into(mat[:n, :n], fac):
            ok = False
            for q in range(n):
                a[members[c0 + q]] = np.nan
            for rr in range(k_starts[k], k_starts[k + 1]):
                b[runs[rr]] = np.nan
            continue
        v = rhs[:n]
        _cholesky_solve(fac, v)
        for q in range(n):
            a[members[c0 + q]] = v[q]
        for rr in range(k_starts[k], k_starts[k + 1]):  # the run levels given the cells'
            r = runs[rr]
            acc = sums[3, r]
            for ii in range(r_starts[r], r_starts[r + 1]):
                acc -= rw[ii] * v[rpos[ii]]
            b[r] = acc / sums[2, r]
    return ok


@njit(cache=True, nogil=True)
def _anderson(
    g: NDArray[np.float64],
    x: NDArray[np.float64],
    m: int,
    past_g: NDArray[np.float64],
    past_f: NDArray[np.float64],
    n_past: int,
    last: float,
    gram: NDArray[np.float64],
    fac: NDArray[np.float64],
    gam: NDArray[np.float64],
) -> tuple[int, float, bool]:
    """Anderson's step (module docstring, "Saturated fit") from the round that took the
    residuals ``x[:m]`` to ``g[:m]``: the next residuals into ``x``. Of the last ``n_past``
    rounds' ``g`` and ``f = g - x``, ``past_g``, ``past_f`` hold the differences of consecutive
    ones (rows ``:n_past - 1``, oldest first) and the last ones (row :data:`ANDERSON_MEMORY`);
    ``gram`` the differences' inner products (lower triangle, rows ``:n_past - 1``: each
    computed once, when its newer difference came); ``last`` the norm of the last ``g - x``;
    ``fac``, ``gam``: work space. Returns the new ``n_past``, the norm of this round's
    ``g - x`` and whether ``x`` is not ``g`` (extrapolated).

    Each difference, inner product and update is the same expression, summed in the same order,
    as when every round recomputed them from the stored ``g`` and ``f`` (so the same bits)."""
    top = ANDERSON_MEMORY
    norm = 0.0
    for i in range(m):
        norm += (g[i] - x[i]) ** 2
    norm = np.sqrt(norm)
    if n_past > 0 and norm > ANDERSON_RESTART * last:  # no progress: restart, plain step
        n_past = 0
    if n_past == ANDERSON_MEMORY + 1:  # drop the oldest difference
        for j in range(n_past - 2):
            past_g[j, :m] = past_g[j + 1, :m]
            past_f[j, :m] = past_f[j + 1, :m]
            for k in range(j + 1):
                gram[j, k] = gram[j + 1, k + 1]
        n_past -= 1
    q = n_past  # the new difference's row
    for i in range(m):
        f_i = g[i] - x[i]
        if q > 0:
            past_g[q - 1, i] = g[i] - past_g[top, i]
            past_f[q - 1, i] = f_i - past_f[top, i]
        past_g[top, i] = g[i]
        past_f[top, i] = f_i
        x[i] = g[i]
    n_past += 1
    if q == 0:
        return n_past, norm, False
    for k in range(q):  # normal equations of min || f - dF gam ||, dF[:, j] = f_{j+1} - f_j
        acc = 0.0
        for i in range(m):
            acc += past_f[q - 1, i] * past_f[k, i]
        gram[q - 1, k] = acc
    for j in range(q):
        gam[j] = 0.0
        for i in range(m):
            gam[j] += past_f[j, i] * past_f[top, i]
    if not cholesky_into(gram[:q, :q], fac[:q, :q]):  # dependent differences: restart
        return 1, norm, False
    _cholesky_solve(fac[:q, :q], gam[:q])
    for j in range(q):
        for i in range(m):
            x[i] -= gam[j] * past_g[j, i]
    return n_past, norm, True


@njit(cache=True, nogil=True)
def _structure(
    cell: NDArray[np.int64], run: NDArray[np.int64], m: int, n_cells: int, n_runs: int
) -> tuple[int, NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64],
           NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64],
           NDArray[np.int64], bool]:  # fmt: skip
    """The components of the rows (:func:`_blocks`: ``n_comp, comp_of, pos, c_starts,
    members, k_starts, runs``), the rows grouped by run (``r_order, r_starts``) and their
    cells' positions in their components (:func:`_run_positions`: ``rpos, simple``)."""
    comp_of = np.empty(n_cells, dtype=np.int64)
    pos = np.zeros(n_cells, dtype=np.int64)
    members = np.empty(n_cells, dtype=np.int64)
    c_starts = np.empty(n_cells + n_runs + 1, dtype=np.int64)
    runs = np.empty(n_runs, dtype=np.int64)
    k_starts = np.empty(n_cells + n_runs + 1, dtype=np.int64)
    n_comp = _blocks(cell, run, m, n_cells, n_runs, comp_of, pos, c_starts, members, k_starts,
                     runs)  # fmt: skip
    r_order = np.empty(max(m, 1), dtype=np.int64)
    r_starts = np.empty(n_runs + 1, dtype=np.int64)
    _group(run, m, n_runs, r_starts, r_order)
    rpos = np.empty(max(m, 1), dtype=np.int64)
    simple = _run_positions(cell, pos, r_order, r_starts, m, rpos)
    return n_comp, comp_of, pos, c_starts, members, k_starts, runs, r_order, r_starts, rpos, simple


@njit(cache=True, nogil=True)
def _exact_fit(
    y: NDArray[np.float64],
    cell: NDArray[np.int64],
    run: NDArray[np.int64],
    m: int,
    n_cells: int,
    n_runs: int,
    w: NDArray[np.float64],
    a: NDArray[np.float64],
) -> bool:
    """The weighted least squares of ``y[:m] = a[cell] + b[run] + e`` at the weights ``w``
    (:func:`_wls`): the levels into ``a[:n_cells]`` (NaN for empty cells). False where a cell
    system is not numerically positive definite."""
    n_comp, comp_of, _, c_starts, members, k_starts, runs, r_order, r_starts, rpos, simple = (
        _structure(cell, run, m, n_cells, n_runs))  # fmt: skip
    widest = 1
    for k in range(n_comp):
        widest = max(widest, c_starts[k + 1] - c_starts[k])
    a_all = np.zeros(n_cells)
    ok = _wls(y, cell, run, m, w, n_comp, members, c_starts, runs, k_starts, r_order, r_starts,
              rpos, simple, a_all, np.zeros(n_runs), np.empty((4, max(n_cells, n_runs))),
              np.empty((widest, widest)), np.empty((widest, widest)), np.empty(widest),
              np.empty(max(m, 1)))  # fmt: skip
    for g in range(n_cells):
        a[g] = a_all[g] if comp_of[g] >= 0 else np.nan
    return ok


@njit(cache=True, nogil=True)
def _polish(
    y: NDArray[np.float64],
    cell: NDArray[np.int64],
    m: int,
    n_cells: int,
    r_order: NDArray[np.int64],
    r_starts: NDArray[np.int64],
    resid: NDArray[np.float64],
) -> None:
    """Residuals of Tukey's median polish of ``y[:m]`` (cell medians, then run medians,
    :data:`POLISH_SWEEPS` times) into ``resid[:m]``. A sweep that subtracts only ``+0.0``
    leaves ``resid`` as it is, and so would every later one: the polish stops there (the same
    residuals, bit for bit)."""
    small = np.empty(MEDIAN_SMALL)
    work = np.empty(max(m, 1))
    hist = np.empty(MEDIAN_BINS + 1, dtype=np.int64)
    buf = np.empty(max(m, 1))
    order = np.empty(max(m, 1), dtype=np.int64)
    starts = np.empty(n_cells + 1, dtype=np.int64)
    _group(cell, m, n_cells, starts, order)
    for i in range(m):
        resid[i] = y[i]
    for _ in range(POLISH_SWEEPS):
        cells = sweep_groups(resid, order, starts, 0, n_cells, buf, small, work, hist)
        runs = sweep_groups(resid, r_order, r_starts, 0, r_starts.size - 1, buf, small, work, hist)
        if not (cells or runs):
            return


@njit(cache=True, nogil=True)
def _saturated(
    y: NDArray[np.float64],
    cell: NDArray[np.int64],
    run: NDArray[np.int64],
    m: int,
    n_cells: int,
    n_runs: int,
    factor: float,
    resid: NDArray[np.float64],
    a: NDArray[np.float64],
    w: NDArray[np.float64],
) -> int:
    """Huber M-fit of ``y[:m] = a[cell] + b[run] + e`` (module docstring, "Saturated fit"):
    residuals into ``resid[:m]``, levels into ``a[:n_cells]`` (NaN for empty cells), the
    weights of the last weighted least squares into ``w[:m]``. Returns the IRLS rounds made,
    negative when the weights did not settle within :data:`MAX_ROUNDS` (or a cell system was
    singular)."""
    n_comp, comp_of, _, c_starts, members, k_starts, runs, r_order, r_starts, rpos, simple = (
        _structure(cell, run, m, n_cells, n_runs))  # fmt: skip
    _polish(y, cell, m, n_cells, r_order, r_starts, resid)
    widest = 1
    for k in range(n_comp):
        widest = max(widest, c_starts[k + 1] - c_starts[k])
    sums = np.empty((4, max(n_cells, n_runs)))
    mat = np.empty((widest, widest))
    chol = np.empty((widest, widest))
    rhs = np.empty(widest)
    small = np.empty(MEDIAN_SMALL)
    work = np.empty(max(m, 1))
    hist = np.empty(MEDIAN_BINS + 1, dtype=np.int64)
    buf = np.empty(max(m, 1))
    w_new = np.zeros(max(m, 1))
    rw = np.empty(max(m, 1))
    a_all = np.zeros(n_cells)
    b = np.zeros(n_runs)
    x = resid[:m].copy()  # the residuals the next round's weights come from
    past_g = np.empty((ANDERSON_MEMORY + 1, m))
    past_f = np.empty((ANDERSON_MEMORY + 1, m))
    gram = np.empty((ANDERSON_MEMORY, ANDERSON_MEMORY))
    fac = np.empty((ANDERSON_MEMORY, ANDERSON_MEMORY))
    gam = np.empty(ANDERSON_MEMORY)
    n_past, last, extrapolated = 0, np.inf, True
    rounds = -MAX_ROUNDS
    for it in range(1, MAX_ROUNDS + 1):
        if extrapolated:  # else w_new holds the Huber weights of x already
            _huber(x, m, _mad(x, m, buf, small, work, hist) * factor, w_new, w_new)
        w[:m] = w_new[:m]
        if not _wls(y, cell, run, m, w, n_comp, members, c_starts, runs, k_starts, r_order,
                    r_starts, rpos, simple, a_all, b, sums, mat, chol, rhs, rw):  # fmt: skip
            rounds = -it
            break
        for i in range(m):
            resid[i] = y[i] - a_all[cell[i]] - b[run[i]]
        if _huber(resid, m, _mad(resid, m, buf, small, work, hist) * factor, w, w_new) < WEIGHT_TOL:
            rounds = it
            break
        n_past, last, extrapolated = _anderson(resid, x, m, past_g, past_f, n_past, last, gram,
                                               fac, gam)  # fmt: skip
    for g in range(n_cells):
        a[g] = a_all[g] if comp_of[g] >= 0 else np.nan
    return rounds


@njit(cache=True, nogil=True)
def _find(parent: NDArray[np.int64], x: int) -> int:
    """Root of ``x`` (path halving)."""
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@njit(cache=True, nogil=True)
def _components(
    cell: NDArray[np.int64],
    run: NDArray[np.int64],
    use: NDArray[np.bool_],
    m: int,
    n_cells: int,
    parent: NDArray[np.int64],
) -> None:
    """Union-find of the cell-run incidence of the rows ``use`` (cells ``0..n_cells-1``, run
    ``r`` node ``n_cells + r``)."""
    for x in range(parent.size):
        parent[x] = x
    for i in range(m):
        if use[i]:
            ra, rb = _find(parent, cell[i]), _find(parent, n_cells + run[i])
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)


@njit(cache=True, nogil=True)
def _prune(
    cell: NDArray[np.int64],
    run: NDArray[np.int64],
    m: int,
    n_cells: int,
    n_runs: int,
    kept: NDArray[np.bool_],
) -> None:
    """Leave out, until none is left, rows that are the only one of their cell or run among
    those left (:func:`pepmix.model.robust._prune_exact`)."""
    deg_c = np.zeros(n_cells, dtype=np.int64)
    deg_r = np.zeros(n_runs, dtype=np.int64)
    kept[:m] = True
    while True:
        deg_c[:] = 0
        deg_r[:] = 0
        for i in range(m):
            if kept[i]:
                deg_c[cell[i]] += 1
                deg_r[run[i]] += 1
        dropped = False
        for i in range(m):
            if kept[i] and (deg_c[cell[i]] == 1 or deg_r[run[i]] == 1):
                kept[i] = False
                dropped = True
        if not dropped:
            return


@njit(cache=True, nogil=True)
def _rank(
    cell: NDArray[np.int64],
    run: NDArray[np.int64],
    use: NDArray[np.bool_],
    m: int,
    n_cells: int,
    n_runs: int,
) -> int:
    """Rank of the cell + run design of the rows ``use``: nodes used - components."""
    parent = np.empty(n_cells + n_runs, dtype=np.int64)
    _components(cell, run, use, m, n_cells, parent)
    seen = np.zeros(n_cells + n_runs, dtype=np.bool_)
    for i in range(m):
        if use[i]:
            seen[cell[i]] = True
            seen[n_cells + run[i]] = True
    rank = 0
    for x in range(seen.size):
        if seen[x]:
            rank += 1
            if _find(parent, x) == x:
                rank -= 1
    return rank


@njit(cache=True, nogil=True)
def _main_component(
    cell: NDArray[np.int64],
    run: NDArray[np.int64],
    m: int,
    n_cells: int,
    n_runs: int,
    n_cond: int,
    a: NDArray[np.float64],
) -> None:
    """Set to NaN the levels of cells outside the largest component (most cells; ties: the
    one of the lowest cell) of their condition (:func:`pepmix.model.majority._main_component`)."""
    parent = np.empty(n_cells + n_runs, dtype=np.int64)
    use = np.ones(m, dtype=np.bool_)
    _components(cell, run, use, m, n_cells, parent)
    present = np.zeros(n_cells, dtype=np.bool_)
    for i in range(m):
        present[cell[i]] = True
    size = np.zeros(n_cells + n_runs, dtype=np.int64)
    for g in range(n_cells):
        if present[g]:
            size[_find(parent, g)] += 1
    for c in range(n_cond):
        best, best_size = -1, 0
        for g in range(c, n_cells, n_cond):
            if present[g]:
                s = size[_find(parent, g)]
                if s > best_size:
                    best, best_size = _find(parent, g), s
        for g in range(c, n_cells, n_cond):
            if present[g] and _find(parent, g) != best:
                a[g] = np.nan


@njit(cache=True, nogil=True)
def saturated_tables(
    y: NDArray[np.float64],
    feat: NDArray[np.int64],
    run: NDArray[np.int64],
    cond_of_run: NDArray[np.int64],
    row_start: NDArray[np.int64],
    feat_start: NDArray[np.int64],
    proteins: NDArray[np.int64],
    n_cond: int,
    n_runs: int,
    levels: NDArray[np.float64],
    counts: NDArray[np.float64],
    scale: NDArray[np.float64],
    nu: NDArray[np.float64],
    rounds: NDArray[np.int64],
) -> None:
    """Cell levels and counts (``levels``, ``counts``: flat ``feature * n_cond + condition``),
    pure-error scale and df (``scale``, ``nu``: NaN where :math:`\\nu < 1`) of the listed
    proteins (module docstring). Protein ``p`` has the rows ``row_start[p]:row_start[p + 1]``
    (sorted by protein) and the features ``feat_start[p]:feat_start[p + 1]``. ``rounds[p]``:
    the IRLS rounds of its saturated fit (0 without pure error), negative when it did not
    settle or a cell system was singular (:func:`_saturated`)."""
    longest, widest = 1, 1
    for k in range(proteins.size):
        p = proteins[k]
        longest = max(longest, row_start[p + 1] - row_start[p])
        widest = max(widest, (feat_start[p + 1] - feat_start[p]) * n_cond)
    cell = np.empty(longest, dtype=np.int64)
    rl = np.empty(longest, dtype=np.int64)
    kept = np.empty(longest, dtype=np.bool_)
    ys = np.empty(longest)
    cs = np.empty(longest, dtype=np.int64)
    rs = np.empty(longest, dtype=np.int64)
    resid = np.empty(longest)
    wk = np.empty(longest)
    w_all = np.empty(longest)
    a = np.empty(widest)
    for k in range(proteins.size):
        p = proteins[k]
        lo, m = row_start[p], row_start[p + 1] - row_start[p]
        f0 = feat_start[p]
        nc = (feat_start[p + 1] - f0) * n_cond
        for i in range(m):
            cell[i] = (feat[lo + i] - f0) * n_cond + cond_of_run[run[lo + i]]
            rl[i] = run[lo + i]
            counts[f0 * n_cond + cell[i]] += 1.0
        _prune(cell, rl, m, nc, n_runs, kept)
        n_kept = 0
        for i in range(m):
            if kept[i]:
                ys[n_kept], cs[n_kept], rs[n_kept] = y[lo + i], cell[i], rl[i]
                n_kept += 1
        df = n_kept - _rank(cell, rl, kept, m, nc, n_runs)
        factor = np.sqrt(n_kept / df) if df >= 1 else np.nan
        done = 0
        if df >= 1:
            nu[p] = df
            done = _saturated(ys, cs, rs, n_kept, nc, n_runs, factor, resid, a, wk)
            rss = 0.0
            for i in range(n_kept):
                rss += resid[i] ** 2
            scale[p] = np.sqrt(rss / df)
        if n_kept < m or df < 1:  # the pruned rows at weight 1: fitted exactly (docstring)
            j = 0
            for i in range(m):
                ys[i] = y[lo + i]
                w_all[i] = wk[j] if kept[i] and df >= 1 else 1.0
                j += 1 if kept[i] else 0
            if not _exact_fit(ys, cell, rl, m, nc, n_runs, w_all, a):
                done = -max(abs(done), 1)
        rounds[p] = done
        _main_component(cell, rl, m, nc, n_runs, n_cond, a)
        for g in range(nc):
            levels[f0 * n_cond + g] = a[g]


@njit(cache=True, nogil=True)
def interaction_q(
    levels: NDArray[np.float64],
    counts: NDArray[np.float64],
    feat_start: NDArray[np.int64],
    active: NDArray[np.bool_],
    proteins: NDArray[np.int64],
    s2: NDArray[np.float64],
    n_cond: int,
    q: NDArray[np.float64],
    df1: NDArray[np.int64],
) -> None:
    """:math:`Q_j` and its df :math:`C_j - 1` (``q``, ``df1`` per feature; df 0 where fewer
    than two conditions are comparable) of every ``active`` feature of the listed proteins
    against the protein's other active features, at the variance ``s2[k]`` of the ``k``-th
    listed protein (:func:`pepmix.model.majority.feature_contrast`, ``levels`` and ``counts``
    flat ``feature * n_cond + condition``)."""
    widest = 1
    for k in range(proteins.size):
        p = proteins[k]
        widest = max(widest, feat_start[p + 1] - feat_start[p])
    a = np.zeros((widest, n_cond))
    w = np.zeros((widest, n_cond))
    f = np.zeros(widest)
    w_feat = np.zeros(widest)
    g = np.zeros(n_cond)
    g_new = np.zeros(n_cond)
    w_cond = np.zeros(n_cond)
    d = np.zeros(n_cond)
    u = np.zeros(n_cond)
    for k in range(proteins.size):
        p = proteins[k]
        f0, f1 = feat_start[p], feat_start[p + 1]
        for j in range(f0, f1):
            if not active[j]:
                continue
            n_o = 0
            for o in range(f0, f1):
                if o == j or not active[o]:
                    continue
                for c in range(n_cond):
                    lev, cnt = levels[o * n_cond + c], counts[o * n_cond + c]
                    wi = cnt if np.isfinite(lev) else 0.0
                    w[n_o, c] = wi
                    a[n_o, c] = lev if wi > 0 else 0.0
                n_o += 1
            for c in range(n_cond):
                s = 0.0
                for o in range(n_o):
                    s += w[o, c]
                w_cond[c] = s
                g[c] = 0.0
            for o in range(n_o):
                s = 0.0
                for c in range(n_cond):
                    s += w[o, c]
                w_feat[o] = s
            for _ in range(PROFILE_SWEEPS):
                for o in range(n_o):
                    s = 0.0
                    for c in range(n_cond):
                        s += w[o, c] * (a[o, c] - g[c])
                    f[o] = s / max(w_feat[o], 1e-300)
                moved = 0.0
                for c in range(n_cond):
                    s = 0.0
                    for o in range(n_o):
                        s += w[o, c] * (a[o, c] - f[o])
                    g_new[c] = s / max(w_cond[c], 1e-300)
                    moved = max(moved, np.abs(g_new[c] - g[c]))
                g[:] = g_new
                if moved < 1e-10:
                    break
            n_d = 0
            for c in range(n_cond):
                n_j, lev = counts[j * n_cond + c], levels[j * n_cond + c]
                if n_j > 0 and np.isfinite(lev) and w_cond[c] > 0:
                    d[n_d] = lev - g[c]
                    u[n_d] = 1.0 / (s2[k] * (1.0 / n_j + 1.0 / w_cond[c]))
                    n_d += 1
            df1[j] = max(n_d - 1, 0)
            su, sud = 0.0, 0.0
            for c in range(n_d):
                su += u[c]
                sud += u[c] * d[c]
            mean = sud / su if n_d > 0 else 0.0
            stat = 0.0
            for c in range(n_d):
                stat += u[c] * (d[c] - mean) ** 2
            q[j] = stat
