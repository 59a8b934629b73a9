"""Rule ``shard``: split the normalised table into protein shards balanced by observations
(:func:`pepmix.shards.split`; it streams the table, so the shards are written as they are cut);
with several shards and the feature majority rule, also the rule's prior of the pure-error
variances (:func:`majority_prior`), from the table already in memory, for every fit job."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from pepmix.stages.files import PathLike

__all__ = ["majority_prior", "run"]

log = logging.getLogger(__name__)


def run(
    *,
    features: PathLike | pa.Table,
    shards: Sequence[PathLike],
    largest: Sequence[PathLike],
    samples: PathLike | None = None,
    prior: PathLike | None = None,
) -> None:
    """Write one ``features.parquet`` per shard and its ``largest.json`` (the largest protein's
    size, for the fit job's declared memory: :mod:`pepmix.resources`), and with ``prior``
    (default None: not written) the feature majority rule's prior (:func:`majority_prior`).

    ``features`` is ``results/normalize/features.parquet`` or the table a normalize stage of
    the same job wrote there (:attr:`pepmix.stages.normalize.NormalizeResult.arrow`);
    ``samples`` (``results/ingest/samples.tsv``, default None) is needed with ``prior``."""
    from pepmix.shards import split

    split(features, list(shards), list(largest))
    if prior is not None:
        if samples is None:
            raise ValueError("the majority rule's prior needs the sample sheet")
        majority_prior(features, samples, prior)


def majority_prior(features: PathLike | pa.Table, samples: PathLike, output: PathLike) -> None:
    """Write the feature majority rule's prior of the pure-error variances, fitted on all
    proteins (their :func:`pepmix.model.majority.prior_sample`), as the ``majority`` of a
    :class:`pepmix.model.shrinkage.VariancePrior` JSON (what every shard's fit job reads).

    The rule needs only each run's condition, so the run design is that of the sample sheet
    with the default model (:func:`pepmix.model.majority.condition_design`), whatever
    ``model:`` says (editing it does not re-run this job). Only the proteins that can be in the
    sample are converted and encoded (:func:`_sample_table`).
    """
    import pyarrow.parquet as pq

    from pepmix.model.majority import condition_design, fit_majority_prior
    from pepmix.model.shrinkage import VariancePrior
    from pepmix.stages.files import read_resolved_sheet

    columns = ["protein", "feature", "run", "y"]
    if isinstance(features, pa.Table):
        table = features.select(columns)
    else:
        table = pq.read_table(features, columns=columns, read_dictionary=columns[:3])
    design = condition_design(read_resolved_sheet(samples))
    enc = _sample_table(table, design)
    prior = fit_majority_prior(enc, design)
    log.info("feature majority rule's prior: df %.4g, variance %.4g", prior[0], prior[1])
    VariancePrior(majority=list(prior)).to_json(output)


def _sample_table(table: pa.Table, design: Any) -> Any:
    """The encoded rows (:func:`pepmix.model.fit.encode`) of the first proteins in
    :func:`pepmix.model.majority.sample_order`, enough of them to hold
    :data:`pepmix.model.majority.PRIOR_SAMPLE` candidates (1.25 times that many proteins,
    doubled until they do, or all): candidacy is per protein, so the sample among their
    candidates is the sample among all proteins' candidates."""
    import pyarrow.compute as pc

    from pepmix.canonical import from_arrow
    from pepmix.model import majority
    from pepmix.model.fit import encode

    protein = table.column("protein")
    names = pc.unique(
        protein.cast(pa.string()) if pa.types.is_dictionary(protein.type) else protein
    )
    ordered = names.take(pa.array(majority.sample_order(names.to_pylist())))
    size = (5 * majority.PRIOR_SAMPLE) // 4 + 1
    while True:
        keep = ordered if size >= len(ordered) else ordered.slice(0, size)
        rows = table if size >= len(ordered) else table.filter(pc.is_in(protein, value_set=keep))
        enc = encode(from_arrow(rows), design)
        if size >= len(ordered) or majority.count_candidates(enc, design) >= majority.PRIOR_SAMPLE:
            return enc
        size *= 2
