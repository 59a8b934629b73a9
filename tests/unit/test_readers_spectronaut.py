"""Spectronaut long-report reader on a real fragment-level sample.

Expected counts were computed once, independently of the reader, with pandas on the raw file:
``F.PeakArea`` summed per (``PG.ProteinGroups``, ``EG.PrecursorId``, ``R.FileName``) over rows
with ``F.ExcludedFromQuantification == False``, sums > 0.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pepmix.errors import InputFormatError
from pepmix.ingest import read_input
from pepmix.readers import spectronaut as reader_module
from pepmix.readers._support import table_header

from .format_helpers import value as _value

DATA = Path(__file__).resolve().parents[1] / "data" / "formats" / "spectronaut"
REPORT = DATA / "msstatsconvert_spectronaut_slice.csv"
PROTEIN = "1/sp|O75475|PSIP1_HUMAN"


def _read(path: Path, **options: object) -> pd.DataFrame:
    return read_input({"name": "b1", "format": "spectronaut", "path": str(path), **options})


def test_fragment_level_counts_and_values() -> None:
    table = _read(REPORT)
    counts = (table["protein"].nunique(), table["feature"].nunique(), table["run"].nunique())
    assert (*counts, len(table)) == (1, 9, 6, 54)
    assert set(table["protein"]) == {PROTEIN}
    # 3 non-excluded fragments of _ASNEDVTK_.2 in run 008_A sum to 163.220419...
    assert _value(table, "_ASNEDVTK_.2", "lgillet_I150211_008_A") == pytest.approx(163.220419)
    row = table[table["feature"] == "_ASNEDVTK_.2"].iloc[0]
    assert row["peptide"] == "ASNEDVTK" and row["charge"] == 2
    assert table["q_value"].notna().all() and table["pg_q_value"].notna().all()
    assert not table["contaminant"].any()
    assert table["decoy"].isna().all()  # no EG.IsDecoy column in this export


def test_excluded_fragments_left_out() -> None:
    raw = pd.read_csv(REPORT)
    keep = raw[~raw["F.ExcludedFromQuantification"]]
    table = _read(REPORT)
    assert table["intensity"].sum() == pytest.approx(keep["F.PeakArea"].sum())
    assert table["intensity"].sum() < raw["F.PeakArea"].sum()


def test_precursor_level_and_chunks() -> None:
    table = _read(REPORT, level="precursor")
    assert len(table) == 54
    assert _value(table, "_ASNEDVTK_.2", "lgillet_I150211_008_A") == pytest.approx(151.586203)
    chunked = _read(REPORT, chunk_rows=40)
    assert chunked["intensity"].sum() == pytest.approx(_read(REPORT)["intensity"].sum())
    assert len(chunked) == 54


def test_decoy_column_and_filtered_values(tmp_path: Path) -> None:
    raw = pd.read_csv(REPORT, dtype=str, keep_default_na=False)
    raw["EG.IsDecoy"] = "False"
    decoy = raw["EG.PrecursorId"] == "_ASNEDVTK_.2"
    raw.loc[decoy, "EG.IsDecoy"] = "True"
    raw.loc[raw.index[:2], "F.PeakArea"] = "Filtered"
    path = tmp_path / "report.tsv"
    raw.to_csv(path, sep="\t", index=False)
    table = _read(path)
    assert set(table.loc[table["decoy"], "feature"]) == {"_ASNEDVTK_.2"}


def test_missing_column(tmp_path: Path) -> None:
    raw = pd.read_csv(REPORT, dtype=str, keep_default_na=False)
    path = tmp_path / "report.csv"
    raw.drop(columns=["R.FileName", "R.Condition"]).to_csv(path, index=False)
    with pytest.raises(InputFormatError, match=r"report\.csv: missing column\(s\) R\.FileName;"):
        _read(path)
    # without R.FileName the run falls back to R.Condition, which here holds conditions
    raw.drop(columns=["R.FileName"]).to_csv(path, index=False)
    with pytest.raises(InputFormatError, match=r"R\.Condition holds conditions, not runs"):
        _read(path)


@pytest.mark.parametrize(
    ("fmt", "path"),
    [
        ("spectronaut", REPORT),
    ],
)
def test_signature_matches_sample(fmt: str, path: Path) -> None:
    header, _ = table_header(path)
    assert set(reader_module.SIGNATURE[fmt]) <= set(header)
    others = {k: v for k, v in reader_module.SIGNATURE.items() if k != fmt}
    assert not any(set(v) <= set(header) for v in others.values())
