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
