"""Helpers shared by the readers: robust table loading, column checks and run names."""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Iterable, Sequence
from pathlib import Path, PureWindowsPath

import pandas as pd
import pyarrow.parquet as pq

from pepmix.errors import InputFormatError

_RUN_EXTENSIONS = re.compile(
    r"(\.(gz|bz2|zip|xz))?$",
    re.IGNORECASE,
)
_MS_EXTENSIONS = re.compile(
    r"\.(raw|d|wiff|wiff2|mzml|mzxml|mgf|dia|htrms|tdf|mzdata|mz5)$",
    re.IGNORECASE,
)


def run_name(value: str) -> str:
    """Normalize a run identifier: strip directories (POSIX or Windows) and MS file extensions.

    ``S:\\data\\A_01.raw`` and ``/data/A_01.mzML.gz`` both become ``A_01``.
    """
    text = str(value).strip()
    base = PureWindowsPath(text).name if "\\" in text else Path(text).name
    base = _RUN_EXTENSIONS.sub("", base)
    previous = None
    while previous != base:
        previous = base
        base = _MS_EXTENSIONS.sub("", base)
    return base


def _sniff_separator(path: Path, sample: str) -> str:
    first = sample.splitlines()[0] if sample else ""
    if path.suffix.lower() in {".tsv", ".txt", ".tab"} and "\t" in first:
        return "\t"
    if path.suffix.lower() == ".csv" and "," in first:
        return ","
    counts = {sep: first.count(sep) for sep in ("\t", ",", ";")}
    best = max(counts, key=lambda k: counts[k])
    if counts[best] == 0:
        raise InputFormatError(
            f"{path}: cannot find a column separator (tab, comma or semicolon) in the header line"
        )
    return best


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix.lower() == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig")
    return open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115


def read_table(
    path: str | Path,
    columns: Sequence[str] | None = None,
    sep: str | None = None,
    skiprows: int | None = None,
) -> pd.DataFrame:
    """Read a delimited text file (optionally gzipped) or a Parquet file.

    The separator is sniffed from the header when not given; a UTF-8 byte-order mark is removed.
    All columns are read as strings except when the file is Parquet.

    Parameters
    ----------
    path : str or pathlib.Path
        File to read.
    columns : sequence of str, optional
        Read only these columns (Parquet: column projection). Missing ones raise an error.
    sep : str, optional
        Column separator; sniffed when None (default).
    skiprows : int, optional
        Number of lines to skip before the header (default none).

    Raises
    ------
    InputFormatError
        If the file does not exist, is empty, cannot be parsed, or lacks a requested column.
    """
    p = Path(path)
    if not p.exists():
        raise InputFormatError(f"{p}: file not found")
    if p.suffix.lower() == ".parquet":
        try:
            schema_names = pq.read_schema(p).names
        except Exception as exc:  # pyarrow raises several unrelated types for bad files
            raise InputFormatError(f"{p}: not a readable Parquet file ({exc})") from None
        if columns is not None:
            require_columns(schema_names, columns, p)
        return pq.read_table(p, columns=list(columns) if columns else None).to_pandas()
    with _open_text(p) as handle:
        try:
            sample = handle.read(65536)
        except UnicodeDecodeError:
            raise InputFormatError(f"{p}: not a UTF-8 text table") from None
    if not sample.strip():
        raise InputFormatError(f"{p}: file is empty")
    lines = sample.splitlines()
    header_sample = "\n".join(lines[skiprows or 0 :])
    separator = sep or _sniff_separator(p, header_sample)
    try:
        frame = pd.read_csv(
            p,
            sep=separator,
            dtype=str,
            keep_default_na=False,
            na_values=["", "NA", "NaN", "nan", "NULL", "null", "#N/A", "N/A"],
            skiprows=skiprows,
            encoding="utf-8-sig",
            quoting=csv.QUOTE_MINIMAL,
            low_memory=False,
        )
    except pd.errors.ParserError as exc:
        msg = str(exc).strip().splitlines()[-1]
        raise InputFormatError(f"{p}: malformed table ({msg})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if columns is not None:
        require_columns(frame.columns, columns, p)
    return frame


def require_columns(present: Iterable[str], required: Iterable[str], path: str | Path) -> None:
    """Raise :class:`InputFormatError` naming the missing and the present columns."""
    present_list = list(present)
    missing = [c for c in required if c not in present_list]
    if missing:
        shown = ", ".join(present_list[:40]) + (" ..." if len(present_list) > 40 else "")
        raise InputFormatError(
            f"{path}: missing column(s) {', '.join(missing)}; columns present: {shown}"
        )


def to_float(series: pd.Series, path: str | Path, column: str) -> pd.Series:
    """Parse a column of numbers; text that is not a number is an error naming the column."""
    values = pd.to_numeric(series, errors="coerce")
    bad = series.notna() & values.isna()
    if bad.any():
        raise InputFormatError(
            f"{path}: column {column!r} has {int(bad.sum())} value(s) that are not numbers "
            f"(first: {series[bad].iloc[0]!r})"
        )
    return values.astype("float64")
