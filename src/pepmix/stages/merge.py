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
from pepmix.samples import load_design, sheet_options
from pepmix.stages.files import PathLike, TableWriter

__all__ = ["MergeResult", "run"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MergeResult:
    """The merged table, the resolved sample sheet and the removed proteins.

    Attributes
    ----------
    features : pandas.DataFrame
        Canonical table of the proteins that pass the filters.
    runs : pandas.DataFrame
        One row per run (``batch`` filled from the input name where the sheet has none).
    removed : pandas.DataFrame
        Every input protein absent from ``features``: ``protein, detail, n_features,
        n_observations`` (:func:`pepmix.merge.removed_in_merge`).
    """

    features: pd.DataFrame
    runs: pd.DataFrame
    removed: pd.DataFrame

    @cached_property
    def arrow(self) -> pa.Table:
        """``features`` as written (:func:`pepmix.canonical.to_arrow`); the normalize stage
        takes it in place of the file (:func:`pepmix.stages.normalize.run`)."""
        return canonical.to_arrow(self.features)

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
    """
    from pepmix.merge import merge_with_sheet

    tables = [
        canonical.from_arrow(p) if isinstance(p, pa.Table) else canonical.read_parquet(p)
        for p in batches
    ]
    design = load_design(samples, **sheet_options(sheet_config))
    merged, sheet, removed = merge_with_sheet(tables, design, filters, str(samples))
    log.info(
        "merged %d batch(es): %d observations, %d runs, %d proteins kept, %d removed",
        len(tables),
        len(merged),
        canonical.n_distinct(merged["run"]),
        canonical.n_distinct(merged["protein"]),
        len(removed),
    )
    return MergeResult(merged, sheet, removed)
