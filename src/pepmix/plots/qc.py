"""Quality-control figures of the feature intensities: distributions, counts, missingness.

All functions take the normalised long feature table (``protein``, ``feature``, ``run``,
``log2_raw``, ``y``; one row per observed feature and run), or its integer codes
(:class:`~pepmix.plots.aggregate.FeatureCells`, computed once for all three figures), and a
:class:`~pepmix.plots.style.Runs` describing run order, conditions and colours, and write one
figure to one or more paths. Aggregates are computed on integer codes
(:mod:`pepmix.plots.aggregate`): a 200-run, 8 M-row table takes well under a second each.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from pepmix.plots.aggregate import FeatureCells, grouped_box_stats
from pepmix.plots.boxes import draw_bars, draw_boxes
from pepmix.plots.style import (
    GUIDE,
    Runs,
    legend_handles,
    new_figure,
    run_axis_label,
    run_axis_width,
    run_ticks,
    save,
    styled,
)

log = logging.getLogger(__name__)

Paths = str | Path | Sequence[str | Path]

MAX_ANNOTATED_RUNS = 30
"""Bars are annotated with their numbers up to this many runs."""

SHARED_TICKS = 40
"""Up to this many runs the upper panel of a two-panel run figure repeats the run ticks."""


def feature_cells(features: pd.DataFrame | FeatureCells, runs: Runs) -> FeatureCells:
    """The codes of ``features`` (computed unless already given), runs in ``runs.order``."""
    if isinstance(features, FeatureCells):
        return features
    return FeatureCells.from_table(features, runs.order)


def _axis_length(width: float) -> float:
    """Approximate length (inches) of a run axis in a figure ``width`` inches wide."""
    return max(width - 2.4, 1.0)


@styled
def intensity_distributions(features: pd.DataFrame | FeatureCells, runs: Runs, path: Paths) -> None:
    """Box plots of log2 feature intensities per run, before and after normalisation.

    Boxes show quartiles, whiskers 1.5 IQR (outliers not drawn); a dashed line marks the median
    of all run medians, so shifted runs stand out. The statistics are computed per run from
    one sort of the run codes (:func:`~pepmix.plots.aggregate.grouped_box_stats`).

    Parameters
    ----------
    features : pandas.DataFrame or FeatureCells
        Normalised long table with ``run``, ``log2_raw`` and ``y`` (or its codes).
    runs : pepmix.plots.style.Runs
        Run order, conditions and colours.
    path : str, pathlib.Path or sequence of them
        Output file(s) (format from the extension).
    """
    cells = feature_cells(features, runs)
    order = cells.order
    n = len(order)
    width = run_axis_width(n)
    fig = new_figure(width, 5.6)
    axes = fig.subplots(2, 1, sharex=n <= SHARED_TICKS, sharey=True)
    colors = [runs.colors[runs.condition[r]] for r in order]
    positions = np.arange(1, n + 1, dtype=float)
    lw = 0.6 if n <= 60 else 0.35
    for ax, values, title in (
        (axes[0], cells.log2_raw, "Before normalisation"),
        (axes[1], cells.y, "After normalisation"),
    ):
        stats = grouped_box_stats(values, cells.run, n, order=cells.run_order)
        draw_boxes(ax, stats, positions.tolist(), colors, width=0.65, linewidth=lw)
        medians = np.array([s[2] for s in stats])
        medians = medians[np.isfinite(medians)]
        if len(medians):
            ax.axhline(float(np.median(medians)), ls="--", lw=0.8, color=GUIDE, zorder=0)
        ax.set_ylabel("log2 intensity")
        ax.set_title(title, loc="left")
        ax.grid(axis="y", lw=0.4, alpha=0.4)
    if n > SHARED_TICKS:  # no run ticks on the upper panel (each tick is a few artists)
        axes[0].set_xticks([])
    stride = run_ticks(axes[1], positions.tolist(), order, runs, _axis_length(width))
    axes[1].set_xlabel(run_axis_label(n, stride))
    fig.legend(
        handles=legend_handles({c: runs.colors[c] for c in runs.conditions}, marker="s"),
        title="condition",
        loc="outside right upper",
    )
    fig.suptitle("Feature intensity distribution per run", fontweight="bold")
    save(fig, path)


@styled
def features_per_run(features: pd.DataFrame | FeatureCells, runs: Runs, path: Paths) -> None:
    """Number of quantified features and missing fraction per run (two bar panels).

    The missing fraction of a run is the share of all features of the experiment that have no
    value in that run. Up to :data:`MAX_ANNOTATED_RUNS` runs the bars carry their numbers.

    Parameters
    ----------
    features : pandas.DataFrame or FeatureCells
        Long table with ``protein``, ``feature`` and ``run`` (or its codes).
    runs : pepmix.plots.style.Runs
        Run order, conditions and colours.
    path : str, pathlib.Path or sequence of them
        Output file(s).
    """
    cells = feature_cells(features, runs)
    order = cells.order
    n = len(order)
    n_features = cells.observed.sum(axis=0).astype(float)
    n_proteins = cells.proteins_per_run()
    missing = 100.0 * (1.0 - n_features / max(cells.n_features, 1))
    width = run_axis_width(n)
    fig = new_figure(width, 5.2)
    axes = fig.subplots(2, 1, sharex=n <= SHARED_TICKS)
    x = np.arange(n, dtype=float)
    colors = [runs.colors[runs.condition[r]] for r in order]
    annotate = n <= MAX_ANNOTATED_RUNS
    draw_bars(axes[0], x.tolist(), n_features.tolist(), colors)
    axes[0].set_ylabel("features quantified")
    axes[0].set_title(
        f"Quantified features per run (of {cells.n_features:,} features, "
        f"{cells.n_proteins:,} proteins)",
        loc="left",
    )
    draw_bars(axes[1], x.tolist(), missing.tolist(), colors)
    axes[1].set_ylabel("missing features (%)")
    axes[1].set_ylim(0, max(5.0, float(np.max(missing)) * 1.18) if n else 5.0)
    axes[1].set_title("Missing values per run", loc="left")
    for ax, values, fmt in ((axes[0], n_features, "{:,.0f}"), (axes[1], missing, "{:.1f}")):
        if n:
            ax.axhline(float(np.median(values)), ls="--", lw=0.8, color=GUIDE, zorder=0)
        ax.grid(axis="y", lw=0.4, alpha=0.4)
        if annotate:
            for xi, v in zip(x, values, strict=True):
                ax.annotate(
                    fmt.format(v),
                    (float(xi), float(v)),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=6,
                    in_layout=False,
                )
    axes[0].set_ylim(0, float(np.max(n_features)) * 1.15 if n else 1.0)
    if annotate:
        for xi, count in zip(x, n_proteins, strict=True):
            axes[0].annotate(
                f"{int(count):,} prot.",
                (float(xi), 0.0),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=5.5,
                rotation=90,
                color="white",
                in_layout=False,
            )
    if n > SHARED_TICKS:
        axes[0].set_xticks([])
    stride = run_ticks(axes[1], x.tolist(), order, runs, _axis_length(width))
    axes[1].set_xlabel(run_axis_label(n, stride))
    fig.legend(
        handles=legend_handles({c: runs.colors[c] for c in runs.conditions}, marker="s"),
        title="condition",
        loc="outside right upper",
    )
    save(fig, path)


@styled
def missingness(
    features: pd.DataFrame | FeatureCells,
    runs: Runs,
    path: Paths,
    n_bins: int = 25,
    min_features: int = 10,
) -> None:
    """Missing fraction against mean intensity: intensity-dependent dropout per condition.

    Features are binned by their mean observed log2 intensity (over all runs; equal-width bins
    between the 0.5 and 99.5 percentiles, bins with fewer than ``min_features`` not drawn);
    for each bin and condition the line shows the share of feature x run cells of that condition
    without a value. A flat line means missingness unrelated to abundance; a line falling from
    left to right means low-abundance features drop out (missing not at random). The lower panel
    shows how many features fall at each intensity. Feature means and missing fractions come
    from :func:`numpy.bincount` on the feature codes; nothing is drawn per feature.

    Parameters
    ----------
    features : pandas.DataFrame or FeatureCells
        Long table with ``protein``, ``feature``, ``run`` and ``y`` (or its codes).
    runs : pepmix.plots.style.Runs
        Run order, conditions and colours.
    path : str, pathlib.Path or sequence of them
        Output file(s).
    n_bins : int, default 25
        Number of intensity bins.
    min_features : int, default 10
        Smallest number of features for a bin to be drawn.
    """
    cells = feature_cells(features, runs)
    order = cells.order
    obs = cells.observed
    means = cells.feature_means(cells.y)
    valid = np.isfinite(means)
    values = means[valid]
    obs = obs[valid]
    lo, hi = (float(v) for v in np.percentile(values, [0.5, 99.5])) if len(values) else (0.0, 1.0)
    edges = np.linspace(lo, hi, n_bins + 1) if hi > lo else np.array([lo - 0.5, lo + 0.5])
    which = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    counts = np.bincount(which, minlength=len(edges) - 1)
    use = counts >= min_features
    centres = (edges[:-1] + edges[1:]) / 2.0
    fig = new_figure(6.8, 5.0)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    n_obs = obs.sum(axis=1, dtype=np.int64)
    for condition in runs.conditions:
        cols = [i for i, r in enumerate(order) if runs.condition[r] == condition]
        if not cols:
            continue
        miss = 1.0 - obs[:, cols].sum(axis=1, dtype=np.int64) / len(cols)
        frac = _binned_mean(miss, which, counts)
        top.plot(
            centres[use],
            100.0 * frac[use],
            marker="o",
            ms=3.5,
            lw=1.4,
            color=runs.colors[condition],
            label=f"{condition} ({len(cols)} runs)",
        )
    overall = 1.0 - n_obs / max(len(order), 1)
    frac_all = _binned_mean(overall, which, counts)
    top.plot(centres[use], 100.0 * frac_all[use], ls="--", lw=1.0, color="black", label="all runs")
    top.set_ylabel("missing values (%)")
    top.set_ylim(0, max(5.0, top.get_ylim()[1]))
    top.grid(lw=0.4, alpha=0.4)
    top.legend(title="condition", loc="upper right")
    share = 1.0 - float(n_obs.sum()) / max(obs.size, 1)
    top.set_title(
        f"Missing values against feature intensity ({len(values):,} features, "
        f"{100.0 * share:.1f}% missing overall)",
        loc="left",
    )
    bottom.bar(centres, counts, width=np.diff(edges), color="#bbbbbb", edgecolor="white", lw=0.3)
    bottom.set_ylabel("features")
    bottom.set_xlabel("mean observed log2 intensity of the feature")
    save(fig, path)


def _binned_mean(
    values: NDArray[np.float64], which: NDArray[np.intp], counts: NDArray[np.intp]
) -> NDArray[np.float64]:
    sums = np.bincount(which, weights=values, minlength=len(counts))
    out: NDArray[np.float64] = np.full(len(counts), np.nan)
    np.divide(sums, counts, out=out, where=counts > 0)
    return out
