"""Bad inputs give one-line :class:`~pepmix.errors.PepmixError` messages naming file and problem.

Each case goes through the public entry points (:func:`pepmix.ingest.read_input`,
:func:`pepmix.merge.merge_batches`, :func:`pepmix.samples.load_design`) on small
temporary files.
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from pepmix.errors import DesignError, InputFormatError, PepmixError, SampleSheetError
from pepmix.ingest import combine_duplicates, ingest_batch, read_input
from pepmix.merge import merge_batches
from pepmix.rule import rule_context
from pepmix.samples import load_design
from pepmix.stages import ingest, merge

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
        load_design(path)
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
    sheet = load_design(sheet_path).runs
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
        load_design(path)
    _one_line(err, path, "line 3", "empty 'condition'")


def test_undecodable_bytes(tmp_path: Path) -> None:
    path = tmp_path / "latin1.tsv"
    rows = "".join(f"P1\tPEP{i}K\tr1\t100\n" for i in range(5000))
    path.write_bytes((HEADER + rows).encode() + "P2\tCAFÉ\tr1\t1\n".encode("latin-1"))
    with pytest.raises(InputFormatError) as err:
        _long(path)
    _one_line(err, path, "not a UTF-8 text table")


# --- issue 11: hostile inputs -------------------------------------------------------------------


def test_nul_byte_in_sample_sheet(tmp_path: Path) -> None:
    # a NUL after a condition used to invent a fourth condition (and NUL bytes in the tables)
    path = tmp_path / "samples.tsv"
    path.write_bytes(b"run\tcondition\nr1\tA\nr2\tB\x00\nr3\tB\n")
    with pytest.raises(SampleSheetError) as err:
        load_design(path)
    _one_line(err, path, "line 3, column 'condition'", "NUL byte")


def test_nul_byte_in_sdrf_sheet(tmp_path: Path) -> None:
    path = tmp_path / "design.sdrf.tsv"
    path.write_bytes(
        b"source name\tcomment[data file]\tfactor value[disease]\n"
        b"s1\tr1.raw\tnormal\ns2\tr2.raw\ttum\x00or\n"
    )
    with pytest.raises(SampleSheetError) as err:
        load_design(path)
    _one_line(err, path, "line 3, column 'factor value[disease]'", "NUL byte")


def test_latin1_sample_sheet(tmp_path: Path) -> None:
    path = tmp_path / "samples.tsv"
    path.write_bytes("run\tcondition\nr1\tcontr\u00f4le\nr2\ttrait\u00e9\n".encode("latin-1"))
    with pytest.raises(SampleSheetError) as err:
        load_design(path)
    _one_line(err, path, "line 2", "not a UTF-8 text file", "b'\\xf4'", "save the file as UTF-8")


def test_nul_byte_in_data(tmp_path: Path) -> None:
    # used to create a phantom protein 'P2\x00'
    path = tmp_path / "data.tsv"
    path.write_bytes((HEADER + GOOD_ROWS).encode() + b"P2\x00\tSEQR\tr3\t70\n")
    with pytest.raises(InputFormatError) as err:
        _long(path)
    _one_line(err, path, "line 6, column 'protein'", "NUL byte")


@pytest.mark.parametrize("text", ["Inf", "-Inf", "infinity"])
def test_infinite_intensity_is_an_error(tmp_path: Path, text: str) -> None:
    # used to be dropped silently as a missing value
    path = tmp_path / "data.tsv"
    path.write_text(HEADER + GOOD_ROWS + f"P3\tAAAK\tr1\t{text}\n")
    with pytest.raises(InputFormatError) as err:
        _long(path)
    _one_line(err, path, "line 6, column 'intensity'", "infinite value")


def test_infinite_intensity_in_a_wide_table(tmp_path: Path) -> None:
    path = tmp_path / "wide.tsv"
    path.write_text("protein\tpeptide\tr1\tr2\nP1\tPEPK\t1\t2\nP2\tSEQR\t3\tInf\n")
    with pytest.raises(InputFormatError) as err:
        read_input({"name": "b1", "format": "generic_wide", "path": str(path)})
    _one_line(err, path, "line 3, column 'r2'", "infinite value inf")


def test_negative_value_prints_as_a_plain_number(tmp_path: Path) -> None:
    path = tmp_path / "log.tsv"
    path.write_text(HEADER + GOOD_ROWS + "P3\tAAAK\tr2\t-695.23\n")
    with pytest.raises(InputFormatError) as err:
        _long(path)
    message = _one_line(err, path, "(first: -695.23 for feature 'AAAK'")
    assert "np." not in message and "float64" not in message


def test_run_with_only_missing_values_is_named_as_such(tmp_path: Path) -> None:
    data = tmp_path / "data.tsv"
    data.write_text(HEADER + GOOD_ROWS + "P1\tPEPK\tr3\tNA\nP2\tSEQR\tr3\t0\n")
    out = tmp_path / "b1.parquet"
    entry = {"name": "b1", "format": "generic_long", "path": str(data)}
    ingest.run(entry=entry, filters={}).write(table=out)
    sheet_path = tmp_path / "samples.tsv"
    sheet_path.write_text("run\tcondition\nr1\tA\nr2\tB\nr3\tB\nr4\tB\n")
    with pytest.raises(SampleSheetError) as err:
        merge.run(batches=[out], samples=sheet_path, filters={})
    message = _one_line(
        err,
        sheet_path,
        "run(s) in the data with no valid intensity (every value missing or zero): r3",
        "run(s) in the sheet but not in the data: r4",
    )
    assert "not in the data: r3" not in message


def test_no_protein_passes_the_filters(tmp_path: Path) -> None:
    # used to crash later in shards.py ('NullArray' object has no attribute 'dictionary')
    data = tmp_path / "data.tsv"
    data.write_text(HEADER + GOOD_ROWS)
    sheet = load_design(_sheet(tmp_path)).runs
    with pytest.raises(DesignError) as err:
        merge_batches([_long(data)], sheet, {"min_features": 2})
    message = str(err.value)
    assert "\n" not in message
    assert "no protein passes the filters (min_features=2 removed 2 of 2 proteins" in message


def test_no_observation_passes_the_row_filters(tmp_path: Path) -> None:
    path = tmp_path / "data.tsv"
    path.write_text("protein\tpeptide\trun\tintensity\tq_value\nP1\tPEPK\tr1\t10\t0.5\n")
    entry = {"name": "b1", "format": "generic_long", "path": str(path)}
    with pytest.raises(InputFormatError) as err:
        ingest_batch(entry, {"q_value": 0.01})
    _one_line(err, path, "no observation passes the row filters", "q_value=0.01")


def test_user_error_is_printed_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log_file = tmp_path / "rule.log"
    smk = SimpleNamespace(log=[str(log_file)], threads=1, rule="merge", output=SimpleNamespace())
    with pytest.raises(SystemExit), rule_context(smk):
        raise SampleSheetError("samples.tsv: line 3: empty 'condition'")
    err = capsys.readouterr().err
    assert err.count("samples.tsv: line 3") == 1
    assert "pepmix: error: samples.tsv: line 3: empty 'condition'" in err
    assert "ERROR" not in err
    assert "samples.tsv: line 3: empty 'condition'" in log_file.read_text()  # the log keeps it
    logging.getLogger("pepmix").handlers.clear()


def _sheet(tmp_path: Path) -> Path:
    path = tmp_path / "samples.tsv"
    path.write_text("run\tcondition\nr1\tA\nr2\tB\n")
    return path


def test_infinite_intensity_in_parquet_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    frame = pd.DataFrame(
        {"protein": ["P1", "P1", "P2"], "peptide": ["A", "A", "B"], "run": ["r1", "r2", "r1"]}
    )
    frame["intensity"] = [1.0, 2.0, float("-inf")]
    frame.to_parquet(path, index=False)
    with pytest.raises(InputFormatError) as err:
        _long(path)
    _one_line(err, path, "row 3, column 'intensity'", "infinite value -inf")


def test_nul_byte_in_gzipped_data(tmp_path: Path) -> None:
    path = tmp_path / "data.tsv.gz"
    path.write_bytes(gzip.compress((HEADER + GOOD_ROWS).encode() + b"P3\tSE\x00QR\tr1\t5\n"))
    with pytest.raises(InputFormatError) as err:
        _long(path)
    _one_line(err, path, "line 6, column 'peptide'", "NUL byte")


def test_infinite_value_located_through_a_columns_mapping(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("Accession,Sequence,Sample,Area\nP1,PEPK,r1,100\nP1,PEPK,r2,INF\n")
    columns = {"protein": "Accession", "peptide": "Sequence", "run": "Sample", "intensity": "Area"}
    with pytest.raises(InputFormatError) as err:
        read_input({"name": "b1", "format": "generic_long", "path": str(path), "columns": columns})
    _one_line(err, path, "line 3, column 'Area'", "infinite value inf")
