"""The counting-sort and dense-table kernels of rule ``prepare`` against their reference forms.

Each kernel replaces a hash or a comparison sort and must give exactly the same result (codes,
orders, medians): the rule's output files are compared byte for byte in benchmarks/README.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pepmix import canonical
from pepmix.errors import InputFormatError
from pepmix.filters import filter_proteins
from pepmix.ingest import _has_duplicates
from pepmix.protein_ratios import (
    GroupMedian,
    ProteinRatios,
    _quantiles,
    counting_argsort,
    factorize_pairs,
    kde_grid,
    radix_argsort,
    silverman_bandwidth,
)
from pepmix.readers._common import run_name, run_names
from pepmix.readers._support import parse_flag
from pepmix.readers.generic import _precursor_ids
from pepmix.shards import _features_per_protein


@pytest.mark.parametrize("seed", range(6))
def test_counting_and_radix_argsort_are_the_stable_sort(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_keys = int(rng.integers(1, 3000))
    key = rng.integers(0, n_keys, int(rng.integers(0, 5000)))
    expected = np.argsort(key, kind="stable")
    np.testing.assert_array_equal(counting_argsort(key, n_keys), expected)
    np.testing.assert_array_equal(radix_argsort(key, n_keys - 1), expected)
    # keys far above the number of rows: the 16-bit radix passes
    wide = key * 100_003
    np.testing.assert_array_equal(radix_argsort(wide, int(wide.max(initial=0))), expected)


@pytest.mark.parametrize("seed", range(6))
def test_group_median_layout_is_the_stable_sort_by_size_and_group(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_groups = int(rng.integers(1, 400))
    codes = rng.integers(0, n_groups, int(rng.integers(1, 4000)))
    layout = GroupMedian(codes, n_groups + 3)
    size = np.bincount(codes, minlength=n_groups + 3)[codes]
    np.testing.assert_array_equal(layout.order, np.lexsort((codes, size)))
    values = rng.normal(size=codes.size)
    expected = pd.Series(values).groupby(codes).median()
    got = layout(values)
    np.testing.assert_array_equal(got[expected.index], expected.to_numpy())
    assert np.isnan(np.delete(got, expected.index)).all()


@pytest.mark.parametrize("n_first", [7, 3_000_000])
def test_factorize_pairs_equals_pandas_factorize(n_first: int) -> None:
    # a small key space takes the dense tables, a large one pandas.factorize
    rng = np.random.default_rng(n_first)
    first = rng.integers(0, min(n_first, 50), 2000) * (n_first // 50 or 1)
    second = rng.integers(0, 13, 2000)
    codes, uniques = pd.factorize(first * 13 + second)
    got_codes, got_uniques = factorize_pairs(first, second, n_first, 13)
    np.testing.assert_array_equal(got_codes, codes)
    np.testing.assert_array_equal(got_uniques, uniques)
    empty = factorize_pairs(first[:0], second[:0], n_first, 13)
    assert empty[0].size == 0 and empty[1].size == 0


def _table(shared: bool) -> pd.DataFrame:
    """Three proteins; with ``shared``, feature ``f1`` belongs to two of them."""
    rng = np.random.default_rng(4)
    rows = []
    for protein, features in {"P1": ["f1", "f2"], "P2": ["f3"], "P3": ["f4", "f5", "f6"]}.items():
        for feature in features:
            for run in ["r1", "r2", "r3", "r4"]:
                rows.append((protein, feature, run, float(rng.lognormal(10, 1))))
    if shared:
        rows += [("P2", "f1", run, 1000.0 + i) for i, run in enumerate(["r2", "r3", "r4"])]
    frame = pd.DataFrame(rows, columns=["protein", "feature", "run", "intensity"])
    frame = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    for col in ("protein", "feature", "run"):
        frame[col] = frame[col].astype("category")
    return frame


def test_feature_owner_and_its_fallback() -> None:
    owner = canonical.feature_owner(_table(shared=False))
    assert owner is not None
    assert owner.tolist() == [0, 0, 1, 2, 2, 2]  # f1..f6 -> P1, P1, P2, P3, P3, P3
    assert canonical.feature_owner(_table(shared=True)) is None


@pytest.mark.parametrize("shared", [False, True])
def test_protein_filter_counts_pairs_on_both_paths(shared: bool) -> None:
    table = _table(shared)
    kept = filter_proteins(table, {"min_features": 2, "min_observations": 1})
    # P2 has one feature unless it shares f1 (then two pairs: (P2, f3), (P2, f1))
    expected = {"P1", "P3"} | ({"P2"} if shared else set())
    assert set(kept["protein"].astype(str)) == expected


@pytest.mark.parametrize("shared", [False, True])
def test_duplicate_check_on_both_paths(shared: bool) -> None:
    table = _table(shared)
    keys = ["protein", "feature", "run"]
    assert not _has_duplicates(table, keys)
    doubled = pd.concat([table, table.iloc[[5]]], ignore_index=True)
    assert _has_duplicates(doubled, keys)
    if shared:
        # the same feature and run under another protein is no duplicate
        row = table.loc[(table["feature"] == "f1") & (table["protein"] == "P1")].iloc[[0]]
        assert not _has_duplicates(table.loc[~table.index.isin(row.index)], keys)


@pytest.mark.parametrize("shared", [False, True])
def test_protein_ratios_equal_a_pandas_reference(shared: bool) -> None:
    table = _table(shared)
    runs = pd.Index(["r1", "r2", "r3", "r4"])
    layout = ProteinRatios(table, runs)
    y = np.log2(table["intensity"].to_numpy())
    shift = np.array([0.1, -0.2, 0.05, 0.0])
    rho = layout.ratios(y, shift)
    frame = table.assign(adj=y - shift[runs.get_indexer(table["run"].astype(str))])
    pair = frame.groupby(["protein", "feature"], observed=True)["adj"]
    frame["ratio"] = frame["adj"] - pair.transform("mean")
    frame = frame.loc[pair.transform("size") >= 2]
    expected = frame.groupby(["protein", "run"], observed=True)["ratio"].median()
    got = pd.Series(
        rho,
        index=pd.MultiIndex.from_arrays(
            [
                pd.factorize(table["protein"])[1][layout.cell_protein].astype(str),
                runs[layout.cell_run],
            ]
        ),
    )
    expected.index = expected.index.set_levels(
        [level.astype(str) for level in expected.index.levels]
    )
    # the reference's feature means add in another order: equal up to rounding (rtol 1e-7)
    np.testing.assert_allclose(got.sort_index().to_numpy(), expected.sort_index().to_numpy())
    assert len(got) == len(expected)


@pytest.mark.parametrize("n_keys", [40, 10_000_000])
def test_first_rows_equal_drop_duplicates(n_keys: int) -> None:
    rng = np.random.default_rng(n_keys)
    key = rng.integers(0, 40, 3000) * (n_keys // 40)
    expected = pd.Series(key).drop_duplicates().index.to_numpy()
    np.testing.assert_array_equal(canonical.first_rows(key, n_keys), expected)


@pytest.mark.parametrize("dtype", ["str", "string", object])
def test_run_names_and_precursor_ids_equal_the_pandas_forms(dtype: object) -> None:
    # Arrow-backed strings ("str", "string") take the Arrow paths, object the pandas ones
    runs = pd.Series(["d/A_01.raw", None, "C:\\x\\B.mzML", "A_01.d", "d/A_01.raw"], dtype=dtype)
    # the pandas form (run_names before its Arrow path)
    expected_runs = runs.map({v: run_name(v) for v in runs.dropna().unique()}, na_action="ignore")
    if isinstance(runs.dtype, pd.StringDtype) and runs.dtype.na_value is pd.NA:
        expected_runs = expected_runs.astype(runs.dtype)
    pd.testing.assert_series_equal(run_names(runs), expected_runs)
    peptides = pd.Series(["PEPK", None, "AAR", "MK", "PEPK"], dtype=dtype)
    charges = pd.Series([2.0, 3.0, np.nan, -1.0, 2.0])
    expected = (
        peptides.astype("string") + "_" + charges.astype("Int64").astype("string").fillna("NA")
    )
    pd.testing.assert_series_equal(_precursor_ids(peptides, charges), expected)
    assert _precursor_ids(peptides, charges).tolist()[:3] == ["PEPK_2", pd.NA, "AAR_NA"]


@pytest.mark.parametrize(("n_groups", "special"), [(900, "nan"), (900, ""), (30, ""), (60, "zero")])
def test_group_median_is_numpy_median_bit_for_bit(n_groups: int, special: str) -> None:
    # groups of one and two values and sorted small groups (up to 64 values) take shortcuts:
    # the same bits as numpy.median (30 groups of 2,500 values: sizes around 83, numpy.median)
    rng = np.random.default_rng(11)
    codes = rng.integers(0, n_groups, 2500)
    values = rng.normal(size=2500) * 10.0 ** rng.integers(-5, 5, 2500)
    if special == "nan":
        values[rng.integers(0, 2500, 4)] = np.nan
    if special == "zero":
        values[rng.integers(0, 2500, 300)] = 0.0
        values[rng.integers(0, 2500, 300)] = -0.0
    got = GroupMedian(codes, n_groups)(values)
    expected = np.array(
        [np.median(values[codes == g]) if (codes == g).any() else np.nan for g in range(n_groups)]
    )
    np.testing.assert_array_equal(got.view(np.int64), expected.view(np.int64))


def test_shared_quantiles_equal_separate_calls() -> None:
    rng = np.random.default_rng(12)
    for n in (2, 7, 150, 4001):
        x = rng.standard_t(3, size=n)
        q = _quantiles(x)
        np.testing.assert_array_equal(q[1:3], np.quantile(x, [0.25, 0.75]))
        np.testing.assert_array_equal(q[[0, 3]], np.quantile(x, [0.001, 0.999]))
        assert silverman_bandwidth(x, q) == silverman_bandwidth(x)
        for a, b in zip(kde_grid(x, 0.3, q), kde_grid(x, 0.3), strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("series", "expected"),
    [
        (pd.Series([0, 1, 1, 0]), [False, True, True, False]),
        (pd.Series([0, 1], dtype=np.uint8), [False, True]),
        (pd.Series([0.0, 1.0, np.nan]), [False, True, pd.NA]),
        (pd.Series([1, 0, None], dtype="Int64"), [True, False, pd.NA]),
    ],
)
def test_parse_flag_numbers(series: pd.Series, expected: list[object]) -> None:
    got = parse_flag(series, Path("x.tsv"), "Decoy")
    assert str(got.dtype) == "boolean"
    assert got.tolist() == expected


@pytest.mark.parametrize(
    "series", [pd.Series([0, 2, 1]), pd.Series([0.0, -1.5]), pd.Series([np.inf, 1.0])]
)
def test_parse_flag_rejects_other_numbers(series: pd.Series) -> None:
    with pytest.raises(InputFormatError, match=r"'Decoy' must be 0/1 or true/false, found"):
        parse_flag(series, Path("x.tsv"), "Decoy")


def test_features_per_protein_on_both_paths() -> None:
    rng = np.random.default_rng(13)
    codes = rng.integers(0, 30, 4000)
    features = codes * 5 + rng.integers(0, 5, 4000)  # each feature in one protein
    expected = pd.DataFrame({"p": codes, "f": features}).drop_duplicates()["p"].value_counts()
    got = _features_per_protein(codes, features, 32)
    np.testing.assert_array_equal(got[expected.index], expected.to_numpy())
    assert got[30:].tolist() == [0, 0]
    features[:50] = rng.integers(0, 150, 50)  # some features now in several proteins
    features[50] = -1  # and a null one
    pairs = pd.DataFrame({"p": codes, "f": features}).drop_duplicates()
    expected = pairs["p"].value_counts()
    got = _features_per_protein(codes, features, 32)
    np.testing.assert_array_equal(got[expected.index], expected.to_numpy())


def test_distinct_values_and_counts_of_categoricals() -> None:
    series = pd.Series(["b", "a", "b", None, "c"], dtype="category").cat.add_categories(["z"])
    assert canonical.n_distinct(series) == series.nunique() == 3  # "z" unused, null not counted
    assert sorted(canonical.distinct_values(series.dropna())) == sorted(series.dropna().unique())
    assert canonical.distinct_values(series)[-1] is np.nan  # a null is a value, as in unique()
    plain = pd.Series(["b", "a", "b"])
    assert canonical.distinct_values(plain) == ["b", "a"]
    assert canonical.n_distinct(plain) == 2


def test_first_rows_over_several_blocks() -> None:
    """``first_rows`` scans the rows a block at a time: keys first seen in later blocks, and at
    a block's first and last row, give ``drop_duplicates``' positions."""
    from pepmix.canonical import _FIRST_ROWS_BLOCK

    rng = np.random.default_rng(5)
    n = 3 * _FIRST_ROWS_BLOCK + 17
    key = rng.integers(0, 50, n).astype(np.int64)
    key[_FIRST_ROWS_BLOCK] = 50  # first at a block's first row
    key[2 * _FIRST_ROWS_BLOCK - 1] = 51  # first at a block's last row
    key[-1] = 52  # first at the last row
    expected = np.asarray(pd.Series(key).drop_duplicates().index, dtype=np.int64)
    np.testing.assert_array_equal(canonical.first_rows(key, 53), expected)
    np.testing.assert_array_equal(canonical.first_rows(key[:0], 53), expected[:0])
