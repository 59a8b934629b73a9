"""Rule ``prepare`` passes each stage's table on in memory: its files are those of the four
stages run one after the other from the files (the rules ``ingest``, ``merge``, ``normalize``,
``shard``), byte for byte; the tables written by its writer thread are complete when it
returns, and a failed write fails it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pepmix.config import load_yaml, validate_config
from pepmix.io import atomic_path, write_arrow
from pepmix.stages import ingest, merge, normalize, prepare, shard

REPO = Path(__file__).resolve().parents[2]
SHARDS = ["1-of-2", "2-of-2"]


def _outputs(root: Path) -> prepare.PrepareOutputs:
    return prepare.PrepareOutputs(
        batch=root / "ingest/batches/demo.parquet",
        merged=root / "ingest/features.parquet",
        samples=root / "ingest/samples.tsv",
        removed=root / "ingest/removed_proteins.tsv",
        features=root / "normalize/features.parquet",
        runs=root / "normalize/runs.tsv",
        shards=[root / f"shards/{s}/features.parquet" for s in SHARDS],
        largest=[root / f"shards/{s}/largest.json" for s in SHARDS],
        alerts={},
        logs={},
    )


def test_prepare_writes_the_files_of_the_four_stages(tmp_path: Path) -> None:
    schema = load_yaml(REPO / "workflow/schemas/config.schema.yaml")
    config = validate_config(load_yaml(REPO / "config/config.yaml"), schema)
    entry = {**config["inputs"][0], "path": str(REPO / config["inputs"][0]["path"])}
    samples = REPO / config["samples"]
    sheet, norm, filters = config.get("sample_sheet", {}), config["normalization"], config["filter"]

    one = _outputs(tmp_path / "one")
    prepare.run(
        entry=entry,
        filters=filters,
        feature_level=config["feature_level"],
        samples=samples,
        sheet_config=sheet,
        normalization=norm,
        outputs=one,
    )
    four = _outputs(tmp_path / "four")
    ingest.run(entry=entry, filters=filters, feature_level=config["feature_level"]).write(
        table=four.batch
    )
    merge.run(batches=[four.batch], samples=samples, sheet_config=sheet, filters=filters).write(
        features=four.merged, samples=four.samples, removed=four.removed
    )
    normalize.run(features=four.merged, samples=four.samples, options=norm).write(
        features=four.features, runs=four.runs
    )
    shard.run(features=four.features, shards=four.shards, largest=four.largest)

    files = sorted(p.relative_to(tmp_path / "four") for p in (tmp_path / "four").rglob("*.*"))
    assert len(files) == 10
    for name in files:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "four" / name).read_bytes(), (
            name
        )


def test_run_names_once_per_value_equal_the_per_row_names() -> None:
    """``run_names`` (one ``run_name`` call per distinct value) gives the column the per-row
    ``map(run_name)`` gives: values, nulls and dtype, for text and categorical columns."""
    import pandas as pd

    from pepmix.readers._common import run_name, run_names

    raw = ["/data/A_01.mzML.gz", "S:\\data\\A_01.raw", None, " B.d ", "/data/A_01.mzML.gz", "C"]
    for series in (
        pd.Series(raw),
        pd.Series(raw, dtype="string"),
        pd.Series(raw, dtype="str"),
        pd.Series(raw).astype("category"),
    ):
        expected = series.map(run_name, na_action="ignore")
        got = run_names(series)
        pd.testing.assert_series_equal(got, expected)
    assert list(run_names(pd.Series(raw)))[:2] == ["A_01", "A_01"]


def _demo_run(outputs: prepare.PrepareOutputs) -> None:
    schema = load_yaml(REPO / "workflow/schemas/config.schema.yaml")
    config = validate_config(load_yaml(REPO / "config/config.yaml"), schema)
    prepare.run(
        entry={**config["inputs"][0], "path": str(REPO / config["inputs"][0]["path"])},
        filters=config["filter"],
        feature_level=config["feature_level"],
        samples=REPO / config["samples"],
        sheet_config=config.get("sample_sheet", {}),
        normalization=config["normalization"],
        outputs=outputs,
    )


def _failing_write(target: Path) -> Callable[[pa.Table, Path], None]:
    """``write_arrow``, except that the write of ``target`` fails half-way (after writing part
    of its temporary file, as a full disk would)."""

    def write(table: pa.Table, path: Path) -> None:
        if Path(path) != target:
            write_arrow(table, path)
            return
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"PAR1 half a table")
            raise OSError(f"no space left writing {Path(path).name}")

    return write


@pytest.mark.parametrize("table", ["batch", "merged", "features"])
def test_a_failed_table_write_fails_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: str
) -> None:
    """The tables are written by a writer thread: its failure (on the first, the middle or the
    last table) is raised by ``prepare.run`` and leaves no file, not even a temporary one."""
    outputs = _outputs(tmp_path)
    target = Path(getattr(outputs, table))
    monkeypatch.setattr(prepare, "write_arrow", _failing_write(target))
    with pytest.raises(OSError, match="no space left"):
        _demo_run(outputs)
    assert not target.exists()
    assert not [p for p in target.parent.iterdir() if p.name.endswith(".tmp")]


def test_a_failed_write_is_reported_with_the_stage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When a stage fails as well, its exception is raised once the writes have finished, and
    the failed write is named in it (not lost)."""
    outputs = _outputs(tmp_path)
    monkeypatch.setattr(prepare, "write_arrow", _failing_write(Path(outputs.features)))

    def broken(**_: object) -> None:
        raise RuntimeError("shard failed")

    monkeypatch.setattr(shard, "run", broken)
    with pytest.raises(RuntimeError, match="shard failed") as info:
        _demo_run(outputs)
    notes = getattr(info.value, "__notes__", [])
    assert any("no space left writing features.parquet" in note for note in notes), notes
    # the writes that did not fail finished, complete
    assert pq.read_table(outputs.batch).num_rows > 0
    assert pq.read_table(outputs.merged).num_rows > 0
    assert not Path(outputs.features).exists()
