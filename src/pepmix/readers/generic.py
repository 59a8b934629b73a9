"""Generic long and wide tables.

``generic_long``: one row per feature x run with columns ``protein``, ``peptide``, ``run``,
``intensity`` and optionally ``charge``, ``feature``, ``q_value``, ``decoy``, ``contaminant``.
Features are precursors (``peptide`` + ``charge``) when a charge column is present.

``generic_wide``: one row per feature and one intensity column per run. Options:

- ``id_column``: column holding the feature identifier (default ``identifier``)
- ``id_separator``: when set, ``id_column`` is split at its last occurrence into protein and
  peptide (the Berg 2019 demo uses ``<protein>--<PEPTIDE>``); otherwise ``protein_column`` and
  ``peptide_column`` name the columns (defaults ``protein`` and ``peptide``)
- ``run_columns``: list of run columns, or a regular expression matching them; default: every
  column other than the identifier columns
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pepmix.errors import ConfigError, InputFormatError
from pepmix.readers._common import plain, read_table, require_columns, run_name, run_names, to_float

SIGNATURE: dict[str, tuple[str, ...]] = {
    "generic_long": ("protein", "peptide", "run", "intensity"),
}
"""Columns of the long table; ``generic_wide`` has no fixed names and is never auto-detected."""


def read_long(path: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Read a generic long table (see module docstring)."""
    # (Parquet: proteins and peptides read as dictionaries, the categoricals the text gives)
    frame = read_table(path, categories=("protein", "peptide"))
    require_columns(frame.columns, ("protein", "peptide", "run", "intensity"), path)
    out = pd.DataFrame(
        {
            "protein": frame["protein"],
            "peptide": frame["peptide"],
            "run": run_names(frame["run"]),
            "intensity": to_float(frame["intensity"], path, "intensity"),
        },
        copy=False,  # the columns as they are (copy-on-write): no copy of 8 M-row columns
    )
    if "charge" in frame.columns:
        out["charge"] = to_float(frame["charge"], path, "charge")
    if "feature" in frame.columns:
        out["feature"] = frame["feature"]
    elif "charge" in frame.columns and _arrow_text(out["peptide"]):
        out["peptide"], out["feature"] = _precursor_categories(out["peptide"], out["charge"])
    elif "charge" in frame.columns:
        out["feature"] = _precursor_ids(out["peptide"], out["charge"])
    else:
        out["feature"] = out["peptide"]
    for col in ("q_value", "pg_q_value"):
        if col in frame.columns:
            out[col] = to_float(frame[col], path, col)
    for col in ("decoy", "contaminant", "unique"):
        if col in frame.columns:
            out[col] = _to_bool(frame[col], path, col)
    return out


def _arrow_text(values: pd.Series) -> bool:
    """Whether ``values`` are Arrow-backed strings, or a categorical of them."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return isinstance(values.cat.categories.array, pd.arrays.ArrowStringArray)
    return isinstance(values.array, pd.arrays.ArrowStringArray)


def _precursor_ids(peptide: pd.Series, charge: pd.Series) -> pd.Series:
    """``<peptide>_<charge>`` per row (``string`` dtype; charge ``NA`` when missing, null when
    the peptide is); Arrow-backed peptides are joined by Arrow (~2x faster than pandas)."""
    whole = charge.astype("Int64")
    if not isinstance(peptide.array, pd.arrays.ArrowStringArray):
        return peptide.astype("string") + "_" + whole.astype("string").fillna("NA")
    text = pa.large_string()
    charge_text = pc.fill_null(pc.cast(pa.array(whole), text), "NA")
    sequence = pa.chunked_array(pa.array(peptide.array)).cast(text)
    joined = pc.binary_join_element_wise(sequence, charge_text, pa.scalar("_", text))
    out: pd.Series = joined.to_pandas()
    out.index = peptide.index
    return out.astype("string")


def _precursor_categories(peptide: pd.Series, charge: pd.Series) -> tuple[pd.Series, pd.Series]:
    """The peptides and their :func:`_precursor_ids` as categoricals, the ids joined once per
    distinct (peptide, charge) pair instead of once per row.

    Each is what ``astype("category")`` gives (the categories sorted, the codes), so
    :func:`pepmix.canonical.conform` makes the same columns of them as of the text; the pairs
    are numbered by hashing integer keys (peptide code, charge code), not strings.
    """
    peptides = peptide.astype("category")
    peptide_codes = peptides.cat.codes.to_numpy().astype(np.int64)
    charge_codes, charges = pd.factorize(charge.astype("Int64"), use_na_sentinel=True)
    n_charges = len(charges) + 1  # code 0: missing charge
    valid = peptide_codes >= 0
    key = peptide_codes[valid] * n_charges + (charge_codes[valid] + 1)
    pair_codes, pairs = pd.factorize(key)
    text = pa.large_string()
    charge_text = pa.concat_arrays(
        [pa.array(["NA"], type=text), pc.cast(pa.array(charges, type=pa.int64()), text)]
    )
    sequence = pa.array(peptides.cat.categories.take(pairs // n_charges)).cast(text)
    joined = pc.binary_join_element_wise(
        sequence, charge_text.take(pa.array(pairs % n_charges)), pa.scalar("_", text)
    )
    ids = pd.Categorical(pd.Series(joined.to_pandas()).astype("string"))
    distinct = np.asarray(ids.codes)
    codes = np.full(len(peptide), -1, dtype=distinct.dtype)
    codes[valid] = distinct[pair_codes]
    feature = pd.Categorical.from_codes(codes, dtype=ids.dtype)
    return peptides, pd.Series(feature, index=peptide.index)


def _to_bool(series: pd.Series, path: Path, column: str) -> pd.Series:
    text = series.astype("string").str.strip().str.lower()
    mapping = {"true": True, "false": False, "1": True, "0": False, "+": True, "": False}
    values = text.map(mapping)
    bad = text.notna() & values.isna()
    if bad.any():
        raise InputFormatError(
            f"{path}: column {column!r} must be true/false, found {plain(series[bad].iloc[0])!r}"
        )
    return values.astype("boolean")


def read_wide(path: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Read a generic wide table (see module docstring)."""
    frame = read_table(path)
    separator = options.get("id_separator")
    id_columns: list[str]
    if separator:
        id_column = str(options.get("id_column", "identifier"))
        require_columns(frame.columns, (id_column,), path)
        ids = frame[id_column].astype("string")
        parts = ids.str.rsplit(str(separator), n=1, expand=True)
        if parts.shape[1] != 2 or parts[1].isna().any():
            bad = ids[parts[1].isna()].iloc[0] if parts.shape[1] == 2 else ids.iloc[0]
            raise InputFormatError(
                f"{path}: column {id_column!r} value {bad!r} does not contain the separator "
                f"{separator!r} between protein and peptide"
            )
        protein, peptide = parts[0], parts[1]
        if ids.duplicated().any():
            dup = ids[ids.duplicated()].iloc[0]
            raise InputFormatError(f"{path}: identifier {dup!r} appears on more than one row")
        feature = peptide
        id_columns = [id_column]
    else:
        protein_column = str(options.get("protein_column", "protein"))
        peptide_column = str(options.get("peptide_column", "peptide"))
        require_columns(frame.columns, (protein_column, peptide_column), path)
        protein = frame[protein_column].astype("string")
        peptide = frame[peptide_column].astype("string")
        id_column = str(options.get("id_column", peptide_column))
        require_columns(frame.columns, (id_column,), path)
        feature = frame[id_column].astype("string")
        id_columns = list(dict.fromkeys([protein_column, peptide_column, id_column]))
    run_columns = _run_columns(frame, options.get("run_columns"), id_columns, path)
    keys = pd.DataFrame({"protein": protein.to_numpy(), "feature": feature.to_numpy()})
    repeated = keys.duplicated()
    if repeated.any():
        first = keys[repeated].iloc[0]
        raise InputFormatError(
            f"{path}: feature {first['feature']!r} of protein {first['protein']!r} appears on "
            "more than one row"
        )
    values = frame[run_columns].copy()
    for col in run_columns:
        values[col] = to_float(values[col], path, col)
    values.columns = [run_name(c) for c in run_columns]
    n_rows, n_runs = values.shape
    return pd.DataFrame(
        {
            "protein": np.repeat(protein.to_numpy(), n_runs),
            "feature": np.repeat(feature.to_numpy(), n_runs),
            "peptide": np.repeat(peptide.to_numpy(), n_runs),
            "run": np.tile(np.asarray(values.columns, dtype=object), n_rows),
            "intensity": values.to_numpy(dtype="float64").reshape(-1),
        }
    )


def _run_columns(frame: pd.DataFrame, spec: object, id_columns: list[str], path: Path) -> list[str]:
    if spec is None:
        columns = [c for c in frame.columns if c not in id_columns]
    elif isinstance(spec, str):
        try:
            pattern = re.compile(spec)
        except re.error as exc:
            raise ConfigError(f"run_columns: invalid regular expression {spec!r} ({exc})") from None
        columns = [c for c in frame.columns if pattern.search(c)]
    elif isinstance(spec, list):
        require_columns(frame.columns, [str(s) for s in spec], path)
        columns = [str(s) for s in spec]
    else:
        raise ConfigError("run_columns must be a list of column names or a regular expression")
    if not columns:
        raise InputFormatError(f"{path}: no intensity (run) columns found")
    return columns
