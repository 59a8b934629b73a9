"""Reading stage outputs for the figures: the resolved sample sheet, columns and proteins of the
Parquet tables, the contrasts as the plots need them.

This module (and the plot stages that use it) deliberately does not import the modelling code
(which pulls in numba and SciPy): plot jobs start fast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pepmix.plots.style import Runs

__all__ = [
    "ContrastInfo",
    "PathLike",
    "condition_means",
    "distinct_values",
    "read_identifiers",
    "read_proteins",
    "read_runs",
]

PathLike = str | Path


@dataclass(frozen=True)
class ContrastInfo:
    """A contrast as the plots need it.

    Attributes
    ----------
    name : str
        Name in the tables, e.g. ``"fmol50 - fmol25"``.
    slug : str
        File-name-safe name (directory of its figures).
    numerator, denominator : str
        Condition levels.
    """

    name: str
    slug: str
    numerator: str
    denominator: str

    @classmethod
    def from_mapping(cls, item: Mapping[str, str]) -> ContrastInfo:
        """From a mapping with keys ``name``, ``slug``, ``numerator``, ``denominator``."""
        return cls(
            str(item["name"]), str(item["slug"]), str(item["numerator"]), str(item["denominator"])
        )


def read_runs(samples: PathLike, present: Sequence[str] | None = None) -> Runs:
    """Read the resolved sample sheet (``results/ingest/samples.tsv``) into a :class:`Runs`."""
    from pepmix.samples import read_resolved_sheet

    return Runs.from_sheet(read_resolved_sheet(samples), present)


def read_identifiers(
    path: PathLike, columns: Sequence[str], identifiers: Sequence[str]
) -> pd.DataFrame:
    """Read ``columns`` of a Parquet table with the ``identifiers`` columns as categoricals.

    Columns stored as Parquet dictionaries arrive as categoricals already; plain string
    columns are converted once here, so that every figure works on their integer codes.
    """
    frame = pd.read_parquet(path, columns=list(columns))
    for name in identifiers:
        if not isinstance(frame[name].dtype, pd.CategoricalDtype):
            frame[name] = frame[name].astype("category")
    return frame


def distinct_values(path: PathLike, column: str) -> list[str]:
    """The distinct values of one column of a Parquet table (read alone, deduplicated by Arrow)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    values = pc.unique(pq.read_table(path, columns=[column])[column])
    return [str(v) for v in values.to_pylist() if v is not None]


def read_proteins(
    path: PathLike, proteins: Sequence[str], columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """The rows of ``proteins`` of a Parquet table with a ``protein`` column (filtered on read).

    ``columns`` that the table does not have are left out. Identifier columns keep only the
    categories that occur.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    wanted = None if columns is None else [c for c in columns if c in schema.names]
    if proteins:
        table = pq.read_table(path, columns=wanted, filters=[("protein", "in", list(proteins))])
    else:  # an empty filter set has no type to compare with
        fields = schema if wanted is None else [schema.field(c) for c in wanted]
        table = pa.Table.from_pylist([], schema=pa.schema(fields))
    frame: pd.DataFrame = table.to_pandas()
    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.CategoricalDtype):
            frame[name] = frame[name].cat.remove_unused_categories()
    return frame


def condition_means(fixed: pd.DataFrame, conditions: Sequence[str]) -> pd.Series:
    """Mean of the fitted condition means (``condition[<c>]`` terms) of each protein."""
    terms = [f"condition[{c}]" for c in conditions]
    rows = fixed.loc[fixed["term"].astype(str).isin(terms)]
    means = rows.astype({"protein": str}).groupby("protein")["estimate"].mean()
    complete = rows.groupby(rows["protein"].astype(str))["estimate"].count() == len(terms)
    return means.loc[complete.reindex(means.index, fill_value=False)]
