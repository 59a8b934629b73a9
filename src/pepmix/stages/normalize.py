"""Rule ``normalize``: log2 transform and run normalisation (:func:`pepmix.api.normalize`,
:mod:`pepmix.normalization`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pepmix.io import write_parquet, write_tsv
from pepmix.stages.files import PathLike, read_resolved_sheet

__all__ = ["NormalizeResult", "run"]

#: columns of the merged table the normalisation reads
COLUMNS = ["protein", "feature", "peptide", "run", "intensity", "batch"]


@dataclass(frozen=True)
class NormalizeResult:
    """The normalised features and the per-run normalisation table."""

    features: pd.DataFrame
    runs: pd.DataFrame

    def write(self, *, features: PathLike, runs: PathLike) -> None:
        """Write ``results/normalize/features.parquet`` and ``runs.tsv``."""
        write_parquet(self.features, features)
        write_tsv(self.runs, runs)


def run(
    *, features: PathLike, samples: PathLike, options: Mapping[str, Any] | None = None
) -> NormalizeResult:
    """Normalise the merged table.

    Parameters
    ----------
    features : path
        ``results/ingest/features.parquet``.
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

    table = canonical.read_parquet(features, columns=COLUMNS)
    data = api.Dataset(features=table, runs=read_resolved_sheet(samples), removed=pd.DataFrame())
    out = api.normalize(data, **normalization_options(options or {}))
    if out.normalization is None:
        raise ValueError(f"{features}: the normalisation returned no per-run table")
    return NormalizeResult(out.features, out.normalization)
