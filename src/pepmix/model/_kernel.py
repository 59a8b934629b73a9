"""Compiled grouping pass: observations to padded per-protein cross-products (numba).

One pass over the observations, sorted by protein, accumulates for every protein

- ``G = V'V`` where row ``i`` of ``V`` holds the observation's indicator of each kept random
  level (``K`` dimensions), its kept fixed-effect values and its centred ``y``,
- ``w_j = sum_{i in j} V_i`` for every level ``j`` of the eliminated factor, and
- ``W_c = sum_{j: n_j = c} w_j w_j'`` per count class,

directly into the padded layout of its bucket (random-effect block first, then fixed effects,
then ``y``). With observation weights ``w_i`` every row is scaled by ``sqrt(w_i)`` (weighted least
squares as ordinary least squares on scaled rows), so ``G = sum_i w_i V_i V_i'`` and
``w_j = sum_{i in j} w_i V_i``; without weights (empty array) the scale is exactly 1.0 and the
sums are bit-identical to the unweighted pass. ``G`` is summed in its lower triangle (each
product ``V_ia V_ib`` once, in observation order) and mirrored per protein: the same entries as
summing both triangles. Work is ``O(sum_i nnz_i^2 / 2 + sum_j d^2)``; memory is the output
only. A protein's kept factors and fixed-effect columns are looked up once per protein, and
rows of 3 or 4 ascending indices (one random level, the intercept, perhaps one condition, and
``y``: the usual row) are written out, their values held in registers: the same products added
to the same entries in the same order.

The kernel is compiled once and cached next to this module (``cache=True``).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray


@njit(cache=True, nogil=True)
def accumulate(
    prot_start: NDArray[np.int64],
    proteins: NDArray[np.int64],
    feat_local: NDArray[np.int32],
    run: NDArray[np.int32],
    y: NDArray[np.float64],
    x: NDArray[np.float64],
    xkeep: NDArray[np.bool_],
    run_codes: NDArray[np.int32],
    local_tables: NDArray[np.int32],
    is_k: NDArray[np.bool_],
    k_offset: NDArray[np.int64],
    e_factor: NDArray[np.int64],
    q_pad: NDArray[np.int64],
    g_offset: NDArray[np.int64],
    w_offset: NDArray[np.int64],
    e_offset: NDArray[np.int64],
    e_class: NDArray[np.int64],
    g_flat: NDArray[np.float64],
    w_flat: NDArray[np.float64],
    erow_flat: NDArray[np.float64],
    erow_offset: NDArray[np.int64],
    weight: NDArray[np.float64],
    cell_local: NDArray[np.int32],
) -> None:
    """Fill ``g_flat``, ``w_flat`` and ``erow_flat`` for the listed proteins.

    Factor ``f`` is the feature factor when ``run_codes[f, 0] == -1``, the feature x condition
    factor (level ``cell_local[i]`` of observation ``i``; empty without it) when
    ``run_codes[f, 0] == -2``; otherwise its level in run
    ``r`` is ``run_codes[f, r]`` and its protein-local index ``local_tables[f, p, level]``.
    ``e_factor[p]`` is the eliminated factor (``-1``: none). ``weight`` holds one weight per
    observation, or is empty (all weights 1). An empty ``w_flat`` skips the class sums (rank-one
    classes: the rows ``erow_flat`` are all the caller needs).
    """
    weighted = weight.size > 0
    n_f = is_k.shape[1]
    n_x = x.shape[1]
    idx = np.empty(n_f + n_x + 1, dtype=np.int64)
    val = np.empty(n_f + n_x + 1, dtype=np.float64)
    # per protein: its kept factors (kind -1 feature, -2 usage cell, 0 run-level), offsets
    # and kept fixed-effect columns, looked up once instead of per observation
    k_fac = np.empty(n_f, dtype=np.int64)
    k_kind = np.empty(n_f, dtype=np.int64)
    k_off = np.empty(n_f, dtype=np.int64)
    x_col = np.empty(n_x, dtype=np.int64)
    for pp in range(proteins.size):
        p = proteins[pp]
        qp = q_pad[p]
        d = qp + n_x + 1
        g0 = g_offset[p]
        e0 = erow_offset[p]
        nk = 0
        for f in range(n_f):
            if is_k[p, f]:
                k_fac[nk] = f
                k_kind[nk] = min(run_codes[f, 0], 0)
                k_off[nk] = k_offset[p, f]
                nk += 1
        # ascending offsets: every row's indices ascend (levels, then fixed effects, then y),
        # so each product's lower-triangle entry is (a, b) without a comparison
        ascending = True
        for t in range(1, nk):
            ascending = ascending and k_off[t] >= k_off[t - 1]
        nxk = 0
        for j in range(n_x):
            if xkeep[p, j]:
                x_col[nxk] = j
                nxk += 1
        ef = e_factor[p]
        e_kind = min(run_codes[ef, 0], 0) if ef >= 0 else 1
        for i in range(prot_start[p], prot_start[p + 1]):
            r = run[i]
            sw = np.sqrt(weight[i]) if weighted else 1.0
            k = 0
            for t in range(nk):
                if k_kind[t] == -1:
                    level = feat_local[i]
                elif k_kind[t] == -2:
                    level = cell_local[i]
                else:
                    level = local_tables[k_fac[t], p, run_codes[k_fac[t], r]]
                idx[k] = k_off[t] + level
                val[k] = sw
                k += 1
            for t in range(nxk):
                xv = x[r, x_col[t]]
                if xv != 0.0:
                    idx[k] = qp + x_col[t]
                    val[k] = xv * sw
                    k += 1
            idx[k] = d - 1
            val[k] = y[i] * sw
            k += 1
            # lower triangle only (each product once), mirrored below: the same sums
            # (3 or 4 values, one random level, intercept, maybe one more fixed effect and y,
            # written out: the values in registers instead of reloaded for every product)
            if ascending and k == 3:
                i0, i1, i2 = idx[0], idx[1], idx[2]
                v0, v1, v2 = val[0], val[1], val[2]
                r1 = g0 + i1 * d
                r2 = g0 + i2 * d
                g_flat[g0 + i0 * d + i0] += v0 * v0
                g_flat[r1 + i0] += v1 * v0
                g_flat[r1 + i1] += v1 * v1
                g_flat[r2 + i0] += v2 * v0
                g_flat[r2 + i1] += v2 * v1
                g_flat[r2 + i2] += v2 * v2
            elif ascending and k == 4:
                i0, i1, i2, i3 = idx[0], idx[1], idx[2], idx[3]
                v0, v1, v2, v3 = val[0], val[1], val[2], val[3]
                r1 = g0 + i1 * d
                r2 = g0 + i2 * d
                r3 = g0 + i3 * d
                g_flat[g0 + i0 * d + i0] += v0 * v0
                g_flat[r1 + i0] += v1 * v0
                g_flat[r1 + i1] += v1 * v1
                g_flat[r2 + i0] += v2 * v0
                g_flat[r2 + i1] += v2 * v1
                g_flat[r2 + i2] += v2 * v2
                g_flat[r3 + i0] += v3 * v0
                g_flat[r3 + i1] += v3 * v1
                g_flat[r3 + i2] += v3 * v2
                g_flat[r3 + i3] += v3 * v3
            elif ascending:
                for a in range(k):
                    row = g0 + idx[a] * d
                    va = val[a]
                    for b in range(a + 1):
                        g_flat[row + idx[b]] += va * val[b]
            else:
                for a in range(k):
                    ia = idx[a]
                    for b in range(a + 1):
                        ib = idx[b]
                        if ia >= ib:
                            g_flat[g0 + ia * d + ib] += val[a] * val[b]
                        else:
                            g_flat[g0 + ib * d + ia] += val[a] * val[b]
            if e_kind <= 0:
                if e_kind == -1:
                    elevel = feat_local[i]
                elif e_kind == -2:
                    elevel = cell_local[i]
                else:
                    elevel = local_tables[ef, p, run_codes[ef, r]]
                base = e0 + elevel * d
                for a in range(k):
                    erow_flat[base + idx[a]] += sw * val[a]
        for a in range(d):
            for b in range(a):
                g_flat[g0 + b * d + a] = g_flat[g0 + a * d + b]
        if ef < 0 or w_flat.size == 0:
            continue
        w0 = w_offset[p]
        for j in range(e_offset[p + 1] - e_offset[p]):
            c = e_class[e_offset[p] + j]
            base = e0 + j * d
            blk = w0 + c * d * d
            for a in range(d):
                va = erow_flat[base + a]
                if va == 0.0:
                    continue
                row = blk + a * d
                for b in range(d):
                    w_flat[row + b] += va * erow_flat[base + b]


@njit(cache=True, nogil=True)
def pad_rows(
    src: NDArray[np.float64],
    offset: NDArray[np.int64],
    n_valid: NDArray[np.int64],
    out: NDArray[np.float64],
) -> None:
    """``out[b, j] = src[offset[b] + j]`` for ``j < n_valid[b]`` (rows of ``d`` values; the
    rest of ``out`` is left as it is): the padded per-protein rows of a bucket
    (:func:`pepmix.model.suffstats._bucket`), the copy a boolean-mask assignment makes."""
    d = src.shape[1]
    for b in range(n_valid.size):
        o = offset[b]
        for j in range(n_valid[b]):
            for a in range(d):
                out[b, j, a] = src[o + j, a]


#: segments up to this length are sorted by insertion (:func:`median_of`), longer ones selected
MEDIAN_SMALL = 24


@njit(cache=True, nogil=True)
def segment_medians(
    values: NDArray[np.float64], starts: NDArray[np.int64], out: NDArray[np.float64]
) -> None:
    """Median of each segment ``values[starts[g]:starts[g + 1]]`` into ``out[g]`` (NaN if empty).

    Used by the robust fit (:mod:`pepmix.model.robust`) for per-protein medians. Values must be
    finite (``values`` is not changed). The medians are :func:`median_of`'s: ``np.median``'s
    values.
    """
    longest = 1
    for g in range(starts.size - 1):
        longest = max(longest, starts[g + 1] - starts[g])
    buf = np.empty(longest, dtype=np.float64)
    small = np.empty(MEDIAN_SMALL, dtype=np.float64)
    work = np.empty(longest, dtype=np.float64)
    hist = np.empty(MEDIAN_BINS + 1, dtype=np.int64)
    for g in range(starts.size - 1):
        lo = starts[g]
        n = starts[g + 1] - lo
        for i in range(n):
            buf[i] = values[lo + i]
        out[g] = median_of(buf, n, small, work, hist)


#: bins of the histogram of :func:`_select_median`
MEDIAN_BINS = 256


@njit(cache=True, nogil=True)
def _median3(x: float, y: float, z: float) -> float:
    """The middle one of three values (the pivot of :func:`_select`)."""
    if x < y:
        return y if y < z else (z if x < z else x)
    return x if x < z else (z if y < z else y)


@njit(cache=True, nogil=True)
def _select(a: NDArray[np.float64], lo: int, hi: int, k: int) -> None:
    """Quickselect (Hoare partition, median-of-three pivot) in place: afterwards ``a[k]`` is
    the ``k``-th smallest of ``a[lo:hi + 1]``, the values before it are not larger and those
    after it not smaller (NaN-free input)."""
    while hi > lo:
        mid = (lo + hi) >> 1
        p = _median3(a[lo], a[mid], a[hi])
        i, j = lo, hi
        while i <= j:
            while a[i] < p:
                i += 1
            while a[j] > p:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return


@njit(cache=True, nogil=True)
def select_kth(buf: NDArray[np.float64], n: int, k: int) -> float:
    """The ``k``-th smallest of ``buf[:n]`` (0-based; :func:`_select`, in place: afterwards no
    value before position ``k`` is larger than the result and none after it smaller). Values
    must be finite (not NaN). Expected ``O(n)``."""
    _select(buf, 0, n - 1, k)
    return float(buf[k])


@njit(cache=True, nogil=True)
def _bin_of(v: float, lo: float, scale: float, top: int) -> int:
    """Histogram bin of ``v`` (monotone in ``v``: a subtraction, a product by a positive
    number and a truncation, each non-decreasing), at most ``top``."""
    b = int((v - lo) * scale)
    return b if b < top else top


@njit(cache=True, nogil=True)
def _select_median(
    src: NDArray[np.float64], n: int, work: NDArray[np.float64], hist: NDArray[np.int64]
) -> float:
    """The value ``np.median(src[:n])`` returns, for ``n >= 1`` (``src`` is not changed;
    ``work`` holds ``n`` values, ``hist`` :data:`MEDIAN_BINS` + 1).

    Selection by a histogram: the values are binned by a monotone map of ``[min, max]`` onto
    :data:`MEDIAN_BINS` bins, the bin holding rank ``n // 2`` is found by counting, and only
    its values are selected from (:func:`_select`). A median is an order statistic (the mean
    of the two middle ones for even ``n``, ``(a + b) / 2`` as numba's ``np.median``), whatever
    finds it, so the value is ``np.median``'s (a zero of either sign aside: ``-0.0 == 0.0``).
    Two passes that mostly predict their branches instead of the quickselect's ~3n
    data-dependent comparisons and the copy ``np.median`` makes: measured ~35-50 % less time
    for 25-2,400 values. Inputs with a NaN or an infinity go to ``np.median`` itself."""
    lo = src[0]
    hi = src[0]
    finite = np.isfinite(lo)
    for i in range(1, n):
        v = src[i]
        finite = finite and np.isfinite(v)
        lo = v if v < lo else lo
        hi = v if v > hi else hi
    scale = MEDIAN_BINS / (hi - lo) if hi > lo else 0.0
    if not (finite and np.isfinite(scale)):
        for i in range(n):
            work[i] = src[i]
        return float(np.median(work[:n]))
    if hi == lo:
        return float(lo)
    top = MEDIAN_BINS
    hist[:] = 0
    for i in range(n):
        hist[_bin_of(src[i], lo, scale, top)] += 1
    k = n >> 1
    below = 0
    b = 0
    while below + hist[b] <= k:
        below += hist[b]
        b += 1
    m = 0
    for i in range(n):
        v = src[i]
        if _bin_of(v, lo, scale, top) == b:
            work[m] = v
            m += 1
    j = k - below
    _select(work, 0, m - 1, j)
    upper = work[j]
    if n & 1:
        return float(upper)
    # rank k - 1: the largest value before j in this bin, or the largest of the bins below
    lower = -np.inf
    if j > 0:
        for i in range(j):
            lower = work[i] if work[i] > lower else lower
    else:
        for i in range(n):
            v = src[i]
            if _bin_of(v, lo, scale, top) < b and v > lower:
                lower = v
    return float((lower + upper) / 2)


@njit(cache=True, nogil=True)
def median_of(
    buf: NDArray[np.float64],
    n: int,
    small: NDArray[np.float64],
    work: NDArray[np.float64],
    hist: NDArray[np.int64],
) -> float:
    """Median of ``buf[:n]`` with ``np.median``'s value (the middle order statistic, or the
    mean of the two middle ones); NaN when ``n == 0``. ``buf`` is not changed.

    Up to :data:`MEDIAN_SMALL` values are sorted by insertion into ``small`` (at least that
    long), more are selected by :func:`_select_median` with the scratch ``work`` (``n`` long)
    and ``hist`` (:data:`MEDIAN_BINS` + 1). Both give the exact order statistics, so the value
    is ``np.median``'s bit for bit. The one compiled median of the robust fit, the median polish
    and the feature majority rule (:mod:`pepmix.model._majority_kernel`)."""
    if n == 0:
        return np.nan
    if n > MEDIAN_SMALL:
        return _select_median(buf, n, work, hist)
    half = n // 2
    for i in range(n):
        v = buf[i]
        j = i - 1
        while j >= 0 and small[j] > v:
            small[j + 1] = small[j]
            j -= 1
        small[j + 1] = v
    return float(small[half]) if n % 2 == 1 else float(0.5 * (small[half - 1] + small[half]))


@njit(cache=True, nogil=True)
def sweep_groups(
    resid: NDArray[np.float64],
    order: NDArray[np.int64],
    starts: NDArray[np.int64],
    first: int,
    last: int,
    buf: NDArray[np.float64],
    small: NDArray[np.float64],
    work: NDArray[np.float64],
    hist: NDArray[np.int64],
) -> bool:
    """Subtract from ``resid`` the median (:func:`median_of`) of each group ``first <= g <
    last`` (rows ``order[starts[g]:starts[g + 1]]``; ``buf`` as long as the longest group).
    Returns whether a median was other than ``+0.0`` (subtracting ``+0.0`` changes no value,
    a negative zero included)."""
    moved = False
    for g in range(first, last):
        lo = starts[g]
        n = starts[g + 1] - lo
        if n == 0:
            continue
        for i in range(n):
            buf[i] = resid[order[lo + i]]
        m = median_of(buf, n, small, work, hist)
        moved = moved or not (m == 0.0 and not np.signbit(m))
        for i in range(n):
            resid[order[lo + i]] -= m
    return moved


@njit(cache=True, nogil=True)
def median_polish(
    resid: NDArray[np.float64],
    feat_order: NDArray[np.int64],
    feat_starts: NDArray[np.int64],
    feat_range: NDArray[np.int64],
    cell_order: NDArray[np.int64],
    cell_starts: NDArray[np.int64],
    n_runs: int,
    n_sweeps: int,
) -> None:
    """Tukey's median polish of every protein's feature x run table, in place on ``resid``.

    Protein ``p`` has the features ``feat_range[p]:feat_range[p + 1]`` (rows of feature ``f``:
    ``feat_order[feat_starts[f]:feat_starts[f + 1]]``) and the cells ``p * n_runs + r`` (rows
    of cell ``c``: ``cell_order[cell_starts[c]:cell_starts[c + 1]]``). Each sweep subtracts the
    feature medians, then the cell (run) medians, protein by protein: the operations of the
    whole-table sweeps of :func:`pepmix.model.robust.polish_residuals` on each value, in the
    same order (medians as :func:`segment_medians` takes them), so the result is the same.
    A protein's sweeps stop early once a whole sweep subtracted only ``+0.0`` (its values did
    not change, so every later sweep would find the same medians): the same result, bit for
    bit (measured on the cohort shard: 40 % of the proteins stop, most after 2 sweeps).
    """
    n_prot = feat_range.size - 1
    longest = 1
    for g in range(feat_starts.size - 1):
        longest = max(longest, feat_starts[g + 1] - feat_starts[g])
    for g in range(cell_starts.size - 1):
        longest = max(longest, cell_starts[g + 1] - cell_starts[g])
    buf = np.empty(longest, dtype=np.float64)
    small = np.empty(MEDIAN_SMALL, dtype=np.float64)
    work = np.empty(longest, dtype=np.float64)
    hist = np.empty(MEDIAN_BINS + 1, dtype=np.int64)
    for p in range(n_prot):
        for _ in range(n_sweeps):
            rows = sweep_groups(resid, feat_order, feat_starts, feat_range[p],
                                feat_range[p + 1], buf, small, work, hist)  # fmt: skip
            cols = sweep_groups(resid, cell_order, cell_starts, p * n_runs, (p + 1) * n_runs,
                                buf, small, work, hist)  # fmt: skip
            if not (rows or cols):
                break


@njit(cache=True, nogil=True)
def mad_huber(
    resid: NDArray[np.float64],
    starts: NDArray[np.int64],
    groups: NDArray[np.int64],
    mad_scale: float,
    k: float,
    scale: NDArray[np.float64],
    weights: NDArray[np.float64],
) -> None:
    """Per group ``g`` in ``groups`` (rows ``starts[g]:starts[g + 1]``): the scaled MAD of its
    residuals into ``scale[g]`` and their Huber weights into ``weights`` (the numbers of
    :func:`pepmix.model.robust.robust_scale` and :func:`pepmix.model.robust.huber_weights`:
    the same operations on each value)."""
    longest = 1
    for gi in range(groups.size):
        g = groups[gi]
        longest = max(longest, starts[g + 1] - starts[g])
    buf = np.empty(longest, dtype=np.float64)
    small = np.empty(MEDIAN_SMALL, dtype=np.float64)
    work = np.empty(longest, dtype=np.float64)
    hist = np.empty(MEDIAN_BINS + 1, dtype=np.int64)
    for gi in range(groups.size):
        g = groups[gi]
        lo = starts[g]
        n = starts[g + 1] - lo
        for i in range(n):
            buf[i] = resid[lo + i]
        med = median_of(buf, n, small, work, hist)
        for i in range(n):
            buf[i] = np.abs(resid[lo + i] - med)
        s = mad_scale * median_of(buf, n, small, work, hist)
        scale[g] = s
        limit = k * s
        for i in range(n):
            absr = np.abs(resid[lo + i])
            w = limit / absr if absr > limit else 1.0
            weights[lo + i] = w if s > 0 else 1.0


@njit(cache=True, nogil=True)
def residual_mad_huber(
    y: NDArray[np.float64],
    starts: NDArray[np.int64],
    groups: NDArray[np.int64],
    feat: NDArray[np.int64],
    run: NDArray[np.int64],
    cell: NDArray[np.int64],
    fixed: NDArray[np.float64],
    n_runs: int,
    kind: NDArray[np.int64],
    run_codes: NDArray[np.int64],
    n_lev: NDArray[np.int64],
    tab_off: NDArray[np.int64],
    tables: NDArray[np.float64],
    mad_scale: float,
    k: float,
    scale: NDArray[np.float64],
    weights: NDArray[np.float64],
) -> None:
    """Conditional residuals of the groups (proteins) ``groups`` and :func:`mad_huber` of them.

    Group ``g`` has the rows ``starts[g]:starts[g + 1]``. The fitted value of row ``i`` is
    ``fixed[g * n_runs + run[i]]`` plus, factor by factor in order, the prediction of its level
    from ``tables[tab_off[f]:tab_off[f + 1]]``, indexed by ``feat[i]`` (``kind[f] == 0``),
    ``cell[i]`` (1) or ``g * n_lev[f] + run_codes[f, run[i]]`` (2); ``kind[f] == -1``: no
    predictions of that factor. The same additions, in the same order, as the array version
    (:func:`pepmix.model.robust.fitted_values`), so the residuals, the scales (into ``scale``)
    and the weights (into ``weights``) are those of the array version, bit for bit.
    """
    longest = 1
    for gi in range(groups.size):
        g = groups[gi]
        longest = max(longest, starts[g + 1] - starts[g])
    resid = np.empty(longest, dtype=np.float64)
    buf = np.empty(longest, dtype=np.float64)
    small = np.empty(MEDIAN_SMALL, dtype=np.float64)
    work = np.empty(longest, dtype=np.float64)
    hist = np.empty(MEDIAN_BINS + 1, dtype=np.int64)
    n_f = kind.size
    for gi in range(groups.size):
        g = groups[gi]
        lo = starts[g]
        n = starts[g + 1] - lo
        for i in range(n):
            row = lo + i
            r = run[row]
            v = fixed[g * n_runs + r]
            for f in range(n_f):
                kf = kind[f]
                if kf == 0:
                    v += tables[tab_off[f] + feat[row]]
                elif kf == 1:
                    v += tables[tab_off[f] + cell[row]]
                elif kf == 2:
                    v += tables[tab_off[f] + g * n_lev[f] + run_codes[f, r]]
            resid[i] = y[row] - v
        for i in range(n):
            buf[i] = resid[i]
        med = median_of(buf, n, small, work, hist)
        for i in range(n):
            buf[i] = np.abs(resid[i] - med)
        s = mad_scale * median_of(buf, n, small, work, hist)
        scale[g] = s
        limit = k * s
        for i in range(n):
            absr = np.abs(resid[i])
            w = limit / absr if absr > limit else 1.0
            weights[lo + i] = w if s > 0 else 1.0


@njit(cache=True, nogil=True)
def settle_rows(
    starts: NDArray[np.int64],
    groups: NDArray[np.int64],
    new: NDArray[np.float64],
    weights: NDArray[np.float64],
    eligible: NDArray[np.bool_],
    target: NDArray[np.float64],
    delta: NDArray[np.float64],
) -> None:
    """Per group ``g`` in ``groups`` (rows ``starts[g]:starts[g + 1]``): ``target`` = ``new``
    (1 where not ``eligible[g]``) and ``delta[g]`` the largest ``|target - weights|`` (0 without
    rows, NaN if any is NaN: ``np.maximum``'s rule)."""
    for gi in range(groups.size):
        g = groups[gi]
        d = 0.0
        for i in range(starts[g], starts[g + 1]):
            t = new[i] if eligible[g] else 1.0
            target[i] = t
            x = np.abs(t - weights[i])
            if (np.isnan(x) or x > d) and not np.isnan(d):
                d = x
        delta[g] = d


@njit(cache=True, nogil=True)
def copy_rows(
    starts: NDArray[np.int64],
    groups: NDArray[np.int64],
    src: NDArray[np.float64],
    dst: NDArray[np.float64],
) -> None:
    """``dst[rows] = src[rows]`` for the rows ``starts[g]:starts[g + 1]`` of each ``groups``."""
    for gi in range(groups.size):
        g = groups[gi]
        for i in range(starts[g], starts[g + 1]):
            dst[i] = src[i]


@njit(cache=True, nogil=True)
def quad_forms(
    a: NDArray[np.float64],
    s: NDArray[np.float64],
    position: NDArray[np.int64],
    out: NDArray[np.float64],
) -> None:
    """``out[j] = a[j]' s[position[j]] a[j]``."""
    d = a.shape[1]
    for j in range(a.shape[0]):
        p = position[j]
        acc = 0.0
        for x in range(d):
            ax = a[j, x]
            inner = 0.0
            for y in range(d):
                inner += s[p, x, y] * a[j, y]
            acc += ax * inner
        out[j] = acc


@njit(cache=True, nogil=True)
def _gram_quad(acc: NDArray[np.float64], r: NDArray[np.float64], sel: NDArray[np.int64], g: int,
               wk: NDArray[np.float64], d: int) -> None:  # fmt: skip
    """``acc += sum_i f_i r_i r_i'`` (lower triangle) over the four rows ``r[sel[g:g + 4]]`` of
    weights ``f_i = wk[sel[g + i]]``, read in place: each entry gets one sum of the four
    products ``(f_i r_ia) r_ic`` in row order, added to it (one load and store of each entry
    per four products)."""
    j0, j1, j2, j3 = sel[g], sel[g + 1], sel[g + 2], sel[g + 3]
    f0, f1, f2, f3 = wk[j0], wk[j1], wk[j2], wk[j3]
    for a in range(d):
        s0 = f0 * r[j0, a]
        s1 = f1 * r[j1, a]
        s2 = f2 * r[j2, a]
        s3 = f3 * r[j3, a]
        for c in range(a + 1):
            acc[a, c] += s0 * r[j0, c] + s1 * r[j1, c] + s2 * r[j2, c] + s3 * r[j3, c]


@njit(cache=True, nogil=True)
def _gram_single(acc: NDArray[np.float64], r: NDArray[np.float64], j: int, f: float,
                 d: int) -> None:  # fmt: skip
    """``acc += f r_j r_j'`` (lower triangle), the products ``(f r_ja) r_jc``."""
    for a in range(d):
        s0 = f * r[j, a]
        for c in range(a + 1):
            acc[a, c] += s0 * r[j, c]


@njit(cache=True, nogil=True)
def weighted_gram(
    weights: NDArray[np.float64],
    rows: NDArray[np.float64],
    index: NDArray[np.int64],
    out: NDArray[np.float64],
    cls_of: NDArray[np.int64],
    cls_gram: NDArray[np.float64],
    cls_rep: NDArray[np.int64],
) -> None:
    """``out[k, b] = sum_j weights[k, b, j] * v_j v_j'`` with ``v_j = rows[index[b], j]``, for
    every ``k`` and ``b`` (``index``: protein ``b``'s entry of ``rows``, e.g. ``arange(B)``).

    The rank-one class sums of :func:`pepmix.model.reml._class_sums` (``rows`` shape
    ``(B', L, d)``, ``weights`` shape ``(K, B, L)``, ``out`` shape ``(K, B, d, d)``). Rows of
    weight 0 (e.g. padded levels) are skipped: the others are listed, taken four at a time in
    row order (:func:`_gram_quad`: each entry of the lower triangle of a ``d x d`` accumulator
    gets the sum of the four products, then the rows left over one by one), read in place
    (no scaled copy), then the triangle is mirrored, so ``out`` is exactly symmetric. The
    ``K`` weightings of one protein are summed while its rows are in cache. Each protein's sums
    depend on its own rows only, in a fixed order (the criterion stays row by row).

    Row classes (:func:`rank_one_classes`; empty ``cls_of``: none): rows ``j`` with
    ``cls_of[index[b], j] = c >= 0`` all have the weight of row ``cls_rep[index[b], c]`` and
    their sum of products is ``cls_gram[index[b], c]``: added once, times that weight, instead
    of row by row.
    """
    n_k, n_b, n_l = weights.shape
    d = rows.shape[2]
    has_cls = cls_of.shape[0] > 0
    n_c = cls_gram.shape[1] if has_cls else 0
    acc = np.zeros((d, d))
    sel = np.empty(n_l, dtype=np.int64)
    for b in range(n_b):
        wb = index[b]
        r = rows[wb]
        for k in range(n_k):
            wk = weights[k, b]
            acc[:] = 0.0
            m = 0
            for j in range(n_l):
                if wk[j] == 0.0 or (has_cls and cls_of[wb, j] >= 0):
                    continue
                sel[m] = j
                m += 1
            q = m - m % 4
            for g in range(0, q, 4):
                _gram_quad(acc, r, sel, g, wk, d)
            for g in range(q, m):
                _gram_single(acc, r, sel[g], wk[sel[g]], d)
            for c in range(n_c):
                rep = cls_rep[wb, c]
                if rep < 0:
                    continue
                f = wk[rep]
                if f == 0.0:
                    continue
                for a in range(d):
                    for e in range(a + 1):
                        acc[a, e] += f * cls_gram[wb, c, a, e]
            for a in range(d):
                for c in range(a + 1):
                    out[k, b, a, c] = acc[a, c]
                    out[k, b, c, a] = acc[a, c]


@njit(cache=True, nogil=True)
def rank_one_classes(
    cls_n: NDArray[np.float64],
    n_valid: NDArray[np.int64],
    min_size: int,
    cls_of: NDArray[np.int64],
    n_cls: NDArray[np.int64],
) -> None:
    """Group each protein's rank-one rows by their level count (weight sum) ``cls_n[b, j]``
    when it is a whole number (e.g. every weight of the level 1): rows ``j < n_valid[b]``
    whose whole count occurs at least ``min_size`` times get the protein's class number of
    that count in ``cls_of[b, j]`` (classes numbered by ascending count; -1: no class, e.g. a
    fractional weight sum); ``n_cls[b]`` is the protein's number of classes. One counting pass
    per protein (no sort)."""
    longest = 1
    for b in range(cls_n.shape[0]):
        for j in range(n_valid[b]):
            v = cls_n[b, j]
            if v >= 1.0 and v == np.floor(v) and v < 1e9:
                longest = max(longest, int(v) + 1)
    count = np.zeros(longest, dtype=np.int64)
    number = np.full(longest, -1, dtype=np.int64)
    for b in range(cls_n.shape[0]):
        n = n_valid[b]
        top = 0
        for j in range(n):
            v = cls_n[b, j]
            if v >= 1.0 and v == np.floor(v) and v < 1e9:
                count[int(v)] += 1
                top = max(top, int(v))
        c = 0
        for v in range(top + 1):
            if count[v] >= min_size:
                number[v] = c
                c += 1
        for j in range(n):
            v = cls_n[b, j]
            if v >= 1.0 and v == np.floor(v) and v < 1e9:
                cls_of[b, j] = number[int(v)]
        for v in range(top + 1):
            count[v] = 0
            number[v] = -1
        n_cls[b] = c


@njit(cache=True, nogil=True)
def class_grams(
    rows: NDArray[np.float64],
    cls_of: NDArray[np.int64],
    gram: NDArray[np.float64],
    rep: NDArray[np.int64],
) -> None:
    """``gram[b, c] = sum_{j: cls_of[b, j] = c} v_j v_j'`` (``v_j = rows[b, j]``; ``gram``
    zero on entry, summed in row order, lower triangle mirrored) and ``rep[b, c]`` one row of
    class ``c`` (``rep`` -1 on entry: padding)."""
    n_b, n_l, d = rows.shape
    for b in range(n_b):
        for j in range(n_l):
            c = cls_of[b, j]
            if c < 0:
                continue
            rep[b, c] = j
            for a in range(d):
                va = rows[b, j, a]
                for e in range(a + 1):
                    gram[b, c, a, e] += va * rows[b, j, e]
        for c in range(gram.shape[1]):
            for a in range(d):
                for e in range(a):
                    gram[b, c, e, a] = gram[b, c, a, e]


@njit(cache=True, nogil=True)
def _lower_inverse(chol: NDArray[np.float64], linv: NDArray[np.float64]) -> None:
    """``linv = chol^{-1}`` (lower triangular), row by row by forward substitution."""
    d = chol.shape[0]
    linv[:] = 0.0
    for i in range(d):
        for k in range(i):
            lik = chol[i, k]
            for j in range(k + 1):
                linv[i, j] -= lik * linv[k, j]
        inv = 1.0 / chol[i, i]
        for j in range(i):
            linv[i, j] *= inv
        linv[i, i] = inv


@njit(cache=True, nogil=True)
def chol_inverses(
    chol: NDArray[np.float64], sinv: NDArray[np.float64], s0inv: NDArray[np.float64]
) -> None:
    """:math:`S^{-1}` and :math:`S_0^{-1}` (zero last row and column) from the Cholesky factors
    ``chol`` of :math:`S` (shape ``(B, d, d)``), for :func:`pepmix.model.reml._inverses`.

    With :math:`L^{-1}` lower triangular, :math:`S^{-1} = \\sum_k \\ell_k \\ell_k'` over its rows
    :math:`\\ell_k`; the leading block of :math:`L` is the factor of the leading block
    :math:`S_0`, so :math:`S_0^{-1}` is the same sum without the last row (no bordering
    division). Lower triangles are accumulated and mirrored: both are exactly symmetric.
    """
    n_b, d, _ = chol.shape
    linv = np.zeros((d, d))
    acc = np.zeros((d, d))
    for b in range(n_b):
        _lower_inverse(chol[b], linv)
        acc[:] = 0.0
        for k in range(d):
            if k == d - 1:
                for a in range(d):
                    for c in range(a + 1):
                        s0inv[b, a, c] = acc[a, c]
                        s0inv[b, c, a] = acc[a, c]
                    s0inv[b, a, d - 1] = 0.0
                    s0inv[b, d - 1, a] = 0.0
            for a in range(k + 1):
                la = linv[k, a]
                for c in range(a + 1):
                    acc[a, c] += la * linv[k, c]
        for a in range(d):
            for c in range(a + 1):
                sinv[b, a, c] = acc[a, c]
                sinv[b, c, a] = acc[a, c]


@njit(cache=True, nogil=True)
def cholesky_into(s: NDArray[np.float64], chol: NDArray[np.float64]) -> bool:
    """Lower Cholesky factor of ``s`` (its lower triangle) into ``chol``; False, with ``chol``
    the identity, when ``s`` is not (numerically) positive definite."""
    d = s.shape[0]
    chol[:] = 0.0
    for j in range(d):
        total = s[j, j]
        for k in range(j):
            total -= chol[j, k] * chol[j, k]
        if not total > 0.0:
            chol[:] = 0.0
            for i in range(d):
                chol[i, i] = 1.0
            return False
        pivot = np.sqrt(total)
        chol[j, j] = pivot
        for i in range(j + 1, d):
            value = s[i, j]
            for k in range(j):
                value -= chol[i, k] * chol[j, k]
            chol[i, j] = value / pivot
    return True


@njit(cache=True, nogil=True)
def schur_cholesky(
    g: NDArray[np.float64],
    sums: NDArray[np.float64],
    lam: NDArray[np.float64],
    j_diag: NDArray[np.float64],
    ghat: NDArray[np.float64],
    chol: NDArray[np.float64],
    ok: NDArray[np.bool_],
) -> None:
    """:math:`\\hat G = G - \\sum`, :math:`S = \\tilde\\Lambda\\hat G\\tilde\\Lambda + J` and the
    lower Cholesky factor of ``S`` for every protein (:func:`pepmix.model.reml.evaluate`).

    ``g``, ``sums``, ``ghat``, ``chol`` have shape ``(B, d, d)``, ``lam`` and ``j_diag``
    ``(B, d)``; ``ok[b]`` is False (and ``chol[b]`` the identity) where ``S`` is not positive
    definite. ``S`` is formed as ``(lam_a * ghat_ac) * lam_c`` in one buffer per protein, its
    lower triangle only (all :func:`cholesky_into` reads).
    """
    n_b, d, _ = g.shape
    s = np.zeros((d, d))
    for b in range(n_b):
        for a in range(d):
            la = lam[b, a]
            for c in range(a + 1):
                value = g[b, a, c] - sums[b, a, c]
                ghat[b, a, c] = value
                s[a, c] = la * value * lam[b, c]
            for c in range(a + 1, d):
                ghat[b, a, c] = g[b, a, c] - sums[b, a, c]
            s[a, a] += j_diag[b, a]
        ok[b] = cholesky_into(s, chol[b])


@njit(cache=True, nogil=True)
def trace_terms(
    a_inv: NDArray[np.float64],
    r: NDArray[np.float64],
    ghat: NDArray[np.float64],
    ra: NDArray[np.float64],
    rar: NDArray[np.float64],
    ad: NDArray[np.float64],
    lam: NDArray[np.float64],
    ge1: NDArray[np.float64],
    ge2: NDArray[np.float64],
    dimfactor: NDArray[np.int64],
    efactor: NDArray[np.int64],
    first: NDArray[np.float64],
    second: NDArray[np.float64],
) -> None:
    """The traces of :func:`pepmix.model.reml._trace_derivatives` from its matrix products.

    Per protein ``b`` (``A = a_inv[b]``, ``R = r[b]``, ``RA = ra[b]``, ``RAR' = rar[b]``,
    ``P = AD = ad[b]``, the last read only where ``efactor[b] >= 0``): adds into the zeroed
    ``first`` (``(B, F)``) and ``second`` (``(B, F, F)``) the sums over the dimensions of each
    factor (``dimfactor``) of ``2 rowsum(A o R)`` and ``2 [A o (Ghat - RAR') - RA o RA']``,
    and for the eliminated factor ``e`` ``sum(A o D)``, the cross terms
    ``2 rowsum(A o ge1 lam' - RA o P)`` and ``lam'(A o ge2)lam - sum(P o P')``, with
    ``D = lam ge1 lam'``.
    """
    n_b, d, _ = a_inv.shape
    for b in range(n_b):
        e = efactor[b]
        for i in range(d):
            fi = dimfactor[b, i]
            if fi < 0:
                continue
            row = 0.0
            for j in range(d):
                row += a_inv[b, i, j] * r[b, i, j]
                gj = dimfactor[b, j]
                if gj >= 0:
                    core = a_inv[b, i, j] * (ghat[b, i, j] - rar[b, i, j])
                    second[b, fi, gj] += 2.0 * (core - ra[b, i, j] * ra[b, j, i])
            first[b, fi] += 2.0 * row
        if e < 0:
            continue
        trace_d = 0.0
        ee = 0.0
        for i in range(d):
            fi = dimfactor[b, i]
            cross = 0.0
            for j in range(d):
                a_ij = a_inv[b, i, j]
                trace_d += a_ij * lam[b, i] * ge1[b, i, j] * lam[b, j]
                ee += a_ij * ge2[b, i, j] * lam[b, i] * lam[b, j] - ad[b, i, j] * ad[b, j, i]
                cross += a_ij * ge1[b, i, j] * lam[b, j] - ra[b, i, j] * ad[b, i, j]
            if fi >= 0:
                second[b, fi, e] += 2.0 * cross
                second[b, e, fi] += 2.0 * cross
        first[b, e] += trace_d
        second[b, e, e] += ee


@njit(cache=True, nogil=True)
def level_weight_sums(
    prot_start: NDArray[np.int64],
    subset: NDArray[np.int64],
    run: NDArray[np.int32],
    feat: NDArray[np.int64],
    weights: NDArray[np.float64],
    e_offset: NDArray[np.int64],
    e_kind: NDArray[np.int8],
    e_col: NDArray[np.int64],
    n_runs: int,
    n_feat: int,
    out: NDArray[np.float64],
) -> None:
    """Weight sum of every eliminated level of the proteins ``subset`` (the levels
    ``e_offset[p]:e_offset[p + 1]`` of protein ``p``, written one after the other into
    ``out``): a (protein, run) cell (``e_kind`` 0, run ``e_col``) or a feature (1, feature code
    ``e_col``). Each sum adds the weights of the protein's rows
    (``prot_start[p]:prot_start[p + 1]``) in row order, starting from 0, as ``np.bincount``
    over the subset's rows does, so the sums are bit for bit those of
    :meth:`pepmix.model.subset_problem.SubsetBuilder._level_weights` (which also serves the
    other kinds). Only the kinds a protein's levels use are summed."""
    cell = np.zeros(n_runs, dtype=np.float64)
    fsum = np.zeros(max(n_feat, 1), dtype=np.float64)
    j = 0
    for si in range(subset.size):
        p = subset[si]
        lo = prot_start[p]
        hi = prot_start[p + 1]
        cells = False
        feats = False
        for e in range(e_offset[p], e_offset[p + 1]):
            cells = cells or e_kind[e] == 0
            feats = feats or e_kind[e] != 0
        if cells:
            for i in range(lo, hi):
                cell[run[i]] += weights[i]
        if feats:
            for i in range(lo, hi):
                fsum[feat[i]] += weights[i]
        for e in range(e_offset[p], e_offset[p + 1]):
            out[j] = cell[e_col[e]] if e_kind[e] == 0 else fsum[e_col[e]]
            j += 1
        if cells:
            for i in range(lo, hi):
                cell[run[i]] = 0.0
        if feats:
            for i in range(lo, hi):
                fsum[feat[i]] = 0.0


@njit(cache=True, nogil=True)
def level_weights(
    t_e: NDArray[np.float64],
    cls_n: NDArray[np.float64],
    cls_m: NDArray[np.float64],
    denom: NDArray[np.float64],
    f_c: NDArray[np.float64],
) -> None:
    """``denom = 1 + t_e c`` and ``f_c = t_e / denom`` (0 where ``cls_m`` is 0) of every class
    (shapes ``(B, C)``, ``t_e`` ``(B,)``), for :func:`pepmix.model.reml.evaluate`: one pass,
    each value the one the array expressions ``1.0 + t_e[:, None] * cls_n`` and
    ``np.where(cls_m > 0, t_e[:, None] / denom, 0.0)`` give (the same IEEE operations)."""
    n_b, n_c = cls_n.shape
    for b in range(n_b):
        t = t_e[b]
        for c in range(n_c):
            den = 1.0 + t * cls_n[b, c]
            denom[b, c] = den
            f_c[b, c] = t / den if cls_m[b, c] > 0 else 0.0


@njit(cache=True, nogil=True)
def level_weight_derivatives(
    theta_e: NDArray[np.float64],
    t_e: NDArray[np.float64],
    cls_n: NDArray[np.float64],
    cls_m: NDArray[np.float64],
    denom: NDArray[np.float64],
    cube: NDArray[np.float64],
    weights: NDArray[np.float64],
    q1: NDArray[np.float64],
    q2: NDArray[np.float64],
) -> None:
    """The class weights of :func:`pepmix.model.reml.derivatives` in one pass (shapes
    ``(B, C)``; ``theta_e``, ``t_e = theta_e ** 2`` ``(B,)``; ``denom = 1 + t_e c``, ``cube =
    denom ** 3`` as numpy forms them). With ``f' = 1 / denom^2`` and ``f'' = -2 c / denom^3``
    (both 0 where ``cls_m`` is 0): ``weights[0] = (2 theta_e) f'``, ``weights[1] = 2 f' +
    (4 t_e) f''``, ``q1 = m c / denom`` and ``q2 = m c^2 / denom^2`` (0 where ``cls_m`` is 0),
    each the value of the array expressions in that order of operations (squares as products,
    as numpy's ``** 2``)."""
    n_b, n_c = cls_n.shape
    for b in range(n_b):
        two_theta = 2.0 * theta_e[b]
        four_t = 4.0 * t_e[b]
        for c in range(n_c):
            m = cls_m[b, c]
            n = cls_n[b, c]
            if m > 0:
                den = denom[b, c]
                sq = den * den
                fp = 1.0 / sq
                fpp = -2.0 * n / cube[b, c]
                q1[b, c] = m * n / den
                q2[b, c] = m * (n * n) / sq
            else:
                fp = 0.0
                fpp = 0.0
                q1[b, c] = 0.0
                q2[b, c] = 0.0
            weights[0, b, c] = two_theta * fp
            weights[1, b, c] = 2.0 * fp + four_t * fpp


@njit(cache=True, nogil=True)
def gather_lambda(
    theta: NDArray[np.float64], lam_index: NDArray[np.int64], lam: NDArray[np.float64]
) -> None:
    """``lam[b, i]`` = ``theta[b, lam_index[b, i]]``, 0 for index ``F`` (padding) and 1 for
    ``F + 1`` (fixed effects), ``F = theta.shape[1]``: :func:`pepmix.model.reml.lambda_diag`."""
    n_b, d = lam_index.shape
    nf = theta.shape[1]
    for b in range(n_b):
        for i in range(d):
            k = lam_index[b, i]
            lam[b, i] = theta[b, k] if k < nf else (0.0 if k == nf else 1.0)


@njit(cache=True, nogil=True)
def evaluation_weights(
    theta: NDArray[np.float64],
    efactor: NDArray[np.int64],
    lam_index: NDArray[np.int64],
    cls_n: NDArray[np.float64],
    cls_m: NDArray[np.float64],
    denom: NDArray[np.float64],
    f_c: NDArray[np.float64],
    lam: NDArray[np.float64],
) -> None:
    """What :func:`pepmix.model.reml.evaluate` needs before its sums, in one call:
    :func:`level_weights` at ``t_e = theta_e ** 2`` (``theta_e = theta[b, efactor[b]]``, 0
    without an eliminated factor: :func:`pepmix.model.reml._theta_e`) and :func:`gather_lambda`
    (the same operations as the array expressions)."""
    n_b = theta.shape[0]
    t_e = np.empty(n_b)
    for b in range(n_b):
        e = efactor[b]
        th = theta[b, e] if e >= 0 else 0.0
        t_e[b] = th * th
    level_weights(t_e, cls_n, cls_m, denom, f_c)
    gather_lambda(theta, lam_index, lam)


@njit(cache=True, nogil=True)
def gram_schur(
    f_c: NDArray[np.float64],
    rows: NDArray[np.float64],
    index: NDArray[np.int64],
    cls_of: NDArray[np.int64],
    cls_gram: NDArray[np.float64],
    cls_rep: NDArray[np.int64],
    g: NDArray[np.float64],
    lam: NDArray[np.float64],
    j_diag: NDArray[np.float64],
    ghat: NDArray[np.float64],
    chol: NDArray[np.float64],
    ok: NDArray[np.bool_],
) -> None:
    """:func:`weighted_gram` of the rank-one rows with the one weighting ``f_c`` (shape
    ``(B, L)``), then :func:`schur_cholesky` of ``g`` minus those sums: the evaluation's
    :math:`\\hat G` and Cholesky factor in one call."""
    n_b, n_l = f_c.shape
    d = rows.shape[2]
    sums = np.empty((1, n_b, d, d))
    weighted_gram(f_c.reshape((1, n_b, n_l)), rows, index, sums, cls_of, cls_gram, cls_rep)
    schur_cholesky(g, sums[0], lam, j_diag, ghat, chol, ok)


@njit(cache=True, nogil=True)
def derivative_parts(
    sums: NDArray[np.float64],
    ghat: NDArray[np.float64],
    lam: NDArray[np.float64],
    ge1: NDArray[np.float64],
    ge2: NDArray[np.float64],
    r: NDArray[np.float64],
    d_e: NDArray[np.float64],
) -> None:
    """The matrices of :func:`pepmix.model.reml.derivatives` from the class sums ``sums``
    (shape ``(2, B, d, d)``: of :math:`f'` and :math:`f''`) in one pass: ``ge1 = -sums[0]``,
    ``ge2 = -sums[1]``, ``r = ghat * lam[:, None, :]`` and ``d_e = lam[:, :, None] * ge1 *
    lam[:, None, :]`` (the same operations, in that order)."""
    n_b, d, _ = ghat.shape
    for b in range(n_b):
        for i in range(d):
            li = lam[b, i]
            for j in range(d):
                g1 = -sums[0, b, i, j]
                ge1[b, i, j] = g1
                ge2[b, i, j] = -sums[1, b, i, j]
                r[b, i, j] = ghat[b, i, j] * lam[b, j]
                d_e[b, i, j] = li * g1 * lam[b, j]


@njit(cache=True, nogil=True)
def evaluation_tail(
    chol: NDArray[np.float64],
    log_diag: NDArray[np.float64],
    logdet_s0: NDArray[np.float64],
    g_e: NDArray[np.float64],
    nu: NDArray[np.float64],
    nu_term: NDArray[np.float64],
    penalty: NDArray[np.float64],
    ok: NDArray[np.bool_],
    logdet_s: NDArray[np.float64],
    pwrss: NDArray[np.float64],
    dev: NDArray[np.float64],
    good: NDArray[np.bool_],
) -> None:
    """The criterion of :func:`pepmix.model.reml.evaluate` from its logarithms, per protein:
    ``logdet_s = logdet_s0 + log_diag[:, -1]``, ``pwrss = chol[:, -1, -1] ** 2``, ``dev = g_e +
    (1 - nu) logdet_s0 + nu logdet_s + nu_term`` (plus ``penalty`` unless empty), ``inf``
    where the factor failed (``ok`` False), ``dev`` is not finite or ``pwrss <= 0``; ``good``
    the others. The operations of the array expressions, in their order."""
    n_b, d = log_diag.shape
    has_pen = penalty.size > 0
    for b in range(n_b):
        l0 = logdet_s0[b]
        ls = l0 + log_diag[b, d - 1]
        last = chol[b, d - 1, d - 1]
        p = last * last
        n = nu[b]
        value = g_e[b] + (1.0 - n) * l0 + n * ls + nu_term[b]
        if has_pen:
            value = value + penalty[b]
        fine = ok[b] and np.isfinite(value) and not p <= 0
        logdet_s[b] = ls
        pwrss[b] = p
        dev[b] = value if fine else np.inf
        good[b] = fine
