"""Rule ``normalize``: log2 transform and run normalisation (:func:`pepmix.api.normalize`,
:mod:`pepmix.normalization`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pandas as pd
import pyarrow as pa

from pepmix.io import write_arrow, write_tsv
from pepmix.stages.files import PathLike, TableWriter, read_resolved_sheet

__all__ = ["NormalizeResult", "run"]

#: columns of the merged table the normalisation reads
COLUMNS = ["protein", "feature", "peptide", "run", "intensity", "batch"]


@dataclass(frozen=True)
class NormalizeResult:
    """The normalised features and the per-run normalisation table."""

    features: pd.DataFrame
    runs: pd.DataFrame

    @cached_property
    def arrow(self) -> pa.Table:
        """``features`` as written (:func:`pepmix.io.write_parquet`'s conversion); the shard
        stage takes it in place of the file (:func:`pepmix.stages.shard.run`)."""
        return pa.Table.from_pandas(self.features, preserve_index=False)

    def write(
        self, *, features: PathLike, runs: PathLike, write_table: TableWriter = write_arrow
    ) -> None:
        """Write ``results/normalize/features.parquet`` (with ``write_table``, default
        :func:`pepmix.io.write_arrow`) and ``runs.tsv``."""
        write_table(self.arrow, features)
        write_tsv(self.runs, runs)


def run(
    *,
    features: PathLike | pa.Table,
    samples: PathLike,
    options: Mapping[str, Any] | None = None,
) -> NormalizeResult:
    """Normalise the merged table.

    Parameters
    ----------
    features : path or pyarrow.Table
        ``results/ingest/features.parquet``, or the table a merge stage of the same job wrote
        there (:attr:`pepmix.stages.merge.MergeResult.arrow`).
    samples : path
        ``results/ingest/samples.tsv``.
    options : mapping, optional
        The ``normalization:`` section (default: its defaults).

    Returns
    -------
    NormalizeResult
    """
    from pepmix import api, canonical
    from pepmix.normalization import normalization_options

    if isinstance(features, pa.Table):
        table = canonical.from_arrow(features.select(COLUMNS))
    else:
        table = canonical.read_parquet(features, columns=COLUMNS)
    data = api.Dataset(features=table, runs=read_resolved_sheet(samples), removed=pd.DataFrame())
    out = api.normalize(data, **normalization_options(options or {}))
    if out.normalization is None:
        raise ValueError(f"{features}: the normalisation returned no per-run table")
    return NormalizeResult(out.features, out.normalization)
