"""Rule ``prepare`` passes each stage's table on in memory: its files are those of the four
stages run one after the other from the files (the rules ``ingest``, ``merge``, ``normalize``,
``shard``), byte for byte."""

from __future__ import annotations

from pathlib import Path

from pepmix.config import load_yaml, validate_config
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
