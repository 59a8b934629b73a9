r"""Compiled passes of the feature majority rule (numba; :mod:`pepmix.model.majority`).

:func:`saturated_tables` makes, protein by protein, what
:func:`pepmix.model.majority.cell_levels` makes for all proteins at once: the observations the
saturated model :math:`y_{jr} = a_{jc} + b_r + e_{jr}` fits exactly are pruned, the model's
rank (cells + runs - components of the cell-run incidence) and residual df :math:`\nu` are
counted, the model is fitted by Huber M-estimation from the median polish
(:func:`pepmix.model.robust.saturated_fit`: the same medians, weights, backfitting sums in the
same row order) and the cell levels outside the largest component of their condition are set to
NaN. The one difference is where the backfitting stops: each protein's sweeps (from zero every
round, as in the whole-table fit) stop when its own levels move by less than 1e-10, not when
every protein's do, so converged levels agree to about 1e-10, and a protein that does not
converge gets the same 50 sweeps as in the whole-table fit (whose loop then runs to 50).
(Starting each round from the last round's levels, or solving each round's weighted least
squares exactly, changes some proteins' levels and p-values: on a cohort shard 7 of 149
exclusions each way, the two alternatives disagreeing with each other too -- proteins whose
backfitting converges slowly, not analysed further. Kept as it is: the rule was measured with
it.) The fit of all observations (for the levels) is made only where observations were pruned
or :math:`\nu < 1`; elsewhere it is the fit of the pruned observations, the same numbers.

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

#: the constants of :mod:`pepmix.model.robust` the saturated fit uses (copied: importing that
#: module here would load it into every numba cache check; checked by the tests)
MAD_SCALE = 1.482602218505602
HUBER_K = 1.345
POLISH_SWEEPS = 10
SATURATED_ROUNDS = 10
SATURATED_SWEEPS = 50
#: backfitting sweeps of the others' additive profile (:data:`pepmix.model.majority.SWEEPS`)
PROFILE_SWEEPS = 30


@njit(cache=True, nogil=True)
def _select(buf: NDArray[np.float64], n: int, k: int) -> float:
    """The ``k``-th smallest of ``buf[:n]`` (0-based; ``buf`` is reordered: after the call the
    values before position ``k`` are not larger). Quickselect, middle pivot."""
    lo, hi = 0, n - 1
    while lo < hi:
        pivot = buf[(lo + hi) // 2]
        i, j = lo, hi
        while i <= j:
            while buf[i] < pivot:
                i += 1
            while buf[j] > pivot:
                j -= 1
            if i <= j:
                buf[i], buf[j] = buf[j], buf[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            break
    return float(buf[k])


@njit(cache=True, nogil=True)
def _median(buf: NDArray[np.float64], n: int, small: NDArray[np.float64]) -> float:
    """Median of ``buf[:n]`` (``np.median``'s value: middle value or mean of the two; ``buf``
    is reordered for ``n > 24``)."""
    half = n // 2
    if n > 24:
        upper = _select(buf, n, half)
        if n % 2 == 1:
            return upper
        lower = buf[0]
        for i in range(1, half):
            lower = max(lower, buf[i])
        return float(0.5 * (lower + upper))
    for i in range(n):
        v = buf[i]
        j = i - 1
        while j >= 0 and small[j] > v:
            small[j + 1] = small[j]
            j -= 1
        small[j + 1] = v
    return float(small[half]) if n % 2 == 1 else float(0.5 * (small[half - 1] + small[half]))


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
def _sweep(
    resid: NDArray[np.float64],
    order: NDArray[np.int64],
    starts: NDArray[np.int64],
    n_groups: int,
    buf: NDArray[np.float64],
    small: NDArray[np.float64],
) -> None:
    """Subtract from ``resid`` the median of each group's rows."""
    for g in range(n_groups):
        lo = starts[g]
        n = starts[g + 1] - lo
        if n == 0:
            continue
        for i in range(n):
            buf[i] = resid[order[lo + i]]
        med = _median(buf, n, small)
        for i in range(n):
            resid[order[lo + i]] -= med


@njit(cache=True, nogil=True)
def _mad(
    resid: NDArray[np.float64], m: int, buf: NDArray[np.float64], small: NDArray[np.float64]
) -> float:
    """MAD of ``resid[:m]`` scaled to a normal SD (:func:`pepmix.model.robust.robust_scale`)."""
    for i in range(m):
        buf[i] = resid[i]
    med = _median(buf, m, small)
    for i in range(m):
        buf[i] = np.abs(resid[i] - med)
    return MAD_SCALE * _median(buf, m, small)


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
    work: NDArray[np.float64],
    iwork: NDArray[np.int64],
) -> None:
    """Huber M-fit of ``y[:m] = a[cell] + b[run] + e`` (:func:`pepmix.model.robust.saturated_fit`
    of one protein): residuals into ``resid[:m]``, levels into ``a`` (NaN for empty cells)."""
    small = np.empty(24)
    buf = work[:m]
    w = work[m : 2 * m]
    c_starts, c_order = iwork[: n_cells + 1], iwork[n_cells + 1 : n_cells + 1 + m]
    off = n_cells + 1 + m
    r_starts = iwork[off : off + n_runs + 1]
    r_order = iwork[off + n_runs + 1 : off + n_runs + 1 + m]
    _group(cell, m, n_cells, c_starts, c_order)
    _group(run, m, n_runs, r_starts, r_order)
    for i in range(m):
        resid[i] = y[i]
    for _ in range(POLISH_SWEEPS):
        _sweep(resid, c_order, c_starts, n_cells, buf, small)
        _sweep(resid, r_order, r_starts, n_runs, buf, small)
    scale = _mad(resid, m, buf, small) * factor
    w_cell = np.zeros(n_cells)
    w_run = np.zeros(n_runs)
    a_new = np.zeros(n_cells)
    b = np.zeros(n_runs)
    b_new = np.zeros(n_runs)
    for _ in range(SATURATED_ROUNDS):
        limit = HUBER_K * scale
        w_cell[:] = 0.0
        w_run[:] = 0.0
        for i in range(m):
            absr = np.abs(resid[i])
            wi = limit / absr if absr > limit else 1.0
            w[i] = wi if scale > 0 else 1.0
            w_cell[cell[i]] += w[i]
            w_run[run[i]] += w[i]
        a[:n_cells] = 0.0  # from zero every round, as the whole-table fit
        b[:] = 0.0
        for _ in range(SATURATED_SWEEPS):
            a_new[:] = 0.0
            for i in range(m):
                a_new[cell[i]] += w[i] * (y[i] - b[run[i]])
            moved = 0.0
            for g in range(n_cells):
                if w_cell[g] > 0:
                    a_new[g] = a_new[g] / w_cell[g]
                    moved = max(moved, np.abs(a_new[g] - a[g]))
            b_new[:] = 0.0
            for i in range(m):
                b_new[run[i]] += w[i] * (y[i] - a_new[cell[i]])
            for g in range(n_runs):
                if w_run[g] > 0:
                    b_new[g] = b_new[g] / w_run[g]
                    moved = max(moved, np.abs(b_new[g] - b[g]))
            a[:n_cells] = a_new
            b[:] = b_new
            if moved < 1e-10:
                break
        for i in range(m):
            resid[i] = y[i] - a[cell[i]] - b[run[i]]
        scale = _mad(resid, m, buf, small) * factor
    for g in range(n_cells):
        if w_cell[g] == 0:
            a[g] = np.nan


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
) -> None:
    """Cell levels and counts (``levels``, ``counts``: flat ``feature * n_cond + condition``),
    pure-error scale and df (``scale``, ``nu``: NaN where :math:`\\nu < 1`) of the listed
    proteins (module docstring). Protein ``p`` has the rows ``row_start[p]:row_start[p + 1]``
    (sorted by protein) and the features ``feat_start[p]:feat_start[p + 1]``."""
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
    a = np.empty(widest)
    work = np.empty(2 * longest)
    iwork = np.empty(widest + n_runs + 2 + 2 * longest, dtype=np.int64)
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
        refit = n_kept < m or df < 1
        if df >= 1:
            nu[p] = df
            _saturated(ys, cs, rs, n_kept, nc, n_runs, factor, resid, a, work, iwork)
            rss = 0.0
            for i in range(n_kept):
                rss += resid[i] ** 2
            scale[p] = np.sqrt(rss / df)
        if refit:
            for i in range(m):
                ys[i] = y[lo + i]
            _saturated(
                ys, cell, rl, m, nc, n_runs, factor if df >= 1 else 1.0, resid, a, work, iwork
            )
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
