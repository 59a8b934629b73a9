"""Quality-control figures of the feature intensities: distributions, counts, missingness.

All functions take the normalised long feature table (``protein``, ``feature``, ``run``,
``log2_raw``, ``y``; one row per observed feature and run) and a :class:`~pepmix.plots.style.Runs`
describing run order, conditions and colours, and write one figure to one or more paths.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from pepmix.plots.boxes import draw_boxes
from pepmix.plots.style import (
    GUIDE,
    Runs,
    color_tick_labels,
    legend_handles,
    new_figure,
    save,
    styled,
)

log = logging.getLogger(__name__)

Paths = str | Path | Sequence[str | Path]


def _run_axis_width(n_runs: int, per_run: float = 0.32, minimum: float = 6.5) -> float:
    return max(minimum, per_run * n_runs + 2.5)


@styled
def intensity_distributions(features: pd.DataFrame, runs: Runs, path: Paths) -> None:
    """Box plots of log2 feature intensities per run, before and after normalisation.

    Boxes show quartiles, whiskers 1.5 IQR (outliers not drawn); a dashed line marks the median
    of all run medians, so shifted runs stand out.

    Parameters
    ----------
    features : pandas.DataFrame
        Normalised long table with ``run``, ``log2_raw`` and ``y``.
    runs : pepmix.plots.style.Runs
        Run order, conditions and colours.
    path : str, pathlib.Path or sequence of them
        Output file(s) (format from the extension).
    """
    present = set(features["run"].astype(str))
    order = [r for r in runs.order if r in present]
    fig = new_figure(_run_axis_width(len(order)), 5.6)
    axes = fig.subplots(2, 1, sharex=True, sharey=True)
    grouped = {str(k): g for k, g in features.groupby("run", observed=True, sort=False)}
    colors = [runs.colors[runs.condition[r]] for r in order]
    positions = np.arange(1, len(order) + 1)
    for ax, column, title in (
        (axes[0], "log2_raw", "Before normalisation"),
        (axes[1], "y", "After normalisation"),
    ):
        data = [grouped[r][column].to_numpy(dtype=float) for r in order]
        draw_boxes(ax, data, positions.tolist(), colors, width=0.65)
        medians = np.array([np.median(d) for d in data])
        ax.axhline(float(np.median(medians)), ls="--", lw=0.8, color=GUIDE, zorder=0)
        ax.set_ylabel("log2 intensity")
        ax.set_title(title, loc="left")
        ax.grid(axis="y", lw=0.4, alpha=0.4)
    axes[1].set_xticks(positions, order, rotation=90)
    axes[1].set_xlabel("run")
    color_tick_labels(axes[1].get_xticklabels(), runs)
    fig.legend(
        handles=legend_handles({c: runs.colors[c] for c in runs.conditions}, marker="s"),
        title="condition",
        loc="outside right upper",
    )
    fig.suptitle("Feature intensity distribution per run", fontweight="bold")
    save(fig, path)


def observed_matrix(features: pd.DataFrame, order: Sequence[str]) -> pd.DataFrame:
    """Boolean feature x run matrix: True where the feature was quantified in the run."""
    keyed = features.loc[:, ["protein", "feature", "run"]].astype(str)
    keyed = keyed.assign(_obs=True).drop_duplicates(["protein", "feature", "run"])
    wide = keyed.pivot(index=["protein", "feature"], columns="run", values="_obs")
    return wide.reindex(columns=list(order)).notna()


@styled
def features_per_run(features: pd.DataFrame, runs: Runs, path: Paths) -> None:
    """Number of quantified features and missing fraction per run (two bar panels).

    The missing fraction of a run is the share of all features of the experiment that have no
    value in that run.

    Parameters
    ----------
    features : pandas.DataFrame
        Long table with ``protein``, ``feature`` and ``run``.
    runs : pepmix.plots.style.Runs
        Run order, conditions and colours.
    path : str, pathlib.Path or sequence of them
        Output file(s).
    """
    present = set(features["run"].astype(str))
    order = [r for r in runs.order if r in present]
    observed = observed_matrix(features, order)
    n_features = observed.sum(axis=0).to_numpy(dtype=float)
    n_proteins = (
        features.astype({"run": str}).groupby("run")["protein"].nunique().reindex(order).to_numpy()
    )
    missing = 100.0 * (1.0 - n_features / max(len(observed), 1))
    fig = new_figure(_run_axis_width(len(order)), 5.2)
    axes = fig.subplots(2, 1, sharex=True)
    x = np.arange(len(order))
    colors = [runs.colors[runs.condition[r]] for r in order]
    axes[0].bar(x, n_features, color=colors, alpha=0.85, width=0.7)
    axes[0].set_ylabel("features quantified")
    axes[0].set_title(
        f"Quantified features per run (of {len(observed):,} features, "
        f"{observed.index.get_level_values(0).nunique():,} proteins)",
        loc="left",
    )
    axes[1].bar(x, missing, color=colors, alpha=0.85, width=0.7)
    axes[1].set_ylabel("missing features (%)")
    axes[1].set_ylim(0, max(5.0, float(np.max(missing)) * 1.18))
    axes[1].set_title("Missing values per run", loc="left")
    for ax, values, fmt in ((axes[0], n_features, "{:,.0f}"), (axes[1], missing, "{:.1f}")):
        ax.axhline(float(np.median(values)), ls="--", lw=0.8, color=GUIDE, zorder=0)
        ax.grid(axis="y", lw=0.4, alpha=0.4)
        if len(order) <= 30:
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
    axes[0].set_ylim(0, float(np.max(n_features)) * 1.15 if len(n_features) else 1.0)
    if len(order) <= 30:
        for xi, n in zip(x, n_proteins, strict=True):
            axes[0].annotate(
                f"{int(n):,} prot.",
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
    axes[1].set_xticks(x, order, rotation=90)
    axes[1].set_xlabel("run")
    color_tick_labels(axes[1].get_xticklabels(), runs)
    fig.legend(
        handles=legend_handles({c: runs.colors[c] for c in runs.conditions}, marker="s"),
        title="condition",
        loc="outside right upper",
    )
    save(fig, path)


@styled
def missingness(
    features: pd.DataFrame, runs: Runs, path: Paths, n_bins: int = 25, min_features: int = 10
) -> None:
    """Missing fraction against mean intensity: intensity-dependent dropout per condition.

    Features are binned by their mean observed log2 intensity (over all runs; equal-width bins
    between the 0.5 and 99.5 percentiles, bins with fewer than ``min_features`` not drawn);
    for each bin and condition the line shows the share of feature x run cells of that condition
    without a value. A flat line means missingness unrelated to abundance; a line falling from
    left to right means low-abundance features drop out (missing not at random). The lower panel
    shows how many features fall at each intensity.

    Parameters
    ----------
    features : pandas.DataFrame
        Long table with ``protein``, ``feature``, ``run`` and ``y``.
    runs : pepmix.plots.style.Runs
        Run order, conditions and colours.
    path : str, pathlib.Path or sequence of them
        Output file(s).
    n_bins : int, default 25
        Number of intensity bins.
    min_features : int, default 10
        Smallest number of features for a bin to be drawn.
    """
    present = set(features["run"].astype(str))
    order = [r for r in runs.order if r in present]
    observed = observed_matrix(features, order)
    keyed = features.astype({"protein": str, "feature": str})
    mean_y = keyed.groupby(["protein", "feature"])["y"].mean().reindex(observed.index)
    values = mean_y.to_numpy(dtype=float)
    lo, hi = np.percentile(values, [0.5, 99.5]) if len(values) else (0.0, 1.0)
    edges = np.linspace(lo, hi, n_bins + 1) if hi > lo else np.array([lo - 0.5, lo + 0.5])
    which = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    counts = np.bincount(which, minlength=len(edges) - 1)
    use = counts >= min_features
    centres = (edges[:-1] + edges[1:]) / 2.0
    fig = new_figure(6.8, 5.0)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    obs = observed.to_numpy()
    for condition in runs.conditions:
        cols = [i for i, r in enumerate(order) if runs.condition[r] == condition]
        miss = 1.0 - obs[:, cols].mean(axis=1)
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
    overall = 1.0 - obs.mean(axis=1)
    frac_all = _binned_mean(overall, which, counts)
    top.plot(centres[use], 100.0 * frac_all[use], ls="--", lw=1.0, color="black", label="all runs")
    top.set_ylabel("missing values (%)")
    top.set_ylim(0, max(5.0, top.get_ylim()[1]))
    top.grid(lw=0.4, alpha=0.4)
    top.legend(title="condition", loc="upper right")
    top.set_title(
        f"Missing values against feature intensity ({len(values):,} features, "
        f"{100.0 * (1 - obs.mean()):.1f}% missing overall)",
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
