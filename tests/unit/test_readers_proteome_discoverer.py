"""Proteome Discoverer reader (``proteome_discoverer``): PeptideGroups and PSM exports.

Expected counts were computed once, independently of the reader, with pandas on the raw files:
PeptideGroups melted over the six ``Abundance: F<n>: ...`` columns, values > 0, features keyed by
(``Annotated Sequence``, ``Modifications``); PSMs grouped by (``Protein.Group.Accessions``,
``Sequence``, ``Modifications``, ``Charge``, ``Spectrum.File``) with the maximum ``Precursor.Area``,
values > 0.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pepmix.errors import InputFormatError
from pepmix.ingest import read_input

from .format_helpers import counts as _counts
from .format_helpers import value as _value

DATA = Path(__file__).resolve().parents[1] / "data" / "formats" / "proteome_discoverer"
GROUPS = DATA / "PeptideGroups_slice.txt"
PSMS = DATA / "msstatsconvert_pd_input.csv"


def _read(path: Path, **options: object) -> pd.DataFrame:
    return read_input({"name": "b1", "format": "proteome_discoverer", "path": str(path), **options})


def test_peptide_groups_counts_values_and_flags() -> None:
    table = _read(GROUPS)
    assert _counts(table) == (113, 119, 6, 707)
    assert set(table["run"]) == {"F1", "F2", "F3", "F4", "F5", "F6"}
    assert _value(table, "LGGTIDDCELVEGLVLTQK_1xCarbamidomethyl [C8]", "F3") == 32451515.0
    assert _value(table, "NMGGPYGGGNYGPGGSGGSGGYGGR", "F1") == 39829468.0
    assert int(table["contaminant"].sum()) == 78
    assert int((~table["unique"]).sum()) == 90
    assert table["charge"].isna().all()


def test_peptide_groups_normalized_abundances() -> None:
    table = _read(GROUPS, abundance="normalized")
    assert _value(table, "NMGGPYGGGNYGPGGSGGSGGYGGR", "F1") == pytest.approx(56000487.3709098)


def test_psm_export_counts_and_max_of_repeated_psms() -> None:
    table = _read(PSMS)
    assert _counts(table) == (5, 32, 15, 225)
    run = "121219_S_CCES_01_02_LysC_Try_1to10_Mixt_1_2"
    # two PSMs with the same precursor area 4.47e7: maximum, not the sum
    assert _value(table, "LARPGSDVALDDQLYQEPQAAPVAVPMGK_3", run) == 44700000.0
    assert not table.duplicated(["protein", "feature", "run"]).any()


def test_missing_column_names_column_and_file(tmp_path: Path) -> None:
    frame = pd.read_csv(GROUPS, sep="\t", dtype=str, keep_default_na=False)
    bad = tmp_path / "no_master.txt"
    frame.drop(columns=["Master Protein Accessions"]).to_csv(bad, sep="\t", index=False)
    with pytest.raises(InputFormatError) as err:
        _read(bad)
    message = str(err.value)
    assert "missing column(s) Master Protein Accessions" in message
    assert str(bad) in message
    assert "\n" not in message
