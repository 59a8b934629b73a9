"""Small file helpers shared by all stages: atomic writes and table output."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from numpy.typing import NDArray


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` and move it into place on success.

    If the body raises, the temporary file is removed and ``path`` is left untouched, so no
    half-written output survives a failure.

    Parameters
    ----------
    path : str or pathlib.Path
        Final destination; its parent directory is created if needed.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # mkstemp creates the file readable by its owner only; give it the usual permissions
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def significant(values: NDArray[np.float64], digits: int = 6) -> NDArray[np.float64]:
    """Round to ``digits`` significant digits (so the shortest repr prints like ``%.6g``)."""
    x = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        magnitude = np.floor(np.log10(np.abs(x)))
    magnitude = np.where(np.isfinite(magnitude), magnitude, 0.0)
    with np.errstate(over="ignore", invalid="ignore"):
        # a subnormal value (|x| < 1e-308) overflows the scale: it is kept as it is (below)
        scale = 10.0 ** (digits - 1 - magnitude)
        rounded = np.round(x * scale) / scale
    return np.where(np.isfinite(rounded), rounded, x)


def _text_column(values: pd.Series, digits: int) -> pa.Array:
    missing = values.isna().to_numpy()
    if pd.api.types.is_bool_dtype(values.dtype):
        text = np.where(values.fillna(False).to_numpy(dtype=bool), "True", "False")
        arr = pa.array(text.astype(object), mask=missing)
    elif pd.api.types.is_float_dtype(values.dtype):
        numbers = significant(values.to_numpy(dtype=np.float64, na_value=np.nan), digits)
        arr = pc.cast(pa.array(numbers, mask=missing), pa.string())
    elif pd.api.types.is_integer_dtype(values.dtype):
        arr = pc.cast(pa.array(values.to_numpy(dtype=np.float64, na_value=0.0).astype(np.int64),
                               mask=missing), pa.string())  # fmt: skip
    else:
        text = np.where(missing, "", values.astype(object).astype(str).to_numpy(dtype=object))
        arr = pa.array(text, type=pa.string(), mask=missing)
    return pc.fill_null(arr, "NA")


def write_tsv(frame: pd.DataFrame, path: str | Path, digits: int = 6) -> None:
    """Write a table for people: tab-separated, ``NA`` for missing, atomic.

    Floating-point numbers are written with ``digits`` significant digits (like ``%.6g``).
    Formatting is done by Arrow, column by column (millions of cells in a fraction of a second).

    Parameters
    ----------
    frame : pandas.DataFrame
        Table to write.
    path : str or pathlib.Path
        Destination.
    digits : int, default 6
        Significant digits of floating-point columns.
    """
    with atomic_path(path) as tmp:
        tmp.write_bytes(tsv_bytes(frame, digits))


def tsv_bytes(frame: pd.DataFrame, digits: int = 6) -> bytes:
    """The bytes :func:`write_tsv` writes for ``frame`` (default ``digits`` 6)."""
    table = pa.table({str(c): _text_column(frame[c], digits) for c in frame.columns})
    options = pacsv.WriteOptions(delimiter="\t", quoting_style="none", quoting_header="none")
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, options)
    return bytes(sink.getvalue().to_pybytes())


def write_arrow(table: pa.Table, path: str | Path) -> None:
    """Write an Arrow table to Parquet atomically, tuned for large intermediate tables.

    LZ4 compression, dictionary encoding for dictionary (categorical) and string columns only,
    and no column statistics (computing them for millions of dictionary-encoded strings costs
    more than the write itself; the workflow never filters its intermediates by statistics).
    """
    dictionary = [
        f.name for f in table.schema if pa.types.is_dictionary(f.type) or pa.types.is_string(f.type)
    ]
    with atomic_path(path) as tmp:
        pq.write_table(
            table, tmp, compression="lz4", use_dictionary=dictionary, write_statistics=False
        )


def write_parquet(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a data frame to Parquet atomically (see :func:`write_arrow`; no index)."""
    write_arrow(pa.Table.from_pandas(frame, preserve_index=False), path)
