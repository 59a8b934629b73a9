"""SDRF sample sheets (:mod:`pepmix.samples.sdrf`) and :func:`pepmix.samples.load_design`.

Counts were read off the SDRF files with pandas: PXD040438 has 24 data files, one factor value
(``organism part``: all ``blood plasma``) and ``characteristics[disease]`` COVID-19 x 14,
Normal x 10 with biological replicates numbered 1-14 and again 1-10; PXD019909 has 43 data files,
one factor value (``skin``) and 10 cell types.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pepmix.errors import ConfigError, SampleSheetError
from pepmix.samples import load_design
from pepmix.samples.sdrf import read_sdrf_design

DATA = Path(__file__).resolve().parents[1] / "data" / "formats" / "sdrf"
PLASMA = DATA / "PXD040438.sdrf.tsv"
SKIN = DATA / "PXD019909-DIA.sdrf.tsv"


def test_default_condition_is_the_only_factor_value() -> None:
    sheet = read_sdrf_design(PLASMA).runs
    assert list(sheet.columns[:4]) == ["run", "condition", "bioreplicate", "batch"]
    assert len(sheet) == 24
    assert sheet["run"].nunique() == 24
    assert set(sheet["condition"]) == {"blood plasma"}
    assert sheet.loc[0, "run"] == "03COVID"
    assert sheet["batch"].isna().all()
    assert {"sample", "technical_replicate"} <= set(sheet.columns)
    assert "fraction" not in sheet.columns  # a data-file attribute (see test_fractions.py)


def test_condition_from_characteristic_and_combined_bioreplicate() -> None:
    sheet = read_sdrf_design(PLASMA, condition_column="characteristics[disease]").runs
    assert sheet["condition"].value_counts().to_dict() == {"COVID-19": 14, "Normal": 10}
    assert sheet["bioreplicate"].nunique() == 24
    assert sheet.loc[0, "bioreplicate"] == "PXD040438-Sample-1|1"
    # the replicate number alone restarts per condition: it cannot identify the sample
    with pytest.raises(SampleSheetError, match="more than one condition"):
        read_sdrf_design(
            PLASMA, condition_column="disease", bioreplicate_column="biological replicate"
        )


def test_dia_sdrf_counts_and_batch() -> None:
    sheet = load_design(SKIN).runs
    assert len(sheet) == 43
    assert sheet["condition"].nunique() == 1
    by_cell = load_design(SKIN, condition_column="cell type", batch_column="label").runs
    assert by_cell["condition"].nunique() == 10
    assert by_cell["run"].nunique() == 43
    assert by_cell.loc[0, "run"] == "20180914_QE8_nLC0_BDA_SA_DIA_Keratinocytes_NN002"
    assert by_cell["batch"].nunique() == 1


def _write_sdrf(tmp_path: Path, rows: list[dict[str, str]]) -> Path:
    path = tmp_path / "design.sdrf.tsv"
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    return path


def _row(source: str, rep: str, file: str, **extra: str) -> dict[str, str]:
    row = {
        "source name": source,
        "characteristics[biological replicate]": rep,
        "comment[data file]": file,
        "comment[label]": "label free sample",
    }
    row.update(extra)
    return row


def test_several_factor_values_must_be_named(tmp_path: Path) -> None:
    path = _write_sdrf(
        tmp_path,
        [
            _row("s1", "1", "a.raw", **{"factor value[disease]": "x", "factor value[dose]": "1"}),
            _row("s2", "1", "b.raw", **{"factor value[disease]": "y", "factor value[dose]": "2"}),
        ],
    )
    with pytest.raises(SampleSheetError) as err:
        read_sdrf_design(path)
    assert "factor value[disease], factor value[dose]" in str(err.value)
    assert str(path) in str(err.value)
    assert list(read_sdrf_design(path, condition_column="dose").runs["condition"]) == ["1", "2"]


def test_fractions_make_one_run_per_source(tmp_path: Path) -> None:
    rows = [
        _row(s, "1", f"{s}_F{f}.raw", **{"factor value[c]": c, "comment[fraction identifier]": f})
        for s, c in (("s1", "A"), ("s2", "B"))
        for f in ("1", "2")
    ]
    sheet = read_sdrf_design(_write_sdrf(tmp_path, rows)).runs
    assert list(sheet["run"]) == ["s1", "s2"]
    assert sheet["bioreplicate"].nunique() == 2
    assert "fraction" not in sheet.columns  # the files of each run: see test_fractions.py


def test_not_available_condition_and_multiplexed_design(tmp_path: Path) -> None:
    path = _write_sdrf(
        tmp_path,
        [
            _row("s1", "1", "a.raw", **{"factor value[c]": "A"}),
            _row("s2", "1", "b.raw", **{"factor value[c]": "not available"}),
        ],
    )
    with pytest.raises(SampleSheetError, match=r"line 3: condition column .* 'not available'"):
        read_sdrf_design(path)
    tmt = [
        _row("s1", "1", "a.raw", **{"factor value[c]": "A"}),
        _row("s2", "1", "a.raw", **{"factor value[c]": "B"}),
    ]
    tmt[1]["comment[label]"] = "TMT127"
    with pytest.raises(SampleSheetError, match="multiplexed"):
        read_sdrf_design(_write_sdrf(tmp_path, tmt))


def test_load_design_dispatch(tmp_path: Path) -> None:
    tsv = tmp_path / "samples.tsv"
    tsv.write_text("run\tcondition\nr1.raw\tA\nr2\tB\n")
    sheet = load_design(tsv).runs
    assert list(sheet["run"]) == ["r1", "r2"]
    with pytest.raises(ConfigError, match="SDRF sample sheets only"):
        load_design(tsv, condition_column="condition")
    assert len(load_design(PLASMA, fmt="sdrf").runs) == 24
    with pytest.raises(SampleSheetError, match="missing column"):
        load_design(PLASMA, fmt="tsv")
