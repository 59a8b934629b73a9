"""Helpers shared by the readers: robust table loading, column checks and run names."""

from __future__ import annotations

import contextlib
import contextvars
import csv
import gzip
import io
import logging
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path, PureWindowsPath
from typing import TypeGuard

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
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


_ALIASES: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "pepmix_column_aliases", default=None
)


@contextlib.contextmanager
def column_aliases(mapping: Mapping[str, str] | None, path: str | Path = "") -> Iterator[None]:
    """Read tables with renamed columns: the ``columns:`` mapping of an ``inputs:`` entry.

    Inside the context, every table read by the readers' helpers (:func:`read_table`,
    :func:`pepmix.readers._support.table_header`, :func:`pepmix.readers._support.read_selected`,
    format detection) shows the column ``mapping[name]`` of the file under ``name``, the name
    the format expects; so the mapping applies before any reader's column checks.

    Parameters
    ----------
    mapping : mapping of str to str or None
        Expected column name -> the file's column name. None or empty: no renaming.
    path : str or pathlib.Path, default ""
        The input, for messages.

    Raises
    ------
    ConfigError
        If the mapping is not a mapping of strings, or maps two names to one file column.
    """
    from pepmix.errors import ConfigError

    if not mapping:
        yield
        return
    if not isinstance(mapping, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and k and v for k, v in mapping.items()
    ):
        raise ConfigError(
            f"{path}: columns: must map column names the format expects to column names of the "
            f"file (strings), got {mapping!r}"
        )
    reverse: dict[str, str] = {}
    for expected, in_file in mapping.items():
        if in_file in reverse:
            raise ConfigError(
                f"{path}: columns: {reverse[in_file]!r} and {expected!r} both name file column "
                f"{in_file!r}"
            )
        reverse[in_file] = expected
    token = _ALIASES.set(reverse)
    try:
        yield
    finally:
        _ALIASES.reset(token)


def alias(name: str) -> str:
    """Name under which file column ``name`` is seen (see :func:`column_aliases`)."""
    aliases = _ALIASES.get()
    return aliases.get(name, name) if aliases else name


def file_column(name: str) -> str:
    """File column shown as ``name`` (inverse of :func:`alias`)."""
    for in_file, expected in (_ALIASES.get() or {}).items():
        if expected == name:
            return in_file
    return name


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


def run_names(values: pd.Series) -> pd.Series:
    """:func:`run_name` of every value (nulls stay null), computed once per distinct value:
    ``values.map(run_name, na_action="ignore")`` without a call per row (a long table of
    millions of rows names a few hundred runs)."""
    if isinstance(values.array, pd.arrays.ArrowStringArray):
        return _run_names_arrow(values)
    names = {v: run_name(v) for v in values.dropna().unique()}
    out = values.map(names, na_action="ignore")
    if isinstance(values.dtype, pd.StringDtype) and values.dtype.na_value is pd.NA:
        # a function keeps the "string" dtype (missing as <NA>), a dict gives "str" (NaN)
        out = out.astype(values.dtype)
    return out


def _run_names_arrow(values: pd.Series) -> pd.Series:
    """:func:`run_names` of Arrow-backed strings: the distinct values by Arrow's dictionary
    encoding and the names taken by index, not a pandas lookup per row (~2x faster)."""
    encoded = pc.dictionary_encode(pa.chunked_array(pa.array(values.array)))
    cache: dict[str, str] = {}
    chunks = []
    for chunk in encoded.chunks:
        # (each distinct value named once: ``setdefault`` would call run_name every time)
        names = [
            None if v is None else cache[v] if v in cache else cache.setdefault(v, run_name(v))
            for v in chunk.dictionary.to_pylist()
        ]
        chunks.append(pa.array(names, type=pa.large_string()).take(chunk.indices))
    named: pd.Series = pa.chunked_array(chunks, type=pa.large_string()).to_pandas()
    named.index = values.index
    return named.astype(values.dtype)


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
    categories: Sequence[str] = (),
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
    categories : sequence of str, default ()
        Parquet only (ignored for text): the string columns among these are read as Arrow
        dictionaries and returned as the categoricals ``astype("category")`` makes of the
        strings (the same categories, sorted, and codes), without hashing a string per row in
        the caller's thread (the reader decodes dictionary pages as they are).

    Raises
    ------
    InputFormatError
        If the file does not exist, is empty, cannot be parsed, or lacks a requested column.
    """
    p = Path(path)
    if not p.exists():
        raise InputFormatError(f"{p}: file not found")
    if p.suffix.lower() == ".parquet":
        return _read_parquet(p, columns, categories)
    return _read_delimited(p, columns, sep, skiprows)


def _read_parquet(
    p: Path, columns: Sequence[str] | None, categories: Sequence[str] = ()
) -> pd.DataFrame:
    """:func:`read_table` for a Parquet file: the requested columns, names through aliases,
    ``categories`` as categoricals."""
    try:
        schema = pq.read_schema(p)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several unrelated types
        raise InputFormatError(f"{p}: not a readable Parquet file ({exc})") from None
    schema_names = [alias(n) for n in schema.names]
    if columns is not None:
        require_columns(schema_names, columns, p)
    wanted = [file_column(c) for c in columns] if columns else None
    text = [
        name
        for name in (file_column(c) for c in categories)
        if name in schema.names
        and (wanted is None or name in wanted)
        and (
            pa.types.is_string(schema.field(name).type)
            or pa.types.is_large_string(schema.field(name).type)
        )
    ]
    try:
        table = pq.read_table(p, columns=wanted, read_dictionary=text or None)
    except Exception as exc:  # noqa: BLE001 - a corrupt row group fails only here
        raise InputFormatError(f"{p}: not a readable Parquet file ({exc})") from None
    frame: pd.DataFrame = table.to_pandas()
    frame.columns = [alias(str(c)) for c in frame.columns]
    for name in (alias(n) for n in text):
        frame[name] = _sorted_categories(frame[name])
    return frame


def _sorted_categories(values: pd.Series) -> pd.Series:
    """A categorical column read from an Arrow dictionary (categories in the dictionaries'
    order, perhaps with values no row uses) as ``astype("category")`` gives it for the strings:
    the distinct values in use, sorted, nulls coded -1. The codes are remapped through a table
    (one entry per category) instead of hashing every row's string."""
    cats = values.cat.categories
    codes = values.cat.codes.to_numpy()
    used = np.bincount(codes[codes >= 0] if (codes < 0).any() else codes, minlength=len(cats))
    ordered = cats[used > 0].sort_values()
    # old code -> new code; the last entry takes the nulls' -1 to -1
    table = np.append(ordered.get_indexer(cats), -1).astype(codes.dtype)
    dtype = pd.CategoricalDtype(ordered, ordered=False)
    return pd.Series(
        pd.Categorical.from_codes(table[codes], dtype=dtype), index=values.index, name=values.name
    )


def _read_delimited(
    p: Path, columns: Sequence[str] | None, sep: str | None, skiprows: int | None
) -> pd.DataFrame:
    """:func:`read_table` for a delimited text file: strings, separator sniffed if not given."""
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
    frame.columns = [alias(str(c).strip()) for c in frame.columns]
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
    """Parse a column of numbers.

    Text that is not a number and infinite values (``Inf``, ``-Inf``, ``Infinity``: not a
    measurement, and not a missing value either) are errors naming the file, the line and the
    column.
    """
    values = series  # numbers already: nothing to parse, no value can fail
    if not pd.api.types.is_numeric_dtype(series.dtype):
        values = pd.to_numeric(series, errors="coerce")
        _check_parsed(series, values, path, column)
    floats = values.astype("float64")
    infinite = np.isinf(floats.to_numpy())
    if infinite.any():
        first = plain(floats[infinite].iloc[0])
        where = locate_value(path, column, lambda cell: _INF_TEXT.fullmatch(cell) is not None)
        raise InputFormatError(
            f"{path}: {where or f'column {column!r}'}: infinite value {first} "
            f"({int(infinite.sum())} in all); values must be finite numbers "
            "(write a missing value as NA or an empty cell)"
        )
    return floats


def _check_parsed(series: pd.Series, values: pd.Series, path: str | Path, column: str) -> None:
    """Reject values of ``series`` that :func:`pandas.to_numeric` made null (``values``)."""
    bad = series.notna() & values.isna()
    if bad.any():
        first = series[bad].iloc[0]
        hint = ""
        if re.fullmatch(r"\s*[-+]?\d+(\.\d{3})*,\d+\s*", str(first)):
            hint = "; decimal commas are not supported, use a point"
        raise InputFormatError(
            f"{path}: column {column!r} has {int(bad.sum())} value(s) that are not numbers "
            f"(first: {plain(first)!r}){hint}"
        )


_INF_TEXT = re.compile(r"\s*[-+]?(inf|infinity)\s*", re.IGNORECASE)
_LOCATE_HEADER_ROWS = 6


def plain(value: object) -> object:
    """A value as a plain Python object, so messages show ``-695.23``, not ``np.float64(...)``."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _open_lenient(path: Path) -> io.TextIOBase:
    """Open a text table for locating a value (undecodable bytes replaced)."""
    if path.suffix.lower() == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", errors="replace")
    return open(path, encoding="utf-8-sig", errors="replace", newline="")


def locate_value(path: str | Path, column: str, match: Callable[[str], bool]) -> str:
    """Describe where the first cell of ``column`` that satisfies ``match`` is in a file.

    Used on the error path only (it reads the file again). Text tables: the column is looked up
    in the first rows (so multi-row headers work); Parquet files: the row number.

    Parameters
    ----------
    path : str or pathlib.Path
        The input file.
    column : str
        Column name as in the file's header.
    match : callable
        Predicate on the cell text.

    Returns
    -------
    str
        ``"line 7, column 'Intensity'"`` (``"row 7, ..."`` for Parquet), or ``""`` when the
        file or the value cannot be found.
    """
    p = Path(path)
    column = file_column(column)
    try:
        if p.suffix.lower() == ".parquet":
            values = pq.read_table(p, columns=[column]).column(0).to_pylist()
            for i, value in enumerate(values):
                if value is not None and match(str(value)):
                    return f"row {i + 1}, column {column!r}"
            return ""
        with _open_lenient(p) as handle:
            first = handle.readline()
            separator = _sniff_separator(p, first)
            handle.seek(0)
            indices: list[int] = []
            reader = csv.reader(handle, delimiter=separator)
            for row in reader:
                if not indices:
                    indices = [i for i, c in enumerate(row) if c.strip().strip('"') == column]
                    if not indices and reader.line_num >= _LOCATE_HEADER_ROWS:
                        return ""
                    continue
                for i in indices:
                    if i < len(row) and match(row[i]):
                        return f"line {reader.line_num}, column {column!r}"
    except (OSError, ValueError, csv.Error, InputFormatError, EOFError, zlib.error):
        return ""
    return ""


def locate_char(path: str | Path, char: str, header_row: int = 0) -> str:
    """Describe where ``char`` (e.g. a NUL byte) first occurs in a text table.

    Error path only (it reads the file again).

    Parameters
    ----------
    path : str or pathlib.Path
        The input file (text, optionally gzipped).
    char : str
        The character to look for.
    header_row : int, default 0
        Line (0-based) holding the column names.

    Returns
    -------
    str
        ``"line 3, column 'condition'"``, ``"line 3"`` when the column cannot be told, or ``""``
        when the character is not found.
    """
    p = Path(path)
    try:
        with _open_lenient(p) as handle:
            header: list[str] = []
            separator = "\t"
            for number, line in enumerate(handle, start=1):
                if number == header_row + 1:
                    separator = _sniff_separator(p, line.replace(char, ""))
                    header = next(csv.reader([line.rstrip("\r\n")], delimiter=separator))
                position = line.find(char)
                if position < 0:
                    continue
                fields = next(csv.reader([line[:position]], delimiter=separator), [""])
                index = len(fields) - 1 if fields else 0
                if 0 <= index < len(header):
                    return f"line {number}, column {header[index].strip()!r}"
                return f"line {number}"
    except (OSError, ValueError, csv.Error, InputFormatError, EOFError, zlib.error):
        return ""
    return ""


def check_no_nul(values: Iterable[object], path: str | Path, what: str) -> None:
    """Raise when a text value holds a NUL byte (a corrupt file, or not a text table).

    Parameters
    ----------
    values : iterable
        Distinct values to check (e.g. the categories of an identifier column).
    path : str or pathlib.Path
        File the values come from (located again on error, see :func:`locate_char`).
    what : str
        What the values are, for the message when the file cannot be located.

    Raises
    ------
    InputFormatError
        Naming the file, line and column of the first NUL byte.
    """
    if (
        _arrow_text(values)
        and not pc.any(pc.match_substring(pa.array(values.array), "\x00")).as_py()
    ):
        return  # Arrow-backed strings searched by Arrow (not one Python object per value)
    for value in values:
        if isinstance(value, str) and "\x00" in value:
            where = locate_char(path, "\x00") or f"a {what} value"
            shown = value.replace("\x00", "<NUL>")
            raise InputFormatError(
                f"{path}: {where}: NUL byte (\\x00) in a value ({shown!r}); the file is corrupt "
                "or not a text table"
            )


def _arrow_text(values: object) -> TypeGuard[pd.Index]:
    """Whether ``values`` is an index of Arrow-backed strings (pandas' ``str``)."""
    return (
        isinstance(values, pd.Index)
        and isinstance(values.dtype, pd.StringDtype)
        and values.dtype.storage == "pyarrow"
    )


def check_text_file(path: str | Path, error: type[Exception] = InputFormatError) -> None:
    """Require a small text file (a sample sheet) to be UTF-8 without NUL bytes.

    Parameters
    ----------
    path : str or pathlib.Path
        The file; read whole, so use it for sheets, not for data tables.
    error : type, default InputFormatError
        Exception class to raise (e.g. :class:`pepmix.errors.SampleSheetError`).

    Raises
    ------
    error
        Naming the file, line (and column for a NUL byte) of the first bad byte.
    """
    p = Path(path)
    data = p.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        byte = exc.object[exc.start : exc.start + 1]
        raise error(
            f"{p}: line {line}: not a UTF-8 text file (byte {byte!r} cannot be decoded; save the "
            "file as UTF-8)"
        ) from None
    if "\x00" in text:
        where = locate_char(p, "\x00") or "line ?"
        raise error(f"{p}: {where}: NUL byte (\\x00) in a value; the file is corrupt or not text")
