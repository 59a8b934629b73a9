"""Merge: the ingested batches and the sample sheet into one table of the proteins to model.

Concatenates the batches (:func:`pepmix.ingest.ingest_batch`), maps data files to runs where the
sample sheet lists fractions (``file`` column or SDRF fraction identifiers) and sums those
fractions, checks the runs against the sample sheet and applies the protein-level filters
(minimum features and observations). Every protein of the input that does not reach the merged
table is recorded with the reason (no valid intensity, a row filter, a protein filter;
:data:`pepmix.filters.REMOVED_PROTEINS`): per batch in the batch tables' ``attrs`` and, for the
proteins absent from every batch, in the merged table's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from pepmix import canonical
from pepmix.errors import InputFormatError, SampleSheetError
from pepmix.filters import (
    REMOVED_PROTEINS,
    Removed,
    filter_proteins,
    protein_filter,
    removed_proteins,
)
from pepmix.ingest import EMPTY_RUNS, combine_duplicates
from pepmix.samples import SampleDesign, check_runs

__all__ = [
    "MergedRows",
    "assign_runs",
    "merge_batches",
    "merge_rows",
    "merge_with_sheet",
    "removed_frame",
    "removed_in_merge",
]

log = logging.getLogger(__name__)


def assign_runs(
    table: pd.DataFrame, file_runs: Mapping[str, str], sheet_source: str = "sample sheet"
) -> pd.DataFrame:
    """Map the data files of a fractionated design to their runs.

    Parameters
    ----------
    table : pandas.DataFrame
        Canonical table whose ``run`` column holds data file names (as the readers write them).
    file_runs : mapping of str to str
        Data file -> run, from the sample sheet (:meth:`pepmix.samples.SampleDesign.file_runs`).
    sheet_source : str, default "sample sheet"
        Name of the sheet, for messages.

    Returns
    -------
    pandas.DataFrame
        The table with ``run`` replaced by the run of each file; ``fraction`` is null in runs
        made of several files. The fractions are not summed yet (see :func:`merge_batches`).

    Raises
    ------
    SampleSheetError
        Naming the data files that the sheet does not list.
    """
    files = pd.Series(table["run"].astype(str).unique())
    unknown = sorted(files[~files.isin(list(file_runs))])
    if unknown:
        shown = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        raise SampleSheetError(
            f"{sheet_source}: data file(s) not in the sheet's file column: {shown}"
        )
    absent = sorted(set(file_runs) - set(files))
    runs_seen = {file_runs[f] for f in files}
    absent = [f for f in absent if file_runs[f] in runs_seen]
    if absent:
        log.warning(
            "%s: %d file(s) of the sheet have no observation in the data (their runs are "
            "combined from the other files): %s",
            sheet_source,
            len(absent),
            ", ".join(absent[:10]),
        )
    table = table.copy()
    table["run"] = canonical.as_category(
        table["run"].astype(str).map(dict(file_runs)).astype("category")
    )
    n_files = pd.Series(list(file_runs.values())).value_counts()
    several = set(n_files.index[n_files > 1])
    table.loc[table["run"].isin(several), "fraction"] = pd.NA
    log.info(
        "mapped %d data file(s) to %d run(s), %d of them made of several fractions",
        len(files),
        table["run"].nunique(),
        len(several & set(table["run"])),
    )
    return table


def merge_batches(
    tables: Sequence[pd.DataFrame],
    sheet: pd.DataFrame,
    filter_config: Mapping[str, Any],
    sheet_source: str = "sample sheet",
    file_runs: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Concatenate batches, check runs against the sample sheet, apply protein-level filters.

    Parameters
    ----------
    tables : sequence of pandas.DataFrame
        Canonical tables of the batches (:func:`ingest_batch`).
    sheet : pandas.DataFrame
        Sample sheet, one row per run.
    filter_config : mapping
        The ``filter:`` section (``min_features``, ``min_observations``).
    sheet_source : str, default "sample sheet"
        Name of the sheet, for messages.
    file_runs : mapping of str to str, optional
        Data file -> run for fractionated designs (:func:`assign_runs`); the fractions of a run
        are then summed per feature (:func:`combine_duplicates`). By default the run names in
        the data are the runs.

    Raises
    ------
    SampleSheetError
        When the runs of the data and of the sheet differ.
    InputFormatError
        When one run appears in several batches.

    Returns
    -------
    pandas.DataFrame
        The merged, filtered table; ``attrs[REMOVED_PROTEINS]`` lists every protein removed
        (:func:`removed_in_merge`).
    """
    table = _unfiltered(tables, sheet, sheet_source, file_runs)
    filtered = filter_proteins(table, filter_config)
    filtered.attrs = {REMOVED_PROTEINS: removed_in_merge(tables, table, filtered)}
    return filtered


def _unfiltered(
    tables: Sequence[pd.DataFrame],
    sheet: pd.DataFrame,
    sheet_source: str,
    file_runs: Mapping[str, str] | None,
) -> pd.DataFrame:
    """:func:`merge_batches` before the protein filters: the batches concatenated (fractions
    summed), their runs checked against the sheet."""
    table = canonical.concat(tables)
    if file_runs is not None:
        table = assign_runs(table, file_runs, sheet_source)
    keys = ["run", "batch"]
    first = canonical.first_rows(
        canonical.row_key(table, keys), canonical.row_key_size(table, keys)
    )
    runs_seen = table["run"].iloc[first].astype(str).value_counts()
    shared = runs_seen[runs_seen > 1]
    if len(shared):
        raise InputFormatError(
            f"run(s) {', '.join(shared.index[:5])} appear in more than one input batch"
        )
    if file_runs is not None:
        # the features are already at the configured level: only the fractions are summed
        table = combine_duplicates(table, "precursor")
    empty_runs = sorted({r for t in tables for r in t.attrs.get(EMPTY_RUNS, [])})
    check_runs(sheet, canonical.distinct_text(table["run"]), sheet_source, empty_runs)
    return table


def removed_in_merge(
    tables: Sequence[pd.DataFrame], merged: pd.DataFrame, filtered: pd.DataFrame
) -> Removed:
    """Every protein of the inputs absent from the filtered merged table, with the reason.

    Parameters
    ----------
    tables : sequence of pandas.DataFrame
        Batch tables (:func:`ingest_batch`) with their ``attrs[REMOVED_PROTEINS]``.
    merged : pandas.DataFrame
        Their concatenation, before the protein filters.
    filtered : pandas.DataFrame
        After the protein filters (:func:`pepmix.filters.filter_proteins`), with its record.

    Returns
    -------
    dict
        ``{protein: [detail, n_features, n_observations]}``. A protein a batch removed but
        another batch kept is not listed; one removed by several batches for different reasons
        gets ``"<batch>: <detail>"`` joined by ``"; "``.
    """
    return _removed_record(tables, merged, removed_proteins(filtered))


def _removed_record(
    tables: Sequence[pd.DataFrame], merged: pd.DataFrame, filtered: Removed
) -> Removed:
    """:func:`removed_in_merge` from the protein filters' record ``filtered``."""
    kept = set(canonical.distinct_text(merged["protein"]))
    by_batch: dict[str, dict[str, list[Any]]] = {}
    for i, t in enumerate(tables):
        batch = str(t["batch"].iloc[0]) if len(t) else f"batch {i + 1}"
        for protein, record in removed_proteins(t).items():
            if protein not in kept:
                by_batch.setdefault(protein, {})[batch] = record
    out: Removed = {}
    for protein, records in by_batch.items():
        details = {str(r[0]) for r in records.values()}
        if len(details) == 1:
            out[protein] = [details.pop(), None, None]
        else:
            detail = "; ".join(f"{b}: {r[0]}" for b, r in sorted(records.items()))
            out[protein] = [detail, None, None]
    out.update(filtered)
    return out


def removed_frame(removed: Removed) -> pd.DataFrame:
    """The record of :func:`removed_in_merge` as a table, sorted by protein.

    Returns
    -------
    pandas.DataFrame
        ``protein, detail, n_features, n_observations`` (nullable integers).
    """
    names = sorted(removed)
    return pd.DataFrame(
        {
            "protein": pd.Series(names, dtype=object),
            "detail": pd.Series([str(removed[p][0]) for p in names], dtype=object),
            "n_features": pd.array([removed[p][1] for p in names], dtype="Int64"),
            "n_observations": pd.array([removed[p][2] for p in names], dtype="Int64"),
        }
    )


def merge_with_sheet(
    tables: Sequence[pd.DataFrame],
    design: SampleDesign,
    filter_config: Mapping[str, Any],
    sheet_source: str = "sample sheet",
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The merge step: :func:`merge_batches` against a sample design, and the resolved sheet.

    Parameters
    ----------
    tables : sequence of pandas.DataFrame
        Canonical tables of the batches (:func:`ingest_batch`).
    design : pepmix.samples.SampleDesign
        The sample sheet (:func:`pepmix.samples.load_design`); its data files map to runs in a
        fractionated design.
    filter_config : mapping
        The ``filter:`` section.
    sheet_source : str, default "sample sheet"
        Name of the sheet, for messages.

    Returns
    -------
    merged : pandas.DataFrame
        The merged, filtered canonical table (no ``attrs``).
    sheet : pandas.DataFrame
        One row per run; ``batch`` filled from the input name where the sheet has none.
    removed : pandas.DataFrame
        Every input protein absent from ``merged``, with the reason (:func:`removed_frame`).
    """
    merged = merge_batches(
        tables, design.runs, filter_config, sheet_source=sheet_source, file_runs=design.file_runs()
    )
    first = canonical.first_rows(
        canonical.row_key(merged, ["run"]), canonical.row_key_size(merged, ["run"])
    )
    sheet = _resolved_sheet(design, merged, first)
    removed = removed_proteins(merged)
    merged.attrs.pop(REMOVED_PROTEINS, None)
    return merged, sheet, removed_frame(removed)


def _resolved_sheet(
    design: SampleDesign, table: pd.DataFrame, first: NDArray[np.int64]
) -> pd.DataFrame:
    """The sample sheet with ``batch`` filled from the merged rows where the sheet has none
    (``first``: the position in ``table`` of each run's first merged row)."""
    batch_of_run = pd.Series(
        table["batch"].iloc[first].astype(str).to_numpy(),
        index=table["run"].iloc[first].astype(str).to_numpy(),
    )
    sheet = design.runs.copy()
    sheet["batch"] = sheet["batch"].fillna(sheet["run"].map(batch_of_run))
    return sheet


@dataclass(frozen=True)
class MergedRows:
    """:func:`merge_with_sheet` with the merged rows given by a mask (:func:`merge_rows`).

    Attributes
    ----------
    table : pandas.DataFrame
        The concatenated batches before the protein filters (for one batch without fractions
        to sum: that batch's table, its index reset).
    keep : numpy.ndarray of bool or None
        The rows of ``table`` that pass the protein filters (None: every row): the merged
        table of :func:`merge_with_sheet` is ``table.loc[keep].reset_index(drop=True)``.
    sheet, removed : pandas.DataFrame
        As :func:`merge_with_sheet`.
    n_runs, n_proteins : int
        The distinct runs and proteins of the merged rows.
    """

    table: pd.DataFrame
    keep: NDArray[np.bool_] | None
    sheet: pd.DataFrame
    removed: pd.DataFrame
    n_runs: int
    n_proteins: int


def merge_rows(
    tables: Sequence[pd.DataFrame],
    design: SampleDesign,
    filter_config: Mapping[str, Any],
    sheet_source: str = "sample sheet",
) -> MergedRows:
    """:func:`merge_with_sheet` without selecting the merged rows (the same checks, logs,
    alerts, sheet and record; parameters as there).

    The caller selects the rows ``keep`` of ``table``, e.g. from the Arrow table the one batch
    was read from (:func:`pepmix.stages.merge.run`): selecting 8 million rows of a pandas frame
    copies every column through pandas' take, an Arrow filter is several times cheaper.
    """
    file_runs = design.file_runs()
    table = _unfiltered(tables, design.runs, sheet_source, file_runs)
    keep, record = protein_filter(table, filter_config)
    removed = _removed_record(tables, table, record)
    key = canonical.row_key(table, ["run"])
    n_keys = canonical.row_key_size(table, ["run"])
    if keep is not None:  # each run's first kept row: the rows not kept get a key of their own
        key[~keep] = n_keys
    first = canonical.first_rows(key, n_keys + 1)
    first = first[key[first] < n_keys]
    return MergedRows(
        table,
        keep,
        _resolved_sheet(design, table, first),
        removed_frame(removed),
        n_runs=len(first),
        n_proteins=canonical.n_distinct(table["protein"]) - len(record),
    )
