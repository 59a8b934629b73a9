"""Helpers shared by the readers: robust table loading, column checks and run names."""

from __future__ import annotations

import csv
import gzip
import io
import logging
import re
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path, PureWindowsPath

import pandas as pd
import pyarrow.parquet as pq

from pepmix.errors import InputFormatError

log = logging.getLogger(__name__)

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
    return open(path, encoding="utf-8-sig", newline="")


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
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several unrelated types
            raise InputFormatError(f"{p}: not a readable Parquet file ({exc})") from None
        if columns is not None:
            require_columns(schema_names, columns, p)
        try:
            table = pq.read_table(p, columns=list(columns) if columns else None)
        except Exception as exc:  # noqa: BLE001 - a corrupt row group fails only here
            raise InputFormatError(f"{p}: not a readable Parquet file ({exc})") from None
        frame: pd.DataFrame = table.to_pandas()
        return frame
    try:
        with _open_text(p) as handle:
            sample = handle.read(65536)
    except (UnicodeDecodeError, EOFError, zlib.error, OSError) as exc:
        raise _read_error(p, exc) from None
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
    except pd.errors.EmptyDataError:
        raise InputFormatError(f"{p}: no header line (file is empty after skipped rows)") from None
    except (UnicodeDecodeError, EOFError, zlib.error, OSError) as exc:
        raise _read_error(p, exc) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if p.suffix.lower() != ".gz":
        _check_last_line(p, separator, len(frame.columns))
    if columns is not None:
        require_columns(frame.columns, columns, p)
    return frame


def _read_error(path: Path, exc: BaseException) -> InputFormatError:
    """One-line error for a file that cannot be decoded or decompressed."""
    if isinstance(exc, UnicodeDecodeError):
        return InputFormatError(
            f"{path}: not a UTF-8 text table (byte {exc.object[exc.start : exc.start + 1]!r} "
            "cannot be decoded; save the file as UTF-8)"
        )
    if isinstance(exc, (EOFError, zlib.error, gzip.BadGzipFile)):
        return InputFormatError(f"{path}: compressed file is truncated or corrupt ({exc})")
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return InputFormatError(f"{path}: cannot read the file ({reason})")


def _check_last_line(path: Path, separator: str, n_columns: int) -> None:
    """Detect a text table cut off in its last line (e.g. by an interrupted copy).

    A file that does not end with a line break and whose last line has fewer fields than the
    header is truncated: pandas would silently fill the missing fields with nulls. A last line
    that has all its fields but no line break may still have lost characters of its last value;
    that is only logged.
    """
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - 65536))
        tail = handle.read()
    if not tail or tail.endswith((b"\n", b"\r")):
        return
    last = tail.rsplit(b"\n", 1)[-1].decode("utf-8", errors="replace")
    line_no = None
    try:
        fields = next(csv.reader([last], delimiter=separator))
    except (csv.Error, StopIteration):
        fields = []
    if len(fields) < n_columns:
        with open(path, "rb") as handle:
            line_no = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
        raise InputFormatError(
            f"{path}: line {line_no + 1} has {len(fields)} of {n_columns} fields and the file "
            "does not end with a line break: the file looks truncated"
        )
    log.warning(
        "%s: the file does not end with a line break; if it was cut short, the last value may "
        "be incomplete",
        path,
    )


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
        first = series[bad].iloc[0]
        hint = ""
        if re.fullmatch(r"\s*[-+]?\d+(\.\d{3})*,\d+\s*", str(first)):
            hint = "; decimal commas are not supported, use a point"
        raise InputFormatError(
            f"{path}: column {column!r} has {int(bad.sum())} value(s) that are not numbers "
            f"(first: {first!r}){hint}"
        )
    return values.astype("float64")
