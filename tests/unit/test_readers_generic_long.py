"""The generic long reader's precursor ids built per distinct (peptide, charge) pair
(:func:`pepmix.readers.generic._precursor_categories`) against the reference form, the id
joined on every row (:func:`pepmix.readers.generic._precursor_ids`) and made categorical by
:func:`pepmix.canonical.conform`: the canonical tables must be equal, categories (values, order
and dtype) included, for Parquet and text inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pepmix import canonical
from pepmix.readers import generic


def _reference(peptide: pd.Series, charge: pd.Series) -> tuple[pd.Series, pd.Series]:
    return peptide, generic._precursor_ids(peptide, charge)


def _both(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[pd.DataFrame, pd.DataFrame]:
    new = generic.read_long(path, {})
    with monkeypatch.context() as patch:
        patch.setattr(generic, "_precursor_categories", _reference)
        old = generic.read_long(path, {})
    return new, old


def _assert_same_canonical(new: pd.DataFrame, old: pd.DataFrame) -> None:
    a, b = canonical.conform(new, "x"), canonical.conform(old, "x")
    pd.testing.assert_frame_equal(a, b)
    for column in canonical.IDENTIFIERS:
        assert a[column].cat.categories.dtype == b[column].cat.categories.dtype
        assert list(a[column].cat.categories) == list(b[column].cat.categories)


def _table(n: int, seed: int, spaces: bool) -> pd.DataFrame:
    """Without ``spaces``, conform keeps the categories' order (no stripping re-sorts them)."""
    rng = np.random.default_rng(seed)
    peptides = np.array(["PEPK", "AAR", "PÉPK", "M(ox)K", "z", "AAR_2", "b"], dtype=object)
    if spaces:
        peptides = np.append(peptides, [" PEPK", "AAR "])
    charges = np.array([2.0, 3.0, np.nan, -1.0, 12.0, 1.0])
    return pd.DataFrame(
        {
            "protein": rng.choice(["P1", "P2", "P3 " if spaces else "P3"], n),
            "peptide": rng.choice(peptides, n),
            "charge": rng.choice(charges, n),
            "run": rng.choice(["d/r1.raw", "r2", "r3.mzML"], n),
            "intensity": rng.uniform(1, 100, n),
        }
    )


@pytest.mark.parametrize("suffix", [".parquet", ".tsv"])
@pytest.mark.parametrize(("seed", "spaces"), [(1, False), (2, False), (3, True)])
def test_precursor_categories_give_the_reference_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str, seed: int, spaces: bool
) -> None:
    path = tmp_path / f"long{suffix}"
    table = _table(400, seed, spaces)
    if suffix == ".parquet":
        table.to_parquet(path, index=False)
    else:
        table.to_csv(path, sep="\t", index=False)
    new, old = _both(path, monkeypatch)
    assert isinstance(new["feature"].dtype, pd.CategoricalDtype)  # the new path was taken
    assert not isinstance(old["feature"].dtype, pd.CategoricalDtype)
    assert new["feature"].astype(object).tolist() == old["feature"].astype(object).tolist()
    _assert_same_canonical(new, old)


def test_precursor_categories_of_null_peptides_and_charges() -> None:
    peptide = pd.Series(["PEPK", None, "AAR", "MK", "PEPK", "AAR"], dtype="str")
    charge = pd.Series([2.0, 3.0, np.nan, -1.0, 2.0, np.nan])
    peptides, feature = generic._precursor_categories(peptide, charge)
    shown = [None if pd.isna(v) else v for v in feature.tolist()]
    assert shown == ["PEPK_2", None, "AAR_NA", "MK_-1", "PEPK_2", "AAR_NA"]
    assert list(feature.cat.categories) == ["AAR_NA", "MK_-1", "PEPK_2"]
    expected = generic._precursor_ids(peptide, charge).astype("category")
    pd.testing.assert_series_equal(feature, expected)
    pd.testing.assert_series_equal(peptides, peptide.astype("category"))


def _parquet_with_groups(path: Path, seed: int) -> pd.DataFrame:
    """Strings over 4 row groups (each its own dictionary: values first seen in different
    orders), nulls, Unicode and whitespace, and one column written from a categorical with an
    unused category (stored as a dictionary type)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    n = 400
    words = np.array(["b", "a", "É", " c", "c ", "zz", "a_1", "ab"], dtype=object)
    protein = rng.choice(words, n).astype(object)
    protein[rng.choice(n, 15, replace=False)] = None
    peptide = pd.Categorical(rng.choice(["K", "R", "AK"], n), categories=["R", "unused", "K", "AK"])
    frame = pd.DataFrame(
        {
            "protein": protein,
            "peptide": peptide,
            "run": rng.choice(["r2", "r1"], n),
            "intensity": rng.uniform(1, 100, n),
        }
    )
    table = pa.Table.from_pandas(frame, preserve_index=False)
    # the rows in reverse in the later groups: each group's dictionary in another order
    table = pa.concat_tables([table.slice(0, 100), table.slice(100).take(np.arange(299, -1, -1))])
    pq.write_table(table, path, row_group_size=100)
    return frame


@pytest.mark.parametrize("seed", [1, 2])
def test_read_table_categories_equal_astype_category(tmp_path: Path, seed: int) -> None:
    """``read_table(categories=...)`` of a Parquet file gives, for its string columns, what
    ``astype("category")`` gives for the strings read plainly: the same values, categories
    (in use only, sorted, same dtype) and codes; other columns unchanged."""
    from pepmix.readers._common import read_table

    path = tmp_path / "t.parquet"
    _parquet_with_groups(path, seed)
    plain = read_table(path)
    read = read_table(path, categories=("protein", "peptide", "intensity", "absent"))
    assert list(read.columns) == list(plain.columns)
    for column in ("protein",):
        expected = plain[column].astype("category")
        got = read[column]
        assert got.dtype == expected.dtype
        assert got.cat.categories.dtype == expected.cat.categories.dtype
        assert list(got.cat.categories) == list(expected.cat.categories)
        assert got.cat.codes.dtype == expected.cat.codes.dtype
        np.testing.assert_array_equal(got.cat.codes.to_numpy(), expected.cat.codes.to_numpy())
    # a column stored as a dictionary comes back as the plain read gives it (unused category
    # included), a column not listed or not text unchanged
    assert list(read["peptide"].cat.categories) == ["R", "unused", "K", "AK"]
    pd.testing.assert_series_equal(read["peptide"], plain["peptide"])
    pd.testing.assert_series_equal(read["run"], plain["run"])
    pd.testing.assert_series_equal(read["intensity"], plain["intensity"])


def test_read_long_same_table_with_dictionary_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The canonical table of a Parquet long table is the same whether its proteins and
    peptides are read as dictionaries or as strings (``categories`` ignored)."""
    from pepmix.readers import _common

    frame = _table(500, 4, spaces=False)  # (no stripping: conform keeps the order it gets)
    path = tmp_path / "long.parquet"
    frame.to_parquet(path, row_group_size=128)
    new = generic.read_long(path, {})
    assert isinstance(new["protein"].dtype, pd.CategoricalDtype)
    plain = _common.read_table

    def strings_only(*args: object, **kwargs: object) -> pd.DataFrame:
        kwargs.pop("categories", None)
        return plain(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(generic, "read_table", strings_only)
    old = generic.read_long(path, {})
    assert not isinstance(old["protein"].dtype, pd.CategoricalDtype)
    _assert_same_canonical(new, old)
