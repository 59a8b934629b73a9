"""The canonical long table every reader produces.

One row per observed feature x run. A *feature* is the unit the model sees as a random effect: a
precursor (modified peptide + charge) or a peptide. Intensities are on the linear scale; rows with a
missing, zero or non-finite intensity are dropped, so a missing cell is an absent row.

Columns (all always present; optional ones may hold nulls when the format lacks them):

========== ======== =====================================================================
column     type     meaning
========== ======== =====================================================================
protein    string   protein group identifier
feature    string   precursor or peptide identifier, unique within the protein
peptide    string   peptide sequence (modified or stripped, as the format provides)
run        string   MS run name (file name without directories and extensions)
intensity  float64  linear-scale intensity, > 0
charge     int16    precursor charge
fraction   string   fraction of a fractionated sample
q_value    float64  precursor-level q-value
pg_q_value float64  protein-group-level q-value
decoy      bool     decoy identification
contaminant bool    contaminant protein
unique     bool     peptide maps to one protein group
batch      string   MS batch (name of the config ``inputs:`` entry)
========== ======== =====================================================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pepmix.errors import InputFormatError

REQUIRED: Final = ("protein", "feature", "run", "intensity")
OPTIONAL: Final = (
    "peptide",
    "charge",
    "fraction",
    "q_value",
    "pg_q_value",
    "decoy",
    "contaminant",
    "unique",
    "batch",
)
COLUMNS: Final = (
    "protein",
    "feature",
    "peptide",
    "run",
    "intensity",
    "charge",
    "fraction",
    "q_value",
    "pg_q_value",
    "decoy",
    "contaminant",
    "unique",
    "batch",
)

SCHEMA: Final = pa.schema(
    [
        pa.field("protein", pa.string(), nullable=False),
        pa.field("feature", pa.string(), nullable=False),
        pa.field("peptide", pa.string()),
        pa.field("run", pa.string(), nullable=False),
        pa.field("intensity", pa.float64(), nullable=False),
        pa.field("charge", pa.int16()),
        pa.field("fraction", pa.string()),
        pa.field("q_value", pa.float64()),
        pa.field("pg_q_value", pa.float64()),
        pa.field("decoy", pa.bool_()),
        pa.field("contaminant", pa.bool_()),
        pa.field("unique", pa.bool_()),
        pa.field("batch", pa.string()),
    ]
)

_STRING = ("protein", "feature", "peptide", "run", "fraction", "batch")
_FLOAT = ("intensity", "q_value", "pg_q_value")
_BOOL = ("decoy", "contaminant", "unique")


def conform(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Bring a reader's output into the canonical column set and types.

    Missing optional columns are added as nulls; observations with a missing, zero or non-finite
    intensity are dropped (they are missing cells, not observations).

    Parameters
    ----------
    frame : pandas.DataFrame
        Reader output with at least the columns in :data:`REQUIRED`.
    source : str
        Name of the input (file path) used in error messages.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS` in order, one row per observed feature x run.

    Raises
    ------
    InputFormatError
        If a required column is missing, an identifier is empty, or an intensity is negative.
    """
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise InputFormatError(
            f"{source}: reader produced no column(s) {', '.join(missing)}; "
            f"columns present: {', '.join(map(str, frame.columns))}"
        )
    out = pd.DataFrame(index=frame.index)
    for col in COLUMNS:
        if col in frame.columns:
            out[col] = frame[col]
        else:
            out[col] = None
    intensity = pd.to_numeric(out["intensity"], errors="coerce").astype("float64")
    bad_text = out["intensity"].notna() & intensity.isna()
    if bad_text.any():
        example = out.loc[bad_text, "intensity"].iloc[0]
        raise InputFormatError(
            f"{source}: {int(bad_text.sum())} intensity value(s) are not numbers "
            f"(first: {example!r})"
        )
    negative = intensity < 0
    if negative.any():
        row = out.loc[negative].iloc[0]
        raise InputFormatError(
            f"{source}: {int(negative.sum())} negative intensity value(s) "
            f"(first: {intensity[negative].iloc[0]!r} for feature {row['feature']!r} in run "
            f"{row['run']!r}); intensities must be on the linear scale"
        )
    keep = np.isfinite(intensity.to_numpy()) & (intensity.to_numpy() > 0)
    out = out.loc[keep].copy()
    out["intensity"] = intensity[keep]
    for col in _STRING:
        values = out[col]
        out[col] = values.where(values.isna(), values.astype(str)).astype("string")
    for col in ("protein", "feature", "run"):
        empty = out[col].isna() | (out[col].str.strip() == "")
        if empty.any():
            raise InputFormatError(
                f"{source}: {int(empty.sum())} row(s) with an empty {col!r} identifier"
            )
    out["charge"] = pd.to_numeric(out["charge"], errors="coerce").astype("Int16")
    for col in ("q_value", "pg_q_value"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
    for col in _BOOL:
        out[col] = out[col].astype("boolean")
    return out.reset_index(drop=True)


def empty_table() -> pd.DataFrame:
    """Return an empty canonical table with the right dtypes."""
    frame: pd.DataFrame = SCHEMA.empty_table().to_pandas(types_mapper=_types_mapper)
    return frame


def _types_mapper(dtype: pa.DataType) -> object:
    mapping: dict[pa.DataType, object] = {
        pa.string(): pd.StringDtype(),
        pa.bool_(): pd.BooleanDtype(),
        pa.int16(): pd.Int16Dtype(),
    }
    return mapping.get(dtype)


def to_arrow(frame: pd.DataFrame) -> pa.Table:
    """Convert a canonical frame to an Arrow table with :data:`SCHEMA`."""
    return pa.Table.from_pandas(frame.loc[:, list(COLUMNS)], schema=SCHEMA, preserve_index=False)


def write_parquet(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a canonical table atomically (temporary file, then rename)."""
    from pepmix.io import atomic_path

    with atomic_path(path) as tmp:
        pq.write_table(to_arrow(frame), tmp, compression="zstd")


def read_parquet(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a canonical table written by :func:`write_parquet`."""
    table = pq.read_table(path, columns=columns)
    frame: pd.DataFrame = table.to_pandas(types_mapper=_types_mapper)
    return frame
