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

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numpy.typing import NDArray

from pepmix.errors import InputFormatError
from pepmix.readers._common import check_no_nul

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

_DICT = pa.dictionary(pa.int32(), pa.string())

SCHEMA: Final = pa.schema(
    [
        pa.field("protein", _DICT, nullable=False),
        pa.field("feature", _DICT, nullable=False),
        pa.field("peptide", _DICT),
        pa.field("run", _DICT, nullable=False),
        pa.field("intensity", pa.float64(), nullable=False),
        pa.field("charge", pa.int16()),
        pa.field("fraction", _DICT),
        pa.field("q_value", pa.float64()),
        pa.field("pg_q_value", pa.float64()),
        pa.field("decoy", pa.bool_()),
        pa.field("contaminant", pa.bool_()),
        pa.field("unique", pa.bool_()),
        pa.field("batch", _DICT),
    ]
)

#: identifier columns, held as pandas categoricals (Arrow dictionaries in Parquet): a report of
#: millions of rows has only thousands of distinct proteins, features and runs, so every string
#: operation is done once per distinct value
IDENTIFIERS: Final = ("protein", "feature", "peptide", "run", "fraction", "batch")
_FLOAT = ("intensity", "q_value", "pg_q_value")
_BOOL = ("decoy", "contaminant", "unique")


def as_category(values: pd.Series | object) -> pd.Series:
    """Identifier column as a categorical of stripped strings (nulls stay null).

    String work (``str``, strip) is done on the distinct values only.
    """
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    if not isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype("category")
    cats = series.cat.categories
    if _stripped_arrow_text(cats):
        return series  # what the general path returns for them, without converting them
    labels: list[Any] = cats.tolist() if cats.dtype == object else []
    cats_text: Any
    if labels and all(type(label) is str for label in labels):
        cats_text = cats  # already ``str``: no copy to compare with (the usual case)
    else:
        if not pd.api.types.is_string_dtype(cats.dtype) or cats.dtype == object:
            cats_text = pd.Index(cats.astype(str), dtype=object)
        else:
            cats_text = pd.Index(cats.to_numpy(dtype=object), dtype=object)
        labels = cats_text.tolist()
    # (Python's ``str.strip`` in a list comprehension: ~6x faster than ``Index.str.strip`` and
    # ``Index.equals`` on tens of thousands of features)
    text = [label.strip() for label in labels]
    if text != labels:
        codes = series.cat.codes.to_numpy()
        uniq, inverse = np.unique(np.array(text, dtype=str), return_inverse=True)
        new_codes = np.where(codes >= 0, inverse[np.maximum(codes, 0)], -1)
        series = pd.Series(
            pd.Categorical.from_codes(new_codes, categories=pd.Index(uniq, dtype=object)),
            index=series.index,
        )
    elif cats_text is not cats and not cats.equals(cats_text):
        series = series.cat.rename_categories(cats_text)
    return series


def _stripped_arrow_text(cats: pd.Index) -> bool:
    """Whether ``cats`` are Arrow-backed strings (pandas' ``str``) none of which ``str.strip``
    would change, read from their first and last characters by Arrow: a string is unchanged
    by ``str.strip`` exactly when neither end is whitespace (``str.isspace``)."""
    if not isinstance(cats.dtype, pd.StringDtype) or cats.dtype.storage != "pyarrow":
        return False
    text = pa.array(cats.array)
    ends = pa.chunked_array(
        [pc.utf8_slice_codeunits(text, 0, 1), pc.utf8_slice_codeunits(text, -1)]
    )
    return not any(str(c).isspace() for c in pc.unique(ends).to_pylist() if c is not None)


def conform(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Bring a reader's output into the canonical column set and types.

    Missing optional columns are added as nulls; observations with a missing or zero intensity
    are dropped (they are missing cells, not observations). Infinite intensities and NUL bytes in
    identifiers (a corrupt file) are errors.

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
        If a required column is missing, an identifier is empty or holds a NUL byte, or an
        intensity is negative or infinite.
    """
    _check_required_columns(frame, source)
    out = pd.DataFrame(index=frame.index)
    for col in COLUMNS:
        out[col] = frame[col] if col in frame.columns else _null_column(col, len(frame))
    intensity = _checked_intensity(out, source)
    keep = np.isfinite(intensity.to_numpy()) & (intensity.to_numpy() > 0)
    if not keep.all():  # (copy-on-write: selecting rows makes the only copy needed)
        out = out.loc[keep]
        intensity = intensity[keep]
    out["intensity"] = intensity
    _encode_identifiers(out, source)
    _coerce_annotations(out)
    return out.reset_index(drop=True)


def _null_column(col: str, n: int) -> pd.api.extensions.ExtensionArray | NDArray[np.float64]:
    """An optional column the reader did not give: ``n`` nulls, in the type :func:`conform`
    gives the column (what ``None`` values would become, without a column of Python objects)."""
    missing = np.ones(n, dtype=bool)
    if col in IDENTIFIERS:
        return _empty_categorical(n)
    if col in _FLOAT:
        return np.full(n, np.nan)
    if col in _BOOL:
        return pd.arrays.BooleanArray(np.zeros(n, dtype=bool), missing)
    if col == "charge":
        return pd.arrays.IntegerArray(np.zeros(n, dtype=np.int16), missing)
    raise ValueError(f"no null form for column {col!r}")  # the required columns are checked


def _empty_categorical(n: int) -> pd.Categorical:
    """``n`` nulls as a categorical without categories (an identifier the input lacks)."""
    return pd.Categorical.from_codes(
        np.full(n, -1, dtype=np.int8), categories=pd.Index([], dtype=object)
    )


def _check_required_columns(frame: pd.DataFrame, source: str) -> None:
    """Reject a reader output without one of the :data:`REQUIRED` columns."""
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise InputFormatError(
            f"{source}: reader produced no column(s) {', '.join(missing)}; "
            f"columns present: {', '.join(map(str, frame.columns))}"
        )


def _checked_intensity(out: pd.DataFrame, source: str) -> pd.Series:
    """The ``intensity`` column as float64; text, infinite or negative values are errors.

    Missing values stay NaN (and zeros stay zero): :func:`conform` drops them as unobserved.
    """
    raw = out["intensity"]
    # float64 already (the readers' usual output): nothing to parse, nothing can fail
    intensity = raw if raw.dtype == np.float64 else _parsed_intensity(out, source)
    infinite = np.isinf(intensity.to_numpy())
    if infinite.any():
        row = out.loc[infinite].iloc[0]
        raise InputFormatError(
            f"{source}: {int(infinite.sum())} infinite intensity value(s) (first: "
            f"{float(intensity[infinite].iloc[0])} for feature {row['feature']!r} in run "
            f"{row['run']!r}); intensities must be finite numbers"
        )
    negative = intensity < 0
    if negative.any():
        row = out.loc[negative].iloc[0]
        raise InputFormatError(
            f"{source}: {int(negative.sum())} negative intensity value(s) "
            f"(first: {float(intensity[negative].iloc[0])} for feature {row['feature']!r} in run "
            f"{row['run']!r}); intensities must be on the linear scale"
        )
    return intensity


def _parsed_intensity(out: pd.DataFrame, source: str) -> pd.Series:
    """The ``intensity`` column parsed as float64 (missing values NaN); text that is not a
    number is an error."""
    intensity = pd.to_numeric(out["intensity"], errors="coerce").astype("float64")
    bad_text = out["intensity"].notna() & intensity.isna()
    if bad_text.any():
        example = out.loc[bad_text, "intensity"].iloc[0]
        raise InputFormatError(
            f"{source}: {int(bad_text.sum())} intensity value(s) are not numbers "
            f"(first: {example!r})"
        )
    return intensity


def _encode_identifiers(out: pd.DataFrame, source: str) -> None:
    """Make the :data:`IDENTIFIERS` categorical, in place; reject NUL bytes and empty keys.

    An identifier column that is entirely null becomes an empty categorical; ``protein``,
    ``feature`` and ``run`` must be non-empty in every row.
    """
    for col in IDENTIFIERS:
        if out[col].isna().all():
            out[col] = _empty_categorical(len(out))
            continue
        out[col] = as_category(out[col])
        check_no_nul(out[col].cat.categories, source, col)
    for col in ("protein", "feature", "run"):
        cats = out[col].cat.categories
        # (compared as a whole: iterating tens of thousands of Arrow-backed strings is slow)
        empty_cats = np.flatnonzero(np.asarray(cats == "", dtype=bool))
        codes = out[col].cat.codes.to_numpy()
        empty = (codes < 0) | np.isin(codes, empty_cats)
        if empty.any():
            raise InputFormatError(
                f"{source}: {int(empty.sum())} row(s) with an empty {col!r} identifier"
            )


def _coerce_annotations(out: pd.DataFrame) -> None:
    """Give ``charge`` (Int16), the q-values (float64) and the flags (boolean) their types."""
    out["charge"] = pd.to_numeric(out["charge"], errors="coerce").astype("Int16")
    for col in ("q_value", "pg_q_value"):
        if out[col].dtype != np.float64:  # (float64 already: parsing would only copy it)
            out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
    for col in _BOOL:
        out[col] = out[col].astype("boolean")


def _valid_codes(codes: NDArray[np.integer[Any]]) -> NDArray[np.integer[Any]]:
    """The codes that are not -1 (missing); ``codes`` itself when none is (no masked copy)."""
    if not codes.size or int(codes.min()) >= 0:
        return codes
    return codes[codes >= 0]


def distinct_text(values: pd.Series) -> list[str]:
    """The distinct non-null values of a column as strings (``str(v)``), in no set order.

    Equal to ``set(values.dropna().astype(str))`` as a list, but a categorical column is read
    through its codes: only the categories in use are converted, not one string per row.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        used = np.flatnonzero(
            np.bincount(_valid_codes(codes), minlength=len(values.cat.categories))
        )
        return [str(v) for v in values.cat.categories.take(used)]
    return [str(v) for v in pd.unique(values.dropna().to_numpy())]


def distinct_values(values: pd.Series) -> list[Any]:
    """``list(values.unique())`` in no set order; a categorical column read through its codes
    (the categories in use, not one value per row hashed)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        used = np.flatnonzero(
            np.bincount(_valid_codes(codes), minlength=len(values.cat.categories))
        )
        values_used: list[Any] = list(values.cat.categories.take(used))
        if (codes < 0).any():
            values_used.append(np.nan)
        return values_used
    return list(values.unique())


def n_distinct(values: pd.Series) -> int:
    """``values.nunique()``; a categorical column counted through its codes (no hashing of
    millions of rows)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        n_categories = len(values.cat.categories)
        return int(np.count_nonzero(np.bincount(_valid_codes(codes), minlength=n_categories)))
    return int(values.nunique())


def coalesce(first: pd.Series, second: pd.Series) -> pd.Series:
    """``first`` where it is not null, else ``second``; categorical in, categorical out."""
    a = as_category(first) if first.notna().any() else None
    b = as_category(second)
    if a is None:
        return b
    union = pd.api.types.union_categoricals([a, b], ignore_order=True).categories
    a = a.cat.set_categories(union)
    b = b.cat.set_categories(union)
    codes = np.where(a.cat.codes.to_numpy() >= 0, a.cat.codes.to_numpy(), b.cat.codes.to_numpy())
    return pd.Series(pd.Categorical.from_codes(codes, categories=union), index=first.index)


def row_key(frame: pd.DataFrame, columns: Sequence[str]) -> NDArray[np.int64]:
    """One int64 per row identifying the combination of categorical ``columns``."""
    key = np.zeros(len(frame), dtype=np.int64)
    for col in columns:
        series = as_category(frame[col])
        width = len(series.cat.categories) + 1
        key *= width  # in place (no new array per column)
        # in place, the codes (int8-int32) widened by the addition: no int64 copy of them
        key += series.cat.codes.to_numpy()
        key += 1
    return key


def row_key_size(frame: pd.DataFrame, columns: Sequence[str]) -> int:
    """The number of possible values of :func:`row_key` (its keys are below this)."""
    size = 1
    for col in columns:
        size *= len(as_category(frame[col]).cat.categories) + 1
    return size


#: a dense table indexed by a key may have this many entries per row (plus a fixed 1 Mi):
#: beyond, the callers fall back to hashing or sorting (bounded memory)
DENSE_KEYS_PER_ROW = 4


def dense_ok(n_keys: int, n_rows: int) -> bool:
    """Whether a table of ``n_keys`` entries is small enough next to ``n_rows`` rows."""
    return n_keys <= DENSE_KEYS_PER_ROW * n_rows + (1 << 20)


#: rows per block of :func:`first_rows`
_FIRST_ROWS_BLOCK = 1 << 16


def first_rows(key: NDArray[np.int64], n_keys: int) -> NDArray[np.int64]:
    """Sorted row positions of the first occurrence of each distinct value of ``key``.

    The same as ``pd.Series(key).drop_duplicates().index``; for keys in ``[0, n_keys)`` with
    :func:`dense_ok`, by a table of each key's first row (``numpy.minimum.at``) instead of
    hashing.
    """
    n = key.size
    if not dense_ok(n_keys, n) or (n and int(key.min()) < 0):
        return np.asarray(pd.Series(key).drop_duplicates().index, dtype=np.int64)
    first = np.full(n_keys, n, dtype=np.int64)
    # the row positions a block at a time: no 8-byte-per-row temporary (fresh memory is slow)
    block = np.arange(max(1, min(n, _FIRST_ROWS_BLOCK)), dtype=np.int64)
    for start in range(0, n, block.size):
        part = key[start : start + block.size]
        np.minimum.at(first, part, block[: part.size] + start)
    return np.sort(first[first < n])


def feature_owner(frame: pd.DataFrame) -> NDArray[np.int64] | None:
    """Per ``feature`` category: the ``protein`` code of its rows, when each feature has one.

    Returns None when some feature's rows name several proteins (or a row lacks either): the
    callers then count (protein, feature) pairs by :func:`row_key`. Otherwise the pairs are the
    features in use (``-1``: a category without rows), and a feature's code identifies its pair.
    """
    protein = as_category(frame["protein"]).cat.codes.to_numpy()
    features = as_category(frame["feature"])
    feature = features.cat.codes.to_numpy()
    n_feat = len(features.cat.categories)
    if not protein.size:
        return np.full(n_feat, -1, dtype=np.int64)
    if int(protein.min()) < 0 or int(feature.min()) < 0:
        return None
    # (numpy.ufunc.at is fast only when the values have the table's dtype)
    low = np.full(n_feat, np.iinfo(protein.dtype).max, dtype=protein.dtype)
    high = np.full(n_feat, -1, dtype=protein.dtype)
    np.minimum.at(low, feature, protein)
    np.maximum.at(high, feature, protein)
    used = high >= 0
    if (low[used] != high[used]).any():
        return None
    return high.astype(np.int64)


def concat(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate canonical tables keeping identifier columns categorical (shared categories)."""
    if len(frames) == 1:
        return frames[0].reset_index(drop=True)
    frames = [f.copy() for f in frames]
    for col in IDENTIFIERS:
        if not all(col in f.columns for f in frames):
            continue
        parts = [as_category(f[col]) for f in frames]
        union = pd.Index(sorted({c for p in parts for c in p.cat.categories}), dtype=object)
        for f, part in zip(frames, parts, strict=True):
            f[col] = part.cat.set_categories(union)
    return pd.concat(frames, ignore_index=True)


def empty_table() -> pd.DataFrame:
    """Return an empty canonical table with the right dtypes."""
    frame: pd.DataFrame = SCHEMA.empty_table().to_pandas(types_mapper=_types_mapper)
    return frame


def _types_mapper(dtype: pa.DataType) -> object:
    mapping: dict[pa.DataType, object] = {
        pa.bool_(): pd.BooleanDtype(),
        pa.int16(): pd.Int16Dtype(),
    }
    return mapping.get(dtype)


#: schema metadata key holding ``DataFrame.attrs`` (JSON) in canonical Parquet files
ATTRS_KEY: Final = b"pepmix.attrs"


def to_arrow(frame: pd.DataFrame) -> pa.Table:
    """Convert a canonical frame to an Arrow table with :data:`SCHEMA`.

    The ``pepmix_*`` entries of ``frame.attrs`` (notes such as the runs without values) are kept
    in the schema metadata as JSON and restored by :func:`read_parquet`.
    """
    table = pa.Table.from_pandas(frame.loc[:, list(COLUMNS)], schema=SCHEMA, preserve_index=False)
    notes = {k: v for k, v in frame.attrs.items() if str(k).startswith("pepmix_")}
    if notes:
        metadata = dict(table.schema.metadata or {})
        metadata[ATTRS_KEY] = json.dumps(notes, sort_keys=True, default=str).encode()
        table = table.replace_schema_metadata(metadata)
    return table


def write_parquet(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a canonical table atomically (temporary file, then rename)."""
    from pepmix.io import write_arrow

    write_arrow(to_arrow(frame), path)


def read_parquet(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a canonical table written by :func:`write_parquet`."""
    return from_arrow(pq.read_table(path, columns=columns))


def from_arrow(table: pa.Table) -> pd.DataFrame:
    """The canonical frame of an Arrow table from :func:`to_arrow` (or a column selection of
    one): what :func:`read_parquet` returns for the file :func:`write_parquet` writes, without
    the Parquet round trip (the ``pepmix_*`` attrs come back from the schema metadata)."""
    frame: pd.DataFrame = table.to_pandas(types_mapper=_types_mapper)
    stored = (table.schema.metadata or {}).get(ATTRS_KEY)
    if stored:
        frame.attrs.update(json.loads(stored))
    return frame
