"""Per-run and per-feature aggregates of large long tables, on integer codes.

The QC figures summarise tables of millions of rows (a DIA cohort: 8.4 M feature x run
observations). Everything here works on integer codes of the identifier columns (the categories
of categorical columns, as Parquet dictionaries arrive in pandas, or :func:`pandas.factorize`
of plain string columns) with :func:`numpy.bincount`, boolean matrices and one stable integer
sort, never with Python loops over rows or per-run filtering of the table.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

BoxStats = tuple[float, float, float, float, float]
"""``(low whisker, q1, median, q3, high whisker)``."""


def codes_of(column: pd.Series) -> tuple[IntArray, pd.Index]:
    """Integer codes and their values of an identifier column (categorical or not).

    Parameters
    ----------
    column : pandas.Series
        Categorical (codes are taken as they are) or any other dtype (factorised).

    Returns
    -------
    codes : ndarray of intp
        Code of each row, -1 for missing values.
    values : pandas.Index
        Value of each code (convert with ``str`` where labels are needed: a categorical's
        categories may be many, e.g. 60,000 features).
    """
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy().astype(np.intp)
        return codes, pd.Index(column.cat.categories)
    codes_raw, uniques = pd.factorize(column)
    return np.asarray(codes_raw, dtype=np.intp), pd.Index(uniques)


def _raw_codes(column: pd.Series) -> tuple[NDArray[np.signedinteger], pd.Index]:
    """As :func:`codes_of`, but a categorical's codes in their own (small) integer type."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes: NDArray[np.signedinteger] = np.asarray(column.cat.codes.to_numpy())
        return codes, pd.Index(column.cat.categories)
    return codes_of(column)


def present_labels(column: pd.Series) -> list[str]:
    """Distinct values of an identifier column, as strings (in code order)."""
    codes, values = _raw_codes(column)
    used = np.flatnonzero(np.bincount(codes[codes >= 0], minlength=len(values)) > 0)
    return [str(v) for v in values[used]]


def position_codes(column: pd.Series, order: Sequence[str]) -> IntArray:
    """Position of each row's value in ``order`` (-1 where it is not in ``order``)."""
    codes, values = _raw_codes(column)
    where = {name: i for i, name in enumerate(order)}
    lookup = np.array([where.get(str(v), -1) for v in values] + [-1], dtype=np.intp)
    out: IntArray = lookup[codes]  # code -1 (missing) picks the trailing -1
    return out


@dataclass(frozen=True)
class FeatureCells:
    """The observed feature x run cells of a long feature table, as integer codes.

    Attributes
    ----------
    order : list of str
        Runs, in plotting order (columns of :attr:`observed`).
    run : ndarray of intp
        Run (position in :attr:`order`) of each kept row.
    feature : ndarray of intp
        Feature of each kept row (``0 .. n_features - 1``; a feature is a protein and feature
        identifier pair).
    feature_protein : ndarray of intp
        Protein of each feature (``0 .. n_proteins - 1``).
    n_proteins : int
        Proteins with at least one kept row.
    log2_raw, y : ndarray
        Intensities of each kept row before and after normalisation (NaN when the table has
        no such column).
    """

    order: list[str]
    run: IntArray
    feature: IntArray
    feature_protein: IntArray
    n_proteins: int
    log2_raw: FloatArray
    y: FloatArray

    @property
    def n_features(self) -> int:
        """Number of features."""
        return len(self.feature_protein)

    @classmethod
    def from_table(cls, features: pd.DataFrame, run_order: Sequence[str]) -> FeatureCells:
        """Codes of the rows of ``features`` whose run is in ``run_order``.

        Parameters
        ----------
        features : pandas.DataFrame
            Long table with ``protein``, ``feature``, ``run`` and optionally ``log2_raw``,
            ``y``.
        run_order : sequence of str
            Runs in plotting order; runs absent from the table are left out of :attr:`order`.
        """
        run_codes, run_values = _raw_codes(features["run"])
        where = {name: i for i, name in enumerate(run_order)}
        position = np.array([where.get(str(v), -1) for v in run_values] + [-1], dtype=np.intp)
        present = np.bincount(run_codes[run_codes >= 0], minlength=len(run_values)) > 0
        kept_runs = np.unique(position[:-1][present & (position[:-1] >= 0)])
        renumber = np.full(len(run_order) + 1, -1, dtype=np.intp)
        renumber[kept_runs] = np.arange(len(kept_runs))
        run = renumber[position][run_codes]  # code -1 (missing) picks the trailing -1
        protein, _ = _raw_codes(features["protein"])
        feature, feature_values = _raw_codes(features["feature"])
        keep = None
        if run.min(initial=0) < 0 or protein.min(initial=0) < 0 or feature.min(initial=0) < 0:
            keep = (run >= 0) & (protein >= 0) & (feature >= 0)
            run, protein, feature = run[keep], protein[keep], feature[keep]
        feature_index, feature_protein = _feature_index(protein, feature, len(feature_values))
        protein_index, _ = pd.factorize(feature_protein)

        def column(name: str) -> FloatArray:
            if name not in features.columns:
                return np.full(len(run), np.nan)
            values: FloatArray = features[name].to_numpy(dtype=float, na_value=np.nan)
            return values if keep is None else values[keep]

        return cls(
            order=[run_order[i] for i in kept_runs],
            run=run,
            feature=feature_index,
            feature_protein=np.asarray(protein_index, dtype=np.intp),
            n_proteins=int(protein_index.max()) + 1 if len(protein_index) else 0,
            log2_raw=column("log2_raw"),
            y=column("y"),
        )

    @functools.cached_property
    def run_order(self) -> tuple[IntArray, IntArray]:
        """Rows grouped by run (:func:`group_order`; shared by the box statistics)."""
        return group_order(self.run, len(self.order))

    @functools.cached_property
    def observed(self) -> NDArray[np.bool_]:
        """Boolean feature x run matrix: True where the feature has a row in the run."""
        out = np.zeros((self.n_features, len(self.order)), dtype=bool)
        out[self.feature, self.run] = True
        return out

    def proteins_per_run(self) -> NDArray[np.int64]:
        """Number of proteins with at least one feature in each run (from :attr:`observed`)."""
        n_runs = len(self.order)
        if self.n_features == 0:
            return np.zeros(n_runs, dtype=np.int64)
        by_protein = np.argsort(self.feature_protein, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(self.feature_protein[by_protein]) != 0])
        seen = np.logical_or.reduceat(self.observed[by_protein], starts, axis=0)
        counts: NDArray[np.int64] = seen.sum(axis=0, dtype=np.int64)
        return counts

    def feature_means(self, values: FloatArray) -> FloatArray:
        """Mean of the finite ``values`` (one per row) of each feature (NaN without any)."""
        ok = np.isfinite(values)
        if ok.all():
            feature, weights = self.feature, values
        else:
            feature, weights = self.feature[ok], values[ok]
        sums = np.bincount(feature, weights=weights, minlength=self.n_features)
        counts = np.bincount(feature, minlength=self.n_features)
        out: FloatArray = np.full(self.n_features, np.nan)
        np.divide(sums, counts, out=out, where=counts > 0)
        return out


def _feature_index(
    protein: NDArray[np.signedinteger], feature: NDArray[np.signedinteger], n_feature_codes: int
) -> tuple[IntArray, IntArray]:
    """Index of each row's (protein, feature) pair, and the protein code of each pair.

    When every feature identifier belongs to a single protein (the usual case) the pairs are
    the feature codes themselves (renumbered to the used ones: one pass); otherwise the pairs
    are factorised.
    """
    owner = np.full(n_feature_codes, -1, dtype=np.intp)
    owner[feature] = protein
    if np.array_equal(owner[feature], protein):
        used = np.flatnonzero(owner >= 0)
        renumber = np.full(n_feature_codes, -1, dtype=np.intp)
        renumber[used] = np.arange(len(used))
        return renumber[feature], owner[used]
    pair = protein.astype(np.int64) * max(n_feature_codes, 1) + feature
    index, pairs = pd.factorize(pair)
    return np.asarray(index, dtype=np.intp), np.asarray(pairs, dtype=np.int64) // max(
        n_feature_codes, 1
    )


def _quantile_sorted(v: FloatArray, q: float) -> float:
    """Quantile of sorted values, interpolating linearly (as :func:`numpy.percentile`).

    ``v`` need only hold the order statistics at the two positions used in place (as
    :func:`numpy.partition` leaves them)."""
    pos = q * (len(v) - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, len(v) - 1)
    return float(v[lo] + (v[hi] - v[lo]) * (pos - lo))


QUARTILES = (0.25, 0.5, 0.75)


def box_stats(values: FloatArray, whis: float = 1.5) -> BoxStats:
    """``(low whisker, q1, median, q3, high whisker)`` of the finite values (Tukey whiskers).

    Whiskers end at the most extreme values within ``whis`` IQR of the box; all NaN for no
    values. Quartiles interpolate linearly (as :func:`numpy.percentile`). One partition at the
    quartiles' order statistics (the values a full sort puts there, in half its time at the
    ~40,000 values of a DIA run), then the whiskers as the least value at or above and the
    greatest at or below their limits (the values a binary search of the sorted values finds).
    """
    v = values[np.isfinite(values)]
    n = len(v)
    if n == 0:
        return (np.nan, np.nan, np.nan, np.nan, np.nan)
    lows = [int(np.floor(q * (n - 1))) for q in QUARTILES]
    kth = sorted({*lows, *(min(lo + 1, n - 1) for lo in lows)})
    v = np.partition(v, kth)
    q1, med, q3 = (_quantile_sorted(v, q) for q in QUARTILES)
    iqr = q3 - q1
    low = float(np.min(v, where=v >= q1 - whis * iqr, initial=np.inf))
    high = float(np.max(v, where=v <= q3 + whis * iqr, initial=-np.inf))
    return low, q1, med, q3, high


def group_order(groups: IntArray, n_groups: int) -> tuple[IntArray, IntArray]:
    """Row order that brings each group together, and where each group starts and ends.

    One stable sort of the (small integer) group codes.

    Returns
    -------
    perm : ndarray of intp
        Rows, group by group.
    bounds : ndarray of intp, length ``n_groups + 1``
        Group ``g`` is ``perm[bounds[g]:bounds[g + 1]]``.
    """
    small = groups.astype(np.int16) if n_groups < 2**15 else groups
    perm = np.argsort(small, kind="stable").astype(np.intp)
    counts = np.bincount(groups, minlength=n_groups)
    bounds = np.concatenate([[0], np.cumsum(counts)]).astype(np.intp)
    return perm, bounds


def grouped_box_stats(
    values: FloatArray,
    groups: IntArray,
    n_groups: int,
    whis: float = 1.5,
    order: tuple[IntArray, IntArray] | None = None,
) -> list[BoxStats]:
    """:func:`box_stats` of the values of each group (``groups`` in ``0 .. n_groups - 1``).

    One stable integer sort (:func:`group_order`, or ``order`` when given) brings each group's
    values together; each group's slice is then sorted once (:func:`box_stats`).
    """
    perm, bounds = order if order is not None else group_order(groups, n_groups)
    ordered = values[perm]
    return [box_stats(ordered[bounds[g] : bounds[g + 1]], whis) for g in range(n_groups)]


def stats_dicts(stats: Sequence[BoxStats]) -> list[dict[str, float]]:
    """Box statistics as :meth:`matplotlib.axes.Axes.bxp` takes them."""
    return [
        {"whislo": lo, "q1": q1, "med": med, "q3": q3, "whishi": hi}
        for lo, q1, med, q3, hi in stats
    ]


def wide_matrix(
    table: pd.DataFrame, row: str, column: str, value: str, columns: Sequence[str]
) -> tuple[FloatArray, list[str], list[str]]:
    """Wide ``row`` x ``column`` matrix of ``value`` from a long table (NaN where absent).

    Columns are ``columns`` (those present in the table, in that order); rows are the row
    identifiers present, sorted. Where a cell occurs more than once the first value is kept.

    Returns
    -------
    matrix : ndarray, shape (n_rows, n_columns)
    rows : list of str
    columns : list of str
    """
    col = position_codes(table[column], columns)
    used = np.bincount(col[col >= 0], minlength=len(columns)) > 0
    keep_cols = np.flatnonzero(used)
    renumber = np.full(len(columns) + 1, -1, dtype=np.intp)
    renumber[keep_cols] = np.arange(len(keep_cols))
    col = renumber[col]
    codes, values = codes_of(table[row])
    keep = (col >= 0) & (codes >= 0)
    col, codes = col[keep], codes[keep]
    vals = table[value].to_numpy(dtype=float, na_value=np.nan)[keep]
    present = np.flatnonzero(np.bincount(codes, minlength=len(values)) > 0)
    names = [str(v) for v in values[present]]
    rank = np.argsort(np.array(names, dtype=object), kind="stable")
    row_of = np.full(len(values), -1, dtype=np.intp)
    row_of[present[rank]] = np.arange(len(present))
    matrix: FloatArray = np.full((len(present), len(keep_cols)), np.nan)
    rows = row_of[codes]
    # first occurrence wins: write in reverse so earlier rows overwrite later ones
    matrix[rows[::-1], col[::-1]] = vals[::-1]
    return matrix, [names[int(i)] for i in rank], [columns[int(i)] for i in keep_cols]
