"""Progenesis QI peptide-ion reader (``progenesis``) on a real sample.

Expected counts were computed once, independently of the reader, with the csv module: rows with
``Use in quantitation`` true, the ``Raw abundance`` block (columns from ``Raw.abundance`` up to
``Spectral.counts`` in the first header row), values > 0, maximum per (Accession,
Sequence + Modifications + Charge, run).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from pepmix.errors import InputFormatError
from pepmix.ingest import read_input

from .format_helpers import counts as _counts
from .format_helpers import value as _value

DATA = Path(__file__).resolve().parents[1] / "data" / "formats" / "progenesis"
SAMPLE = DATA / "msstatsconvert_progenesis_input.csv"


def _read(path: Path, **options: object) -> pd.DataFrame:
    return read_input({"name": "b1", "format": "progenesis", "path": str(path), **options})


def test_raw_abundance_counts_and_value() -> None:
    table = _read(SAMPLE)
    assert _counts(table) == (5, 15, 12, 174)
    assert _value(table, "IGLFGK_2", "JD_06232014_sample1-A") == pytest.approx(15399.610616)
    assert table["protein"].str.startswith("sp|").all()


def test_normalized_block_and_all_rows() -> None:
    normalized = _read(SAMPLE, abundance="normalized")
    raw = _read(SAMPLE)
    assert _counts(normalized)[:3] == _counts(raw)[:3]
    assert _value(normalized, "IGLFGK_2", "JD_06232014_sample1-A") != pytest.approx(15399.610616)
    everything = _read(SAMPLE, quantitation_only=False)
    assert everything["feature"].nunique() > raw["feature"].nunique()


def test_original_header_without_r_mangling(tmp_path: Path) -> None:
    rows = list(csv.reader(SAMPLE.open(newline="")))
    rows[0] = ["" if cell.startswith("X") else cell.replace(".", " ") for cell in rows[0]]
    path = tmp_path / "progenesis.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    assert _counts(_read(path)) == (5, 15, 12, 174)


def test_missing_column_names_column_and_file(tmp_path: Path) -> None:
    rows = list(csv.reader(SAMPLE.open(newline="")))
    drop = rows[2].index("Accession")
    bad = tmp_path / "no_accession.csv"
    with bad.open("w", newline="") as handle:
        csv.writer(handle).writerows([r[:drop] + r[drop + 1 :] for r in rows])
    with pytest.raises(InputFormatError) as err:
        _read(bad)
    message = str(err.value)
    assert str(bad) in message
    assert "\n" not in message
    assert "missing column(s) Accession" in message
