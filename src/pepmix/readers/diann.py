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
  section). Parquet is scanned with a pyarrow dataset filter expression, batch by batch, so rows
  above the thresholds are never materialised; text is parsed in chunks of ``chunk_rows`` rows
  (default 1,000,000) and each chunk is filtered before the next is read.

Proteins none of whose rows passes the thresholds are recorded, with the reason, in the
output's ``attrs[REMOVED_PROTEINS]`` (:mod:`pepmix.readers._dropped`): for text, from the chunks
as they are read; for Parquet, by a second scan of the protein column (dictionary-encoded) and the
q-value columns only, batch by batch (0.07 s for a 1.3 M-row, 115 MB simulated 2.x report whose
filtered read takes 0.3-0.5 s; peak memory unchanged).

Memory is therefore bounded by the projected columns of the rows that pass the filters (plus one
batch or chunk), not by the size of the file. As in :func:`pepmix.filters.filter_rows`, a row
with a missing q-value is kept. The same filters applied again later change nothing.

Rows with an empty ``Protein.Group`` (DIA-NN leaves it empty for precursors it did not assign to
a protein group; they have ``PG.Q.Value`` 1) are dropped with a warning, since they cannot be
attributed to a protein.

Multiplexed (plexDIA) reports, with more than one value in ``Channel``, are rejected: their
channels would otherwise be summed as if they were duplicates.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
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
    """The filtered scan (:func:`_scan_parquet`) and, with thresholds, the record of the proteins
    it drops (:func:`_dropped_parquet`), the latter in a second thread meanwhile: both passes read
    the file, and pyarrow decodes without holding the GIL (the filtered scan runs on one core).

    If the scan fails, its error is raised (after the other pass has finished).
    """
    if not thresholds:
        return _scan_parquet(path, columns, thresholds)
    protein_column, record = dropped
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pepmix-dropped") as pool:
        pending = pool.submit(
            _dropped_parquet, path, protein_column, thresholds, record, batch_rows
        )
        frame = _scan_parquet(path, columns, thresholds)
        pending.result()
    return frame


def _scan_parquet(path: Path, columns: list[str], thresholds: Mapping[str, float]) -> pd.DataFrame:
    """Read a Parquet report with column projection and a q-value filter pushed into the scan."""
    expression = None
    for column, limit in thresholds.items():
        field = pc.field(file_column(column))
        condition = (field <= limit) | field.is_null()
        expression = condition if expression is None else expression & condition
    try:
        schema = pq.read_schema(path)
        in_file = [file_column(c) for c in columns]
        text_columns = [c for c in in_file if pa.types.is_string(schema.field(c).type)]
        table = pq.read_table(
            path, columns=in_file, filters=expression, read_dictionary=text_columns
        )
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several unrelated types
        raise InputFormatError(f"{path}: cannot read the Parquet report ({exc})") from None
    # one block per column: the reader takes the columns one by one (no consolidating copy)
    frame: pd.DataFrame = table.to_pandas(split_blocks=True)
    frame.columns = [alias(str(c)) for c in frame.columns]
    return frame


def _dropped_parquet(
    path: Path,
    protein_column: str,
    thresholds: Mapping[str, float],
    dropped: DroppedProteins,
    batch_rows: int,
) -> None:
    """Record proteins without a row passing ``thresholds``: a pass over 1 + 2 columns only.

    The protein column is read dictionary-encoded, so each batch is integer codes into a small
    dictionary; the q-value columns are float32 in DIA-NN 2.x reports.
    """
    in_file = [file_column(protein_column), *(file_column(c) for c in thresholds)]
    try:
        source = pq.ParquetFile(path, read_dictionary=[in_file[0]])
        for batch in source.iter_batches(batch_size=batch_rows, columns=in_file):
            protein = batch.column(0)
            if not pa.types.is_dictionary(protein.type):
                protein = pc.dictionary_encode(protein)
            codes = protein.indices.to_numpy(zero_copy_only=False)
            codes = np.where(protein.is_null().to_numpy(zero_copy_only=False), -1, codes)
            passes = [
                ~(batch.column(i + 1).to_numpy(zero_copy_only=False) > limit)
                for i, limit in enumerate(thresholds.values())
            ]
            dropped.add_codes(codes.astype(np.int64), protein.dictionary.to_pylist(), passes)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several unrelated types
        raise InputFormatError(f"{path}: cannot read the Parquet report ({exc})") from None


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
        }
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
