"""MSstats long-format reader (``msstats``) on real samples.

Expected counts were computed once, independently of the reader, with pandas on the raw files:
light rows, intensities > 0 summed per (ProteinName, PeptideSequence, PrecursorCharge, Run), groups
with a positive sum counted.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pepmix.errors import InputFormatError
from pepmix.ingest import read_input

from .format_helpers import counts as _counts
from .format_helpers import value as _value

DATA = Path(__file__).resolve().parents[1] / "data" / "formats" / "msstats"


def _read(path: Path, fmt: str = "msstats", **options: object) -> pd.DataFrame:
    return read_input({"name": "b1", "format": fmt, "path": str(path), **options})


def test_msstats_example_counts_and_value() -> None:
    table = _read(DATA / "MSstats_DDARawData_slice.csv")
    assert _counts(table) == (2, 25, 18, 307)
    assert _value(table, "D.GPLTGTYR_23_23", "15") == pytest.approx(31156.11)
    assert not table.duplicated(["protein", "feature", "run"]).any()
    assert table["unique"].all()


def test_fragpipe_msstats_counts_value_and_contaminants() -> None:
    table = _read(DATA / "msstatsconvert_fragpipe_MSstats.csv")
    assert _counts(table) == (10, 32, 6, 76)
    run = "20170612_QEP8_JaBA_SA_LT01_V1_LC12_8_2FX2D1mS123fM2_sample03"
    assert _value(table, "EC[57.0215]C[57.0215]HGDLLEC[57.0215]ADDRADLAK_3", run) == 77687480.0
    contaminant = table["protein"].str.startswith("contam_")
    assert int(contaminant.sum()) == 44
    assert table.loc[contaminant, "contaminant"].all()
    assert not table.loc[~contaminant, "contaminant"].any()


def _write(tmp_path: Path, rows: list[str]) -> Path:
    header = (
        "ProteinName,PeptideSequence,PrecursorCharge,FragmentIon,ProductCharge,"
        "IsotopeLabelType,Condition,BioReplicate,Run,Intensity"
    )
    path = tmp_path / "msstats.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_transitions_summed_heavy_dropped_missing_skipped(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        [
            "P1,PEPTIDEK,2,y4,1,L,A,1,r1,100",
            "P1,PEPTIDEK,2,y5,1,L,A,1,r1,50",
            "P1,PEPTIDEK,2,y6,1,L,A,1,r1,NA",
            "P1,PEPTIDEK,2,y4,1,H,A,1,r1,1000",
            "P1,PEPTIDEK,2,y4,1,L,A,2,r2,0",
            "P1,PEPTIDEK,2,y5,1,L,A,2,r2,NA",
            "P2,PEPTIDEK,3,y4,1,L,B,3,r3,7",
        ],
    )
    table = _read(path)
    assert _value(table, "PEPTIDEK_2", "r1") == 150.0
    assert set(table["run"]) == {"r1", "r3"}
    # PEPTIDEK is under two proteins: shared
    assert not table["unique"].any()
    heavy = _read(path, label="heavy")
    assert _value(heavy, "PEPTIDEK_2", "r1") == 1000.0


def test_missing_column_names_column_and_file(tmp_path: Path) -> None:
    frame = pd.read_csv(DATA / "MSstats_DDARawData_slice.csv", dtype=str, keep_default_na=False)
    bad = tmp_path / "no_charge.csv"
    frame.drop(columns=["PrecursorCharge"]).to_csv(bad, index=False)
    with pytest.raises(InputFormatError) as err:
        _read(bad)
    message = str(err.value)
    assert "PrecursorCharge" in message
    assert str(bad) in message
    assert "\n" not in message
