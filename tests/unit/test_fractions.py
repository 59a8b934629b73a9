"""Fractions of one sample: a file -> run map from the sample sheet, fractions summed at merge.

Real data: the OpenMS ProteomicsLFQ test output (BSA dilution series, 3 samples x 2 fractions,
files ``BSA1_F1.mzML`` ... ``BSA3_F2.mzML``), as the MSstats CSV (one row per fraction file) and
as the mzTab, in which ProteomicsLFQ itself summed the fractions of each sample (assay). The
fractions combined by pepmix from the CSV must reproduce the mzTab's per-sample values.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pepmix import canonical
from pepmix.errors import SampleSheetError
from pepmix.ingest import combine_duplicates, ingest_batch, read_input
from pepmix.merge import merge_batches
from pepmix.samples import load_design
from pepmix.samples.sdrf import read_sdrf_design
from pepmix.samples.tsv import read_tsv_design
from pepmix.stages import merge

DATA = Path(__file__).resolve().parents[1] / "data" / "formats" / "openms_quantms"
CSV = DATA / "ProteomicsLFQ_1_out.msstats.csv"
MZTAB = DATA / "ProteomicsLFQ_1_out.mzTab"
FILTERS = {"min_features": 1, "min_observations": 1}
SAMPLES = ("BSA1", "BSA2", "BSA3")


def _sdrf_rows(samples: tuple[str, ...] = SAMPLES) -> list[dict[str, str]]:
    return [
        {
            "source name": s,
            "characteristics[organism]": "Bos taurus",
            "characteristics[biological replicate]": "1",
            "assay name": f"run {i * 2 + int(f)}",
            "comment[label]": "label free sample",
            "comment[data file]": f"{s}_F{f}.mzML",
            "comment[fraction identifier]": f,
            "comment[technical replicate]": "1",
            "factor value[dilution]": s,
        }
        for i, s in enumerate(samples)
        for f in ("1", "2")
    ]


def _write_sdrf(path: Path, rows: list[dict[str, str]]) -> Path:
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    return path


def _write_tsv_sheet(path: Path) -> Path:
    lines = ["run\tcondition\tfile\tfraction"]
    lines += [f"{s}\t{s}\t{s}_F{f}.mzML\t{f}" for s in SAMPLES for f in ("1", "2")]
    path.write_text("\n".join(lines) + "\n")
    return path


def _batch() -> pd.DataFrame:
    return ingest_batch({"name": "lfq", "format": "openms", "path": str(CSV)}, FILTERS)


def test_sdrf_fractions_make_one_run_per_source(tmp_path: Path) -> None:
    design = read_sdrf_design(_write_sdrf(tmp_path / "bsa.sdrf.tsv", _sdrf_rows()))
    assert list(design.runs["run"]) == list(SAMPLES)
    assert list(design.runs["condition"]) == list(SAMPLES)
    assert design.files is not None
    assert list(design.files["file"]) == [f"{s}_F{f}" for s in SAMPLES for f in "12"]
    assert list(design.files["fraction"]) == ["1", "2"] * 3
    assert design.file_runs() == {f"{s}_F{f}": s for s in SAMPLES for f in "12"}


def test_tsv_file_column_gives_the_same_design(tmp_path: Path) -> None:
    tsv = read_tsv_design(_write_tsv_sheet(tmp_path / "samples.tsv"))
    sdrf = load_design(_write_sdrf(tmp_path / "bsa.sdrf.tsv", _sdrf_rows()))
    assert tsv.file_runs() == sdrf.file_runs()
    assert list(tsv.runs.columns[:4]) == ["run", "condition", "bioreplicate", "batch"]
    assert "file" not in tsv.runs.columns and "fraction" not in tsv.runs.columns
    assert list(tsv.runs["bioreplicate"]) == list(SAMPLES)


def test_merged_fractions_reproduce_proteomicslfq_assays(tmp_path: Path) -> None:
    design = load_design(_write_sdrf(tmp_path / "bsa.sdrf.tsv", _sdrf_rows()))
    merged = merge_batches([_batch()], design.runs, FILTERS, file_runs=design.file_runs())
    assert set(merged["run"]) == set(SAMPLES)
    assert not merged.duplicated(["protein", "feature", "run"]).any()
    assert merged["fraction"].isna().all()
    # independently: the raw CSV summed over fractions per sample
    raw = pd.read_csv(CSV)
    raw["sample"] = raw["Reference"].str.split("_").str[0]
    raw["feature"] = (
        raw["PeptideSequence"].str.lstrip(".") + "_" + raw["PrecursorCharge"].astype(str)
    )
    expected = raw.groupby(["ProteinName", "feature", "sample"])["Intensity"].sum()
    got = merged.set_index(["protein", "feature", "run"])["intensity"]
    assert len(got) == len(expected) == 67
    np.testing.assert_allclose(got.loc[expected.index].to_numpy(), expected.to_numpy())
    # ProteomicsLFQ's own sums (mzTab assays "BSA1_F1+BSA1_F2"): agree to the CSV's precision
    mztab = combine_duplicates(read_input({"name": "m", "format": "openms", "path": str(MZTAB)}))
    mztab["run"] = mztab["run"].str.split("_").str[0]
    theirs = mztab.set_index(["protein", "feature", "run"])["intensity"]
    common = got.index.intersection(theirs.index)
    assert len(common) == 67  # the mzTab has one more value (LSSPATLNSR_2 in BSA3)
    np.testing.assert_allclose(got.loc[common], theirs.loc[common], rtol=5e-4)


def test_fractions_are_summed(tmp_path: Path) -> None:
    """A feature seen in two fractions of a run gets the sum (the BSA files never overlap)."""
    table = canonical.conform(
        pd.DataFrame(
            {
                "protein": ["P1"] * 4,
                "feature": ["AAK_2", "AAK_2", "CCK_2", "AAK_2"],
                "run": ["s1_F1", "s1_F2", "s1_F2", "s2_F1"],
                "intensity": [100.0, 50.0, 7.0, 30.0],
                "fraction": ["1", "2", "2", "1"],
                "batch": "b1",
            }
        ),
        "test",
    )
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("run\tcondition\tfile\ns1\tA\ts1_F1.raw\ns1\tA\ts1_F2.raw\ns2\tB\ts2_F1.raw\n")
    design = read_tsv_design(sheet)
    merged = merge_batches([table], design.runs, FILTERS, file_runs=design.file_runs())
    values = merged.set_index(["feature", "run"])["intensity"].to_dict()
    assert values == {("AAK_2", "s1"): 150.0, ("CCK_2", "s1"): 7.0, ("AAK_2", "s2"): 30.0}
    # s2 has a single file: its fraction is kept; s1's rows are sums over fractions
    fraction = merged.set_index(["feature", "run"])["fraction"]
    assert fraction[("AAK_2", "s2")] == "1" and pd.isna(fraction[("AAK_2", "s1")])


def test_merge_stage_writes_one_row_per_run(tmp_path: Path) -> None:
    batch = tmp_path / "lfq.parquet"
    canonical.write_parquet(_batch(), batch)
    sdrf = _write_sdrf(tmp_path / "bsa.sdrf.tsv", _sdrf_rows())
    out, samples = tmp_path / "features.parquet", tmp_path / "samples.tsv"
    merge.run(batches=[batch], samples=sdrf, filters=FILTERS).write(features=out, samples=samples)
    sheet = pd.read_csv(samples, sep="\t")
    assert list(sheet["run"]) == list(SAMPLES)
    assert list(sheet["batch"]) == ["lfq"] * 3  # from the input name: the SDRF has no batch
    assert set(pd.read_parquet(out)["run"]) == set(SAMPLES)


def test_data_file_missing_from_sheet(tmp_path: Path) -> None:
    rows = [r for r in _sdrf_rows() if r["comment[data file]"] != "BSA2_F2.mzML"]
    design = load_design(_write_sdrf(tmp_path / "bsa.sdrf.tsv", rows))
    with pytest.raises(SampleSheetError) as err:
        merge_batches([_batch()], design.runs, FILTERS, "bsa.sdrf.tsv", design.file_runs())
    message = str(err.value)
    assert "bsa.sdrf.tsv" in message and "BSA2_F2" in message and "\n" not in message


def test_fraction_absent_from_data_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = _sdrf_rows()
    rows.append({**rows[-1], "comment[data file]": "BSA3_F3.mzML", "assay name": "run 7"})
    rows[-1]["comment[fraction identifier]"] = "3"
    design = load_design(_write_sdrf(tmp_path / "bsa.sdrf.tsv", rows))
    with caplog.at_level(logging.WARNING, logger="pepmix.ingest"):
        merged = merge_batches([_batch()], design.runs, FILTERS, file_runs=design.file_runs())
    assert set(merged["run"]) == set(SAMPLES)
    assert "BSA3_F3" in caplog.text


def test_sdrf_technical_replicates_of_fractions(tmp_path: Path) -> None:
    rows = []
    for rep in ("1", "2"):
        for row in _sdrf_rows(("BSA1",)):
            rows.append(
                {
                    **row,
                    "comment[technical replicate]": rep,
                    "comment[data file]": f"BSA1_R{rep}_F{row['comment[fraction identifier]']}",
                }
            )
    design = read_sdrf_design(_write_sdrf(tmp_path / "reps.sdrf.tsv", rows))
    assert list(design.runs["run"]) == ["BSA1_1", "BSA1_2"]
    assert design.runs["bioreplicate"].nunique() == 1  # technical replicates of one sample
    assert design.file_runs() == {
        "BSA1_R1_F1": "BSA1_1",
        "BSA1_R1_F2": "BSA1_1",
        "BSA1_R2_F1": "BSA1_2",
        "BSA1_R2_F2": "BSA1_2",
    }
    # without the technical replicate column the repeated fraction numbers are ambiguous
    for row in rows:
        del row["comment[technical replicate]"]
    with pytest.raises(SampleSheetError, match=r"'BSA1'.*fraction identifier '1' more than once"):
        read_sdrf_design(_write_sdrf(tmp_path / "ambiguous.sdrf.tsv", rows))


def test_sdrf_without_several_fractions_keeps_file_runs(tmp_path: Path) -> None:
    rows = _sdrf_rows()
    for row in rows:
        row["comment[fraction identifier]"] = "1"
        row["source name"] = row["comment[data file]"].split(".")[0]
    design = read_sdrf_design(_write_sdrf(tmp_path / "plain.sdrf.tsv", rows))
    assert design.files is None
    assert list(design.runs["run"]) == [f"{s}_F{f}" for s in SAMPLES for f in "12"]


def test_run_level_columns_must_agree(tmp_path: Path) -> None:
    path = tmp_path / "samples.tsv"
    path.write_text("run\tcondition\tfile\ns1\tA\ta.raw\ns1\tB\tb.raw\ns2\tB\tc.raw\n")
    with pytest.raises(SampleSheetError) as err:
        read_tsv_design(path)
    message = str(err.value)
    assert str(path) in message and "'s1'" in message and "'condition'" in message
    assert "'A', 'B'" in message
    path.write_text("run\tcondition\tfile\ns1\tA\ta.raw\ns2\tB\ta.raw\n")
    with pytest.raises(SampleSheetError, match=r"file\(s\) listed more than once: a"):
        read_tsv_design(path)
