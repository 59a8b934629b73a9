"""Proteins the DIA-NN, Spectronaut and MaxDIA readers drop while reading are recorded.

These readers apply the q-value thresholds inside the scan (:mod:`pepmix.readers._dropped`): a
protein none of whose rows passes must still reach ``attrs[REMOVED_PROTEINS]`` with the reason,
so that it is listed as ``filtered`` in the results. Each case is built on a real slice in
``tests/data/formats/`` by raising the q-values of every row of one protein in a copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from pepmix import canonical
from pepmix.filters import removed_proteins
from pepmix.ingest import ingest_batch, read_input
from pepmix.readers.diann import read_diann
from pepmix.readers.maxquant import read_evidence
from pepmix.readers.spectronaut import read_spectronaut
from pepmix.stages import ingest, merge
from pepmix.stages.files import read_removed

FORMATS = Path(__file__).resolve().parents[1] / "data" / "formats"
Q = "no row passes the row filters: q_value <= 0.01"
PG = "no row passes the row filters: pg_q_value <= 0.01"
FILTERS = {"q_value": 0.01, "pg_q_value": 0.01}


def _edit(src: Path, dst: Path, sep: str, protein_column: str, edits: dict[str, str]) -> list[str]:
    """Copy ``src`` to ``dst`` setting, for the first proteins, column ``edits[...]`` to 0.5.

    Returns the proteins edited, one per entry of ``edits`` in order (each with every row edited).
    """
    table = pd.read_csv(src, sep=sep, dtype=str, keep_default_na=False)
    proteins = [p for p in pd.unique(table[protein_column]) if p.strip()][: len(edits)]
    for protein, column in zip(proteins, edits.values(), strict=True):
        table.loc[table[protein_column] == protein, column] = "0.5"
    table.to_csv(dst, sep=sep, index=False)
    return proteins


def test_diann_text_records_q_and_pg_drops(tmp_path: Path) -> None:
    path = tmp_path / "report.tsv"
    src = FORMATS / "diann" / "DIANN_1.9_beta_slice.tsv"
    p_q, p_pg = _edit(src, path, "\t", "Protein.Group", {"q": "Q.Value", "pg": "PG.Q.Value"})
    out = read_diann(path, {**FILTERS, "chunk_rows": 50})  # several chunks
    kept = set(out["protein"].astype(str))
    assert p_q not in kept and p_pg not in kept
    removed = removed_proteins(out)
    assert removed[p_q] == [Q, None, None]
    assert removed[p_pg] == [PG, None, None]
    # every protein of the file is kept or recorded, and nothing kept is recorded
    named = set(pd.read_csv(src, sep="\t", usecols=["Protein.Group"])["Protein.Group"].dropna())
    assert kept | set(removed) == named
    assert not kept & set(removed)


def test_diann_parquet_pass_matches_an_unfiltered_read(tmp_path: Path) -> None:
    """The real 2.x slice has proteins above both thresholds: compare with pandas on all rows."""
    path = FORMATS / "diann" / "entrapment_test_subset.report.parquet"
    out = read_diann(path, {**FILTERS, "chunk_rows": 7})  # several record batches
    raw = pq.read_table(path, columns=["Protein.Group", "Q.Value", "PG.Q.Value"]).to_pandas()
    raw = raw.loc[raw["Protein.Group"].str.strip() != ""]
    q_ok = ~(raw["Q.Value"] > 0.01)
    both_ok = q_ok & ~(raw["PG.Q.Value"] > 0.01)
    by_protein = raw.assign(q_ok=q_ok, both_ok=both_ok).groupby("Protein.Group")
    expected = {
        p: [Q if not row.q_ok else PG, None, None]
        for p, row in by_protein[["q_ok", "both_ok"]].any().iterrows()
        if not row.both_ok
    }
    assert len(expected) >= 5  # the slice does exercise the pass
    assert {row[0] for row in expected.values()} == {Q, PG}
    assert removed_proteins(out) == expected
    # without thresholds nothing is dropped while reading, so nothing is recorded
    assert removed_proteins(read_diann(path, {})) == {}


def test_spectronaut_records_q_drops(tmp_path: Path) -> None:
    """The slice has one protein group: its rows are repeated under two more names."""
    path = tmp_path / "spectronaut.csv"
    src = FORMATS / "spectronaut" / "msstatsconvert_spectronaut_slice.csv"
    table = pd.read_csv(src, dtype=str, keep_default_na=False)
    p_q, p_pg = "P_Q;P_Q2", "P_PG"
    copies = [table]
    for name, column in ((p_q, "EG.Qvalue"), (p_pg, "PG.Qvalue")):
        copy = table.assign(**{"PG.ProteinGroups": name, "PG.ProteinAccessions": name})
        copy[column] = "0.5"
        copies.append(copy)
    pd.concat(copies).to_csv(path, index=False)
    out = read_spectronaut(path, {**FILTERS, "chunk_rows": 100})
    removed = removed_proteins(out)
    assert removed == {p_q: [Q, None, None], p_pg: [PG, None, None]}
    assert {p_q, p_pg}.isdisjoint(set(out["protein"].astype(str)))


def test_maxdia_records_q_drops(tmp_path: Path) -> None:
    src = FORMATS / "maxquant" / "MaxDIA_slice.txt"
    path = tmp_path / "evidence.txt"
    shutil.copy(src, path)
    raw = pd.read_csv(src, sep="\t", usecols=["Leading razor protein", "Q-value"])
    ok = raw.assign(ok=~(raw["Q-value"] > 0.01)).groupby("Leading razor protein")["ok"].any()
    if ok.all():  # no protein of the slice fails entirely: make one
        _edit(src, path, "\t", "Leading razor protein", {"q": "Q-value"})
        raw = pd.read_csv(path, sep="\t", usecols=["Leading razor protein", "Q-value"])
        ok = raw.assign(ok=~(raw["Q-value"] > 0.01)).groupby("Leading razor protein")["ok"].any()
    out = read_evidence(path, {"q_value": 0.01})
    assert removed_proteins(out) == {p: [Q, None, None] for p in ok.index[~ok]}
    assert set(out["protein"].astype(str)) == set(ok.index[ok])


@pytest.mark.parametrize("q_value", [0.01, 0.05])
def test_ingest_carries_reader_drops(tmp_path: Path, q_value: float) -> None:
    """Through :func:`read_input` and :func:`ingest_batch`, with the threshold in the detail."""
    path = tmp_path / "report.tsv"
    src = FORMATS / "diann" / "DIANN_1.9_beta_slice.tsv"
    (p_q,) = _edit(src, path, "\t", "Protein.Group", {"q": "Q.Value"})
    entry = {"name": "b1", "format": "diann", "path": str(path)}
    filters = {"q_value": q_value, "pg_q_value": 0.01}
    detail = f"no row passes the row filters: q_value <= {q_value}"
    assert removed_proteins(read_input(entry, tmp_path, filters))[p_q] == [detail, None, None]
    assert removed_proteins(ingest_batch(entry, filters))[p_q] == [detail, None, None]


def test_reader_drops_reach_the_removed_list(tmp_path: Path) -> None:
    """Stages ``ingest`` and ``merge``: every protein of the file is kept or listed, once."""
    path = tmp_path / "report.tsv"
    src = FORMATS / "diann" / "DIANN_1.9_beta_slice.tsv"
    p_q, p_pg = _edit(src, path, "\t", "Protein.Group", {"q": "Q.Value", "pg": "PG.Q.Value"})
    filters = {**FILTERS, "min_features": 1, "min_observations": 1}
    batch = tmp_path / "b1.parquet"
    entry = {"name": "b1", "format": "diann", "path": str(path)}
    ingest.run(entry=entry, filters=filters).write(table=batch)
    runs = pd.read_csv(src, sep="\t", usecols=["Run"])["Run"].unique()
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("run\tcondition\n" + "".join(f"{r}\t{r.split('_')[4]}\n" for r in runs))
    features, removed = tmp_path / "features.parquet", tmp_path / "removed.tsv"
    merged = merge.run(batches=[batch], samples=sheet, filters=filters)
    merged.write(features=features, samples=tmp_path / "s.tsv", removed=removed)
    listed = read_removed(removed).set_index("protein")["detail"]
    assert listed[p_q] == Q and listed[p_pg] == PG
    kept = set(canonical.read_parquet(features)["protein"].astype(str))
    named = set(pd.read_csv(src, sep="\t", usecols=["Protein.Group"])["Protein.Group"].dropna())
    assert kept | set(listed.index) == named
    assert kept.isdisjoint(listed.index)
