r"""Protein-level log ratios of each run, their location (median or KDE mode) and diagnostics.

Notation (as in :mod:`pepmix.normalization`): :math:`y_{fr}` is the log2 intensity of feature
:math:`f` in run :math:`r`, :math:`s_r` a per-run shift, :math:`R_f` the runs in which :math:`f`
is observed (only features with :math:`|R_f| \ge 2` are used).

Protein-level ratio of protein :math:`p` in run :math:`r`
    :math:`\rho_{pr} = \operatorname{median}_{f \in p,\, r \in R_f}(y_{fr} - s_r - \bar y_f)`,
    with :math:`\bar y_f = |R_f|^{-1} \sum_{r \in R_f} (y_{fr} - s_r)`: one number per protein
    and run, so a protein counts once whatever its number of features.

Location of run :math:`r`: the median, or the mode, of :math:`\{\rho_{pr}\}_p`.

KDE mode
    Gaussian kernel density estimate of the :math:`n` protein ratios of a run with Silverman's
    rule-of-thumb bandwidth :math:`h = 0.9\,\min(\mathrm{SD}, \mathrm{IQR}/1.349)\,n^{-1/5}`
    (Silverman 1986, *Density Estimation*, eq. 3.31). It is evaluated on a grid of spacing at
    most :math:`h/10` (linear binning, then a discrete convolution with the kernel cut at
    :math:`\pm 4h`) between the 0.1 % and 99.9 % quantiles widened by :math:`4h`; the mode is
    the grid maximum refined by a parabola through it and its neighbours (within one grid step
    of the exact KDE maximum). Peaks are the grid's local maxima.
Bimodality
    The KDE is *bimodal* when a second peak reaches at least ``SECOND_PEAK`` (0.25) of the
    highest one and the density between them falls to at most ``VALLEY`` (0.7) of the second
    peak. Rationale: with clusters of similar width, a second peak of relative height 0.25
    holds about 20 % of the proteins, which moves the median by
    :math:`\Phi^{-1}(0.5/0.8) \approx 0.32` cluster SDs (a bias worth a warning); the valley
    rule, a 30 % dip, ignores the sampling wiggles of the estimate (relative SD of a KDE at the
    peak of a normal sample with this bandwidth: about 6 % at 1,000 proteins, 14 % at 100).
    Silverman's rule oversmooths mixtures, so the test errs on the side of *not* flagging.
    Runs with fewer than ``MIN_PROTEINS`` (100) proteins are not tested (and
    :mod:`pepmix.normalization` acts on the flag only from 300 proteins: in 400 normal samples of
    100 the rule fired once, of 300 or more never).
Fallback
    The mode falls back to the median (and the run is reported) when there are fewer than
    ``MIN_PROTEINS`` proteins, when the spread is zero, or when the distribution has no clear
    mode: a second peak passing the bimodality rule with at least ``AMBIGUOUS_PEAK`` (0.8) of
    the highest one's density. Between two nearly equal peaks the choice flips with sampling
    noise, and the data cannot tell which cluster is the unchanged majority.
Spread
    :math:`\mathrm{IQR}/1.349` of the protein ratios (the SD for normal data).
Standard error of the mode
    Parzen's (1962) asymptotic variance of the KDE mode,
    :math:`f(\theta) \int K'^2 / (n h^3 f''(\theta)^2)` with :math:`\int K'^2 = 1/(4\sqrt\pi)`
    for the Gaussian kernel, :math:`f` and :math:`f''` (second difference on the grid) taken
    from a KDE with bandwidth :math:`2h`: the curvature of the bandwidth-:math:`h` estimate is
    so noisy that the formula understated the mode's variability about three-fold on normal
    samples (99 % quantile of :math:`|\mathrm{mode} - 0| / \mathrm{SE}` 4.8-5.5 at 300-2,000
    values), with :math:`2h` it overstates it a little (1.6-1.9; t(4) samples 1.4-1.8; an exact
    SE would give 2.6). It adapts to the peak: a sharp cluster of unchanged proteins inside a
    broad distribution gets a small SE.

Group medians are computed without a loop over groups: rows are laid out once by group size
and group, and every block of groups of the same size is a 2-D array whose row medians numpy
takes at once (the loop runs over distinct group sizes, a few dozen). The layout comes from
stable counting sorts (:func:`counting_argsort`, linear in the rows): the rows by group, the
groups by size. The (protein, run) cells of :class:`ProteinRatios` are numbered in order of
first appearance, as :func:`pandas.factorize` numbers them, by tables indexed by the dense
cell key instead of hashing it (:func:`factorize_pairs`).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from pepmix.canonical import as_category, feature_owner, row_key

MIN_PROTEINS = 100
SECOND_PEAK = 0.25
VALLEY = 0.7
AMBIGUOUS_PEAK = 0.8
#: integral of the squared derivative of the Gaussian kernel, 1 / (4 sqrt(pi))
_R_KERNEL_DERIV = 1 / (4 * np.sqrt(np.pi))
_GRID_MAX = 8192
#: group medians of up to this many values are taken from sorted rows (GroupMedian)
_SORT_MEDIAN_MAX = 64

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@functools.cache
def _pandas_groupsort() -> Callable[[IntArray, int], tuple[IntArray, IntArray]] | None:
    """pandas' counting sort (its groupby's ``groupsort_indexer``: linear time, stable), or
    None when this pandas has none (then :func:`radix_argsort` sorts)."""
    try:
        module = importlib.import_module("pandas._libs.algos")
    except ImportError:  # pragma: no cover - pandas always has it so far
        return None
    function = getattr(module, "groupsort_indexer", None)
    return function if callable(function) else None


class GroupMedian:
    """Medians of values grouped by integer codes; the layout is computed once and reused.

    Parameters
    ----------
    codes : numpy.ndarray of int
        Group of each value, in ``0 .. n_groups - 1``.
    n_groups : int
        Number of groups (groups without values get NaN).
    """

    def __init__(self, codes: IntArray, n_groups: int) -> None:
        counts = np.bincount(codes, minlength=n_groups)
        # rows by group (stable); then the groups by size (stable: by code within a size), so
        # ``order`` is the stable sort of the rows by (group size, group)
        by_group = counting_argsort(codes, n_groups)
        starts = np.cumsum(counts) - counts
        max_size = int(counts.max()) if counts.size else 0
        groups_by_size = counting_argsort(counts, max_size + 1)
        sizes = counts[groups_by_size]
        bounds = np.searchsorted(sizes, np.arange(1, max_size + 2))
        self.n_groups = n_groups
        self.blocks: list[tuple[int, int, int, IntArray]] = []
        parts = []
        offset = 0
        for k in range(1, max_size + 1):
            groups = groups_by_size[bounds[k - 1] : bounds[k]]
            if groups.size == 0:
                continue
            rows = (starts[groups][:, None] + np.arange(k)).ravel()
            parts.append(by_group[rows])
            self.blocks.append((k, offset, offset + rows.size, groups))
            offset += rows.size
        self.order: IntArray = (
            np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        ).astype(np.int64, copy=False)

    def __call__(self, values: FloatArray) -> FloatArray:
        """Median of ``values`` (aligned with ``codes``) per group."""
        laid = values[self.order]
        out = np.full(self.n_groups, np.nan)
        # small groups: the middle of each sorted row (~2x faster than numpy.median's
        # partitions), which is numpy.median's value bit for bit unless a NaN (numpy.median
        # gives NaN) or a negative zero (its place among zeros may differ) is present
        sortable = not (np.isnan(laid).any() or (np.signbit(laid) & (laid == 0)).any())
        for k, a, b, groups in self.blocks:
            rows = laid[a:b].reshape(-1, k)
            if k == 1:
                out[groups] = rows[:, 0]
            elif k == 2:
                # what numpy.median computes for two values (their mean; NaN if one is NaN)
                out[groups] = (rows[:, 0] + rows[:, 1]) / 2
            elif sortable and k <= _SORT_MEDIAN_MAX:
                ordered = np.sort(rows, axis=1)
                half = k // 2
                middle = ordered[:, half]
                out[groups] = middle if k % 2 else (ordered[:, half - 1] + middle) / 2
            else:
                out[groups] = np.median(rows, axis=1)
        return out


def counting_argsort(key: IntArray, n_keys: int) -> IntArray:
    """Stable argsort of integer keys in ``[0, n_keys)`` (counting sort, linear time).

    pandas' ``groupsort_indexer`` (the counting sort of its groupby) when pandas has it, else
    :func:`radix_argsort`; both return the stable order (the same permutation as
    ``numpy.argsort(key, kind="stable")``).
    """
    groupsort = _pandas_groupsort()
    if groupsort is None:  # pragma: no cover - see _pandas_groupsort
        return radix_argsort(key, max(n_keys - 1, 0))
    order, _ = groupsort(np.asarray(key, dtype=np.int64), n_keys)
    return np.asarray(order, dtype=np.int64)


def radix_argsort(key: IntArray, max_key: int) -> IntArray:
    """Stable argsort of integer keys in ``[0, max_key]``.

    A counting sort (:func:`counting_argsort`) when ``max_key`` is not much more than the
    number of keys (its table has ``max_key + 2`` entries); otherwise one 16-bit digit at a
    time: numpy sorts 16-bit integers stably by radix sort (linear time), several times faster
    than a comparison sort of millions of int64 keys.
    """
    small = _pandas_groupsort() is not None and max_key <= 4 * key.size + 65536
    if small and (key.size == 0 or int(key.min()) >= 0):
        return counting_argsort(key, max_key + 1)
    order = np.arange(key.size, dtype=np.int64)
    shift = 0
    while True:
        digit = ((key[order] >> shift) & 0xFFFF).astype(np.uint16)
        order = order[np.argsort(digit, kind="stable")]
        shift += 16
        if max_key >> shift == 0:
            return order


def factorize_pairs(
    first: IntArray, second: IntArray, n_first: int, n_second: int
) -> tuple[IntArray, IntArray]:
    """``pandas.factorize(first * n_second + second)``: codes numbered in order of first appearance.

    When the key space ``n_first * n_second`` is at most a few times the number of rows, by
    dense tables indexed by the key (each key's first row by ``numpy.minimum.at``) instead of
    hashing; otherwise (or with a negative key) :func:`pandas.factorize`. Both give the same
    codes and uniques.

    Parameters
    ----------
    first, second : numpy.ndarray of int
        Codes in ``[0, n_first)`` and ``[0, n_second)``, one pair per row.
    n_first, n_second : int
        Their numbers of values.

    Returns
    -------
    codes : numpy.ndarray of int64
        The pair of each row, numbered in order of first appearance.
    uniques : numpy.ndarray of int64
        ``first * n_second + second`` of each pair, in that order.
    """
    n = first.size
    # (in place: one array of n keys allocated, not three)
    key = np.multiply(first, n_second, dtype=np.int64)
    key += second
    n_keys = n_first * n_second
    if n_keys > 4 * n + (1 << 20) or (n and int(key.min()) < 0):
        hashed, distinct = pd.factorize(key)
        return hashed.astype(np.int64, copy=False), np.asarray(distinct, dtype=np.int64)
    first_row = np.full(n_keys, n, dtype=np.int64)
    np.minimum.at(first_row, key, np.arange(n, dtype=np.int64))
    present = np.flatnonzero(first_row < n)
    # the keys in order of their first rows (distinct rows: a scatter, no sort)
    slot = np.full(n, -1, dtype=np.int64)
    slot[first_row[present]] = present
    uniques: IntArray = slot[slot >= 0]
    code_of = np.empty(n_keys, dtype=np.int64)
    code_of[uniques] = np.arange(uniques.size, dtype=np.int64)
    codes: IntArray = code_of[key]
    return codes, uniques


def group_medians(codes: IntArray, values: FloatArray, n_groups: int) -> FloatArray:
    """Median of ``values`` per group code (NaN for empty groups), vectorised."""
    return GroupMedian(codes, n_groups)(values)


@dataclass(frozen=True)
class KdeSummary:
    """Location summary of one run's protein ratios.

    Attributes
    ----------
    mode : float
        KDE mode, or the median when the mode fell back (see ``fallback``).
    bimodal : bool
        The bimodality rule of the module docstring holds.
    fallback : bool
        The mode could not be trusted and is the median.
    se : float
        Asymptotic standard error of the mode (module docstring; NaN on fallback).
    """

    mode: float
    bimodal: bool
    fallback: bool
    se: float


def silverman_bandwidth(x: FloatArray, quantiles: FloatArray | None = None) -> float:
    """Silverman's rule of thumb ``0.9 min(SD, IQR/1.349) n^(-1/5)`` (0 if degenerate).

    ``quantiles`` (default None: computed) are :func:`_quantiles` of ``x``.
    """
    if x.size < 2:
        return 0.0
    q1, q3 = (_quantiles(x) if quantiles is None else quantiles)[1:3]
    sigma = min(float(np.std(x, ddof=1)), float(q3 - q1) / 1.349)
    if sigma <= 0:
        sigma = float(np.std(x, ddof=1))
    return float(0.9 * sigma * x.size ** (-0.2))


def _quantiles(x: FloatArray) -> FloatArray:
    """The 0.1 %, 25 %, 75 % and 99.9 % quantiles of ``x`` in one call (each the value
    ``numpy.quantile`` gives for it alone: the quantiles are taken from the same order
    statistics one by one)."""
    quantiles: FloatArray = np.quantile(x, [0.001, 0.25, 0.75, 0.999])
    return quantiles


def kde_grid(
    x: FloatArray, h: float, quantiles: FloatArray | None = None
) -> tuple[FloatArray, FloatArray]:
    """Gaussian KDE of ``x`` with bandwidth ``h`` on a grid (see module docstring).

    ``quantiles`` (default None: computed) are :func:`_quantiles` of ``x``.
    """
    q = _quantiles(x) if quantiles is None else quantiles
    q_lo, q_hi = q[0], q[3]
    lo, hi = float(q_lo) - 4 * h, float(q_hi) + 4 * h
    step = max(h / 10, (hi - lo) / (_GRID_MAX - 1))
    n_grid = int(np.ceil((hi - lo) / step)) + 2
    inside = x[(x >= lo) & (x <= hi)]
    pos = (inside - lo) / step
    idx = np.floor(pos).astype(np.int64)
    w = pos - idx
    counts = np.bincount(idx, 1 - w, minlength=n_grid) + np.bincount(idx + 1, w, minlength=n_grid)
    half = int(np.ceil(4 * h / step))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) * step / h) ** 2)
    density = np.convolve(counts[:n_grid], kernel, mode="same") / (x.size * h * np.sqrt(2 * np.pi))
    grid: FloatArray = lo + step * np.arange(n_grid, dtype=np.float64)
    return grid, density.astype(np.float64)


def _peaks(density: FloatArray) -> tuple[int, bool, bool]:
    """Index of the highest peak, and whether a second peak makes it bimodal / ambiguous."""
    top = int(np.argmax(density))
    d = density
    local = np.flatnonzero((d[1:-1] > d[:-2]) & (d[1:-1] >= d[2:])) + 1
    bimodal = ambiguous = False
    for j in local[local != top]:
        height = d[j]
        if height < SECOND_PEAK * d[top]:
            continue
        a, b = sorted((top, int(j)))
        if d[a : b + 1].min() <= VALLEY * height:
            bimodal = True
            ambiguous |= bool(height >= AMBIGUOUS_PEAK * d[top])
    return top, bimodal, ambiguous


def kde_mode(x: FloatArray) -> KdeSummary:
    """KDE mode of ``x`` with the fallback and bimodality rules of the module docstring.

    Parameters
    ----------
    x : numpy.ndarray
        Finite values (one run's protein ratios).

    Returns
    -------
    KdeSummary
    """
    median = float(np.median(x)) if x.size else np.nan
    quantiles = _quantiles(x) if x.size >= 2 else None
    h = silverman_bandwidth(x, quantiles)
    if x.size < MIN_PROTEINS or h <= 0:
        return KdeSummary(median, False, True, np.nan)
    grid, density = kde_grid(x, h, quantiles)
    top, bimodal, ambiguous = _peaks(density)
    if ambiguous or not 0 < top < grid.size - 1:
        return KdeSummary(median, bimodal, True, np.nan)
    step = float(grid[1] - grid[0])
    left, mid, right = density[top - 1 : top + 2]
    curve = left - 2 * mid + right
    if curve >= 0:
        return KdeSummary(float(grid[top]), bimodal, False, np.nan)
    mode = float(grid[top]) + 0.5 * (left - right) / curve * step
    return KdeSummary(mode, bimodal, False, _mode_se(x, mode, h, quantiles))


def kde_peaks(x: FloatArray) -> list[tuple[float, float]]:
    """Candidate modes of ``x``: the highest KDE peak and the rivals that make it ambiguous.

    A rival is a peak of at least ``AMBIGUOUS_PEAK`` of the highest one's density behind a
    valley of at most ``VALLEY`` of its own height (the fallback rule of the module docstring):
    between such peaks sampling noise decides which is the highest. Each is refined by a
    parabola as in :func:`kde_mode` and returned with its standard error (NaN if the density
    is flat there). Empty for fewer than ``MIN_PROTEINS`` values or a zero spread.

    Parameters
    ----------
    x : numpy.ndarray
        Finite values.

    Returns
    -------
    list of (float, float)
        ``(location, se)`` per candidate, the highest peak first.
    """
    quantiles = _quantiles(x) if x.size >= 2 else None
    h = silverman_bandwidth(x, quantiles)
    if x.size < MIN_PROTEINS or h <= 0:
        return []
    grid, d = kde_grid(x, h, quantiles)
    top = int(np.argmax(d))
    local = np.flatnonzero((d[1:-1] > d[:-2]) & (d[1:-1] >= d[2:])) + 1
    chosen = [top]
    for j in local[local != top]:
        a, b = sorted((top, int(j)))
        if d[j] >= AMBIGUOUS_PEAK * d[top] and d[a : b + 1].min() <= VALLEY * d[j]:
            chosen.append(int(j))
    step = float(grid[1] - grid[0])
    out = []
    for i in chosen:
        if not 0 < i < grid.size - 1:
            continue
        left, mid, right = d[i - 1 : i + 2]
        curve = left - 2 * mid + right
        loc = float(grid[i]) + (0.5 * (left - right) / curve * step if curve < 0 else 0.0)
        out.append((loc, _mode_se(x, loc, h, quantiles) if curve < 0 else np.nan))
    return out


def _mode_se(x: FloatArray, mode: float, h: float, quantiles: FloatArray | None = None) -> float:
    """Parzen's standard error of the KDE mode, density and curvature from bandwidth ``2 h``
    (``quantiles`` as for :func:`kde_grid`)."""
    grid, density = kde_grid(x, 2 * h, quantiles)
    step = float(grid[1] - grid[0])
    i = int(np.clip(np.searchsorted(grid, mode), 1, grid.size - 2))
    second = (density[i - 1] - 2 * density[i] + density[i + 1]) / step**2
    if second >= 0:
        return np.nan
    return float(np.sqrt(density[i] * _R_KERNEL_DERIV / (x.size * h**3 * second**2)))


def _run_positions(run: pd.Series, run_names: pd.Index) -> IntArray:
    """Each row's position in ``run_names`` (-1: not there), its run taken as text.

    A categorical column without missing values is read through its codes (the categories
    looked up once); otherwise the rows are numbered by :func:`pandas.factorize` first. The same
    positions either way.
    """
    if isinstance(run.dtype, pd.CategoricalDtype):
        codes = run.cat.codes.to_numpy()
        if not codes.size or int(codes.min()) >= 0:
            by_category = run_names.get_indexer(pd.Index(run.cat.categories).astype(str))
            return by_category.astype(np.int64, copy=False)[codes]
    numbered, uniques = pd.factorize(run)
    run_index = run_names.get_indexer(pd.Index(uniques).astype(str))
    positions: IntArray = run_index[numbered].astype(np.int64, copy=False)
    return positions


class ProteinRatios:
    """Layout for the protein-level ratios :math:`\\rho_{pr}` of a long feature table.

    Parameters
    ----------
    table : pandas.DataFrame
        ``protein, feature, run`` per row.
    run_names : pandas.Index
        Runs in the order of the shift vectors passed to :meth:`ratios`.
    """

    def __init__(self, table: pd.DataFrame, run_names: pd.Index) -> None:
        self.n_runs = len(run_names)
        self.run_codes = _run_positions(table["run"], run_names)
        # a feature's code, or its (protein, feature) pair's: only the per-feature sums and
        # counts use them (np.bincount adds in row order whatever the numbering)
        if feature_owner(table) is not None:
            feature = as_category(table["feature"])
            self.feat_codes = feature.cat.codes.to_numpy().astype(np.int64)
            self.n_feat = len(feature.cat.categories)
        else:
            feat_codes, feats = pd.factorize(row_key(table, ["protein", "feature"]))
            self.feat_codes = feat_codes.astype(np.int64, copy=False)
            self.n_feat = len(feats)
        self.feat_counts = np.bincount(self.feat_codes, minlength=self.n_feat)
        self.usable = self.feat_counts[self.feat_codes] >= 2
        prot_codes, prots = pd.factorize(table["protein"])
        prot_codes = prot_codes.astype(np.int64, copy=False)
        self.n_proteins = len(prots)
        cell_codes, cells = factorize_pairs(
            prot_codes[self.usable], self.run_codes[self.usable], self.n_proteins, self.n_runs
        )
        self.cell_codes = cell_codes
        self.n_cells = len(cells)
        self.cell_median = GroupMedian(self.cell_codes, self.n_cells)
        self.cell_run = np.asarray(cells, dtype=np.int64) % max(self.n_runs, 1)
        self.cell_protein = np.asarray(cells, dtype=np.int64) // max(self.n_runs, 1)

    def cell_mask(self, rows: pd.Series) -> NDArray[np.bool_]:
        """Per (protein, run) cell: does any of its usable rows have ``rows`` true."""
        hits = rows.to_numpy(dtype=bool)[self.usable]
        mask: NDArray[np.bool_] = np.bincount(self.cell_codes, hits, self.n_cells) > 0
        return mask

    def ratios(self, y: FloatArray, shift: FloatArray) -> FloatArray:
        """:math:`\\rho_{pr}` per observed (protein, run) cell, for values ``y`` and ``shift``."""
        adjusted = y - shift[self.run_codes]
        total = np.bincount(self.feat_codes, weights=adjusted, minlength=self.n_feat)
        ref = total / np.maximum(self.feat_counts, 1)
        ratio = (adjusted - ref[self.feat_codes])[self.usable]
        return self.cell_median(ratio)

    def matrix(self, rho: FloatArray) -> FloatArray:
        """``rho`` as a proteins x runs array (NaN where a protein has no ratio in a run)."""
        out = np.full((self.n_proteins, self.n_runs), np.nan)
        out[self.cell_protein, self.cell_run] = rho
        return out

    def run_values(
        self, rho: FloatArray, used: NDArray[np.bool_] | None = None
    ) -> list[FloatArray]:
        """The (used) proteins' ratios of each run."""
        runs = self.cell_run if used is None else self.cell_run[used]
        values = rho if used is None else rho[used]
        order = radix_argsort(runs, self.n_runs)
        b = np.concatenate([[0], np.cumsum(np.bincount(runs, minlength=self.n_runs))])
        values = values[order]
        return [values[b[i] : b[i + 1]] for i in range(self.n_runs)]

    def location(
        self, rho: FloatArray, how: str, used: NDArray[np.bool_] | None = None
    ) -> tuple[FloatArray, NDArray[np.bool_]]:
        """Per-run median or KDE mode of ``rho``; second value: the mode fell back."""
        if how == "median":
            runs = self.cell_run if used is None else self.cell_run[used]
            values = rho if used is None else rho[used]
            return group_medians(runs, values, self.n_runs), np.zeros(self.n_runs, dtype=bool)
        summaries = [kde_mode(v) for v in self.run_values(rho, used)]
        return (
            np.array([s.mode for s in summaries]),
            np.array([s.fallback for s in summaries], dtype=bool),
        )

    def diagnostics(self, rho: FloatArray) -> pd.DataFrame:
        """Protein-ratio diagnostics per run, in the order of ``run_names``.

        Columns ``n_proteins, ratio_median, ratio_mode, ratio_mode_se, ratio_spread, bimodal``.
        """
        rows = []
        for v in self.run_values(rho):
            summary = kde_mode(v)
            spread = np.nan
            if v.size >= 2:
                q1, q3 = np.quantile(v, [0.25, 0.75])
                spread = float(q3 - q1) / 1.349
            rows.append(
                {
                    "n_proteins": int(v.size),
                    "ratio_median": float(np.median(v)) if v.size else np.nan,
                    "ratio_mode": np.nan if summary.fallback else summary.mode,
                    "ratio_mode_se": summary.se,
                    "ratio_spread": spread,
                    "bimodal": summary.bimodal,
                }
            )
        return pd.DataFrame(rows)
