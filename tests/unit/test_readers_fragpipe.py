"""FragPipe / IonQuant combined-table reader on real samples (DDA and DIA combined_ion.tsv).

Expected counts were computed once, independently of the reader, with pandas on the raw files:
the ``<run> Intensity`` columns (not ``MaxLFQ``) melted, values > 0, counting distinct
``Protein``, (``Modified Sequence``, ``Charge``) and runs.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pepmix.errors import InputFormatError
from pepmix.ingest import read_input
from pepmix.readers import fragpipe as reader_module
from pepmix.readers._support import table_header

from .format_helpers import counts as _counts
from .format_helpers import value as _value

DATA = Path(__file__).resolve().parents[1] / "data" / "formats" / "fragpipe"
DDA = DATA / "FragPipe_MSFragger_combined_ion.tsv"
DIA = DATA / "Fragpipe_DIA_AIF_combined_ion_head800.tsv"
# the shared data folder beside the repository (its files carry no licence: not copied here)
SEMQUANT = (
    Path(__file__).resolve().parents[3]
    / "shared/data/formats/fragpipe/ionquant_semquant_ups1_2fmol"
)


def _read(path: Path, **options: object) -> pd.DataFrame:
    return read_input({"name": "b1", "format": "fragpipe", "path": str(path), **options})


@pytest.mark.parametrize(
    ("path", "expected", "contaminants", "shared"),
    [(DDA, (317, 424, 6, 1607), 28, 94), (DIA, (461, 623, 6, 2309), 46, 158)],
)
def test_combined_ion_counts_and_flags(
    path: Path, expected: tuple[int, int, int, int], contaminants: int, shared: int
) -> None:
    table = _read(path)
    assert _counts(table) == expected
    assert int(table["contaminant"].sum()) == contaminants  # "sp|Cont_..." proteins
    assert int((~table["unique"]).sum()) == shared  # non-empty Mapped Proteins
    assert not table["decoy"].any()


def test_combined_ion_values() -> None:
    dda = _read(DDA)
    run = "LFQ_Orbitrap_DDA_Condition_A_Sample_Alpha_02"
    assert _value(dda, "AAAAADLANR_2", run) == 15_067_507.0
    assert set(dda.loc[dda["feature"] == "AAAAADLANR_2", "protein"]) == {"sp|O76031|CLPX_HUMAN"}
    dia = _read(DIA)
    assert _value(dia, "AAAAAAALQAK_2", "LFQ_Orbitrap_AIF_Condition_A_Sample_Alpha_02") == (
        356_477_984.0
    )
    # the same peptide with charge 1 is a different feature of the same protein
    assert _value(dia, "AAAAAAALQAK_1", "LFQ_Orbitrap_AIF_Condition_A_Sample_Alpha_01") == (
        8_774_142.0
    )
    modified = dda[dda["peptide"].astype(str).str.contains("[57.0215]", regex=False)]
    expected = modified["peptide"].astype(str) + "_" + modified["charge"].astype(str)
    assert len(modified) > 0 and (modified["feature"].astype(str) == expected).all()


def test_maxlfq_missing_in_ion_table() -> None:
    with pytest.raises(InputFormatError, match=r"MaxLFQ Intensity' column per run; missing"):
        _read(DDA, intensity="maxlfq")


def test_decoys_by_prefix(tmp_path: Path) -> None:
    raw = pd.read_csv(DDA, sep="\t", dtype=str, keep_default_na=False)
    raw.loc[0, "Protein"] = "rev_sp|P36578|RL4_HUMAN"
    path = tmp_path / "combined_ion.tsv"
    raw.to_csv(path, sep="\t", index=False)
    table = _read(path)
    assert set(table.loc[table["decoy"], "protein"]) == {"rev_sp|P36578|RL4_HUMAN"}


def _synthetic_modified_peptide(path: Path) -> Path:
    runs = ["S1", "S2"]
    rows = {
        "Peptide Sequence": ["AAAK", "CCCR", "CCCR"],
        "Modified Sequence": ["AAAK", "CCCR", "C[57.0215]CCR"],
        "Charges": ["2", "2,3", "2"],
        "Protein": ["sp|P1|A_HUMAN", "sp|P2|B_HUMAN", "sp|P2|B_HUMAN"],
        "Protein ID": ["P1", "P2", "P2"],
        "Mapped Proteins": ["", "sp|P3|C_HUMAN", ""],
    }
    frame = pd.DataFrame(rows)
    for run in runs:
        frame[f"{run} Spectral Count"] = [1, 1, 1]
    for i, run in enumerate(runs):
        frame[f"{run} Intensity"] = [100.0 + i, 0.0, 300.0 + i]
    for i, run in enumerate(runs):
        frame[f"{run} MaxLFQ Intensity"] = [110.0 + i, 210.0 + i, 0.0]
    frame.to_csv(path, sep="\t", index=False)
    return path


def test_modified_peptide_layout(tmp_path: Path) -> None:
    path = _synthetic_modified_peptide(tmp_path / "combined_modified_peptide.tsv")
    table = _read(path)
    assert _counts(table) == (2, 2, 2, 4)
    assert _value(table, "C[57.0215]CCR", "S2") == 301.0
    assert table["charge"].isna().all()
    maxlfq = _read(path, intensity="maxlfq")
    assert _counts(maxlfq) == (2, 2, 2, 4)
    assert _value(maxlfq, "CCCR", "S1") == 210.0
    assert not bool(maxlfq.loc[maxlfq["feature"] == "CCCR", "unique"].iloc[0])


def test_peptide_layout_and_protein_id(tmp_path: Path) -> None:
    path = _synthetic_modified_peptide(tmp_path / "combined_peptide.tsv")
    frame = pd.read_csv(path, sep="\t").drop(columns=["Modified Sequence", "Protein"])
    frame = frame.iloc[:2]
    frame.to_csv(path, sep="\t", index=False)
    table = _read(path)
    assert set(table["feature"]) == {"AAAK"}
    assert set(table["protein"]) == {"P1"}


@pytest.mark.skipif(not SEMQUANT.exists(), reason="shared SEMQuant files not available")
@pytest.mark.parametrize(
    "name", ["combined_ion.tsv", "combined_modified_peptide.tsv", "combined_peptide.tsv"]
)
def test_semquant_ionquant_tables(name: str) -> None:
    raw = pd.read_csv(SEMQUANT / name, sep="\t")
    values = raw[[c for c in raw.columns if c.endswith(" Intensity") and "MaxLFQ" not in c]]
    table = _read(SEMQUANT / name)
    assert len(table) == int((values > 0).sum().sum()) == 68
    assert table["run"].nunique() == 3


def test_missing_column(tmp_path: Path) -> None:
    raw = pd.read_csv(DDA, sep="\t", dtype=str, keep_default_na=False)
    path = tmp_path / "combined_ion.tsv"
    raw.drop(columns=["Peptide Sequence"]).to_csv(path, sep="\t", index=False)
    with pytest.raises(
        InputFormatError, match=r"combined_ion\.tsv: missing column\(s\) Peptide Sequence;"
    ):
        _read(path)


@pytest.mark.parametrize(
    ("fmt", "path"),
    [
        ("fragpipe", DDA),
        ("fragpipe", DIA),
    ],
)
def test_signature_matches_sample(fmt: str, path: Path) -> None:
    header, _ = table_header(path)
    assert set(reader_module.SIGNATURE[fmt]) <= set(header)
    others = {k: v for k, v in reader_module.SIGNATURE.items() if k != fmt}
    assert not any(set(v) <= set(header) for v in others.values())
