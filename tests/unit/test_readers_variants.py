"""Column variants of real export templates, and the ``columns:`` mapping of an input.

- MSstatsConvert output for Skyline, Proteome Discoverer and Progenesis names the peptide column
  ``PeptideModifiedSequence`` (files rebuilt by tests/data/formats/msstats/
  make_msstatsconvert_outputs.py from the tools' exports). Each is read by ``msstats`` and by
  ``auto``, and gives the same precursors and intensities as the tool's own reader on the export it
  was made from (Skyline, Progenesis).
- A compact Spectronaut fragment-level template (``R.Condition`` is the run, no ``R.FileName`` or
  ``EG.PrecursorId``; tests/data/formats/spectronaut/make_compact_export.py) gives the same table
  as the full report it was made from.
- ``columns:`` renames file columns to the names a format expects, before its column checks and
  before format detection (generic long, Spectronaut, DIA-NN Parquet).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from pepmix.config import load_yaml, validate_config
from pepmix.errors import ConfigError, InputFormatError
from pepmix.ingest import read_input
from pepmix.readers.detect import detect_format

from .format_helpers import counts

FORMATS = Path(__file__).resolve().parents[1] / "data" / "formats"
MSSTATS = FORMATS / "msstats"
SPECTRONAUT = FORMATS / "spectronaut"


def _read(path: Path, fmt: str, **options: object) -> pd.DataFrame:
    return read_input({"name": "b1", "format": fmt, "path": str(path), **options})


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Same precursors x runs with the same intensities (bit-identical sums of the same values)."""
    merged = a.merge(b, on=["protein", "feature", "run"], how="outer", indicator=True)
    assert (merged["_merge"] == "both").all()
    assert (merged["intensity_x"] == merged["intensity_y"]).all()


@pytest.mark.parametrize(
    "name",
    [
        "msstatsconvert_skyline_output.csv",
        "msstatsconvert_pd_output.csv",
        "msstatsconvert_progenesis_output.csv",
    ],
)
def test_peptide_modified_sequence_is_read_and_detected(name: str) -> None:
    path = MSSTATS / name
    assert detect_format(path) == "msstats"
    table = _read(path, "msstats")
    raw = pd.read_csv(path)
    assert "PeptideSequence" not in raw.columns
    # independent count: light rows with a positive intensity, per protein/peptide/charge/run
    positive = raw[raw["Intensity"] > 0]
    keys = ["ProteinName", "PeptideModifiedSequence", "PrecursorCharge", "Run"]
    assert len(table) == len(positive.drop_duplicates(keys)) > 0
    assert set(table["peptide"]) == set(positive["PeptideModifiedSequence"])
    _same(table, _read(path, "auto"))


def test_skyline_conversion_matches_skyline_reader() -> None:
    export = _read(FORMATS / "skyline" / "msstatsconvert_skyline_input_slice.csv", "skyline")
    export = export[export["protein"] == "P23827"]
    converted = _read(MSSTATS / "msstatsconvert_skyline_output.csv", "msstats")
    assert counts(converted) == counts(export) == (1, 2, 15, 30)
    _same(converted, export)


def test_progenesis_conversion_matches_progenesis_reader() -> None:
    export = _read(
        FORMATS / "progenesis" / "msstatsconvert_progenesis_input.csv",
        "progenesis",
        quantitation_only=False,
    )
    converted = _read(MSSTATS / "msstatsconvert_progenesis_output.csv", "msstats")
    assert len(converted) == 144
    _same(converted, export[export["feature"].isin(set(converted["feature"]))])


def test_both_peptide_columns_prefer_the_modified_one(tmp_path: Path) -> None:
    path = tmp_path / "both.csv"
    path.write_text(
        "ProteinName,PeptideSequence,PeptideModifiedSequence,PrecursorCharge,FragmentIon,"
        "ProductCharge,IsotopeLabelType,Run,Intensity\n"
        "P1,PEPMK,PEPM[+16]K,2,NA,NA,L,r1,10\n"
        "P1,PEPMK,PEPMK,2,NA,NA,L,r1,20\n"
    )
    table = _read(path, "msstats")
    assert set(table["feature"]) == {"PEPM[+16]K_2", "PEPMK_2"}


COMPACT = SPECTRONAUT / "spectronaut_compact_fragments.tsv"


def test_compact_spectronaut_export_is_read_and_detected() -> None:
    header = COMPACT.read_text().splitlines()[0].split("\t")
    assert header == [
        "R.Condition",
        "PG.ProteinGroups",
        "EG.ModifiedSequence",
        "FG.Charge",
        "F.FrgIon",
        "F.Charge",
        "F.PeakArea",
        "PG.Genes",
        "PG.ProteinNames",
    ]
    assert detect_format(COMPACT) == "spectronaut"
    compact = _read(COMPACT, "spectronaut")
    full = _read(SPECTRONAUT / "msstatsconvert_spectronaut_slice.csv", "spectronaut")
    assert counts(compact) == counts(full) == (1, 9, 6, 54)
    _same(compact, full)  # precursor ids built as EG.PrecursorId writes them: _ASNEDVTK_.2
    assert "_ASNEDVTK_.2" in set(compact["feature"])
    _same(compact, _read(COMPACT, "auto"))


def test_compact_spectronaut_condition_that_is_not_a_run(tmp_path: Path) -> None:
    rows = COMPACT.read_text().splitlines()
    # two runs labelled with the same condition: a fragment appears twice under one R.Condition
    lines = [rows[0]] + [r.replace("I150211_010_A", "I150211_008_A") for r in rows]
    path = tmp_path / "conditions.tsv"
    path.write_text("\n".join(lines[:1] + lines[2:]) + "\n")
    with pytest.raises(InputFormatError, match=r"R\.Condition holds conditions, not runs"):
        _read(path, "spectronaut")


def test_columns_mapping_generic_long(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("Accession,Sequence,Sample,Area\nP1,PEPK,r1,100\nP1,PEPK,r2,200\n")
    with pytest.raises(InputFormatError, match="missing column"):
        _read(path, "generic_long")
    columns = {"protein": "Accession", "peptide": "Sequence", "run": "Sample", "intensity": "Area"}
    table = _read(path, "generic_long", columns=columns)
    assert counts(table) == (1, 1, 2, 2)
    assert _read(path, "auto", columns=columns)["intensity"].tolist() == [100.0, 200.0]


def test_columns_mapping_spectronaut(tmp_path: Path) -> None:
    frame = pd.read_csv(COMPACT, sep="\t", dtype=str)
    renamed = frame.rename(columns={"R.Condition": "Run", "F.PeakArea": "Fragment area"})
    path = tmp_path / "renamed.tsv"
    renamed.to_csv(path, sep="\t", index=False)
    mapping = {"R.FileName": "Run", "F.PeakArea": "Fragment area"}
    table = _read(path, "spectronaut", columns=mapping)
    _same(table, _read(COMPACT, "spectronaut"))
    _same(table, _read(path, "auto", columns=mapping))


def test_columns_mapping_diann_parquet(tmp_path: Path) -> None:
    source = FORMATS / "diann" / "entrapment_test_subset.report.parquet"
    table = pq.read_table(source)
    renamed = table.rename_columns(
        ["Quantity" if n == "Precursor.Normalised" else n for n in table.column_names]
    )
    path = tmp_path / "report.parquet"
    pq.write_table(renamed, path)
    mapped = _read(path, "diann", columns={"Precursor.Normalised": "Quantity"})
    _same(mapped, _read(source, "diann"))


def test_columns_mapping_rejects_bad_values(tmp_path: Path) -> None:
    path = tmp_path / "x.tsv"
    path.write_text("protein\tpeptide\trun\tintensity\nP1\tPEPK\tr1\t1\n")
    with pytest.raises(ConfigError, match="both name file column"):
        _read(path, "generic_long", columns={"protein": "peptide", "peptide": "peptide"})
    with pytest.raises(ConfigError, match="columns: must map"):
        _read(path, "generic_long", columns={"protein": 3})


def test_columns_mapping_in_the_config_schema() -> None:
    repo = Path(__file__).resolve().parents[2]
    schema = load_yaml(repo / "workflow" / "schemas" / "config.schema.yaml")
    entry = {"name": "b1", "format": "spectronaut", "path": "r.tsv"}
    config = {"samples": "s.tsv", "contrasts": "all_pairwise"}
    mapped = {**entry, "columns": {"R.FileName": "Run"}}
    ok = validate_config({**config, "inputs": [mapped]}, schema)
    assert ok["inputs"][0]["columns"] == {"R.FileName": "Run"}
    assert "columns" not in validate_config({**config, "inputs": [entry]}, schema)["inputs"][0]
    with pytest.raises(ConfigError, match="columns"):
        validate_config({**config, "inputs": [{**entry, "columns": {"R.FileName": 3}}]}, schema)
