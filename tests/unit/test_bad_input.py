"""Bad inputs give one-line :class:`~pepmix.errors.PepmixError` messages naming file and problem.

Each case goes through the public entry points (:func:`pepmix.ingest.read_input`,
:func:`pepmix.ingest.merge_batches`, :func:`pepmix.samples.read_sample_sheet`) on small
temporary files.
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import pandas as pd
import pytest

from pepmix.errors import InputFormatError, PepmixError, SampleSheetError
from pepmix.ingest import combine_duplicates, merge_batches, read_input
from pepmix.samples import read_sample_sheet

HEADER = "protein\tpeptide\trun\tintensity\n"
GOOD_ROWS = "P1\tPEPK\tr1\t100\nP1\tPEPK\tr2\t200\nP2\tSEQR\tr1\t50\nP2\tSEQR\tr2\t60\n"


def _long(path: Path) -> pd.DataFrame:
    return read_input({"name": "b1", "format": "generic_long", "path": str(path)})


def _one_line(err: pytest.ExceptionInfo[PepmixError], path: Path, *needles: str) -> str:
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message
    for needle in needles:
        assert needle in message, message
    return message


def test_truncated_text_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.tsv"
    text = HEADER + GOOD_ROWS
    path.write_text(text[: len(text) - 7])  # cut inside the last row
    with pytest.raises(InputFormatError) as err:
        _long(path)
    _one_line(err, path, "line 5", "has 2 of 4 fields", "truncated")


def test_truncated_gzip_file(tmp_path: Path) -> None:
    data = gzip.compress((HEADER + GOOD_ROWS * 50).encode())
    path = tmp_path / "cut.tsv.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFormatError) as err:
        _long(path)
    _one_line(err, path, "truncated or corrupt")


def test_semicolon_table_is_sniffed(tmp_path: Path) -> None:
    # the separator is sniffed from the header, so a semicolon table reads fine
    path = tmp_path / "semicolon.csv"
    path.write_text(HEADER.replace("\t", ";") + GOOD_ROWS.replace("\t", ";"))
    assert len(_long(path)) == 4


def test_decimal_comma_is_named(tmp_path: Path) -> None:
    path = tmp_path / "european.csv"
    path.write_text("protein;peptide;run;intensity\nP1;PEPK;r1;100,5\n")
    with pytest.raises(InputFormatError) as err:
        _long(path)
    _one_line(err, path, "'intensity'", "'100,5'", "decimal comma")


def test_wrong_separator_or_header_lists_found_columns(tmp_path: Path) -> None:
    spaces = tmp_path / "spaces.txt"
    spaces.write_text("protein peptide run intensity\nP1 PEPK r1 100\n")
    with pytest.raises(InputFormatError) as err:
        _long(spaces)
    _one_line(err, spaces, "cannot find a column separator")
    other = tmp_path / "other_header.tsv"
    other.write_text("Protein,Peptide,Run,Intensity\nP1,PEPK,r1,100\n")
    with pytest.raises(InputFormatError) as err:
        _long(other)
    _one_line(
        err,
        other,
        "missing column(s) protein, peptide, run, intensity",
        "columns present: Protein, Peptide, Run, Intensity",
    )


def test_semicolon_sample_sheet_lists_found_columns(tmp_path: Path) -> None:
    path = tmp_path / "samples.tsv"
    path.write_text("run;condition\nr1;A\nr2;B\n")
    with pytest.raises(SampleSheetError) as err:
        read_sample_sheet(path)
    _one_line(err, path, "missing column(s) run, condition", "columns present: run;condition")


def test_non_numeric_intensity(tmp_path: Path) -> None:
    path = tmp_path / "text.tsv"
    path.write_text(HEADER + GOOD_ROWS + "P3\tAAAK\tr1\thigh\n")
    with pytest.raises(InputFormatError) as err:
        _long(path)
    _one_line(err, path, "column 'intensity'", "1 value(s) that are not numbers", "'high'")


def test_negative_intensity(tmp_path: Path) -> None:
    path = tmp_path / "log.tsv"
    path.write_text(HEADER + GOOD_ROWS + "P3\tAAAK\tr2\t-3.5\n")
    with pytest.raises(InputFormatError) as err:
        _long(path)
    _one_line(err, path, "1 negative intensity value(s)", "-3.5", "'AAAK'", "'r2'", "linear")


def test_duplicate_feature_run_rows_are_summed_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # generic_long keeps repeated rows; combine_duplicates sums them and logs the count
    path = tmp_path / "dup.tsv"
    path.write_text(HEADER + GOOD_ROWS + "P1\tPEPK\tr1\t11\n")
    table = _long(path)
    assert len(table) == 5
    with caplog.at_level(logging.INFO, logger="pepmix.ingest"):
        combined = combine_duplicates(table)
    assert len(combined) == 4
    row = combined[(combined["feature"] == "PEPK") & (combined["run"] == "r1")]
    assert float(row["intensity"].iloc[0]) == 111.0
    assert "summed 5 rows into 4" in caplog.text


def test_runs_absent_from_sheet(tmp_path: Path) -> None:
    data = tmp_path / "data.tsv"
    data.write_text(HEADER + GOOD_ROWS + "P1\tPEPK\tr3\t10\n")
    sheet_path = tmp_path / "samples.tsv"
    sheet_path.write_text("run\tcondition\nr1\tA\nr2\tB\nr9\tB\n")
    sheet = read_sample_sheet(sheet_path)
    with pytest.raises(SampleSheetError) as err:
        merge_batches([_long(data)], sheet, {}, sheet_source=str(sheet_path))
    _one_line(
        err,
        sheet_path,
        "run(s) in the data but not in the sheet: r3",
        "run(s) in the sheet but not in the data: r9",
    )


def test_empty_condition_cell(tmp_path: Path) -> None:
    path = tmp_path / "samples.tsv"
    path.write_text("run\tcondition\nr1\tA\nr2\t\nr3\tB\n")
    with pytest.raises(SampleSheetError) as err:
        read_sample_sheet(path)
    _one_line(err, path, "line 3", "empty 'condition'")


def test_undecodable_bytes(tmp_path: Path) -> None:
    path = tmp_path / "latin1.tsv"
    rows = "".join(f"P1\tPEP{i}K\tr1\t100\n" for i in range(5000))
    path.write_bytes((HEADER + rows).encode() + "P2\tCAFÉ\tr1\t1\n".encode("latin-1"))
    with pytest.raises(InputFormatError) as err:
        _long(path)
    _one_line(err, path, "not a UTF-8 text table")
