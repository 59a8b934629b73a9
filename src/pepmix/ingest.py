"""Ingest: one config ``inputs:`` entry (an MS batch) into the canonical long table.

Steps for each batch: read with the format's reader (``format: auto`` detects it from the file,
see :mod:`pepmix.readers.detect`), conform to the canonical schema, tag the ``batch`` column with
the input name, apply the row-level filters (q-values, decoys, contaminants, shared peptides) and
sum rows of one feature and run: fractions the reader already assigned to one run (e.g. MaxQuant's
``Experiment``) and, optionally, the precursors of a peptide. The merge step (:mod:`pepmix.merge`)
then combines the batches with the sample sheet. Every protein of the input that does not reach
the batch table is recorded with the reason (no valid intensity, a row filter;
:data:`pepmix.filters.REMOVED_PROTEINS`) in the batch table's ``attrs``. Ingest jobs do not read
the sample sheet, so that editing it (e.g. adding the runs of a new batch) re-runs only the merge
and what follows.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pepmix import canonical
from pepmix.alerts import alert
from pepmix.errors import InputFormatError
from pepmix.filters import REMOVED_PROTEINS, filter_rows, removed_proteins
from pepmix.readers import get_reader, resolve_format
from pepmix.readers._common import column_aliases

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
        ``{name, format, path, columns, ...format options}``; ``format: auto`` detects the
        format from the file (:mod:`pepmix.readers.detect`). ``columns`` (optional) maps column
        names the format expects to the file's own names; it applies before the reader's column
        checks and before detection (:func:`pepmix.readers._common.column_aliases`).
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
    options = {k: v for k, v in entry.items() if k not in ("name", "format", "path", "columns")}
    for key in ("q_value", "pg_q_value"):
        if filter_config is not None and filter_config.get(key) is not None:
            options.setdefault(key, filter_config[key])
    with column_aliases(entry.get("columns"), path):
        fmt = resolve_format(str(entry["format"]), path)
        if fmt != entry["format"]:
            log.info("%s: format auto: detected %s", path, fmt)
        raw = get_reader(fmt)(path, options)
    table = canonical.conform(raw, str(path))
    if table.empty:
        raise InputFormatError(f"{path}: no observation with a positive intensity")
    empty = _runs_without_values(raw, table)
    if empty:
        alert(
            log,
            "empty_runs",
            f"{path}: {len(empty)} run(s) have rows but no valid intensity (all missing or "
            f"zero): {', '.join(empty[:10])}",
        )
    table.attrs[EMPTY_RUNS] = empty
    # proteins the reader dropped while reading (q-value thresholds applied in the scan), then
    # those left without a valid intensity
    table.attrs[REMOVED_PROTEINS] = {
        **removed_proteins(raw),
        **{p: [NO_VALID_INTENSITY, None, None] for p in _proteins_without_values(raw, table)},
    }
    table["batch"] = pd.Categorical.from_codes(
        np.zeros(len(table), dtype=np.int8), categories=pd.Index([str(entry["name"])])
    )
    log.info(
        "%s: read %d observations of %d features, %d proteins, %d runs",
        path,
        len(table),
        canonical.n_distinct(table["feature"]),
        canonical.n_distinct(table["protein"]),
        canonical.n_distinct(table["run"]),
    )
    return table


#: key of ``DataFrame.attrs`` (kept in the batch Parquet files) listing runs that have rows in the
#: input but no valid intensity, so the merge step can say so instead of "not in the data"
EMPTY_RUNS = "pepmix_empty_runs"


#: ``detail`` of a protein that has rows in the input but no valid intensity
NO_VALID_INTENSITY = "no valid intensity"


def _proteins_without_values(raw: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """Proteins named in the reader's output that have no observation left after conforming."""
    return _names_without_values(raw, table, "protein")


def _runs_without_values(raw: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """Runs named in the reader's output that have no observation left after conforming."""
    return _names_without_values(raw, table, "run")


def _names_without_values(raw: pd.DataFrame, table: pd.DataFrame, column: str) -> list[str]:
    """The (stripped) values of ``raw[column]`` absent from ``table[column]``, sorted.

    :func:`pepmix.canonical.conform` only drops rows (those without a valid intensity) and
    strips identifiers, so when it dropped none every name has a row: no pass over the names.
    """
    if column not in raw.columns or len(table) == len(raw):
        return []
    named = pd.Series(canonical.distinct_text(raw[column]), dtype=object).str.strip()
    kept = set(canonical.distinct_text(table[column]))
    return sorted(r for r in named if r and r not in kept)


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
    if feature_level == "peptide":
        table = table.copy()
        table["feature"] = canonical.coalesce(table["peptide"], table["feature"])
        table["charge"] = pd.array([pd.NA] * len(table), dtype="Int16")
    keys = ["protein", "feature", "run"]
    if not _has_duplicates(table, keys):
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


def _has_duplicates(table: pd.DataFrame, keys: list[str]) -> bool:
    """Whether two rows have the same ``protein, feature, run`` (``keys``).

    When each feature has one protein (:func:`pepmix.canonical.feature_owner`), by counting
    (feature, run) pairs in a table indexed by their codes; otherwise by sorting the row keys
    (~4x faster than hashing them).
    """
    owner = canonical.feature_owner(table)
    runs = canonical.as_category(table["run"])
    run = runs.cat.codes.to_numpy()
    n_runs = len(runs.cat.categories)
    n_keys = (0 if owner is None else owner.size) * n_runs
    dense = owner is not None and canonical.dense_ok(n_keys, len(table))
    if dense and (not run.size or int(run.min()) >= 0):
        feature = canonical.as_category(table["feature"]).cat.codes.to_numpy()
        pair = feature.astype(np.int64) * n_runs + run
        return bool((np.bincount(pair, minlength=n_keys) > 1).any())
    key = np.sort(canonical.row_key(table, keys))
    return bool((key[1:] == key[:-1]).any())


def ingest_batch(
    entry: Mapping[str, Any],
    filter_config: Mapping[str, Any],
    feature_level: str = "precursor",
    base_dir: str | Path = ".",
) -> pd.DataFrame:
    """Read, combine and row-filter one batch (see module docstring)."""
    table = read_input(entry, base_dir, filter_config)
    empty_runs = table.attrs.get(EMPTY_RUNS, [])
    removed = removed_proteins(table)
    table = filter_rows(table, filter_config)
    removed.update(removed_proteins(table))
    if table.empty:
        settings = ", ".join(
            f"{key}={filter_config.get(key)!r}"
            for key in ("q_value", "pg_q_value", "remove_decoys", "remove_contaminants")
            if key in filter_config
        )
        raise InputFormatError(
            f"{entry['path']}: no observation passes the row filters ({settings or 'defaults'}, "
            f"shared_peptides={filter_config.get('shared_peptides', 'exclude')!r}); see the "
            "ingest log for what each filter removed"
        )
    table = combine_duplicates(table, feature_level)
    table.attrs[EMPTY_RUNS] = empty_runs
    table.attrs[REMOVED_PROTEINS] = removed
    return table
