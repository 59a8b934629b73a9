"""Rule ``plot_qc_abundance``: QC figures of the protein abundances (PCA, run-to-run
correlation, CV per condition)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pepmix.plots.inputs import (
    PathLike,
    read_identifiers,
    read_runs,
)
from pepmix.plots.style import figure_paths


def run(
    *, samples: PathLike, abundance: PathLike, out_dir: PathLike, formats: Sequence[str] = ()
) -> list[Path]:
    """QC figures of the protein abundances: PCA, run-to-run correlation, CV per condition.

    Parameters
    ----------
    samples : str or pathlib.Path
        ``results/ingest/samples.tsv``.
    abundance : str or pathlib.Path
        ``results/tables/protein_abundance.parquet`` (long: ``protein``, ``run``, ``abundance``).
    out_dir : str or pathlib.Path
        Directory of the figures.
    formats : sequence of str, default ()
        Extra formats besides PNG.

    Returns
    -------
    list of pathlib.Path
        Files written.
    """
    from pepmix.plots import abundance as ab
    from pepmix.plots.aggregate import present_labels

    prot = read_identifiers(abundance, ["protein", "run", "abundance"], ["protein", "run"])
    runs = read_runs(samples, present_labels(prot["run"]))
    written: list[Path] = []
    for name, draw in (("pca", ab.pca), ("correlation", ab.correlation), ("cv", ab.cv)):
        paths = figure_paths(Path(out_dir) / name, formats)
        draw(prot, runs, paths)
        written += paths
    return written
