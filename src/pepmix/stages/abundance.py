"""Rule ``abundance`` (one shard only): the protein abundance model in a job of its own.

The model (:func:`pepmix.model.abundance.protein_abundance`: per protein, log2 intensity ~ run
+ (1|feature), REML) needs only the normalised table, not the differential fit, so with one
shard it runs beside rule ``fit`` on the second core instead of after the fit inside the fit
job; the abundance QC plots (rule ``plot_qc_abundance``) can then start before the fit ends.
With several shards each fit job still fits its shard's abundances (rule ``gather_abundance``
gathers them). The table is the one the fit job writes: the same rows, in the same order,
byte for byte (the fit job encodes the table once for both models; this job encodes it again,
which gives the same encoding).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from pepmix.io import write_parquet
from pepmix.stages.files import PathLike, read_model_input, read_resolved_sheet, write_wide

__all__ = ["AbundanceResult", "run"]


@dataclass(frozen=True)
class AbundanceResult:
    """Protein abundances per run and the runs in sample-sheet order.

    Attributes
    ----------
    abundance : pandas.DataFrame
        Long table ``protein, run, abundance, se, n_features, status``.
    runs : list of str
        Runs of the resolved sample sheet (columns of the wide table).
    """

    abundance: pd.DataFrame
    runs: list[str]

    def write(self, *, long: PathLike, wide: PathLike) -> None:
        """Write the long table (Parquet) and its proteins x runs TSV ``wide``."""
        write_parquet(self.abundance, long)
        write_wide(long, self.runs, wide)


def run(*, features: PathLike, samples: PathLike) -> AbundanceResult:
    """Fit the protein abundance model to the normalised ``features`` (the one shard's
    ``features.parquet``) with the runs of the resolved sample sheet ``samples``."""
    from pepmix.model.abundance import protein_abundance

    table = read_model_input(features)
    runs = list(read_resolved_sheet(samples)["run"])
    return AbundanceResult(abundance=protein_abundance(table, runs), runs=runs)
