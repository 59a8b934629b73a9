"""Every input protein accounted for: removed proteins carried from ingest to the test stage.

Ingest records the proteins a batch loses (no valid intensity, row filters), merge keeps those
absent from every batch and adds the protein filters' (:func:`pepmix.merge.removed_in_merge`),
the test stage lists them with status ``filtered`` after the tested rows, outside BH.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pepmix import canonical
from pepmix.filters import REMOVED_PROTEINS, filter_proteins, filter_rows, removed_proteins
from pepmix.inference.differential import (
    CONTRACT_COLUMNS,
    InferenceOptions,
    add_filtered,
    differential_table,
)
from pepmix.ingest import ingest_batch
from pepmix.stages import ingest, merge, variance_components
from pepmix.stages.files import read_removed

from .format_helpers import three_proteins

HEADER = "protein\tpeptide\trun\tintensity\tq_value\tdecoy\n"
Q_DETAIL = "no row passes the row filters: q_value <= 0.01"


def _rows(protein: str, peptides: list[str], runs: list[str], value: str = "100",
          q: str = "0.001", decoy: str = "false") -> str:  # fmt: skip
    return "".join(f"{protein}\t{p}\t{r}\t{value}\t{q}\t{decoy}\n" for p in peptides for r in runs)


def _batch1(path: Path) -> Path:
    runs = ["r1", "r2"]
    path.write_text(
        HEADER
        + _rows("P1", ["AK", "BK"], runs)  # kept
        + _rows("P2", ["CK", "DK"], runs, value="NA")  # no valid intensity here, fine in b2
        + _rows("P3", ["EK", "FK"], runs, q="0.5")  # q-value here, no valid intensity in b2
        + _rows("REV_P4", ["GK", "HK"], runs, decoy="true")  # decoy
        + _rows("P5", ["IK"], runs)  # one feature: min_features
        + _rows("P6", ["JK"], runs, q="0.5")  # one row fails the q-value, one passes
        + _rows("P6", ["KK", "LK"], runs)
        + _rows("P7", ["MK", "NK"], ["r1"], value="0")  # zeros: no valid intensity
    )
    return path


def _batch2(path: Path) -> Path:
    runs = ["r3", "r4"]
    path.write_text(
        HEADER
        + _rows("P1", ["AK", "BK"], runs)
        + _rows("P2", ["CK", "DK"], runs)
        + _rows("P3", ["EK", "FK"], runs, value="NA")
    )
    return path


def test_batch_records_each_reason(tmp_path: Path) -> None:
    entry = {"name": "b1", "format": "generic_long", "path": str(_batch1(tmp_path / "b1.tsv"))}
    table = ingest_batch(entry, {"q_value": 0.01})
    assert removed_proteins(table) == {
        "P2": ["no valid intensity", None, None],
        "P3": [Q_DETAIL, None, None],
        "REV_P4": ["decoy", None, None],
        "P7": ["no valid intensity", None, None],
    }
    # kept in the batch Parquet file (as the empty runs are)
    out = tmp_path / "b1.parquet"
    ingest.run(entry=entry, filters={"q_value": 0.01}).write(table=out)
    assert removed_proteins(canonical.read_parquet(out)) == removed_proteins(table)


def test_row_filters_name_the_filter_that_removed_the_last_row() -> None:
    table = canonical.conform(
        pd.DataFrame(
            {
                "protein": ["P1", "CON__P2", "P3", "P4", "P4", "P5"],
                "feature": ["a", "b", "c", "d", "e", "f"],
                "run": ["r1"] * 6,
                "intensity": [1.0] * 6,
                "pg_q_value": [0.001, 0.001, 0.001, 0.001, 0.001, 0.5],
                "contaminant": [False, True, False, False, False, False],
                "unique": [True, True, False, False, True, True],
            }
        ),
        "test",
    )
    kept = filter_rows(table, {})
    assert set(kept["protein"].astype(str)) == {"P1", "P4"}
    assert removed_proteins(kept) == {
        "CON__P2": ["contaminant", None, None],
        "P3": ["no row passes the row filters: only shared peptides", None, None],
        "P5": ["no row passes the row filters: pg_q_value <= 0.01", None, None],
    }


def test_protein_filter_details_and_counts() -> None:
    table = three_proteins()
    kept = filter_proteins(table, {"min_features": 2, "min_observations": 3})
    assert removed_proteins(kept) == {
        "P2": ["1 feature < min_features 2", 1, 3],
        "P3": ["2 observations < min_observations 3", 2, 2],
    }
    assert REMOVED_PROTEINS not in table.attrs  # the input is not changed
    both = filter_proteins(table, {"min_features": 2, "min_observations": 4})
    assert removed_proteins(both)["P2"] == [
        "1 feature < min_features 2; 3 observations < min_observations 4", 1, 3,
    ]  # fmt: skip


def test_merge_keeps_proteins_present_in_another_batch(tmp_path: Path) -> None:
    filters = {"q_value": 0.01, "min_features": 2}
    outs = []
    for name, make in (("b1", _batch1), ("b2", _batch2)):
        entry = {"name": name, "format": "generic_long", "path": str(make(tmp_path / name))}
        outs.append(tmp_path / f"{name}.parquet")
        ingest.run(entry=entry, filters=filters).write(table=outs[-1])
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("run\tcondition\nr1\tA\nr2\tB\nr3\tA\nr4\tB\n")
    features, removed = tmp_path / "features.parquet", tmp_path / "removed.tsv"
    merged = merge.run(batches=outs, samples=sheet, filters=filters)
    merged.write(features=features, samples=tmp_path / "s.tsv", removed=removed)
    table = read_removed(removed)
    assert list(table.columns) == ["protein", "detail", "n_features", "n_observations"]
    rows = {r.protein: (r.detail, r.n_features, r.n_observations) for r in table.itertuples()}
    # P2: no valid intensity in b1 but measured in b2: kept, not listed
    assert rows == {
        "P3": (f"b1: {Q_DETAIL}; b2: no valid intensity", pd.NA, pd.NA),
        "P5": ("1 feature < min_features 2", 1, 2),
        "P7": ("no valid intensity", pd.NA, pd.NA),
        "REV_P4": ("decoy", pd.NA, pd.NA),
    }
    assert list(table["protein"]) == sorted(rows)
    merged = canonical.read_parquet(features)
    assert set(merged["protein"].astype(str)) == {"P1", "P2", "P6"}
    assert REMOVED_PROTEINS not in merged.attrs  # the list goes to its own file only
    # every input protein is kept or listed, once
    assert set(merged["protein"].astype(str)).isdisjoint(rows)


def _stats() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    proteins = [f"P{i:02d}" for i in range(12)]
    frames = []
    for contrast in ("B - A", "C - A"):
        frames.append(
            pd.DataFrame(
                {
                    "protein": proteins,
                    "contrast": contrast,
                    "estimate": rng.normal(0, 1, 12),
                    "se": rng.uniform(0.2, 0.5, 12),
                    "df": 6.0,
                    "status": ["ok"] * 11 + ["not_estimable"],
                    "detail": "",
                    "n_features": 3,
                    "n_observations": 18,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _removed() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "protein": ["Z9", "A0"],
            "detail": ["decoy", "1 feature < min_features 2"],
            "n_features": pd.array([pd.NA, 1], dtype="Int64"),
            "n_observations": pd.array([pd.NA, 6], dtype="Int64"),
        }
    )


def test_filtered_rows_follow_each_contrast_outside_bh() -> None:
    order = ["B - A", "C - A"]
    table = differential_table(_stats(), order, InferenceOptions(moderation=False))
    out = add_filtered(table, _removed(), order)
    assert list(out.columns) == list(table.columns)
    assert list(out.columns[: len(CONTRACT_COLUMNS)]) == list(CONTRACT_COLUMNS)
    assert len(out) == len(table) + 2 * 2
    for name in order:
        part = out.loc[out["contrast"] == name]
        before = table.loc[table["contrast"] == name]
        # the tested rows unchanged (BH over them only), the filtered ones after, by protein
        pd.testing.assert_frame_equal(
            part.iloc[: len(before)].reset_index(drop=True),
            before.reset_index(drop=True),
            check_dtype=False,
        )
        extra = part.iloc[len(before) :]
        assert list(extra["protein"]) == ["A0", "Z9"]
        assert list(extra["status"]) == ["filtered", "filtered"]
        assert list(extra["detail"]) == ["1 feature < min_features 2", "decoy"]
        assert extra[["log2fc", "se", "df", "t", "pvalue", "adj_pvalue"]].isna().all().all()
        assert extra["n_features"].tolist() == [1, pd.NA]
    assert out["n_features"].dtype == "Int64"
    assert add_filtered(table, _removed().iloc[:0], order) is table


def test_variance_table_lists_filtered_proteins(tmp_path: Path) -> None:
    proteins = pd.DataFrame(
        {
            "protein": ["P1"],
            "var_feature": [0.5],
            "var_residual": [0.1],
            "n_features": [3],
            "n_observations": [18],
            "status": ["ok"],
            "detail": [""],
        }
    )
    proteins.to_parquet(tmp_path / "proteins.parquet")
    from pepmix.io import write_tsv
    from pepmix.merge import removed_frame

    write_tsv(removed_frame({"P9": ["decoy", None, None]}), tmp_path / "removed.tsv")
    table = variance_components.run(
        proteins=tmp_path / "proteins.parquet", removed=tmp_path / "removed.tsv"
    )
    table.write(tmp_path / "vc.tsv")
    out = pd.read_csv(tmp_path / "vc.tsv", sep="\t")
    assert list(out["protein"]) == ["P1", "P9"]
    assert list(out["status"]) == ["ok", "filtered"]
    assert out.loc[1, "detail"] == "decoy"
    assert np.isnan(out.loc[1, "var_residual"])


@pytest.mark.parametrize("n_features", [1, 2])
def test_removed_frame_round_trip(tmp_path: Path, n_features: int) -> None:
    from pepmix.io import write_tsv
    from pepmix.merge import removed_frame

    record = {"B": ["decoy", None, None], "A": ["x", n_features, 4]}
    write_tsv(removed_frame(record), tmp_path / "r.tsv")
    back = read_removed(tmp_path / "r.tsv")
    assert list(back["protein"]) == ["A", "B"]
    assert back["n_features"].tolist() == [n_features, pd.NA]
