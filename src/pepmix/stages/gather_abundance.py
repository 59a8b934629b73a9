"""The shards' protein abundances, long (Parquet) and as a proteins x runs table for people
(TSV): part of rule ``gather_model`` (several shards; rule ``gather_abundance`` until
2026-12-07)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import pyarrow as pa

from pepmix.stages.files import PathLike, read_resolved_sheet, write_wide

__all__ = ["run"]


def run(*, parts: Sequence[PathLike], samples: PathLike, long: PathLike, wide: PathLike) -> None:
    """Gather ``parts`` into ``long`` and write its proteins x runs table ``wide`` (runs in the
    order of the resolved sample sheet ``samples``).

    The wide table is made from the gathered table in memory (:func:`pepmix.shards.gather_arrow`;
    its protein, run and abundance columns as a read of ``long`` gives them), not from a read of
    the file just written, by :func:`wide_from_arrow` (else :func:`pepmix.model.abundance.wide`
    of the columns in pandas); parts the Arrow route leaves to pandas are gathered and read back.
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
    frame = wide_from_arrow(table, runs)
    if frame is None:
        frame = wide_table(table.select(["protein", "run", "abundance"]).to_pandas(), runs)
    write_tsv(frame, wide)


def wide_from_arrow(table: pa.Table, runs: Sequence[str]) -> pd.DataFrame | None:
    """The proteins x runs table of :func:`pepmix.model.abundance.wide` of ``table``'s
    ``protein``, ``run`` and ``abundance`` columns, filled from integer codes.

    The same frame as ``wide(table.to_pandas(), runs)`` (a pivot: one row per protein, sorted by
    name in code-point order, as pandas sorts strings; one ``float64`` column per run of
    ``runs`` present in the table, in that order; NaN where a protein has no row in a run or a
    null abundance) without pandas' pivot of the 1.8 M-row long table (a MultiIndex, its
    factorised levels and the unstack; ~0.2-0.3 CPU s of the cohort's gather job,
    benchmarks/README.md "The jobs after the fits, third pass").

    Returns
    -------
    pandas.DataFrame or None
        None (take the pandas route) unless ``protein`` and ``run`` are plain string columns
        without nulls, ``abundance`` is ``float64`` and no (protein, run) pair repeats (the
        pivot raises on repeats).
    """
    import numpy as np
    import pyarrow.compute as pc

    for name in ("protein", "run"):
        kind = table.schema.field(name).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            return None
        if table[name].null_count:
            return None
    if table.schema.field("abundance").type != pa.float64():
        return None
    protein = pc.dictionary_encode(table["protein"].combine_chunks())
    run = pc.dictionary_encode(table["run"].combine_chunks())
    names = np.array(protein.dictionary.to_pylist(), dtype=object)
    order = np.argsort(names.astype(str), kind="stable")  # code-point order, as pandas sorts
    rank = np.empty(len(order), dtype=np.intp)
    rank[order] = np.arange(len(order))
    prot = rank[protein.indices.to_numpy().astype(np.intp)]
    run_codes = run.indices.to_numpy().astype(np.intp)
    run_names = [str(r) for r in run.dictionary.to_pylist()]
    pairs = np.bincount(prot * len(run_names) + run_codes, minlength=len(names) * len(run_names))
    if len(pairs) and pairs.max() > 1:
        return None
    present = set(run_names)
    columns = [r for r in runs if r in present]
    position = {r: i for i, r in enumerate(columns)}
    column = np.array([position.get(r, -1) for r in run_names], dtype=np.intp)[run_codes]
    keep = column >= 0
    values = np.full((len(columns), len(names)), np.nan)
    values[column[keep], prot[keep]] = table["abundance"].to_numpy()[keep]
    frame = pd.DataFrame(dict(zip(columns, values, strict=True)))
    frame.insert(0, "protein", pd.Series(names[order], dtype="str"))
    return frame
