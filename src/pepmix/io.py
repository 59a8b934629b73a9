"""Small file helpers shared by all stages: atomic writes and table output."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


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


def write_tsv(frame: pd.DataFrame, path: str | Path, float_format: str = "%.6g") -> None:
    """Write a table for people: tab-separated, ``NA`` for missing, atomic.

    Parameters
    ----------
    frame : pandas.DataFrame
        Table to write.
    path : str or pathlib.Path
        Destination.
    float_format : str, default "%.6g"
        printf-style format for floating-point columns.
    """
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False, na_rep="NA", float_format=float_format)


def write_arrow(table: pa.Table, path: str | Path) -> None:
    """Write an Arrow table to Parquet atomically, tuned for large intermediate tables.

    LZ4 compression, dictionary encoding for dictionary (categorical) and string columns only,
    and no column statistics (computing them for millions of dictionary-encoded strings costs
    more than the write itself; the workflow never filters its intermediates by statistics).
    """
    dictionary = [
        f.name
        for f in table.schema
        if pa.types.is_dictionary(f.type) or pa.types.is_string(f.type)
    ]
    with atomic_path(path) as tmp:
        pq.write_table(
            table, tmp, compression="lz4", use_dictionary=dictionary, write_statistics=False
        )


def write_parquet(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a data frame to Parquet atomically (see :func:`write_arrow`; no index)."""
    write_arrow(pa.Table.from_pandas(frame, preserve_index=False), path)
