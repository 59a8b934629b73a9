"""Rule ``prepare``: with one input batch, ingest, merge, normalize and shard in one job.

Each step is its own rule's stage (:mod:`pepmix.stages.ingest`, :mod:`~pepmix.stages.merge`,
:mod:`~pepmix.stages.normalize`, :mod:`~pepmix.stages.shard`) and writes that rule's files, its
log and its alerts (:func:`pepmix.rule.stage_alerts`), so the outputs are those of the four
jobs; one job saves three start-ups, and each stage takes the previous one's table as the Arrow
table it wrote (the frame it would read back, :func:`pepmix.canonical.from_arrow`) instead of
reading the file.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pepmix.rule import stage_alerts
from pepmix.stages import ingest, merge, normalize, shard
from pepmix.stages.files import PathLike

__all__ = ["PrepareOutputs", "run"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrepareOutputs:
    """The files of the four steps (rule ``prepare``'s ``output:`` and ``log:``)."""

    batch: PathLike
    merged: PathLike
    samples: PathLike
    removed: PathLike
    features: PathLike
    runs: PathLike
    shards: Sequence[PathLike]
    largest: Sequence[PathLike]
    alerts: Mapping[str, PathLike | None]
    logs: Mapping[str, PathLike | None]


def run(
    *,
    entry: Mapping[str, Any],
    filters: Mapping[str, Any],
    feature_level: str,
    samples: PathLike,
    sheet_config: Mapping[str, Any] | None,
    normalization: Mapping[str, Any] | None,
    outputs: PrepareOutputs,
) -> None:
    """Run the four steps, each writing its own files as it finishes.

    Parameters
    ----------
    entry, filters, feature_level
        As :func:`pepmix.stages.ingest.run`.
    samples, sheet_config
        As :func:`pepmix.stages.merge.run`.
    normalization : mapping, optional
        The ``normalization:`` section.
    outputs : PrepareOutputs
        Where each step writes (``alerts`` and ``logs`` keyed by step name).
    """

    def step(name: str) -> Any:
        log.info("stage %s", name)
        return stage_alerts(name, _str(outputs.alerts.get(name)), _str(outputs.logs.get(name)))

    # each table goes to the next stage as the Arrow table just written, not read back
    with step("ingest"):
        ingested = ingest.run(entry=entry, filters=filters, feature_level=feature_level)
        ingested.write(table=outputs.batch)
        batch = ingested.arrow
        del ingested
    with step("merge"):
        merged = merge.run(
            batches=[batch], samples=samples, sheet_config=sheet_config, filters=filters
        )
        del batch
        merged.write(features=outputs.merged, samples=outputs.samples, removed=outputs.removed)
        table = merged.arrow
        del merged
    with step("normalize"):
        normalized = normalize.run(features=table, samples=outputs.samples, options=normalization)
        del table
        normalized.write(features=outputs.features, runs=outputs.runs)
        features = normalized.arrow
        del normalized
    with step("shard"):
        shard.run(features=features, shards=outputs.shards, largest=outputs.largest)


def _str(path: PathLike | None) -> str | None:
    return None if path is None else str(path)
