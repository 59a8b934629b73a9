"""The normalisation's shared run order, its reuse of the run medians for ``median`` and its
protein-ratio layout built in a second thread give the results of the serial computation they
replaced, bit for bit (the old forms are written out here)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from pepmix import normalization
from pepmix.normalization import METHODS, RunMedians, normalize, run_medians


def cohort(seed: int, n_proteins: int = 400, n_runs: int = 9) -> pd.DataFrame:
    """A canonical table with missing cells, even and odd counts per run, tied values (one
    decimal) and runs in an unsorted order of first appearance."""
    rng = np.random.default_rng(seed)
    rows = []
    runs = [f"R{r}" for r in rng.permutation(n_runs)]
    for p in range(n_proteins):
        for f in range(int(rng.integers(1, 5))):
            level = rng.normal(20, 2)
            for r, run in enumerate(runs):
                if rng.random() < 0.2:
                    continue
                value = np.round(level + 0.3 * r + rng.normal(0, 0.5), 1)
                rows.append((f"P{p}", f"P{p}_f{f}", f"P{p}_f{f}", run, 2.0**value, f"b{r % 2}"))
    table = pd.DataFrame(
        rows, columns=["protein", "feature", "peptide", "run", "intensity", "batch"]
    )
    for col in ("protein", "feature", "peptide", "run", "batch"):
        table[col] = table[col].astype("category")
    return table


def old_run_medians(runs: pd.Series, values: pd.Series) -> pd.Series:
    """The grouped median before :class:`RunMedians`: pandas' grouped median per run."""
    frame = pd.DataFrame({"run": runs, "value": values})
    med = frame.groupby("run", observed=True)["value"].median()
    med.index = med.index.astype(str)
    return med


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_run_medians_equal_the_grouped_median(seed: int) -> None:
    table = cohort(seed)
    values = pd.Series(np.log2(table["intensity"].to_numpy()))
    by_run = RunMedians(table["run"])
    new = by_run(values)
    old = old_run_medians(table["run"], values)
    assert list(new.index) == list(pd.unique(table["run"].astype(str)))
    # exact: both are the middle order statistic or the mean of the two middle ones
    pd.testing.assert_series_equal(new, old.reindex(new.index), check_names=False, rtol=0, atol=0)
    # the order is reused: a second set of values gives its own medians
    shifted = values * 3.0 - 1.0
    pd.testing.assert_series_equal(
        by_run(shifted), run_medians(table["run"], shifted), rtol=0, atol=0
    )
    assert not np.array_equal(by_run(shifted).to_numpy(), new.to_numpy())


def test_run_medians_nan_propagates() -> None:
    table = cohort(4, n_proteins=50)
    values = pd.Series(np.log2(table["intensity"].to_numpy()))
    values.iloc[0] = np.nan
    med = RunMedians(table["run"])(values)
    first = str(table["run"].iloc[0])
    assert np.isnan(med[first])
    assert med.drop(first).notna().all()


def old_median_shifts(table: pd.DataFrame, within_batch: bool) -> pd.Series:
    """``median``'s shifts as computed before the run medians were reused."""
    log2 = pd.Series(np.log2(table["intensity"].to_numpy()))
    med = old_run_medians(table["run"], log2)
    batch = table.groupby("run", observed=True)["batch"].first().astype(str)
    batch.index = batch.index.astype(str)
    group = batch.reindex(med.index) if within_batch else pd.Series("", index=med.index)
    return med - med.groupby(group).transform("median")


@pytest.mark.parametrize("within_batch", [False, True])
def test_median_shifts_equal_the_grouped_median_form(within_batch: bool) -> None:
    table = cohort(5)
    _, runs = normalize(table, method="median", within_batch=within_batch)
    expected = old_median_shifts(table, within_batch)
    got = runs.set_index(runs["run"].astype(str))["shift"]
    np.testing.assert_array_equal(got.reindex(expected.index).to_numpy(), expected.to_numpy())


def test_median_with_nan_takes_the_grouped_median() -> None:
    # a negative intensity is NaN on the log scale: the grouped median skips it
    table = cohort(6, n_proteins=80)
    table.loc[0, "intensity"] = -1.0
    with np.errstate(invalid="ignore"):
        _, runs = normalize(table, method="median")
    assert runs["shift"].notna().all()
    assert np.isnan(runs["median_before"]).sum() == 1


@pytest.mark.parametrize(
    ("method", "options"),
    [(m, {}) for m in METHODS if m != "reference"]
    + [
        ("reference", {"reference_proteins": ["P1", "P2", "P3", "regex:^P1\\d$"]}),
        ("protein_median", {"reference_proteins": ["regex:^P\\d\\d$"], "location": "median"}),
        ("protein_median", {"within_batch": True}),
        ("median", {"within_batch": True}),
    ],
)
def test_threaded_layout_equals_serial(
    method: str, options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    table = cohort(7, n_proteins=500)
    monkeypatch.setattr(normalization, "LAYOUT_THREAD", True)
    features, runs = normalize(table, method=method, **options)
    monkeypatch.setattr(normalization, "LAYOUT_THREAD", False)
    features_serial, runs_serial = normalize(table, method=method, **options)
    pd.testing.assert_frame_equal(features, features_serial, check_exact=True)
    pd.testing.assert_frame_equal(runs, runs_serial, check_exact=True)
    assert features["y"].notna().all()


def old_run_medians_numpy(runs: pd.Series, values: pd.Series) -> dict[str, float]:
    """numpy.median of each run's values (the form of ``median_after`` before
    :meth:`RunMedians.shifted`)."""
    frame = pd.DataFrame({"run": runs.astype(str), "value": values.to_numpy()})
    return {r: float(np.median(g.to_numpy())) for r, g in frame.groupby("run")["value"]}


@pytest.mark.parametrize("method", METHODS)
def test_median_after_equals_numpy_median_of_y(method: str) -> None:
    options = {"reference_proteins": ["regex:^P\\d$"]} if method == "reference" else {}
    table = cohort(8)
    features, runs = normalize(table, method=method, **options)
    expected = old_run_medians_numpy(features["run"], features["y"])
    got = dict(zip(runs["run"].astype(str), runs["median_after"], strict=True))
    assert got.keys() == expected.keys()
    for run, value in expected.items():
        assert np.array_equal(got[run], value, equal_nan=True), (run, got[run], value)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 10])
def test_shifted_medians_are_exact_with_ties_and_infinities(n: int) -> None:
    rng = np.random.default_rng(n)
    values = np.round(rng.normal(0, 1e3, size=(5, n)), 0) / 7.0  # ties, inexact shifts
    values[1, 0] = -np.inf
    values[2, -1] = np.nan
    runs = pd.Series(np.repeat([f"r{i}" for i in range(5)], n)).astype("category")
    flat = pd.Series(values.ravel())
    by_run = RunMedians(runs)
    before = by_run(flat)
    shift = np.array([0.1, -1e-9, 3.3, 0.0, 1e5 / 3])
    offsets = np.repeat(shift, n)
    after = by_run.shifted(offsets)
    for i in range(5):
        with np.errstate(invalid="ignore"):
            assert np.array_equal(before.iloc[i], np.median(values[i]), equal_nan=True)
            expected = np.median(values[i] - shift[i])
        assert np.array_equal(after.iloc[i], expected, equal_nan=True), (i, after.iloc[i])
    assert np.isnan(after.iloc[2])


def old_run_positions(run: pd.Series, run_names: pd.Index) -> np.ndarray:
    """ProteinRatios' run positions before the categorical codes were read directly."""
    codes, uniques = pd.factorize(run)
    return run_names.get_indexer(pd.Index(uniques).astype(str))[codes]


@pytest.mark.parametrize("missing", [False, True])
def test_run_positions_through_the_codes_equal_the_factorized_form(missing: bool) -> None:
    from pepmix.protein_ratios import _run_positions

    values = ["b", "c", "a", "b", "z", "c", "a"] + ([None] if missing else [])
    # categories in another order than first appearance, one unused, one not among the runs
    run = pd.Series(values).astype(pd.CategoricalDtype(["z", "unused", "c", "b", "a"]))
    names = pd.Index(["a", "b", "c"])
    got = _run_positions(run, names)
    expected = old_run_positions(run, names)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got[:4], [1, 2, 0, 1])
    assert got[4] == -1
    np.testing.assert_array_equal(_run_positions(run.astype(object), names), expected)


def test_distinct_values_with_and_without_missing_codes() -> None:
    from pepmix.canonical import distinct_text, distinct_values, n_distinct

    full = pd.Series(["b", "a", "b"]).astype(pd.CategoricalDtype(["a", "b", "c"]))
    holed = pd.Series(["b", None, "b"]).astype(pd.CategoricalDtype(["a", "b", "c"]))
    assert sorted(distinct_text(full)) == ["a", "b"]
    assert n_distinct(full) == 2
    assert distinct_text(holed) == ["b"]
    assert n_distinct(holed) == 1
    got = distinct_values(holed)
    assert got[0] == "b" and len(got) == 2 and pd.isna(got[1])
