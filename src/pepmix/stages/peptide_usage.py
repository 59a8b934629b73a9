"""Rule ``peptide_usage``: the fit jobs' peptide-usage rows gathered into
``results/tables/peptide_usage.tsv`` (config ``peptide_usage``;
:func:`pepmix.model.usage.gather_usage_table`)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from pepmix.stages.files import PathLike, TsvTable, read_removed

__all__ = ["run"]


def run(*, parts: Sequence[PathLike], removed: PathLike | None = None) -> TsvTable:
    """The usage table of the fit jobs' rows ``parts``; with ``removed`` (default None) the
    removed proteins follow with status ``filtered``."""
    from pepmix.model.usage import gather_usage_table

    frames = [pd.read_parquet(p) for p in parts]
    extra = read_removed(removed) if removed is not None else None
    return TsvTable(gather_usage_table(frames, extra))
