"""Rule ``plot_differential``: volcano, MA plot and p-value histogram per contrast, and the
status summary."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pepmix.plots.inputs import (
    ContrastInfo,
    PathLike,
    condition_means,
    read_runs,
)
from pepmix.plots.names import CONTRAST_FIGURES
from pepmix.plots.style import figure_paths


def contrast_figures(
    *,
    table: PathLike,
    fixed: PathLike,
    samples: PathLike,
    contrasts: Sequence[ContrastInfo],
    out_dir: PathLike,
    formats: Sequence[str] = (),
    fdr: float = 0.05,
    lfc_threshold: float = 0.0,
) -> list[Path]:
    """Results family: volcano, MA plot and p-value histogram of every contrast.

    Writes ``<out_dir>/<contrast slug>/{volcano,ma,pvalue_hist}.<format>``.

    Parameters
    ----------
    table : str or pathlib.Path
        ``results/tables/differential_abundance.parquet``.
    fixed : str or pathlib.Path
        ``results/model/fixed_effects.parquet`` (condition means for the MA plot).
    samples : str or pathlib.Path
        ``results/ingest/samples.tsv`` (checked; the figures colour by direction).
    contrasts : sequence of ContrastInfo
        Contrasts to draw.
    out_dir : str or pathlib.Path
        Root directory of the per-contrast figures.
    formats : sequence of str, default ()
        Extra formats besides PNG.
    fdr : float, default 0.05
        Adjusted p-value threshold.
    lfc_threshold : float, default 0.0
        Fold-change threshold of the tests (log2).

    Returns
    -------
    list of pathlib.Path
        Files written.
    """
    from pepmix.plots import results

    da = pd.read_parquet(table)
    fx = pd.read_parquet(fixed, columns=["protein", "term", "estimate"])
    read_runs(samples)  # the sheet is checked here as in every plot job
    written: list[Path] = []
    for c in contrasts:
        out = Path(out_dir) / c.slug
        paths = {name: figure_paths(out / name, formats) for name in CONTRAST_FIGURES}
        results.volcano(
            da, c.name, c.numerator, c.denominator, paths["volcano"], fdr, lfc_threshold
        )
        means = condition_means(fx, [c.numerator, c.denominator])
        results.ma_plot(
            da, means, c.name, c.numerator, c.denominator, paths["ma"], fdr, lfc_threshold
        )
        results.pvalue_histogram(da, c.name, paths["pvalue_hist"], fdr)
        for items in paths.values():
            written.extend(items)
    return written


def status_figure(
    *,
    table: PathLike,
    samples: PathLike,
    contrasts: Sequence[ContrastInfo],
    out_dir: PathLike,
    formats: Sequence[str] = (),
    fdr: float = 0.05,
    lfc_threshold: float = 0.0,
) -> list[Path]:
    """Status family: proteins per status and significant proteins, per contrast.

    Writes ``<out_dir>/status.<format>``.

    Parameters
    ----------
    table : str or pathlib.Path
        ``results/tables/differential_abundance.parquet``.
    samples : str or pathlib.Path
        ``results/ingest/samples.tsv`` (checked; the bars are coloured by direction).
    contrasts : sequence of ContrastInfo
        Contrasts, in display order.
    out_dir : str or pathlib.Path
        ``results/plots``.
    formats : sequence of str, default ()
        Extra formats besides PNG.
    fdr : float, default 0.05
    lfc_threshold : float, default 0.0

    Returns
    -------
    list of pathlib.Path
        Files written.
    """
    from pepmix.plots.status import status_summary

    da = pd.read_parquet(table)
    read_runs(samples)  # the sheet is checked here as in every plot job
    paths = figure_paths(Path(out_dir) / "status", formats)
    status_summary(
        da,
        [(c.name, c.numerator, c.denominator) for c in contrasts],
        paths,
        fdr,
        lfc_threshold,
    )
    return paths


def run(
    *,
    table: PathLike,
    fixed: PathLike,
    samples: PathLike,
    contrasts: Sequence[ContrastInfo],
    out_dir: PathLike,
    status_dir: PathLike,
    formats: Sequence[str] = (),
    fdr: float = 0.05,
    lfc_threshold: float = 0.0,
) -> list[Path]:
    """Both families: :func:`contrast_figures` under ``out_dir`` and :func:`status_figure`
    under ``status_dir`` (same arguments); returns the files written."""
    written = contrast_figures(
        table=table,
        fixed=fixed,
        samples=samples,
        contrasts=contrasts,
        out_dir=out_dir,
        formats=formats,
        fdr=fdr,
        lfc_threshold=lfc_threshold,
    )
    return written + status_figure(
        table=table,
        samples=samples,
        contrasts=contrasts,
        out_dir=status_dir,
        formats=formats,
        fdr=fdr,
        lfc_threshold=lfc_threshold,
    )
