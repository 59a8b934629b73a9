"""The DIA-NN Parquet scan (:class:`pepmix.readers.diann.ParquetScan`, one pass over the row
groups) against its reference form, the reader's earlier two passes: a pyarrow dataset read
with the filter expression ``(q <= t) | is_null(q)`` pushed into the scan, and a second read of
the protein and q-value columns for the dropped-protein record.

Both must give the same frame (values, dtypes and the order of each categorical's categories,
which fixes every later table's dictionary) and the same record, on the real DIA-NN 2.x fixture
as it is and rewritten with several row groups and q-values on the edges of the filter (null,
NaN, float32 values next to the threshold). The reference's integer 0/1 flag columns are taken
as booleans, as the scan's frame has them (:func:`pepmix.readers.diann._flags_as_bool`; tested
at the end against ``parse_flag`` of the integers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pepmix.readers import diann
from pepmix.readers._dropped import DroppedProteins

FIXTURE = Path(__file__).parents[1] / "data" / "formats" / "diann"
PARQUET = FIXTURE / "entrapment_test_subset.report.parquet"
COLUMNS = [
    "Protein.Group",
    "Precursor.Id",
    "Precursor.Normalised",
    "Q.Value",
    "Run",
    "PG.Q.Value",
    "Modified.Sequence",
    "Precursor.Charge",
    "Decoy",
    "Proteotypic",
    "Channel",
]


def _reference(
    path: Path, thresholds: dict[str, float], batch_rows: int
) -> tuple[pd.DataFrame, DroppedProteins]:
    """The earlier reader: the filtered dataset scan and the separate dropped-protein pass."""
    record = DroppedProteins([f"step{i}" for i in range(len(thresholds))])
    expression: Any = None
    for column, limit in thresholds.items():
        field = pc.field(column)
        condition = (field <= limit) | field.is_null()
        expression = condition if expression is None else expression & condition
    schema = pq.read_schema(path)
    text = [c for c in COLUMNS if pa.types.is_string(schema.field(c).type)]
    table = pq.read_table(path, columns=COLUMNS, filters=expression, read_dictionary=text)
    frame: pd.DataFrame = table.to_pandas(split_blocks=True)
    for flag in ("Decoy", "Proteotypic"):  # integer 0/1 flags come as booleans (_flags_as_bool)
        values = frame[flag]
        if values.dtype.kind in "iu" and values.isin([0, 1]).all():
            frame[flag] = values.astype(bool)
    if thresholds:
        source = pq.ParquetFile(path, read_dictionary=["Protein.Group"])
        in_file = ["Protein.Group", *thresholds]
        for batch in source.iter_batches(batch_size=batch_rows, columns=in_file):
            protein = batch.column(0)
            codes = protein.indices.to_numpy(zero_copy_only=False)
            codes = np.where(protein.is_null().to_numpy(zero_copy_only=False), -1, codes)
            passes = [
                ~(batch.column(i + 1).to_numpy(zero_copy_only=False) > limit)
                for i, limit in enumerate(thresholds.values())
            ]
            record.add_codes(codes.astype(np.int64), protein.dictionary.to_pylist(), passes)
    return frame, record


def _new(
    path: Path, thresholds: dict[str, float], batch_rows: int
) -> tuple[pd.DataFrame, DroppedProteins]:
    record = DroppedProteins([f"step{i}" for i in range(len(thresholds))])
    frame = diann._read_parquet(path, COLUMNS, thresholds, ("Protein.Group", record), batch_rows)
    return frame, record


def _edited(tmp_path: Path, row_group_size: int) -> Path:
    """The fixture's rows three times over (runs renamed), in row groups of ``row_group_size``
    rows, with q-values on the filter's edges and one protein all of whose rows fail."""
    raw = pq.read_table(PARQUET, columns=COLUMNS).to_pandas()
    parts = []
    for i in range(3):
        part = raw.copy()
        part["Run"] = part["Run"] + f"_{i}"
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    rng = np.random.default_rng(7)
    q = frame["Q.Value"].to_numpy(dtype=np.float32).copy()
    pg = frame["PG.Q.Value"].to_numpy(dtype=np.float32).copy()
    edges = np.array(
        [
            np.float32(0.05),  # above 0.05 in float64: fails q <= 0.05
            np.nextafter(np.float32(0.05), np.float32(0)),
            np.float32(0.01),  # below 0.01 in float64: passes q <= 0.01
            np.nextafter(np.float32(0.01), np.float32(1)),
            np.float32(np.nan),  # fails the filter, passes the record's "not above"
            np.float32(0.5),
        ],
        dtype=np.float32,
    )
    rows = rng.choice(len(frame), size=120, replace=False)
    q[rows[:60]] = rng.choice(edges, size=60)
    pg[rows[60:]] = rng.choice(edges, size=60)
    lost = frame["Protein.Group"] == frame["Protein.Group"].iloc[5]
    q[lost.to_numpy()] = np.float32(0.9)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    q_array = pa.array(q, type=pa.float32(), mask=np.zeros(len(q), dtype=bool))
    nulls = np.zeros(len(pg), dtype=bool)
    nulls[rows[100:110]] = True  # null PG q-values: kept
    pg_array = pa.array(pg, type=pa.float32(), mask=nulls)
    table = table.set_column(table.schema.get_field_index("Q.Value"), "Q.Value", q_array)
    table = table.set_column(table.schema.get_field_index("PG.Q.Value"), "PG.Q.Value", pg_array)
    path = tmp_path / f"report_{row_group_size}.parquet"
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def _assert_same(new: pd.DataFrame, reference: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(new, reference)
    for column in reference.columns:
        if isinstance(reference[column].dtype, pd.CategoricalDtype):
            assert list(new[column].cat.categories) == list(reference[column].cat.categories)


@pytest.mark.parametrize("batch_rows", [1_000_000, 7])
@pytest.mark.parametrize(
    "thresholds",
    [{}, {"Q.Value": 0.01}, {"Q.Value": 0.01, "PG.Q.Value": 0.01}],
)
def test_scan_equals_reference_on_fixture(thresholds: dict[str, float], batch_rows: int) -> None:
    reference, reference_record = _reference(PARQUET, thresholds, batch_rows)
    new, record = _new(PARQUET, thresholds, batch_rows)
    _assert_same(new, reference)
    assert record.removed() == reference_record.removed()
    if thresholds:
        assert len(new) < pq.ParquetFile(PARQUET).metadata.num_rows  # the filter dropped rows


@pytest.mark.parametrize("row_group_size", [29, 1_000])
@pytest.mark.parametrize("batch_rows", [1_000_000, 11])
@pytest.mark.parametrize("limits", [(0.01, 0.01), (0.05, 0.05), (0.01, 0.05)])
def test_scan_equals_reference_on_edges(
    tmp_path: Path, row_group_size: int, batch_rows: int, limits: tuple[float, float]
) -> None:
    path = _edited(tmp_path, row_group_size)
    thresholds = {"Q.Value": limits[0], "PG.Q.Value": limits[1]}
    reference, reference_record = _reference(path, thresholds, batch_rows)
    new, record = _new(path, thresholds, batch_rows)
    _assert_same(new, reference)
    removed = record.removed()
    assert removed == reference_record.removed()
    assert len(removed) >= 1  # the protein whose rows all fail q_value
    if row_group_size < 300:
        assert pq.ParquetFile(path).metadata.num_row_groups > 1


def test_reader_output_equals_reference_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole reader (``read_diann``) with the scan replaced by the reference form."""
    options = {"q_value": 0.01, "pg_q_value": 0.01}
    new = diann.read_diann(PARQUET, options)

    def reference(
        path: Path,
        columns: list[str],
        thresholds: dict[str, float],
        dropped: tuple[str, DroppedProteins],
        batch_rows: int,
    ) -> pd.DataFrame:
        assert columns == COLUMNS  # the reader asks for the columns the reference reads
        frame, record = _reference(path, thresholds, batch_rows)
        dropped[1]._present = record._present
        return frame

    monkeypatch.setattr(diann, "_read_parquet", reference)
    old = diann.read_diann(PARQUET, options)
    _assert_same(new, old)
    assert new.attrs == old.attrs


def test_unreadable_report_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "report.parquet"
    path.write_bytes(PARQUET.read_bytes()[:-200])  # footer cut off
    record = DroppedProteins(["q_value <= 0.01"])
    with pytest.raises(diann.InputFormatError, match="cannot read the Parquet report"):
        diann._read_parquet(path, COLUMNS, {"Q.Value": 0.01}, ("Protein.Group", record), 100)


@pytest.mark.parametrize(
    ("values", "cast"),
    [
        ([0, 1, 1, 0], True),
        ([1, 1], True),
        ([0, 0], True),
        ([0, 2, 1], False),  # left to parse_flag, which rejects the 2
        ([0, -1], False),
        ([0, None, 1], False),  # a null: left to parse_flag
        ([], False),
    ],
)
def test_flags_as_bool_gives_parse_flags_flags(values: list[int | None], cast: bool) -> None:
    """Integer flags of 0 and 1 only become booleans, and ``parse_flag`` reads the same flags
    from either form; anything else is left as it is (int64 over two chunks, as a scan joins
    its batches)."""
    from pepmix.readers._support import parse_flag

    half = len(values) // 2
    column = pa.chunked_array([values[:half], values[half:]], type=pa.int64())
    table = pa.table({"Decoy": column, "Q.Value": pa.array([0.0] * len(values))})
    out = diann._flags_as_bool(table, ["Decoy", "Proteotypic"])
    assert out.column("Decoy").type == (pa.bool_() if cast else pa.int64())
    assert out.column("Q.Value").equals(table.column("Q.Value"))
    if cast:
        before = parse_flag(table.to_pandas()["Decoy"], Path("x"), "Decoy")
        after = parse_flag(out.to_pandas()["Decoy"], Path("x"), "Decoy")
        pd.testing.assert_series_equal(after, before, check_names=False)  # (assigned by position)
        assert after.tolist() == [bool(v) for v in values]
