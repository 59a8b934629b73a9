"""DIA-NN report readers (1.8/1.9 TSV, old CSV, 2.x Parquet) on real samples.

Expected counts were computed once, independently of the reader, with pandas on the raw files:
rows with ``Precursor.Normalised > 0`` (and, for the Parquet sample, a non-empty
``Protein.Group``), counting distinct ``Protein.Group``, ``Precursor.Id`` and ``Run``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from pepmix.errors import InputFormatError
from pepmix.ingest import read_input
from pepmix.readers import diann
from pepmix.readers._support import table_header

from .format_helpers import counts as _counts
from .format_helpers import value as _value

DATA = Path(__file__).resolve().parents[1] / "data" / "formats" / "diann"
PARQUET = DATA / "entrapment_test_subset.report.parquet"


def _read(path: Path, **options: object) -> pd.DataFrame:
    return read_input({"name": "b1", "format": "diann", "path": str(path), **options})


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("DIANN_1.9_beta_slice.tsv", (79, 79, 6, 386)),
        ("quantmsio_PXD019909_head300.tsv", (261, 300, 1, 300)),
        ("msstatsconvert_diann_input.csv", (20, 30, 6, 64)),
        ("entrapment_test_subset.report.parquet", (93, 93, 3, 93)),
    ],
)
def test_counts(name: str, expected: tuple[int, int, int, int]) -> None:
    assert _counts(_read(DATA / name)) == expected


def test_1_9_values_runs_and_columns() -> None:
    table = _read(DATA / "DIANN_1.9_beta_slice.tsv")
    run = "LFQ_Orbitrap_AIF_Condition_A_Sample_Alpha_01"
    feature = "(UniMod:1)AAAAAAAVGGQQPSQPELPAPGLALDK3"
    assert _value(table, feature, run) == 3_781_930.0  # Precursor.Normalised
    raw = _read(DATA / "DIANN_1.9_beta_slice.tsv", intensity_column="Precursor.Quantity")
    assert _value(raw, feature, run) == 3_005_200.0
    assert table["q_value"].notna().all() and table["pg_q_value"].notna().all()
    assert int((table["pg_q_value"] > 0.01).sum()) == 2
    glob = _read(DATA / "DIANN_1.9_beta_slice.tsv", pg_q_value_column="Global.PG.Q.Value")
    assert int((glob["pg_q_value"] > 0.01).sum()) == 1
    assert table["unique"].all()
    assert table["decoy"].isna().all()  # 1.9 reports have no Decoy column
    row = table[table["feature"] == feature].iloc[0]
    assert row["peptide"] == "(UniMod:1)AAAAAAAVGGQQPSQPELPAPGLALDK"
    assert row["charge"] == 3


def test_run_from_windows_file_name(tmp_path: Path) -> None:
    raw = pd.read_csv(DATA / "DIANN_1.9_beta_slice.tsv", sep="\t", dtype=str)
    path = tmp_path / "report.tsv"
    raw.drop(columns=["Run"]).to_csv(path, sep="\t", index=False)
    table = _read(path)
    assert set(table["run"]) == set(raw["Run"])  # Q:\...\X.raw -> X


def test_quantms_contaminants_and_proteotypic() -> None:
    table = _read(DATA / "quantmsio_PXD019909_head300.tsv")
    assert int(table["contaminant"].sum()) == 2
    assert table.loc[table["contaminant"], "protein"].str.startswith("CONTAMINANT_").all()
    assert int((~table["unique"]).sum()) == 3
    assert (
        _value(
            table, "(UniMod:1)ADSRDPASDQMQHWK2", "20180914_QE8_nLC0_BDA_SA_DIA_Keratinocytes_NN002"
        )
        == 205_328.0
    )


def test_old_csv_without_precursor_id() -> None:
    table = _read(DATA / "msstatsconvert_diann_input.csv")
    assert _value(table, "AADNNIPTK2", "Run5") == 137.004
    assert table["pg_q_value"].isna().all()  # no PG.Q.Value in this old layout


def test_parquet_values_and_decoy_column() -> None:
    table = _read(PARQUET)
    assert _value(
        table, "APSDSSLGTPSDGRPELR3", "LFQ_Astral_DIA_15min_50ng_Human_01"
    ) == pytest.approx(1_255_490.375)
    assert table["decoy"].notna().all() and not table["decoy"].any()


def test_parquet_read_uses_projection_and_filter(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    real = pq.ParquetFile.iter_batches

    def spy(self: pq.ParquetFile, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(self, **kwargs)

    monkeypatch.setattr(diann.pq.ParquetFile, "iter_batches", spy)
    table = _read(PARQUET, q_value=0.01, pg_q_value=0.01)
    assert len(calls) == pq.ParquetFile(PARQUET).metadata.num_row_groups == 1
    columns = set(calls[0]["columns"])
    schema = set(pq.read_schema(PARQUET).names)
    assert {"Precursor.Id", "Run", "Protein.Group", "Precursor.Normalised", "Q.Value"} <= columns
    assert "PG.Q.Value" in columns
    assert len(columns) <= 12 < len(schema)  # 71 columns in the file
    assert not columns & {"Ms1.Area", "Fragment.Quant.Raw", "RT", "PG.MaxLFQ", "Protein.Names"}
    # the filter dropped rows at read time: exactly the rows pandas keeps on the raw file
    raw = pd.read_parquet(PARQUET)
    keep = (raw["Q.Value"] <= 0.01) & (raw["PG.Q.Value"] <= 0.01)
    assert len(table) == int(keep.sum()) == 71
    assert (table["q_value"] <= 0.01).all() and (table["pg_q_value"] <= 0.01).all()


def test_tsv_filter_applied_while_reading_in_chunks() -> None:
    raw = pd.read_csv(DATA / "DIANN_1.9_beta_slice.tsv", sep="\t")
    keep = (raw["Q.Value"] <= 0.001) & (raw["PG.Q.Value"] <= 0.01)
    table = _read(DATA / "DIANN_1.9_beta_slice.tsv", q_value=0.001, pg_q_value=0.01, chunk_rows=50)
    assert len(table) == int(keep.sum())


def test_missing_column_tsv(tmp_path: Path) -> None:
    raw = pd.read_csv(DATA / "DIANN_1.9_beta_slice.tsv", sep="\t", dtype=str)
    path = tmp_path / "report.tsv"
    raw.drop(columns=["Protein.Group"]).to_csv(path, sep="\t", index=False)
    with pytest.raises(InputFormatError, match=r"report\.tsv: missing column\(s\) Protein\.Group;"):
        _read(path)


def test_missing_column_parquet(tmp_path: Path) -> None:
    table = pq.read_table(PARQUET).drop_columns(["Q.Value"])
    path = tmp_path / "report.parquet"
    pq.write_table(table, path)
    with pytest.raises(InputFormatError, match=r"report\.parquet: missing column\(s\) Q\.Value;"):
        _read(path)


def test_plexdia_rejected(tmp_path: Path) -> None:
    raw = pd.read_parquet(PARQUET)
    raw["Channel"] = ["0", "4"] * (len(raw) // 2)
    path = tmp_path / "plex.parquet"
    raw.to_parquet(path)
    with pytest.raises(InputFormatError, match="plexDIA"):
        _read(path)


@pytest.mark.parametrize(
    ("fmt", "path"),
    [
        ("diann", DATA / "DIANN_1.9_beta_slice.tsv"),
        ("diann", DATA / "msstatsconvert_diann_input.csv"),
        ("diann", PARQUET),
    ],
)
def test_signature_matches_sample(fmt: str, path: Path) -> None:
    header, _ = table_header(path)
    assert set(diann.SIGNATURE[fmt]) <= set(header)
    others = {k: v for k, v in diann.SIGNATURE.items() if k != fmt}
    assert not any(set(v) <= set(header) for v in others.values())
