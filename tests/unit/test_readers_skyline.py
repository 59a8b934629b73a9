"""Skyline MSstats report reader (``skyline``) on real samples.

Expected counts were computed once, independently of the reader, with pandas on the raw files:
light rows, ``Truncated`` not true, areas > 0 (``#N/A`` missing) summed per (protein, modified
peptide, precursor charge, file name), groups with a positive sum counted.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pepmix.errors import InputFormatError
from pepmix.ingest import read_input

from .format_helpers import counts as _counts
from .format_helpers import value as _value

DATA = Path(__file__).resolve().parents[1] / "data" / "formats" / "skyline"
DDA = DATA / "MSstats_DDARawData.Skyline_slice.csv"
CONVERT = DATA / "msstatsconvert_skyline_input_slice.csv"


def _read(path: Path, **options: object) -> pd.DataFrame:
    return read_input({"name": "b1", "format": "skyline", "path": str(path), **options})


def test_msstats_example_counts_and_value() -> None:
    table = _read(DDA)
    assert _counts(table) == (2, 52, 18, 782)
    # three isotope peaks of ALVYGEATSR 1+ in B06-8004_c.mzXML summed
    assert _value(table, "ALVYGEATSR_1", "B06-8004_c") == 4094309.0
    assert not table.duplicated(["protein", "feature", "run"]).any()


def test_r_mangled_report_counts_and_partial_sum() -> None:
    table = _read(CONVERT)
    assert _counts(table) == (2, 11, 15, 165)
    # precursor and [M+1] are #N/A in this run: only the [M+2] area remains
    run = "121219_S_CCES_01_06_LysC_Try_1to10_Mixt_2_3"
    assert _value(table, "KFVTAYLGDAGMLR_3", run) == 22284412.0


def test_truncated_peaks_and_irt_removed(tmp_path: Path) -> None:
    header = (
        "ProteinName,PeptideSequence,PrecursorCharge,FragmentIon,ProductCharge,IsotopeLabelType,"
        "FileName,Area,StandardType,Truncated"
    )
    rows = [
        "P1,PEPK,2,y3,1,light,a.raw,100,,False",
        "P1,PEPK,2,y4,1,light,a.raw,40,,True",
        "P1,PEPK,2,y3,1,light,b.raw,#N/A,,False",
        "P1,PEPK,2,y4,1,light,b.raw,10,,False",
        "P1,PEPK,2,y3,1,heavy,b.raw,999,,False",
        "iRT,LGGNEQVTR,2,y5,1,light,a.raw,5000,iRT,False",
    ]
    path = tmp_path / "skyline.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    table = _read(path)
    assert _value(table, "PEPK_2", "a") == 100.0
    assert _value(table, "PEPK_2", "b") == 10.0
    assert set(table["protein"]) == {"P1"}
    kept = _read(path, remove_truncated=False, remove_irt=False)
    assert _value(kept, "PEPK_2", "a") == 140.0
    assert set(kept["protein"]) == {"P1", "iRT"}


def test_missing_column_names_column_and_file(tmp_path: Path) -> None:
    frame = pd.read_csv(CONVERT, dtype=str, keep_default_na=False)
    bad = tmp_path / "no_area.csv"
    frame.drop(columns=["Area"]).to_csv(bad, index=False)
    with pytest.raises(InputFormatError) as err:
        _read(bad)
    message = str(err.value)
    assert "Area" in message
    assert str(bad) in message
    assert "\n" not in message
