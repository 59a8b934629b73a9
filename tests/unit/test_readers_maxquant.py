"""MaxQuant evidence.txt / MaxDIA / peptides.txt readers on real samples.

Expected counts were computed once, independently of the reader, with pandas on the raw files:
rows with ``Intensity > 0``, de-duplicated on (Leading razor protein, Modified sequence, Charge,
Raw file); peptides.txt melted over its ``Intensity <experiment>`` columns, values > 0.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pepmix.errors import InputFormatError
from pepmix.ingest import read_input
from pepmix.readers import maxquant as reader_module
from pepmix.readers._support import table_header

from .format_helpers import counts as _counts
from .format_helpers import value as _value

DATA = Path(__file__).resolve().parents[1] / "data" / "formats" / "maxquant"


def _read(fmt: str, path: Path, **options: object) -> pd.DataFrame:
    return read_input({"name": "b1", "format": fmt, "path": str(path), **options})


def _drop_column(src: Path, dst: Path, column: str, sep: str = "\t") -> Path:
    frame = pd.read_csv(src, sep=sep, dtype=str, keep_default_na=False)
    frame.drop(columns=[column]).to_csv(dst, sep=sep, index=False)
    return dst


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("MaxQuant_evidence_sample.txt", (97, 126, 6, 591)),
        ("MaxQuant_2_5_1_evidence_slice.txt", (111, 124, 6, 420)),
        ("MaxDIA_slice.txt", (93, 95, 6, 342)),
    ],
)
def test_evidence_counts(name: str, expected: tuple[int, int, int, int]) -> None:
    table = _read("maxquant_evidence", DATA / name)
    assert _counts(table) == expected
    assert not table.duplicated(["protein", "feature", "run"]).any()


def test_evidence_old_release_values_and_flags() -> None:
    table = _read("maxquant_evidence", DATA / "MaxQuant_evidence_sample.txt")
    run_b2 = "LFQ_Orbitrap_DDA_Condition_B_Sample_Alpha_02"
    # two evidence rows (17,644,000 and 3,681,900): the larger one is kept
    assert _value(table, "ACVVHGSDLK_2", run_b2) == 17_644_000.0
    first = table[table["feature"] == "ACADAGLLDESFLR_2"]
    assert set(first["protein"]) == {"sp|O95155|UBE4B_HUMAN"}
    assert first["peptide"].iloc[0] == "ACADAGLLDESFLR"
    assert first["charge"].iloc[0] == 2
    # 12 rows flagged "+" in Potential contaminant (razor protein ALDOA_HUMAN, shared with CON__)
    assert int(table["contaminant"].sum()) == 12
    assert set(table.loc[table["contaminant"], "protein"]) == {"sp|P04075|ALDOA_HUMAN"}
    assert not table["decoy"].any()
    # Protein group IDs with ";" -> shared; 12 observations
    assert int((~table["unique"]).sum()) == 12
    assert table["q_value"].isna().all()  # DDA evidence has no q-value


def test_evidence_duplicates_sum_option() -> None:
    table = _read("maxquant_evidence", DATA / "MaxQuant_evidence_sample.txt", duplicates="sum")
    run_b2 = "LFQ_Orbitrap_DDA_Condition_B_Sample_Alpha_02"
    assert _value(table, "ACVVHGSDLK_2", run_b2) == 17_644_000.0 + 3_681_900.0
    assert len(table) == 591


def test_evidence_2_5_1_contaminants_from_accession_pattern() -> None:
    table = _read("maxquant_evidence", DATA / "MaxQuant_2_5_1_evidence_slice.txt")
    # ProteoBench's FASTA marks contaminants "sp|Cont_..."; MaxQuant leaves the column empty
    flagged = table.loc[table["contaminant"], "protein"]
    assert len(flagged) == 4
    assert flagged.str.contains("|Cont_", regex=False).all()
    plain = _read(
        "maxquant_evidence",
        DATA / "MaxQuant_2_5_1_evidence_slice.txt",
        contaminant_pattern=None,
    )
    assert not plain["contaminant"].any()


def test_maxdia_q_values_and_duplicates() -> None:
    table = _read("maxquant_evidence", DATA / "MaxDIA_slice.txt")
    assert table["q_value"].notna().all()
    run_a1 = "LFQ_Orbitrap_AIF_Condition_A_Sample_Alpha_01"
    # two candidate rows (411,670 and 273,890) of this precursor in this run: max kept
    assert _value(table, "AADIEQQAVFAVFDENK_2", run_a1) == 411_670.0
    assert int(table["contaminant"].sum()) == 15
    raw = pd.read_csv(DATA / "MaxDIA_slice.txt", sep="\t", low_memory=False)
    n_good = int((raw["Q-value"] <= 0.01).sum())
    filtered = _read("maxquant_evidence", DATA / "MaxDIA_slice.txt", q_value=0.01)
    assert (filtered["q_value"] <= 0.01).all()
    assert len(filtered) <= n_good


def test_evidence_fractions_use_experiment_as_run(tmp_path: Path) -> None:
    raw = pd.read_csv(
        DATA / "MaxQuant_evidence_sample.txt", sep="\t", dtype=str, keep_default_na=False
    )
    raw["Fraction"] = raw["Raw file"].str[-1]
    path = tmp_path / "evidence.txt"
    raw.to_csv(path, sep="\t", index=False)
    table = _read("maxquant_evidence", path)
    assert set(table["run"]) == set(raw["Experiment"])
    assert set(table["fraction"]) == {"1", "2", "3"}


def test_evidence_missing_column(tmp_path: Path) -> None:
    path = _drop_column(DATA / "MaxQuant_evidence_sample.txt", tmp_path / "ev.txt", "Charge")
    with pytest.raises(InputFormatError, match=r"ev\.txt: missing column\(s\) Charge;"):
        _read("maxquant_evidence", path)


def test_peptides_counts_values_flags() -> None:
    table = _read("maxquant_peptides", DATA / "mq_peptides_head300.txt")
    assert _counts(table) == (276, 292, 12, 2718)
    assert sorted(table["run"].unique())[:3] == [
        "BoxCar_02-01_1",
        "BoxCar_02-01_2",
        "BoxCar_02-01_3",
    ]
    feature = "AAAAAAAAAPAAAATAPTTAATTAATAAQ"
    assert _value(table, feature, "BoxCar_02-01_1") == 407_110_000.0
    assert set(table.loc[table["feature"] == feature, "protein"]) == {"P37108"}
    assert int(table["decoy"].sum()) == 10
    assert set(table.loc[table["decoy"], "protein"]) == {"REV__P83731"}
    assert int(table["contaminant"].sum()) == 10
    assert int((~table["unique"]).sum()) == 58
    assert table["charge"].isna().all()


def test_peptides_missing_column(tmp_path: Path) -> None:
    path = _drop_column(
        DATA / "mq_peptides_head300.txt", tmp_path / "pep.txt", "Leading razor protein"
    )
    with pytest.raises(InputFormatError, match=r"pep\.txt: missing column\(s\) Leading razor"):
        _read("maxquant_peptides", path)


def test_peptides_without_intensity_columns(tmp_path: Path) -> None:
    raw = pd.read_csv(DATA / "mq_peptides_head300.txt", sep="\t", dtype=str)
    raw = raw.drop(columns=[c for c in raw.columns if c.startswith("Intensity ")])
    path = tmp_path / "pep.txt"
    raw.to_csv(path, sep="\t", index=False)
    with pytest.raises(InputFormatError, match=r"pep\.txt: expected one 'Intensity <experiment>'"):
        _read("maxquant_peptides", path)


@pytest.mark.parametrize(
    ("fmt", "path"),
    [
        ("maxquant_evidence", DATA / "MaxQuant_evidence_sample.txt"),
        ("maxquant_evidence", DATA / "MaxDIA_slice.txt"),
        ("maxquant_peptides", DATA / "mq_peptides_head300.txt"),
    ],
)
def test_signature_matches_sample(fmt: str, path: Path) -> None:
    header, _ = table_header(path)
    assert set(reader_module.SIGNATURE[fmt]) <= set(header)
    others = {k: v for k, v in reader_module.SIGNATURE.items() if k != fmt}
    assert not any(set(v) <= set(header) for v in others.values())
