"""Sage lfq.tsv reader on a real sample.

Expected counts were computed once, independently of the reader, with pandas on the raw file:
the ``*.mzML.gz`` columns melted, values > 0, counting distinct ``proteins``,
(``peptide``, ``charge``) and files.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pepmix.errors import InputFormatError
from pepmix.ingest import read_input
from pepmix.readers import sage as reader_module
from pepmix.readers._support import table_header

DATA = Path(__file__).resolve().parents[1] / "data" / "formats" / "sage"
LFQ = DATA / "sage_lfq_head800.tsv"


def _read(path: Path, **options: object) -> pd.DataFrame:
    return read_input({"name": "b1", "format": "sage", "path": str(path), **options})


def test_counts_values_flags() -> None:
    table = _read(LFQ)
    counts = (table["protein"].nunique(), table["feature"].nunique(), table["run"].nunique())
    assert (*counts, len(table)) == (702, 800, 6, 4776)
    assert sorted(table["run"].unique())[0] == "LFQ_Orbitrap_DDA_Condition_A_Sample_Alpha_01"
    rows = table[
        (table["feature"] == "DMEDLLR_2")
        & (table["run"] == "LFQ_Orbitrap_DDA_Condition_A_Sample_Alpha_01")
    ]
    assert float(rows["intensity"].iloc[0]) == pytest.approx(27388965.4275337)
    assert rows["protein"].iloc[0] == "sp|Q92888|ARHG1_HUMAN"
    assert float(rows["q_value"].iloc[0]) == pytest.approx(0.0035725886)
    assert int(table["contaminant"].sum()) == 54  # proteins containing "sp|Cont_"
    assert int((~table["unique"]).sum()) == 336  # proteins with ";"
    assert not table["decoy"].any()


def test_decoys_by_prefix_and_column(tmp_path: Path) -> None:
    raw = pd.read_csv(LFQ, sep="\t", dtype=str)
    raw.loc[0, "proteins"] = "rev_sp|Q92888|ARHG1_HUMAN"
    raw.loc[1, "proteins"] = "rev_sp|P32324|EF2_YEAST;sp|P1|X_HUMAN"  # also a target: not decoy
    path = tmp_path / "lfq.tsv"
    raw.to_csv(path, sep="\t", index=False)
    table = _read(path)
    assert set(table.loc[table["decoy"], "feature"]) == {"DMEDLLR_2"}
    raw["decoy"] = "false"
    raw.loc[2, "decoy"] = "true"
    raw.to_csv(path, sep="\t", index=False)
    table = _read(path)
    assert table.loc[table["decoy"], "feature"].nunique() == 1
    assert "DMEDLLR_2" not in set(table.loc[table["decoy"], "feature"])


def test_missing_column(tmp_path: Path) -> None:
    raw = pd.read_csv(LFQ, sep="\t", dtype=str)
    path = tmp_path / "lfq.tsv"
    raw.drop(columns=["charge"]).to_csv(path, sep="\t", index=False)
    with pytest.raises(InputFormatError, match=r"lfq\.tsv: missing column\(s\) charge;"):
        _read(path)


@pytest.mark.parametrize(
    ("fmt", "path"),
    [
        ("sage", LFQ),
    ],
)
def test_signature_matches_sample(fmt: str, path: Path) -> None:
    header, _ = table_header(path)
    assert set(reader_module.SIGNATURE[fmt]) <= set(header)
    others = {k: v for k, v in reader_module.SIGNATURE.items() if k != fmt}
    assert not any(set(v) <= set(header) for v in others.values())
