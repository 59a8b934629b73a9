"""Rule ``usage_refit``: the peptide-usage test of a shard (config ``peptide_usage``;
:mod:`pepmix.model.usage`) in a job of its own, beside the test and plot jobs (the workflow
uses it with one shard; several shards test usage in their fit jobs).

The fit job stores where its default fit ended (``usage_start.parquet``:
:class:`pepmix.model.usage.UsageStart`, the relative SDs and final robust weights); this job
reads the shard's table again, encodes it as the fit did and refits the proteins with the
``feature:condition`` term from that start (:func:`pepmix.model.usage.usage_shard_from_start`).
The rows equal those the fit job computed in memory before (the same start, stored exactly), so
the critical path to the differential table is the default fit alone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd

from pepmix.stages.files import (
    PathLike,
    TsvTable,
    read_model_input,
    read_removed,
    read_resolved_sheet,
)

__all__ = ["run", "usage_table"]

log = logging.getLogger(__name__)


def run(
    *,
    features: PathLike,
    samples: PathLike,
    start: PathLike,
    model: Mapping[str, Any] | None = None,
    replication: str = "auto",
    usage_weights: str | None = None,
) -> pd.DataFrame:
    """The shard's peptide-usage rows (:func:`pepmix.model.usage.usage_shard_table`'s).

    Parameters
    ----------
    features : path
        The shard's ``features.parquet`` (the fit job's input).
    samples : path
        ``results/ingest/samples.tsv``.
    start : path
        The fit job's ``usage_start.parquet``.
    model : mapping, optional
        The ``model:`` section (default None: the defaults); ``random``, ``fixed`` and
        ``covariates`` give the default model, ``robust`` the refit's weights.
    replication : {"auto", "biological", "technical"}, default "auto"
        ``testing.replication``.
    usage_weights : {"usage_fit", "default_fit"}, optional
        Config ``peptide_usage_weights``; default None:
        :data:`pepmix.model.usage.DEFAULT_WEIGHTS`.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`pepmix.model.usage.USAGE_COLUMNS` (p-values are added by the gather,
        :func:`pepmix.model.usage.gather_usage_table`).
    """
    from pepmix.model.protein_fit import run_design
    from pepmix.model.robust import DEFAULT_METHOD as DEFAULT_ROBUST
    from pepmix.model.usage import DEFAULT_WEIGHTS, UsageStart, usage_shard_from_start

    model = dict(model or {})
    # the model_config of pepmix.api.fit: the same default model as the fit job's
    model_config: dict[str, Any] = {"covariates": list(model.get("covariates", ()))}
    for key in ("random", "fixed"):
        if model.get(key) is not None:
            model_config[key] = list(model[key])
    table = read_model_input(features)
    sheet = read_resolved_sheet(samples)
    spec = run_design(sheet, model_config, replication).spec
    robust = str(model.get("robust", DEFAULT_ROBUST))
    weights = usage_weights or DEFAULT_WEIGHTS
    shard = usage_shard_from_start(
        UsageStart.read(start), table, sheet, spec, robust, weights=weights
    )
    log.info("peptide usage: %d proteins", len(shard.table))
    return shard.table


def usage_table(rows: pd.DataFrame, *, removed: PathLike | None = None) -> TsvTable:
    """``results/tables/peptide_usage.tsv`` from one shard's ``rows`` (the only shard), the
    removed proteins of the merge stage (default None: none) after the tested ones."""
    from pepmix.model.usage import gather_usage_table

    extra = read_removed(removed) if removed is not None else None
    return TsvTable(gather_usage_table([rows], extra))
