"""Rule ``merge``: concatenate the batches, check the runs against the sample sheet, apply the
protein filters (:func:`pepmix.merge.merge_with_sheet`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pandas as pd
import pyarrow as pa

from pepmix import canonical
from pepmix.io import write_arrow, write_tsv
from pepmix.samples import SampleDesign, load_design, sheet_options
from pepmix.stages.files import PathLike, TableWriter

__all__ = ["MergeResult", "run"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MergeResult:
    """The merged table, the resolved sample sheet and the removed proteins.

    Attributes
    ----------
    table : pandas.DataFrame or pyarrow.Table
        The merged table as the stage made it: the frame, or the Arrow table written (see
        :func:`run`); :attr:`features` and :attr:`arrow` give either form.
    runs : pandas.DataFrame
        One row per run (``batch`` filled from the input name where the sheet has none).
    removed : pandas.DataFrame
        Every input protein absent from ``features``: ``protein, detail, n_features,
        n_observations`` (:func:`pepmix.merge.removed_in_merge`).
    """

    table: pd.DataFrame | pa.Table
    runs: pd.DataFrame
    removed: pd.DataFrame

    @cached_property
    def features(self) -> pd.DataFrame:
        """Canonical table of the proteins that pass the filters (the frame
        :func:`pepmix.canonical.read_parquet` returns for the file written)."""
        if isinstance(self.table, pd.DataFrame):
            return self.table
        return canonical.from_arrow(self.table)

    @cached_property
    def arrow(self) -> pa.Table:
        """``features`` as written (:func:`pepmix.canonical.to_arrow`); the normalize stage
        takes it in place of the file (:func:`pepmix.stages.normalize.run`)."""
        if isinstance(self.table, pa.Table):
            return self.table
        return canonical.to_arrow(self.table)

    def write(
        self,
        *,
        features: PathLike,
        samples: PathLike,
        removed: PathLike | None = None,
        write_table: TableWriter = write_arrow,
    ) -> None:
        """Write the merged table (Parquet, with ``write_table``, default
        :func:`pepmix.io.write_arrow`), the resolved sheet and, with ``removed`` (default None:
        not written), the removed proteins (TSV)."""
        write_table(self.arrow, features)
        if removed is not None:
            write_tsv(self.removed, removed)
        write_tsv(self.runs, samples)


def run(
    *,
    batches: Sequence[PathLike | pa.Table],
    samples: PathLike,
    sheet_config: Mapping[str, Any] | None = None,
    filters: Mapping[str, Any],
) -> MergeResult:
    """Merge the batch tables written by :mod:`pepmix.stages.ingest`.

    Parameters
    ----------
    batches : sequence of path or pyarrow.Table
        ``results/ingest/batches/<name>.parquet``, or the table an ingest stage of the same job
        wrote there (:attr:`pepmix.stages.ingest.IngestResult.arrow`: the same frame without
        reading the file back).
    samples : path
        The sample sheet (config ``samples:``).
    sheet_config : mapping, optional
        The ``sample_sheet:`` section.
    filters : mapping
        The ``filter:`` section.

    Returns
    -------
    MergeResult
        With one batch given as an Arrow table and no fractions to sum, its table is that
        Arrow table's kept rows (:func:`_merge_arrow`: the table
        :func:`pepmix.canonical.to_arrow` makes of the merged frame, without converting the
        batch's other columns to pandas or selecting a frame's rows); otherwise the frame.
    """
    from pepmix.merge import merge_with_sheet

    design = None
    if len(batches) == 1 and isinstance(batches[0], pa.Table):
        design = load_design(samples, **sheet_options(sheet_config))
        if design.file_runs() is None:
            result = _merge_arrow(batches[0], design, filters, str(samples))
            if result is not None:
                return result
    tables = [
        canonical.from_arrow(p) if isinstance(p, pa.Table) else canonical.read_parquet(p)
        for p in batches
    ]
    if design is None:
        design = load_design(samples, **sheet_options(sheet_config))
    merged, sheet, removed = merge_with_sheet(tables, design, filters, str(samples))
    n_runs = canonical.n_distinct(merged["run"])
    n_proteins = canonical.n_distinct(merged["protein"])
    _log_merged(len(tables), len(merged), n_runs, n_proteins, len(removed))
    return MergeResult(merged, sheet, removed)


#: the columns of the batch the merge step reads (:func:`pepmix.merge.merge_rows` of one batch
#: without fractions to sum: the run check, the protein filters, the sheet's batches)
MERGE_COLUMNS = ("protein", "feature", "run", "batch")


def _merge_arrow(
    source: pa.Table, design: SampleDesign, filters: Mapping[str, Any], sheet_source: str
) -> MergeResult | None:
    """The merge of one batch without fractions to sum, from its Arrow table ``source`` (one
    that :func:`pepmix.canonical.to_arrow` made); None when ``source`` is not in the form this
    needs (then the caller merges the frame).

    Only :data:`MERGE_COLUMNS` are converted to pandas (:func:`pepmix.merge.merge_rows`); the
    merged table is the Arrow filter of ``source`` by the kept rows. That is the table
    ``canonical.to_arrow`` makes of the merged frame (the rows ``keep`` of
    ``canonical.from_arrow(source)``, no ``attrs``): ``to_arrow(from_arrow(t))`` gives back
    ``t`` for a table ``t`` that ``to_arrow`` made (the dictionaries are the categories and the
    nulls the missing values, both ways), and the schema metadata (pandas' column metadata; no
    ``pepmix.attrs``: the merged table has none) is that of ``to_arrow`` of the frame's first
    zero rows, which describes the merged frame the same way (same columns, dtypes and
    categories). Checked here: the schema without metadata equals that conversion's, and each
    column is one chunk (one dictionary per column).
    """
    from pepmix.merge import merge_rows

    head = canonical.from_arrow(source.slice(0, 0))
    head.attrs = {}
    target = canonical.to_arrow(head).schema
    if not source.schema.remove_metadata().equals(target.remove_metadata()):
        return None
    if any(column.num_chunks > 1 for column in source.columns):
        return None
    frame = canonical.from_arrow(source.select(list(MERGE_COLUMNS)))
    rows = merge_rows([frame], design, filters, sheet_source)
    kept = source if rows.keep is None else source.filter(pa.array(rows.keep))
    kept = kept.replace_schema_metadata(target.metadata)
    _log_merged(1, kept.num_rows, rows.n_runs, rows.n_proteins, len(rows.removed))
    return MergeResult(kept, rows.sheet, rows.removed)


def _log_merged(n_batches: int, n_rows: int, n_runs: int, n_proteins: int, n_removed: int) -> None:
    log.info(
        "merged %d batch(es): %d observations, %d runs, %d proteins kept, %d removed",
        n_batches,
        n_rows,
        n_runs,
        n_proteins,
        n_removed,
    )
