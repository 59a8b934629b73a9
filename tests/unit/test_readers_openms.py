"""OpenMS / quantms reader (``openms``): MSstats CSV and mzTab, on real samples.

Expected counts were computed once, independently of the reader: MSstats CSVs with pandas (light
rows, leading ``.`` removed from sequences, intensities > 0 summed per protein, sequence, charge and
``Reference``); the mzTab by splitting the PEP lines and counting cells > 0 of
``peptide_abundance_study_variable[1..3]``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pepmix.errors import InputFormatError
from pepmix.ingest import combine_duplicates, read_input

from .format_helpers import counts as _counts
from .format_helpers import value as _value

DATA = Path(__file__).resolve().parents[1] / "data" / "formats" / "openms_quantms"
MZTAB = DATA / "ProteomicsLFQ_1_out.mzTab"


def _read(path: Path, **options: object) -> pd.DataFrame:
    return read_input({"name": "b1", "format": "openms", "path": str(path), **options})


def test_mztab_counts_runs_and_values() -> None:
    table = _read(MZTAB)
    assert _counts(table) == (6, 40, 3, 68)
    assert set(table["run"]) == {"BSA1_F1+BSA1_F2", "BSA2_F1+BSA2_F2", "BSA3_F1+BSA3_F2"}
    feature = "SHC(Carbamidomethyl)IAEVEK_3"
    assert _value(table, feature, "BSA1_F1+BSA1_F2") == pytest.approx(1.35815075e06)
    shared = table[table["feature"] == "LSSPATLNSR_2"]
    assert len(shared) == 1
    assert not shared["unique"].iloc[0]
    assert not table["decoy"].any()
    assert len(combine_duplicates(table)) == 68


def test_mztab_study_variable_pooling_assays_is_refused(tmp_path: Path) -> None:
    text = MZTAB.read_text().replace(
        "study_variable[1]-assay_refs\tassay[1]", "study_variable[1]-assay_refs\tassay[1],assay[2]"
    )
    path = tmp_path / "pooled.mzTab"
    path.write_text(text)
    with pytest.raises(InputFormatError, match=r"study_variable\[1\] pools 2 assays"):
        _read(path)


def test_mztab_truncated_pep_row(tmp_path: Path) -> None:
    lines = MZTAB.read_text().splitlines()
    first_pep = next(i for i, line in enumerate(lines) if line.startswith("PEP\t"))
    lines[first_pep] = lines[first_pep][:40]
    path = tmp_path / "cut.mzTab"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputFormatError) as err:
        _read(path)
    assert str(path) in str(err.value)
    assert f"line {first_pep + 1}" in str(err.value)


def test_proteomicslfq_msstats_csv_with_fractions() -> None:
    table = _read(DATA / "ProteomicsLFQ_1_out.msstats.csv")
    assert _counts(table) == (5, 39, 6, 67)
    assert _value(table, "AEFVEVTK_2", "BSA1_F2") == pytest.approx(1.54652e08)
    assert set(table["fraction"]) == {"1", "2"}
    assert set(table.loc[table["run"] == "BSA1_F2", "fraction"]) == {"2"}


def test_quantms_msstats_in_counts_and_contaminants() -> None:
    table = _read(DATA / "PXD040438_msstats_in_slice.csv")
    assert _counts(table) == (40, 1036, 2, 1809)
    assert set(table["run"]) == {"03COVID", "05COVID"}
    assert _value(table, "IQEVAGSLIFR_2", "05COVID") == 1263118.0
    assert int(table["contaminant"].sum()) == 338


def test_msstatsconverter_leading_dot_removed() -> None:
    table = _read(DATA / "MSstatsConverter_1_out_slice.csv")
    assert _counts(table) == (20, 31, 12, 372)
    feature = "(Carbamidomethyl)AETAAQDVQQK_2"
    assert _value(table, feature, "JD_06232014_sample1-A") == 21678200.0
    assert not table["peptide"].str.startswith(".").any()


def test_missing_column_names_column_and_file(tmp_path: Path) -> None:
    frame = pd.read_csv(DATA / "ProteomicsLFQ_1_out.msstats.csv", dtype=str)
    bad = tmp_path / "no_intensity.csv"
    frame.drop(columns=["Intensity"]).to_csv(bad, index=False)
    with pytest.raises(InputFormatError) as err:
        _read(bad)
    message = str(err.value)
    assert "Intensity" in message
    assert str(bad) in message
    assert "\n" not in message
