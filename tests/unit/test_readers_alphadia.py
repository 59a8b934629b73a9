"""AlphaDIA precursor-matrix reader on a real sample.

Expected counts were computed once, independently of the reader, with pandas on the raw file:
exact duplicate rows dropped, the six ``LFQ_*`` run columns melted, values > 0, counting distinct
``genes``, ``mod_seq_charge_hash`` and runs.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pepmix.errors import InputFormatError
from pepmix.ingest import read_input
from pepmix.readers import alphadia as reader_module
from pepmix.readers._support import table_header

DATA = Path(__file__).resolve().parents[1] / "data" / "formats" / "alphadia"
MATRIX = DATA / "AlphaDIA_1.10_sample.tsv"


def _read(path: Path, **options: object) -> pd.DataFrame:
    return read_input({"name": "b1", "format": "alphadia", "path": str(path), **options})


def test_counts_values_flags() -> None:
    table = _read(MATRIX)
    counts = (table["protein"].nunique(), table["feature"].nunique(), table["run"].nunique())
    assert (*counts, len(table)) == (61, 73, 6, 335)
    first = table[table["feature"] == "15481211221274"]
    assert set(first["protein"]) == {"U520_HUMAN"}
    assert set(first["peptide"]) == {"AIFEIVLNR"}
    # 0.0 in B_Sample_Alpha_02 is a missing value: five observations, not six
    assert len(first) == 5
    assert "LFQ_Orbitrap_AIF_Condition_B_Sample_Alpha_02" not in set(first["run"])
    value = first.loc[first["run"] == "LFQ_Orbitrap_AIF_Condition_A_Sample_Alpha_01", "intensity"]
    assert float(value.iloc[0]) == pytest.approx(438876672.671111)
    assert table["decoy"].notna().all() and not table["decoy"].any()
    assert int((~table["unique"]).sum()) == 51  # genes with ";"
    modified = table[table["peptide"].str.contains("[Oxidation@M@", regex=False)]
    assert len(modified) > 0


def test_conflicting_duplicate_rejected(tmp_path: Path) -> None:
    raw = pd.read_csv(MATRIX, sep="\t", dtype=str, keep_default_na=False)
    raw.loc[1, "LFQ_Orbitrap_AIF_Condition_A_Sample_Alpha_01"] = "1.0"
    path = tmp_path / "precursors.tsv"
    raw.to_csv(path, sep="\t", index=False)
    with pytest.raises(InputFormatError, match="appears on rows with different values"):
        _read(path)


def test_missing_column(tmp_path: Path) -> None:
    raw = pd.read_csv(MATRIX, sep="\t", dtype=str, keep_default_na=False)
    path = tmp_path / "precursors.tsv"
    raw.drop(columns=["mod_seq_charge_hash"]).to_csv(path, sep="\t", index=False)
    with pytest.raises(
        InputFormatError, match=r"precursors\.tsv: missing column\(s\) mod_seq_charge_hash;"
    ):
        _read(path)


@pytest.mark.parametrize(
    ("fmt", "path"),
    [
        ("alphadia", MATRIX),
    ],
)
def test_signature_matches_sample(fmt: str, path: Path) -> None:
    header, _ = table_header(path)
    assert set(reader_module.SIGNATURE[fmt]) <= set(header)
    others = {k: v for k, v in reader_module.SIGNATURE.items() if k != fmt}
    assert not any(set(v) <= set(header) for v in others.values())
