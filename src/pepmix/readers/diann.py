"""DIA-NN main report: ``report.tsv`` (1.x) and ``report.parquet`` (2.x).

One row per precursor x run (long format). Columns used:

============ =======================================================================
canonical    report column
============ =======================================================================
feature      ``Precursor.Id``; ``Modified.Sequence`` + ``Precursor.Charge`` in old reports
             without it (the same string DIA-NN builds)
peptide      ``Modified.Sequence``
charge       ``Precursor.Charge``
run          ``Run``; ``File.Name`` (directories, Windows or POSIX, and extensions removed)
             when there is no ``Run`` column
protein      ``Protein.Group`` (option ``protein_column``)
intensity    ``Precursor.Normalised`` (option ``intensity_column``, e.g.
             ``Precursor.Quantity`` for the values before DIA-NN's normalisation)
q_value      ``Q.Value`` (option ``q_value_column``, e.g. ``Global.Q.Value``)
pg_q_value   ``PG.Q.Value`` (option ``pg_q_value_column``, e.g. ``Global.PG.Q.Value``); left
             null, with a warning, when an old report lacks the default column
decoy        ``Decoy`` (2.x with decoys reported); absent otherwise
unique       ``Proteotypic`` (1 = specific to one protein/gene in the FASTA, DIA-NN's own
             notion, used as the closest available to "one protein group")
contaminant  a member of ``Protein.Group`` matches ``contaminant_pattern`` (DIA-NN has no
             contaminant column; e.g. quantms prefixes ``CONTAMINANT_``)
============ =======================================================================

**Large reports.** DIA-NN reports can reach tens of gigabytes, mostly because of columns that
are not needed here. The reader therefore

- reads only the columns above (Parquet: column projection; text: pandas ``usecols``);
- applies the q-value thresholds *while reading*, when they are given as the options
  ``q_value`` and ``pg_q_value`` (the ingest step passes the values of the ``filter:`` config
  section). Parquet is read row group by row group (by as many threads as pyarrow's CPU pool
  has), batch by batch (``chunk_rows`` rows), and each batch is filtered before the next one is
  read (:class:`ParquetScan`), so rows above the thresholds are never kept; text is parsed in
  chunks of ``chunk_rows`` rows (default 1,000,000) and each chunk is filtered before the next is
  read.

Proteins none of whose rows passes the thresholds are recorded, with the reason, in the
output's ``attrs[REMOVED_PROTEINS]`` (:mod:`pepmix.readers._dropped`), from the chunks or
batches as they are read, before they are filtered (one pass over the file: the protein column
is read as a dictionary, so each batch adds integer codes).

Memory is therefore bounded by the projected columns of the rows that pass the filters (plus one
batch per reading thread, or one chunk), not by the size of the file. As in
:func:`pepmix.filters.filter_rows`, a row with a missing q-value is kept. The same filters applied
again later change nothing.

Rows with an empty ``Protein.Group`` (DIA-NN leaves it empty for precursors it did not assign to
a protein group; they have ``PG.Q.Value`` 1) are dropped with a warning, since they cannot be
attributed to a protein.

Multiplexed (plexDIA) reports, with more than one value in ``Channel``, are rejected: their
channels would otherwise be summed as if they were duplicates.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pepmix.canonical import distinct_text
from pepmix.errors import InputFormatError
from pepmix.filters import threshold_step
from pepmix.readers._common import alias, file_column, require_columns, run_name, to_float
from pepmix.readers._dropped import DroppedProteins
from pepmix.readers._support import (
    DEFAULT_CONTAMINANT_PATTERN,
    first_present,
    flag_proteins,
    option_pattern,
    option_positive_int,
    option_str,
    option_threshold,
    parse_flag,
    read_selected,
    table_header,
)

log = logging.getLogger(__name__)

SIGNATURE: dict[str, tuple[str, ...]] = {
    "diann": ("Protein.Group", "Modified.Sequence", "Precursor.Charge", "Q.Value"),
}

_DEFAULT_PG_Q = "PG.Q.Value"
_DEFAULT_CHUNK_ROWS = 1_000_000


def read_diann(path: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Read a DIA-NN main report (see module docstring).

    Parameters
    ----------
    path : pathlib.Path
        ``report.tsv`` (any delimiter, optionally gzipped) or ``report.parquet``.
    options : mapping
        ``intensity_column`` (default ``Precursor.Normalised``), ``protein_column``
        (``Protein.Group``), ``q_value_column`` (``Q.Value``), ``pg_q_value_column``
        (``PG.Q.Value``), ``q_value`` and ``pg_q_value`` (thresholds applied while reading;
        the ingest step passes the ``filter:`` config values here), ``contaminant_pattern``,
        ``chunk_rows`` (rows per text chunk).

    Returns
    -------
    pandas.DataFrame
        Reader columns for :func:`pepmix.canonical.conform`.

    Raises
    ------
    InputFormatError
        If a required column is missing, a value cannot be parsed, or the report is multiplexed.
    """
    header, separator = table_header(path)
    intensity_column = option_str(options, "intensity_column", "Precursor.Normalised")
    protein_column = option_str(options, "protein_column", "Protein.Group")
    q_column = option_str(options, "q_value_column", "Q.Value")
    pg_column: str | None = option_str(options, "pg_q_value_column", _DEFAULT_PG_Q)
    q_max = option_threshold(options, "q_value")
    pg_max = option_threshold(options, "pg_q_value")

    run_column = first_present(header, ("Run", "File.Name"))
    feature_columns = (
        ["Precursor.Id"] if "Precursor.Id" in header else ["Modified.Sequence", "Precursor.Charge"]
    )
    required = [protein_column, *feature_columns, intensity_column, q_column]
    require_columns(header, [*required, run_column or "Run"], path)
    assert run_column is not None  # checked just above
    if pg_column not in header:
        if "pg_q_value_column" in options:
            require_columns(header, [str(pg_column)], path)
        log.warning(
            "%s: no %s column (old DIA-NN report); protein-group q-values are not available",
            path,
            _DEFAULT_PG_Q,
        )
        pg_column = None
    optional = ["Modified.Sequence", "Precursor.Charge", "Decoy", "Proteotypic", "Channel"]
    columns = list(
        dict.fromkeys(
            [*required, run_column, *([pg_column] if pg_column else [])]
            + [c for c in optional if c in header]
        )
    )
    thresholds = {q_column: q_max}
    if pg_column is not None:
        thresholds[pg_column] = pg_max
    elif pg_max is not None:
        log.warning("%s: pg_q_value threshold not applied (no protein-group q-values)", path)
    active = {col: t for col, t in thresholds.items() if t is not None}

    names = {q_column: "q_value", pg_column: "pg_q_value"}
    dropped = DroppedProteins([threshold_step(names[c], options[names[c]]) for c in active])
    chunk_rows = option_positive_int(options, "chunk_rows", _DEFAULT_CHUNK_ROWS)
    if separator is None:
        frame = _read_parquet(path, columns, active, (protein_column, dropped), chunk_rows)
    else:
        frame = _scan_text(path, columns, separator, active, chunk_rows, (protein_column, dropped))
    if active:
        shown = ", ".join(f"{c} <= {t:g}" for c, t in active.items())
        log.info("%s: %d rows pass %s (applied while reading)", path, len(frame), shown)
    out = _to_reader_columns(
        frame, path, protein_column, run_column, intensity_column, q_column, pg_column, options
    )
    return dropped.attach(out)


def _read_parquet(
    path: Path,
    columns: list[str],
    thresholds: Mapping[str, float],
    dropped: tuple[str, DroppedProteins],
    batch_rows: int,
) -> pd.DataFrame:
    """Read a Parquet report: column projection, the q-value filter applied per batch, and the
    record of the proteins it drops (:class:`ParquetScan`), in one pass over the file.

    The row groups are read by as many threads as pyarrow's CPU pool has (each decoding one row
    group at a time, without the GIL), batch by batch (``batch_rows`` rows), and each batch is
    filtered before the next one is read; the batches are then joined in file order. The text
    columns are read as dictionaries, so each distinct string is converted once.
    """
    protein_column, record = dropped
    scan = ParquetScan(path, columns, thresholds, protein_column)
    try:
        table = scan.read(batch_rows, record)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several unrelated types
        raise InputFormatError(f"{path}: cannot read the Parquet report ({exc})") from None
    # one block per column: the reader takes the columns one by one (no consolidating copy)
    flags = [file_column(c) for c in ("Decoy", "Proteotypic")]
    frame: pd.DataFrame = _flags_as_bool(table, flags).to_pandas(split_blocks=True)
    frame.columns = [alias(str(c)) for c in frame.columns]
    return frame


def _flags_as_bool(table: pa.Table, columns: Sequence[str]) -> pa.Table:
    """``table`` with each integer flag column of ``columns`` holding only 0 and 1 (no null)
    cast to boolean: :func:`~pepmix.readers._support.parse_flag` gives the same flags (a
    boolean column as it is, integers as ``!= 0``), from one byte per row instead of a pandas
    copy of eight (other values, nulls and other types are left to ``parse_flag``)."""
    for name in columns:
        if name not in table.column_names:
            continue
        index = table.column_names.index(name)
        values = table.column(index)
        if not pa.types.is_integer(values.type) or values.null_count or not len(values):
            continue
        low, high = pc.min_max(values).values()
        if low.as_py() in (0, 1) and high.as_py() in (0, 1):
            table = table.set_column(index, name, pc.cast(values, pa.bool_()))
    return table


class ParquetScan:
    """One filtered pass over a Parquet report's row groups (see :func:`_read_parquet`).

    A row is kept when each threshold column is at most its threshold or null, the filter of
    :func:`pepmix.filters.filter_rows` (as the pyarrow expression ``(q <= t) | is_null(q)``, so
    a NaN q-value, unlike a null one, drops the row). The dropped-protein record sees every row
    of each batch before the filter: step ``i`` passes where ``not (q_i > t_i)``.

    Parameters
    ----------
    path : pathlib.Path
        The report.
    columns : list of str
        Columns to read (names as the reader sees them, :func:`~pepmix.readers._common.alias`).
    thresholds : mapping of str to float
        Threshold per q-value column (none: every row is kept and nothing is recorded).
    protein_column : str
        The protein column, for the dropped-protein record.
    """

    def __init__(
        self,
        path: Path,
        columns: list[str],
        thresholds: Mapping[str, float],
        protein_column: str,
    ) -> None:
        self.path = path
        self.columns = [file_column(c) for c in columns]
        self.thresholds = {file_column(c): t for c, t in thresholds.items()}
        self.protein = file_column(protein_column)
        self._lock = threading.Lock()

    def read(self, batch_rows: int, record: DroppedProteins) -> pa.Table:
        """The kept rows of every row group, in file order (``record`` updated)."""
        source = pq.ParquetFile(self.path)
        schema = source.schema_arrow
        text = [c for c in self.columns if pa.types.is_string(schema.field(c).type)]
        metadata = source.metadata

        def group(index: int) -> list[pa.RecordBatch]:
            reader = pq.ParquetFile(self.path, metadata=metadata, read_dictionary=text)
            return [
                self._kept(batch, record)
                for batch in reader.iter_batches(
                    batch_size=batch_rows,
                    row_groups=[index],
                    columns=self.columns,
                    use_threads=False,
                )
            ]

        n_groups = metadata.num_row_groups
        workers = max(1, min(pa.cpu_count(), n_groups))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pepmix-scan") as pool:
            batches = [batch for part in pool.map(group, range(n_groups)) for batch in part]
        if not batches:  # no row group, or none with rows: the columns' types, no rows
            empty = pq.ParquetFile(self.path, read_dictionary=text)
            return empty.read(columns=self.columns, use_threads=False)
        return pa.Table.from_batches(batches).select(self.columns)

    def _kept(self, batch: pa.RecordBatch, record: DroppedProteins) -> pa.RecordBatch:
        """``batch``'s rows passing the thresholds, after adding the batch to ``record``."""
        if not self.thresholds:
            return batch
        protein = batch.column(self.protein)
        if not pa.types.is_dictionary(protein.type):
            protein = pc.dictionary_encode(protein)
        codes = protein.indices.to_numpy(zero_copy_only=False)
        codes = np.where(protein.is_null().to_numpy(zero_copy_only=False), -1, codes)
        passes = [
            ~(batch.column(column).to_numpy(zero_copy_only=False) > limit)
            for column, limit in self.thresholds.items()
        ]
        names = protein.dictionary.to_pylist()
        with self._lock:  # the record's sets are shared by the threads
            record.add_codes(codes.astype(np.int64), names, passes)
        return batch.filter(self._mask(batch))

    def _mask(self, batch: pa.RecordBatch) -> pa.Array:
        """The rows to keep: ``(q <= t) | is_null(q)`` for every threshold column, combined by
        ``&`` (the kernels the pyarrow expression of the same filter binds to, Kleene logic;
        about 4x faster than filtering by the expression)."""
        conditions = [
            pc.or_kleene(pc.less_equal(values, limit), pc.is_null(values))
            for values, limit in (
                (batch.column(column), limit) for column, limit in self.thresholds.items()
            )
        ]
        mask = conditions[0]
        for condition in conditions[1:]:
            mask = pc.and_kleene(mask, condition)
        return mask


def _scan_text(
    path: Path,
    columns: list[str],
    separator: str,
    thresholds: Mapping[str, float],
    chunk_rows: int,
    dropped: tuple[str, DroppedProteins],
) -> pd.DataFrame:
    """Read a text report in chunks of the needed columns, filtering each chunk by q-value.

    ``dropped`` is the protein column and the record of proteins none of whose rows passes.
    """
    protein_column, record = dropped
    parts = []
    for chunk in read_selected(path, columns, separator, chunksize=chunk_rows):
        passes = [
            ~(to_float(chunk[column], path, column) > limit).to_numpy(dtype=bool)
            for column, limit in thresholds.items()
        ]
        if passes:
            record.add(chunk[protein_column], passes)
            chunk = chunk.loc[np.logical_and.reduce(passes)]
        parts.append(chunk)
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)


def _to_reader_columns(
    frame: pd.DataFrame,
    path: Path,
    protein_column: str,
    run_column: str,
    intensity_column: str,
    q_column: str,
    pg_column: str | None,
    options: Mapping[str, Any],
) -> pd.DataFrame:
    if "Channel" in frame.columns:
        # the categories in use, read through the codes (no copy of the column)
        distinct = sorted({v.strip() for v in distinct_text(frame["Channel"])} - {""})
        if len(distinct) > 1:
            raise InputFormatError(
                f"{path}: multiplexed (plexDIA) report with channels {', '.join(distinct[:5])}; "
                "only label-free reports are supported"
            )
    feature: pd.Series
    if "Precursor.Id" in frame.columns:
        feature = frame["Precursor.Id"].astype("category")
    else:
        charge_text = to_float(frame["Precursor.Charge"], path, "Precursor.Charge")
        feature = frame["Modified.Sequence"].astype("string") + charge_text.astype("Int64").astype(
            "string"
        )
    # identifiers stay categorical: string work is done per distinct value
    runs = frame[run_column].astype("category")
    runs = runs.cat.rename_categories([run_name(str(r)) for r in runs.cat.categories])
    protein = frame[protein_column].astype("category")
    out = pd.DataFrame(
        {
            "protein": protein,
            "feature": feature,
            "run": runs,
            "intensity": to_float(frame[intensity_column], path, intensity_column),
            "q_value": to_float(frame[q_column], path, q_column),
        },
        copy=False,  # the columns as they are (copy-on-write): no copy of 8 M-row columns
    )
    if "Modified.Sequence" in frame.columns:
        out["peptide"] = frame["Modified.Sequence"]
    if "Precursor.Charge" in frame.columns:
        out["charge"] = to_float(frame["Precursor.Charge"], path, "Precursor.Charge")
    if pg_column is not None:
        out["pg_q_value"] = to_float(frame[pg_column], path, pg_column)
    if "Decoy" in frame.columns:
        out["decoy"] = parse_flag(frame["Decoy"], path, "Decoy")
    if "Proteotypic" in frame.columns:
        out["unique"] = parse_flag(frame["Proteotypic"], path, "Proteotypic")
    pattern = option_pattern(options, "contaminant_pattern", DEFAULT_CONTAMINANT_PATTERN)
    out["contaminant"] = flag_proteins(protein, pattern, "any")
    blank = [i for i, c in enumerate(protein.cat.categories) if str(c).strip() == ""]
    codes = protein.cat.codes.to_numpy()
    no_group = pd.Series((codes < 0) | np.isin(codes, blank), index=protein.index)
    if no_group.any():
        log.warning(
            "%s: %d row(s) without a %s (precursors DIA-NN did not assign to a protein group) "
            "are dropped",
            path,
            int(no_group.sum()),
            protein_column,
        )
        out = out.loc[~no_group.to_numpy(dtype=bool)].reset_index(drop=True)
    return out
