"""Rule ``gather_abundance``: the shards' protein abundances, long (Parquet) and as a proteins x
runs table for people (TSV)."""

from __future__ import annotations

from collections.abc import Sequence

from pepmix.stages.files import PathLike, read_resolved_sheet, write_wide

__all__ = ["run"]


def run(*, parts: Sequence[PathLike], samples: PathLike, long: PathLike, wide: PathLike) -> None:
    """Gather ``parts`` into ``long`` and write its proteins x runs table ``wide`` (runs in the
    order of the resolved sample sheet ``samples``)."""
    from pepmix.shards import gather

    gather(parts, long)
    write_wide(long, list(read_resolved_sheet(samples)["run"]), wide)
