"""``canonical.as_category``'s fast paths (Arrow-backed categories read from their ends by
Arrow; ``str`` categories stripped in a list comprehension) against the reference form, the
pandas string methods: ``Index.str.strip`` of the categories as objects, then ``np.unique`` of
the stripped text when any changed, else the categories as they were."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pepmix.canonical import as_category
from pepmix.errors import InputFormatError
from pepmix.readers._common import check_no_nul

# the ends str.strip removes (str.isspace), some Arrow may not call whitespace, and others
ENDS = ["", " ", "\t", "\n", "\xa0", "\u2003", "\x1c", "\x1f", "\u3000", "\x85", "x", "é", "_"]


def _reference(series: pd.Series) -> pd.Series:
    """as_category before the fast paths (pandas string methods on the categories)."""
    if not isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype("category")
    cats = series.cat.categories
    if not pd.api.types.is_string_dtype(cats.dtype) or cats.dtype == object:
        cats_text = pd.Index(cats.astype(str), dtype=object)
    else:
        cats_text = pd.Index(cats.to_numpy(dtype=object), dtype=object)
    text = cats_text.str.strip()
    if not text.equals(cats_text):
        codes = series.cat.codes.to_numpy()
        uniq, inverse = np.unique(text.to_numpy(dtype=str), return_inverse=True)
        new_codes = np.where(codes >= 0, inverse[np.maximum(codes, 0)], -1)
        return pd.Series(
            pd.Categorical.from_codes(new_codes, categories=pd.Index(uniq, dtype=object)),
            index=series.index,
        )
    if not cats.equals(cats_text):
        return series.cat.rename_categories(cats_text)
    return series


def _assert_same(new: pd.Series, reference: pd.Series) -> None:
    pd.testing.assert_series_equal(new, reference)
    assert new.cat.categories.dtype == reference.cat.categories.dtype
    assert list(new.cat.categories) == list(reference.cat.categories)


@pytest.mark.parametrize("dtype", ["str", "string[pyarrow]", "string[python]", object])
@pytest.mark.parametrize("end", ENDS)
@pytest.mark.parametrize("where", ["{}PROT", "PROT{}", "{}X{}", "{}"])
def test_as_category_equals_reference(dtype: object, end: str, where: str) -> None:
    values = ["PEPTIDE2", "A B", where.format(end, end), None, "PEPTIDE2"]
    series = pd.Series(values, dtype=dtype).astype("category")
    new, reference = as_category(series), _reference(series)
    _assert_same(new, reference)
    changed = end != "" and end.isspace()
    assert (list(new.cat.categories) != list(series.cat.categories)) == changed


def test_as_category_without_whitespace_keeps_the_series() -> None:
    series = pd.Series(["b", "a", None, "b"], dtype="str").astype("category")
    assert as_category(series) is series
    _assert_same(as_category(series), _reference(series))


@pytest.mark.parametrize("values", [[3, 1, 2, 3], [1.5, None, 2.0], ["x", 2, "y "]])
def test_as_category_of_other_values_equals_reference(values: list[object]) -> None:
    series = pd.Series(values, dtype=object).astype("category")
    _assert_same(as_category(series), _reference(series))
    _assert_same(as_category(pd.Series(values, dtype=object)), _reference(pd.Series(values)))


@pytest.mark.parametrize("dtype", ["str", "string[pyarrow]", "string[python]", object])
def test_check_no_nul_finds_nul_in_any_string_index(tmp_path: Path, dtype: object) -> None:
    """Arrow-backed categories are searched by Arrow; the same values pass or fail."""
    path = tmp_path / "table.tsv"
    path.write_text("protein\nP1\n")
    check_no_nul(pd.Index(["P1", "P 2", ""], dtype=dtype), path, "protein")
    check_no_nul(pd.Series(["P1", None], dtype=dtype).astype("category").cat.categories, path, "x")
    for bad in (["P1", "P\x002"], ["\x00"], ["P1\x00"]):
        with pytest.raises(InputFormatError, match="NUL byte"):
            check_no_nul(pd.Index(bad, dtype=dtype), path, "protein")
