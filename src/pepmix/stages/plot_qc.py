"""Rule ``plot_qc``: QC figures of the feature intensities (distributions, features per run,
missingness)."""

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
    *,
    features: PathLike,
    samples: PathLike,
    out_dir: PathLike,
    formats: Sequence[str] = (),
    abundance: PathLike | None = None,
) -> list[Path]:
    """QC figures of the feature intensities: distributions, features per run, missingness.

    The feature table (8 M rows for a 200-run DIA cohort) is read once and turned into integer
    codes (:class:`~pepmix.plots.aggregate.FeatureCells`) that all three figures share. Needs
    only the normalised features, so the workflow can draw these while the models are fitted.
    With ``abundance`` also the protein-abundance QC figures of
    :func:`pepmix.stages.plot_qc_abundance.run` (the workflow with one shard: one job's
    start-up fewer, rules/plot.smk).

    Parameters
    ----------
    features : str or pathlib.Path
        ``results/normalize/features.parquet``.
    samples : str or pathlib.Path
        ``results/ingest/samples.tsv``.
    out_dir : str or pathlib.Path
        Directory of the figures.
    formats : sequence of str, default ()
        Extra formats besides PNG.
    abundance : str or pathlib.Path, optional
        ``results/tables/protein_abundance.parquet``: also draw the PCA, run-to-run correlation
        and CV figures into ``out_dir`` (default None: only the feature figures).

    Returns
    -------
    list of pathlib.Path
        Files written.
    """
    from pepmix.plots import qc
    from pepmix.plots.aggregate import FeatureCells, present_labels

    columns = ["protein", "feature", "run", "log2_raw", "y"]
    table = read_identifiers(features, columns, ["run"])
    runs = read_runs(samples, present_labels(table["run"]))
    cells = FeatureCells.from_table(table, runs.order)
    del table
    written: list[Path] = []
    for name, draw in (
        ("intensity_distributions", qc.intensity_distributions),
        ("features_per_run", qc.features_per_run),
        ("missingness", qc.missingness),
    ):
        paths = figure_paths(Path(out_dir) / name, formats)
        draw(cells, runs, paths)
        written += paths
    if abundance is not None:
        from pepmix.stages import plot_qc_abundance

        written += plot_qc_abundance.run(
            samples=samples, abundance=abundance, out_dir=out_dir, formats=formats
        )
    return written
