"""Rule ``ingest``: one ``inputs:`` entry (an MS batch) to the canonical long table
(:func:`pepmix.ingest.ingest_batch`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pandas as pd
import pyarrow as pa

from pepmix import canonical
from pepmix.io import write_arrow
from pepmix.stages.files import PathLike, TableWriter

__all__ = ["IngestResult", "run"]


@dataclass(frozen=True)
class IngestResult:
    """The batch's canonical table, with the removed proteins in its ``attrs``."""

    table: pd.DataFrame

    @cached_property
    def arrow(self) -> pa.Table:
        """The table as written (:func:`pepmix.canonical.to_arrow`); the merge stage takes it in
        place of the file (:func:`pepmix.stages.merge.run`)."""
        return canonical.to_arrow(self.table)

    def write(self, *, table: PathLike, write_table: TableWriter = write_arrow) -> None:
        """Write ``results/ingest/batches/<name>.parquet`` with ``write_table`` (default
        :func:`pepmix.io.write_arrow`)."""
        write_table(self.arrow, table)


def run(
    *, entry: Mapping[str, Any], filters: Mapping[str, Any], feature_level: str = "precursor"
) -> IngestResult:
    """Read, row-filter and combine one batch.

    Parameters
    ----------
    entry : mapping
        One entry of the config's ``inputs:``.
    filters : mapping
        The ``filter:`` section.
    feature_level : {"precursor", "peptide"}, default "precursor"
        The config's ``feature_level``.

    Returns
    -------
    IngestResult
    """
    from pepmix.ingest import ingest_batch

    return IngestResult(ingest_batch(entry, filters, feature_level))
