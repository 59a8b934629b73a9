"""Reading the files that the stages pass on, and the config values several stages share.

The resolved sample sheet (``results/ingest/samples.tsv``), the removed proteins
(``results/ingest/removed_proteins.tsv``), the normalised table the model reads, the contrasts
and the inference options of the config, and the model spec as the fit stage built it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pepmix.io import write_tsv
from pepmix.samples import read_resolved_sheet

if TYPE_CHECKING:
    pass

__all__ = [
    "PathLike",
    "TableWriter",
    "TsvTable",
    "read_model_arrow",
    "read_model_input",
    "read_removed",
    "read_resolved_sheet",
    "write_wide",
]

log = logging.getLogger(__name__)

PathLike = str | Path
#: writes an Arrow table to a path (:func:`pepmix.io.write_arrow`, or a stage job's writer
#: thread that calls it: :mod:`pepmix.stages.prepare`)
TableWriter = Callable[[pa.Table, PathLike], None]


def read_removed(path: PathLike) -> pd.DataFrame:
    """Read the removed proteins written by :func:`merge` (nullable integer counts)."""
    frame = pd.read_csv(
        path,
        sep="\t",
        dtype={"protein": str, "detail": str},
        keep_default_na=False,
        na_values={"n_features": ["NA"], "n_observations": ["NA"]},
    )
    for col in ("n_features", "n_observations"):
        frame[col] = frame[col].astype("Int64")
    return frame


def read_model_input(path: PathLike) -> pd.DataFrame:
    """Read ``protein, feature, run, y`` of the normalised table, identifiers as categoricals."""
    frame: pd.DataFrame = read_model_arrow(path).to_pandas()
    return frame


def read_model_arrow(path: PathLike) -> pa.Table:
    """:func:`read_model_input`'s Arrow table before its conversion to pandas (identifiers
    dictionary-encoded): for readers that keep a few of its rows
    (:func:`pepmix.model.majority_shards.shard_sample`)."""
    return pq.read_table(
        path,
        columns=["protein", "feature", "run", "y"],
        read_dictionary=["protein", "feature", "run"],
    )


def write_wide(long: PathLike, runs: list[str], output: PathLike) -> None:
    """Proteins x runs TSV of the long abundance table ``long`` (as written to Parquet)."""
    from pepmix.model.abundance import wide

    write_tsv(wide(pd.read_parquet(long), runs), output)


@dataclass(frozen=True)
class TsvTable:
    """A stage's table for people (``results/tables/*.tsv``).

    Attributes
    ----------
    table : pandas.DataFrame
    """

    table: pd.DataFrame

    def write(self, path: PathLike) -> None:
        """Write it as TSV (:func:`pepmix.io.write_tsv`), atomically."""
        write_tsv(self.table, path)
