"""Helpers for the search-engine readers (MaxQuant, DIA-NN, FragPipe, Spectronaut, Sage, AlphaDIA).

- :func:`table_header` and :func:`read_selected` read only the columns a reader needs (text files
  through ``usecols``, Parquet through column projection), optionally in chunks, so wide reports
  are never held in memory in full.
- :func:`flag_proteins` flags decoy and contaminant protein groups from accession patterns, for
  formats without a flag column (or to complement one).
- :func:`melt_runs` turns one-column-per-run tables into the long layout.
- :func:`parse_flag` parses the many spellings of booleans the tools write.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from pepmix.errors import ConfigError, InputFormatError
from pepmix.readers._common import (
    _open_text,
    _sniff_separator,
    alias,
    file_column,
    plain,
    run_name,
    to_float,
)

log = logging.getLogger(__name__)

#: Contaminant accessions: MaxQuant ``CON__``, FragPipe/Philosopher ``contam_``, quantms
#: ``CONTAMINANT_``, and the ProteoBench FASTA ``Cont_`` (which follows ``sp|``).
DEFAULT_CONTAMINANT_PATTERN = r"(?:^|\|)(?:CON__|contam_|CONTAMINANT_|Cont_)"
#: Decoy accessions: ``rev_`` (FragPipe, Sage), ``REV__`` (MaxQuant), ``DECOY_``/``decoy_``.
DEFAULT_DECOY_PATTERN = r"(?:^|\|)(?:rev_|REV__|DECOY_|decoy_)"

NA_VALUES = ["", "NA", "NaN", "nan", "NULL", "null", "#N/A", "N/A"]

_TRUE = frozenset({"true", "1", "+", "yes", "t", "y", "1.0"})
_FALSE = frozenset({"false", "0", "-", "no", "f", "n", "0.0", ""})


def is_parquet(path: Path) -> bool:
    """Return whether ``path`` names a Parquet file (by its extension)."""
    return path.suffix.lower() == ".parquet"


def table_header(path: Path) -> tuple[list[str], str | None]:
    """Return the column names of a text or Parquet table and its separator.

    Parameters
    ----------
    path : pathlib.Path
        Delimited text file (optionally gzipped) or Parquet file.

    Returns
    -------
    columns : list of str
        Column names, stripped of surrounding white space.
    separator : str or None
        Sniffed column separator; None for Parquet.

    Raises
    ------
    InputFormatError
        If the file does not exist, is empty or is not a readable table.
    """
    if not path.exists():
        raise InputFormatError(f"{path}: file not found")
    if is_parquet(path):
        try:
            names = pq.read_schema(path).names
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several unrelated types
            raise InputFormatError(f"{path}: not a readable Parquet file ({exc})") from None
        return [alias(str(n)) for n in names], None
    with _open_text(path) as handle:
        try:
            first = handle.readline()
        except UnicodeDecodeError:
            raise InputFormatError(f"{path}: not a UTF-8 text table") from None
    if not first.strip():
        raise InputFormatError(f"{path}: file is empty or its first line is blank")
    separator = _sniff_separator(path, first)
    names = first.rstrip("\r\n").split(separator)
    return [alias(_clean_name(n)) for n in names], separator


def read_selected(
    path: Path,
    columns: Sequence[str],
    separator: str | None,
    chunksize: int | None = None,
) -> Iterator[pd.DataFrame]:
    """Read only ``columns`` of a table, as strings (text) or native types (Parquet).

    Parameters
    ----------
    path : pathlib.Path
        The table; its header must contain every name in ``columns`` (check with
        :func:`pepmix.readers._common.require_columns` first).
    columns : sequence of str
        Columns to read; all others are skipped by the parser.
    separator : str or None
        Separator returned by :func:`table_header` (None for Parquet).
    chunksize : int, optional
        Yield text tables in chunks of this many rows (default: one chunk). Parquet files are
        always yielded whole; use a filtered scan for those (see :mod:`pepmix.readers.diann`).

    Yields
    ------
    pandas.DataFrame
        The selected columns, named as in ``columns``.
    """
    wanted = list(dict.fromkeys(columns))
    if separator is None:
        frame = pq.read_table(path, columns=[file_column(c) for c in wanted]).to_pandas()
        frame.columns = [alias(str(c)) for c in frame.columns]
        yield frame
        return
    wanted_set = set(wanted)
    kwargs: dict[str, Any] = {
        "sep": separator,
        "usecols": lambda name: alias(_clean_name(name)) in wanted_set,
        "dtype": str,
        "keep_default_na": False,
        "na_values": NA_VALUES,
        "encoding": "utf-8-sig",
        "low_memory": False,
    }
    try:
        if chunksize:
            with pd.read_csv(path, chunksize=chunksize, **kwargs) as reader:
                for chunk in reader:
                    chunk.columns = [alias(_clean_name(c)) for c in chunk.columns]
                    yield chunk
        else:
            frame = pd.read_csv(path, **kwargs)
            frame.columns = [alias(_clean_name(c)) for c in frame.columns]
            yield frame
    except pd.errors.ParserError as exc:
        msg = str(exc).strip().splitlines()[-1]
        raise InputFormatError(f"{path}: malformed table ({msg})") from None


def _clean_name(name: object) -> str:
    return str(name).strip().strip('"').strip()


def read_all_selected(path: Path, columns: Sequence[str], separator: str | None) -> pd.DataFrame:
    """Read only ``columns`` of a table in one piece (see :func:`read_selected`)."""
    return next(iter(read_selected(path, columns, separator)))


def option_str(
    options: Mapping[str, Any], key: str, default: str, choices: Collection[str] | None = None
) -> str:
    """Return a string option, checking it against ``choices`` when given.

    Raises
    ------
    ConfigError
        If the value is not a string or not one of ``choices``.
    """
    value = options.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"option {key!r} must be a non-empty string, got {value!r}")
    if choices is not None and value not in choices:
        raise ConfigError(f"option {key!r} must be one of {', '.join(choices)}, got {value!r}")
    return value


def option_threshold(options: Mapping[str, Any], key: str) -> float | None:
    """Return a q-value threshold option (None when absent or null).

    Raises
    ------
    ConfigError
        If the value is not a number between 0 and 1.
    """
    value = options.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(f"option {key!r} must be a number between 0 and 1, got {value!r}")
    return float(value)


def option_positive_int(options: Mapping[str, Any], key: str, default: int) -> int:
    """Return a positive integer option.

    Raises
    ------
    ConfigError
        If the value is not a positive integer.
    """
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"option {key!r} must be a positive integer, got {value!r}")
    return value


def option_pattern(options: Mapping[str, Any], key: str, default: str) -> re.Pattern[str] | None:
    """Compile a regular-expression option; null or an empty string disables it.

    Raises
    ------
    ConfigError
        If the value is not a string or not a valid regular expression.
    """
    value = options.get(key, default)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"option {key!r} must be a regular expression (string), got {value!r}")
    try:
        return re.compile(value)
    except re.error as exc:
        raise ConfigError(f"option {key!r}: invalid regular expression {value!r} ({exc})") from None


def flag_proteins(
    proteins: pd.Series,
    pattern: re.Pattern[str] | None,
    how: Literal["any", "all"],
    separator: str = ";",
) -> pd.Series:
    """Flag protein groups whose members match an accession pattern.

    Parameters
    ----------
    proteins : pandas.Series
        Protein group strings, members separated by ``separator``.
    pattern : re.Pattern or None
        Searched in each member; None flags nothing.
    how : {"any", "all"}
        ``"any"``: a group is flagged when one member matches (contaminants: a peptide that may
        come from a contaminant is not trusted). ``"all"``: every member must match (decoys: a
        peptide that also maps to a target protein is a target match).
    separator : str, default ";"
        Separator of the group members.

    Returns
    -------
    pandas.Series
        Boolean series aligned with ``proteins`` (missing groups are not flagged).
    """
    if pattern is None:
        return pd.Series(np.zeros(len(proteins), dtype=bool), index=proteins.index)
    combine = any if how == "any" else all
    cat = proteins.astype("category")
    lookup = np.array(
        [
            combine(
                bool(pattern.search(member.strip()))
                for member in str(group).split(separator)
                if member
            )
            for group in cat.cat.categories
        ],
        dtype=bool,
    )
    codes = cat.cat.codes.to_numpy()
    flags = np.where(codes >= 0, lookup[np.maximum(codes, 0)] if lookup.size else False, False)
    return pd.Series(flags, index=proteins.index)


def parse_flag(series: pd.Series, path: Path, column: str) -> pd.Series:
    """Parse a boolean column written as true/false, 1/0, +/empty, yes/no (any case).

    Raises
    ------
    InputFormatError
        If a value is none of these spellings.
    """
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype("boolean")
    if pd.api.types.is_numeric_dtype(series.dtype):
        # NumPy comparisons instead of ``isin``: the same test, ~10x faster on millions of rows;
        # NumPy integers (no missing value) are compared as they are
        plain_int = isinstance(series.dtype, np.dtype) and series.dtype.kind in "iu"
        values = (
            series.to_numpy()
            if plain_int
            else pd.to_numeric(series).to_numpy(dtype=np.float64, na_value=np.nan)
        )
        missing = np.zeros(values.size, dtype=bool) if plain_int else np.isnan(values)
        bad = ~missing & (values != 0) & (values != 1)
        if bad.any():
            raise InputFormatError(
                f"{path}: column {column!r} must be 0/1 or true/false, found "
                f"{plain(series.iloc[int(np.argmax(bad))])!r}"
            )
        flags = pd.arrays.BooleanArray(values != 0, missing)
        return pd.Series(flags, index=series.index)
    # spellings are checked once per distinct value
    cat = series.astype("category")
    text = pd.Index([str(c).strip().lower() for c in cat.cat.categories], dtype=object)
    known = text.isin(list(_TRUE)) | text.isin(list(_FALSE))
    if not known.all():
        raise InputFormatError(
            f"{path}: column {column!r} must be true/false, 1/0 or +/empty, found "
            f"{cat.cat.categories[~known][0]!r}"
        )
    truth = np.asarray(text.isin(list(_TRUE)))
    codes = cat.cat.codes.to_numpy()
    flags = pd.array(truth[np.maximum(codes, 0)], dtype="boolean")
    flags[codes < 0] = pd.NA
    return pd.Series(flags, index=series.index)


def strip_underscores(series: pd.Series) -> pd.Series:
    """Remove the ``_`` that MaxQuant and Spectronaut put around modified sequences."""
    return series.astype("string").str.strip("_")


def precursor_id(peptide: pd.Series, charge: pd.Series) -> pd.Series:
    """Build ``<peptide>_<charge>`` precursor identifiers (charge ``NA`` when missing)."""
    charge_text = pd.to_numeric(charge, errors="coerce").astype("Int64").astype("string")
    return peptide.astype("string") + "_" + charge_text.fillna("NA")


def melt_runs(
    ids: pd.DataFrame,
    values: pd.DataFrame,
    path: Path,
    runs: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Turn a table with one intensity column per run into one row per feature x run.

    Parameters
    ----------
    ids : pandas.DataFrame
        Per-row annotation columns (protein, feature, ...), repeated for every run.
    values : pandas.DataFrame
        Intensity columns, same row order as ``ids``; parsed as numbers.
    path : pathlib.Path
        Source file, for error messages.
    runs : sequence of str, optional
        Run name of each column of ``values``; default: the column names through
        :func:`pepmix.readers._common.run_name`.

    Raises
    ------
    InputFormatError
        If a value is not a number or two columns map to the same run name.
    """
    run_names = [run_name(c) for c in values.columns] if runs is None else list(runs)
    seen: dict[str, str] = {}
    for column, name in zip(values.columns, run_names, strict=True):
        if name in seen:
            raise InputFormatError(
                f"{path}: columns {seen[name]!r} and {column!r} both name run {name!r}"
            )
        seen[name] = str(column)
    matrix = np.column_stack(
        [to_float(values[c], path, str(c)).to_numpy(dtype="float64") for c in values.columns]
    )
    n_rows, n_runs = matrix.shape
    out = pd.DataFrame({col: np.repeat(ids[col].to_numpy(), n_runs) for col in ids.columns})
    out["run"] = np.tile(np.asarray(run_names, dtype=object), n_rows)
    out["intensity"] = matrix.reshape(-1)
    return out


def first_present(present: Collection[str], candidates: Sequence[str]) -> str | None:
    """Return the first of ``candidates`` that is in ``present``, or None."""
    for name in candidates:
        if name in present:
            return name
    return None
