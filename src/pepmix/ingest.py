"""Ingest: one config ``inputs:`` entry (an MS batch) into the canonical long table.

Steps for each batch: read with the format's reader, conform to the canonical schema, tag the
``batch`` column with the input name, combine fractions and (optionally) precursors into peptides,
apply the row-level filters (q-values, decoys, contaminants, shared peptides). The merge step then
concatenates batches, checks the runs against the sample sheet and applies the protein-level
filters (minimum features and observations).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pepmix import canonical
from pepmix.errors import InputFormatError
from pepmix.filters import filter_proteins, filter_rows
from pepmix.readers import get_reader
from pepmix.samples import check_runs

log = logging.getLogger(__name__)


def read_input(
    entry: Mapping[str, Any],
    base_dir: str | Path = ".",
    filter_config: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Read one ``inputs:`` entry into a canonical frame.

    Parameters
    ----------
    entry : mapping
        ``{name, format, path, ...format options}``.
    base_dir : str or pathlib.Path, default "."
        Directory relative paths are resolved against.
    filter_config : mapping, optional
        The ``filter:`` section. Its ``q_value`` and ``pg_q_value`` thresholds are passed to the
        reader (unless the entry sets them) so that readers of large reports can drop rows while
        reading; the row filters of :func:`pepmix.filters.filter_rows` still apply afterwards.
    """
    path = Path(entry["path"])
    if not path.is_absolute():
        path = Path(base_dir) / path
    reader = get_reader(str(entry["format"]))
    options = {k: v for k, v in entry.items() if k not in ("name", "format", "path")}
    for key in ("q_value", "pg_q_value"):
        if filter_config is not None and filter_config.get(key) is not None:
            options.setdefault(key, filter_config[key])
    raw = reader(path, options)
    table = canonical.conform(raw, str(path))
    if table.empty:
        raise InputFormatError(f"{path}: no observation with a positive intensity")
    table["batch"] = pd.array([str(entry["name"])] * len(table), dtype="string")
    log.info(
        "%s: read %d observations of %d features, %d proteins, %d runs",
        path,
        len(table),
        table["feature"].nunique(),
        table["protein"].nunique(),
        table["run"].nunique(),
    )
    return table


def combine_duplicates(table: pd.DataFrame, feature_level: str = "precursor") -> pd.DataFrame:
    """Sum intensities of rows that describe the same feature in the same run.

    Fractions of one sample and, with ``feature_level="peptide"``, the precursors (charge states)
    of a peptide are summed per run. Rows duplicated for any other reason are summed as well and
    counted in the log.

    Parameters
    ----------
    table : pandas.DataFrame
        Canonical table.
    feature_level : {"precursor", "peptide"}, default "precursor"
        With ``"peptide"``, the feature becomes the peptide sequence.
    """
    table = table.copy()
    if feature_level == "peptide":
        has_peptide = table["peptide"].notna()
        table.loc[has_peptide, "feature"] = table.loc[has_peptide, "peptide"]
        table["charge"] = pd.array([pd.NA] * len(table), dtype="Int16")
    keys = ["protein", "feature", "run"]
    dup = table.duplicated(keys, keep=False)
    if not dup.any():
        return table
    n_before = len(table)
    agg: dict[str, Any] = {
        "intensity": "sum",
        "q_value": "min",
        "pg_q_value": "min",
        "decoy": "max",
        "contaminant": "max",
        "unique": "min",
    }
    first_cols = [c for c in canonical.COLUMNS if c not in agg and c not in keys]
    for col in first_cols:
        agg[col] = "first"
    grouped = table.groupby(keys, sort=False, observed=True, dropna=False).agg(agg).reset_index()
    log.info(
        "summed %d rows into %d (fractions, charge states or repeated rows of one feature x run)",
        n_before,
        len(grouped),
    )
    return grouped.loc[:, list(canonical.COLUMNS)]


def ingest_batch(
    entry: Mapping[str, Any],
    filter_config: Mapping[str, Any],
    feature_level: str = "precursor",
    base_dir: str | Path = ".",
) -> pd.DataFrame:
    """Read, combine and row-filter one batch (see module docstring)."""
    table = read_input(entry, base_dir, filter_config)
    table = filter_rows(table, filter_config)
    return combine_duplicates(table, feature_level)


def merge_batches(
    tables: Sequence[pd.DataFrame],
    sheet: pd.DataFrame,
    filter_config: Mapping[str, Any],
    sheet_source: str = "sample sheet",
) -> pd.DataFrame:
    """Concatenate batches, check runs against the sample sheet, apply protein-level filters."""
    table = pd.concat(tables, ignore_index=True)
    runs_seen = table.groupby("run", observed=True)["batch"].nunique()
    shared = runs_seen[runs_seen > 1]
    if len(shared):
        raise InputFormatError(
            f"run(s) {', '.join(shared.index[:5])} appear in more than one input batch"
        )
    check_runs(sheet, table["run"].unique(), sheet_source)
    return filter_proteins(table, filter_config)
