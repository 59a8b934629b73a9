"""The shards' protein abundances, long (Parquet) and as a proteins x runs table for people
(TSV): part of rule ``gather_model`` (several shards; rule ``gather_abundance`` until
2026-12-07)."""

from __future__ import annotations

from collections.abc import Sequence

from pepmix.stages.files import PathLike, read_resolved_sheet, write_wide

__all__ = ["run"]


def run(*, parts: Sequence[PathLike], samples: PathLike, long: PathLike, wide: PathLike) -> None:
    """Gather ``parts`` into ``long`` and write its proteins x runs table ``wide`` (runs in the
    order of the resolved sample sheet ``samples``).

    The wide table is made from the gathered table in memory (:func:`pepmix.shards.gather_arrow`;
    its protein, run and abundance columns as a read of ``long`` gives them), not from a read of
    the file just written; parts the Arrow route leaves to pandas are gathered and read back.
    """
    import pyarrow.parquet as pq

    from pepmix.io import write_arrow, write_tsv
    from pepmix.model.abundance import wide as wide_table
    from pepmix.shards import gather_arrow, gather_pandas

    runs = list(read_resolved_sheet(samples)["run"])
    table = gather_arrow([pq.read_table(p) for p in parts])
    if table is None:
        gather_pandas(parts, long)
        write_wide(long, runs, wide)
        return
    write_arrow(table, long)
    frame = table.select(["protein", "run", "abundance"]).to_pandas()
    write_tsv(wide_table(frame, runs), wide)
