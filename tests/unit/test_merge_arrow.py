"""The merge stage's path for one batch given as an Arrow table (``stages.merge._merge_arrow``:
only the protein, feature, run and batch columns converted to pandas, the merged table an Arrow
filter of the batch) against the frame path (``merge_with_sheet`` on the whole frame, then
``canonical.to_arrow``): the same merged table (values, dictionaries, schema metadata, Parquet
bytes), frame, sheet, removed proteins and log line, with and without rows filtered out."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from pepmix.config import load_yaml, validate_config
from pepmix.io import write_arrow
from pepmix.stages import ingest, merge

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo() -> tuple[pa.Table, Path]:
    """The demo's batch as the ingest stage hands it on, and its sample sheet."""
    schema = load_yaml(REPO / "workflow/schemas/config.schema.yaml")
    config = validate_config(load_yaml(REPO / "config/config.yaml"), schema)
    entry = {**config["inputs"][0], "path": str(REPO / config["inputs"][0]["path"])}
    batch = ingest.run(entry=entry, filters=config["filter"], feature_level=config["feature_level"])
    return batch.arrow, REPO / config["samples"]


def _merged(
    batch: pa.Table, samples: Path, filters: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> tuple[merge.MergeResult, list[str]]:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pepmix.stages.merge"):
        result = merge.run(batches=[batch], samples=samples, filters=filters)
    lines = [r.getMessage() for r in caplog.records if r.name == "pepmix.stages.merge"]
    return result, lines


def _assert_same_frame(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """``assert_frame_equal``, categoricals by their codes and categories (much faster)."""
    assert list(a.columns) == list(b.columns)
    assert a.index.equals(b.index)
    for column in a.columns:
        x, y = a[column], b[column]
        assert x.dtype == y.dtype, column
        if isinstance(x.dtype, pd.CategoricalDtype):
            assert list(x.cat.categories) == list(y.cat.categories), column
            assert (x.cat.codes.to_numpy() == y.cat.codes.to_numpy()).all(), column
        else:
            pd.testing.assert_series_equal(x, y)


@pytest.mark.parametrize(
    "filters",
    [
        {"min_features": 2, "min_observations": 2},
        {"min_features": 3, "min_observations": 10},
        {"min_features": 1, "min_observations": 1},  # nothing filtered out
    ],
)
def test_arrow_path_equals_frame_path(
    demo: tuple[pa.Table, Path],
    filters: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    batch, samples = demo
    fast, fast_log = _merged(batch, samples, filters, caplog)
    assert isinstance(fast.table, pa.Table)  # the Arrow path was taken
    with monkeypatch.context() as patch:
        patch.setattr(merge, "_merge_arrow", lambda *_: None)
        slow, slow_log = _merged(batch, samples, filters, caplog)
    assert isinstance(slow.table, pd.DataFrame)
    assert fast.arrow.equals(slow.arrow)
    assert fast.arrow.schema.equals(slow.arrow.schema, check_metadata=True)
    for column in fast.arrow.column_names:  # one chunk, the same dictionary
        assert fast.arrow.column(column).num_chunks == slow.arrow.column(column).num_chunks
    write_arrow(fast.arrow, tmp_path / "fast.parquet")
    write_arrow(slow.arrow, tmp_path / "slow.parquet")
    assert (tmp_path / "fast.parquet").read_bytes() == (tmp_path / "slow.parquet").read_bytes()
    _assert_same_frame(fast.features, slow.features)
    assert fast.features.attrs == slow.features.attrs
    pd.testing.assert_frame_equal(fast.runs, slow.runs)
    pd.testing.assert_frame_equal(fast.removed, slow.removed)
    assert fast_log == slow_log
    if filters["min_features"] > 1:
        assert fast.arrow.num_rows < batch.num_rows  # rows were filtered out
        assert len(fast.removed) > 0


def test_batch_in_several_chunks_takes_the_frame_path(
    demo: tuple[pa.Table, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """A batch whose columns are in several chunks (e.g. read from a file) may hold several
    dictionaries: the frame path merges it, with the same result."""
    batch, samples = demo
    filters = {"min_features": 2, "min_observations": 2}
    chunked = pa.Table.from_batches(batch.to_batches(max_chunksize=batch.num_rows // 3 + 1))
    assert chunked.column(0).num_chunks > 1
    result, _ = _merged(chunked, samples, filters, caplog)
    assert isinstance(result.table, pd.DataFrame)
    expected, _ = _merged(batch, samples, filters, caplog)
    assert result.arrow.equals(expected.arrow)
