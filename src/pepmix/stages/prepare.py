"""Rule ``prepare``: with one input batch, ingest, merge, normalize and shard in one job.

Each step is its own rule's stage (:mod:`pepmix.stages.ingest`, :mod:`~pepmix.stages.merge`,
:mod:`~pepmix.stages.normalize`, :mod:`~pepmix.stages.shard`) and writes that rule's files, its
log and its alerts (:func:`pepmix.rule.stage_alerts`), so the outputs are those of the four
jobs; one job saves three start-ups, and each stage takes the previous one's table as the Arrow
table it wrote (the frame it would read back, :func:`pepmix.canonical.from_arrow`) instead of
reading the file. The merge step converts only the four columns it reads of the batch and
filters the batch's Arrow table by the kept rows (:func:`pepmix.stages.merge.run`).

The Parquet files of the first three steps (the batch, merged and normalised tables) are
written by one writer thread while the next step computes (:class:`_Writer`; pyarrow releases
the GIL while it encodes and compresses): each file is written by :func:`pepmix.io.write_arrow`
(atomically, so a failed write leaves no file), every write has finished when :func:`run`
returns, and a failed write fails the job (its exception raised by :func:`run`). The sample
sheet and the other TSV files are written in the job's thread (the next step reads the sheet).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from pepmix.io import write_arrow
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
    """Run the four steps, each writing its own files (the Parquet tables by a writer thread
    while the next step runs; all written when this returns).

    A failed write raises its exception here, and its file is not left behind.

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

    # each table goes to the next stage as the Arrow table just written, not read back; the
    # Parquet files are written by the writer thread meanwhile
    with _writer() as writer:
        with step("ingest"):
            ingested = ingest.run(entry=entry, filters=filters, feature_level=feature_level)
            ingested.write(table=outputs.batch, write_table=writer.write_table)
            batch = ingested.arrow
            del ingested
        with step("merge"):
            merged = merge.run(
                batches=[batch], samples=samples, sheet_config=sheet_config, filters=filters
            )
            del batch
            # the TSVs in this thread: the normalize step reads the sheet
            merged.write(
                features=outputs.merged,
                samples=outputs.samples,
                removed=outputs.removed,
                write_table=writer.write_table,
            )
            table = merged.arrow
            del merged
        with step("normalize"):
            normalized = normalize.run(
                features=table, samples=outputs.samples, options=normalization
            )
            del table
            normalized.write(
                features=outputs.features, runs=outputs.runs, write_table=writer.write_table
            )
            features = normalized.arrow
            del normalized
        with step("shard"):
            shard.run(features=features, shards=outputs.shards, largest=outputs.largest)
        log.info("waiting for the writes of the tables")


class _Writer:
    """One thread writing files in submission order; :meth:`check` raises a failed write's
    exception (the first one submitted)."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self._pool = pool
        self._futures: list[Future[None]] = []

    def submit(self, write: Callable[..., None], *args: Any) -> None:
        """Queue ``write(*args)``, after checking that no earlier write has failed."""
        self.check()
        self._futures.append(self._pool.submit(write, *args))

    def write_table(self, table: pa.Table, path: PathLike) -> None:
        """Queue :func:`pepmix.io.write_arrow` of ``table`` to ``path`` (a
        :data:`pepmix.stages.files.TableWriter`)."""
        self.submit(write_arrow, table, path)

    def check(self, wait: bool = False) -> None:
        """Raise the exception of the first failed write (with ``wait``, default False: after
        waiting for every write; without it, of the writes finished so far)."""
        for future in self._futures:
            if wait or future.done():
                future.result()

    def errors(self) -> list[BaseException]:
        """Wait for every write; the exceptions of the failed ones, in submission order."""
        return [e for f in self._futures if (e := f.exception()) is not None]


@contextmanager
def _writer() -> Iterator[_Writer]:
    """A :class:`_Writer` whose writes have all finished when the block is left.

    Leaving the block normally raises the first failed write's exception. If the block raises,
    its exception propagates once the writes have finished, with each failed write's exception
    added as a note (none is lost; the files written are complete, see
    :func:`pepmix.io.atomic_path`).
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pepmix-write") as pool:
        writer = _Writer(pool)
        try:
            yield writer
        except BaseException as exc:
            for error in writer.errors():
                exc.add_note(f"also, a table write failed: {type(error).__name__}: {error}")
            raise
        writer.check(wait=True)


def _str(path: PathLike | None) -> str | None:
    return None if path is None else str(path)
