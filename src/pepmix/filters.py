"""Filters on the canonical table; each logs how many rows, features and proteins it removed.

Row filters (per batch): precursor q-value, protein-group q-value, decoys, contaminants, shared
peptides. Protein filters (after merging batches): minimum number of features and of
observations per protein.

Every protein a filter removes entirely is recorded, with the reason, in the filtered table's
``attrs[REMOVED_PROTEINS]`` (kept in canonical Parquet files, see
:func:`pepmix.canonical.to_arrow`): ``{protein: [detail, n_features, n_observations]}`` (counts
``None`` where the filter does not count them). The merge step combines the batches' records
(:func:`pepmix.merge.merge_batches`) and the test stage lists these proteins with status
``filtered`` (:func:`pepmix.inference.differential.add_filtered`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from pepmix.alerts import alert
from pepmix.canonical import as_category, feature_owner, row_key
from pepmix.errors import DesignError

log = logging.getLogger(__name__)
#: share of the proteins that, when removed by the protein filters, raises an alert
HEAVY_FILTERING = 0.25
#: key of ``DataFrame.attrs``: proteins removed entirely, ``{protein: [detail, n_features,
#: n_observations]}`` (see module docstring)
REMOVED_PROTEINS = "pepmix_removed_proteins"
#: ``detail`` of a protein whose last rows a row filter removed, by filter
ROW_FILTER_DETAIL = {
    "decoys": "decoy",
    "contaminants": "contaminant",
    "shared peptides": "no row passes the row filters: only shared peptides",
}

Removed = dict[str, list[Any]]


def removed_proteins(table: pd.DataFrame) -> Removed:
    """The ``attrs[REMOVED_PROTEINS]`` record of a filtered table (empty if none)."""
    stored = table.attrs.get(REMOVED_PROTEINS) or {}
    return {str(k): list(v) for k, v in stored.items()}


def row_filter_detail(name: str) -> str:
    """``detail`` of a protein whose last rows the row filter ``name`` removed."""
    return ROW_FILTER_DETAIL.get(name, f"no row passes the row filters: {name}")


def threshold_step(key: str, limit: float) -> str:
    """Name of the q-value filter ``key`` (``q_value`` or ``pg_q_value``) at ``limit``."""
    return f"{key} <= {limit}"


def _distinct(table: pd.DataFrame, columns: list[str]) -> int:
    """Number of distinct combinations of identifier ``columns`` (on integer codes)."""
    return int(pd.unique(row_key(table, columns)).size) if len(table) else 0


def _report(name: str, before: pd.DataFrame, after: pd.DataFrame) -> None:
    log.info(
        "filter %s removed %d rows, %d features, %d proteins",
        name,
        len(before) - len(after),
        _distinct(before, ["protein", "feature"]) - _distinct(after, ["protein", "feature"]),
        _distinct(before, ["protein"]) - _distinct(after, ["protein"]),
    )


def filter_rows(table: pd.DataFrame, config: Mapping[str, Any]) -> pd.DataFrame:
    """Apply the row-level filters of the ``filter:`` config section.

    Parameters
    ----------
    table : pandas.DataFrame
        Canonical table.
    config : mapping
        Keys ``q_value`` (default 0.01), ``pg_q_value`` (0.01), ``remove_decoys`` (True),
        ``remove_contaminants`` (True), ``shared_peptides`` (``"exclude"``). A q-value filter
        applies only to rows that have a q-value.
    """
    steps: list[tuple[str, pd.Series]] = []
    q = config.get("q_value", 0.01)
    if q is not None:
        steps.append((threshold_step("q_value", q), ~(table["q_value"] > q)))
    pg = config.get("pg_q_value", 0.01)
    if pg is not None:
        steps.append((threshold_step("pg_q_value", pg), ~(table["pg_q_value"] > pg)))
    if config.get("remove_decoys", True):
        steps.append(("decoys", ~table["decoy"].fillna(False).astype(bool)))
    if config.get("remove_contaminants", True):
        steps.append(("contaminants", ~table["contaminant"].fillna(False).astype(bool)))
    if config.get("shared_peptides", "exclude") == "exclude":
        steps.append(("shared peptides", table["unique"].fillna(True).astype(bool)))
    # Masks refer to the rows of the input table: combine them cumulatively, so that each
    # filter's log line counts what it removed from the rows the earlier filters kept.
    kept = np.ones(len(table), dtype=bool)
    current = table
    protein = as_category(table["protein"])
    codes = protein.cat.codes.to_numpy()
    names = protein.cat.categories
    present = np.bincount(codes[codes >= 0], minlength=len(names)) > 0
    removed: Removed = {}
    for name, keep in steps:
        now_kept = kept & keep.to_numpy(dtype=bool)
        if now_kept.sum() == kept.sum():
            continue
        after = table.loc[now_kept]
        _report(name, current, after)
        kept_codes = codes[now_kept]
        still = np.bincount(kept_codes[kept_codes >= 0], minlength=len(names)) > 0
        for p in names[present & ~still]:
            removed[str(p)] = [row_filter_detail(name), None, None]
        current, kept, present = after, now_kept, still
    out = current.reset_index(drop=True)
    out.attrs[REMOVED_PROTEINS] = removed
    return out


def _none_pass(n_features: np.ndarray, n_obs: np.ndarray, min_features: int, min_obs: int) -> None:
    """Raise the error for an input where the protein filters leave no protein."""
    seen = n_obs > 0
    by_features = int((seen & (n_features < min_features)).sum())
    by_obs = int((seen & (n_features >= min_features) & (n_obs < min_obs)).sum())
    raise DesignError(
        f"no protein passes the filters (min_features={min_features} removed {by_features} "
        f"of {int(seen.sum())} proteins, min_observations={min_obs} removed {by_obs}); "
        "lower filter.min_features or filter.min_observations, or check the input"
    )


def filter_proteins(table: pd.DataFrame, config: Mapping[str, Any]) -> pd.DataFrame:
    """Drop proteins with too few features or observations.

    Parameters
    ----------
    table : pandas.DataFrame
        Canonical table.
    config : mapping
        Keys ``min_features`` (default 1) and ``min_observations`` (default 2).

    Raises
    ------
    DesignError
        When no protein passes (the message gives what each filter removed).
    """
    keep, record = protein_filter(table, config)
    if keep is None:
        out = table.copy(deep=False)
        out.attrs[REMOVED_PROTEINS] = record
        return out
    result = table.loc[keep].reset_index(drop=True)
    result.attrs[REMOVED_PROTEINS] = record
    return result


def protein_filter(
    table: pd.DataFrame, config: Mapping[str, Any]
) -> tuple[NDArray[np.bool_] | None, Removed]:
    """The rows :func:`filter_proteins` keeps and its record, without selecting the rows.

    Logs and alerts as :func:`filter_proteins` (it is that function without the selection, for
    a caller that selects the rows elsewhere, e.g. from the Arrow table the frame was read
    from: :func:`pepmix.stages.merge.run`).

    Parameters
    ----------
    table, config
        As :func:`filter_proteins`.

    Returns
    -------
    keep : numpy.ndarray of bool or None
        Per row, whether it is kept; None when every row is.
    record : dict
        The proteins removed (the ``attrs[REMOVED_PROTEINS]`` of :func:`filter_proteins`).

    Raises
    ------
    DesignError
        When no protein passes.
    """
    min_features = int(config.get("min_features", 1))
    min_obs = int(config.get("min_observations", 2))
    protein = as_category(table["protein"])
    codes = protein.cat.codes.to_numpy()
    n_prot = len(protein.cat.categories)
    n_obs = np.bincount(codes, minlength=n_prot)
    owner = feature_owner(table)
    if owner is not None:  # each feature has one protein: the pairs are the features in use
        pair_protein = owner[owner >= 0]
    else:
        pairs = pd.unique(row_key(table, ["protein", "feature"]))
        width = len(as_category(table["feature"]).cat.categories) + 1
        pair_protein = pairs // width - 1
    n_features = np.bincount(pair_protein, minlength=n_prot)
    good = (n_features >= min_features) & (n_obs >= min_obs)
    dropped = (n_obs > 0) & ~good
    if not good.any():
        _none_pass(n_features, n_obs, min_features, min_obs)
    record: Removed = {
        str(protein.cat.categories[int(i)]): [
            _protein_filter_detail(int(n_features[i]), int(n_obs[i]), min_features, min_obs),
            int(n_features[i]),
            int(n_obs[i]),
        ]
        for i in np.flatnonzero(dropped)
    }
    if not dropped.any():
        return None, record
    keep = good[codes]
    # the counts of _report, from the per-protein tallies (no second pass over the rows)
    log.info(
        "filter min_features >= %d, min_observations >= %d removed %d rows, %d features, "
        "%d proteins",
        min_features,
        min_obs,
        int(len(table) - keep.sum()),
        int(dropped[pair_protein].sum()),
        int(dropped.sum()),
    )
    n_seen = int((n_obs > 0).sum())
    if dropped.sum() > HEAVY_FILTERING * n_seen:
        alert(
            log,
            "heavy_filtering",
            f"the protein filters (min_features >= {min_features}, min_observations >= "
            f"{min_obs}) removed {int(dropped.sum())} of {n_seen} proteins "
            f"({dropped.sum() / n_seen:.0%}); they are not tested (status filtered in the "
            "differential table; lower filter.min_features to test single-feature proteins)",
        )
    return keep, record


def _protein_filter_detail(n_features: int, n_obs: int, min_features: int, min_obs: int) -> str:
    """``detail`` of a protein the protein filters removed, e.g. ``1 feature < min_features 2``."""
    parts = []
    if n_features < min_features:
        parts.append(f"{n_features} feature{'' if n_features == 1 else 's'} < min_features "
                     f"{min_features}")  # fmt: skip
    if n_obs < min_obs:
        parts.append(f"{n_obs} observation{'' if n_obs == 1 else 's'} < min_observations {min_obs}")
    return "; ".join(parts)
