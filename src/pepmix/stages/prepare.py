"""Rule ``prepare``: with one input batch, ingest, merge, normalize and shard in one job.

Each step is its own rule's stage (:mod:`pepmix.stages.ingest`, :mod:`~pepmix.stages.merge`,
:mod:`~pepmix.stages.normalize`, :mod:`~pepmix.stages.shard`) and writes that rule's files, its
log and its alerts (:func:`pepmix.rule.stage_alerts`), so the outputs are those of the four
jobs; one job saves three start-ups and three reads of the intermediate tables' metadata.
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

    with step("ingest"):
        ingest.run(entry=entry, filters=filters, feature_level=feature_level).write(
            table=outputs.batch
        )
    with step("merge"):
        merge.run(
            batches=[outputs.batch], samples=samples, sheet_config=sheet_config, filters=filters
        ).write(features=outputs.merged, samples=outputs.samples, removed=outputs.removed)
    with step("normalize"):
        normalize.run(
            features=outputs.merged, samples=outputs.samples, options=normalization
        ).write(features=outputs.features, runs=outputs.runs)
    with step("shard"):
        shard.run(features=outputs.features, shards=outputs.shards, largest=outputs.largest)


def _str(path: PathLike | None) -> str | None:
    return None if path is None else str(path)
