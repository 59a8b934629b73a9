"""Small file helpers shared by all stages: atomic writes and table output."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd


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


def write_parquet(frame: pd.DataFrame, path: str | Path) -> None:
    """Write any data frame to Parquet atomically (zstd compressed, no index)."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False, compression="zstd")
