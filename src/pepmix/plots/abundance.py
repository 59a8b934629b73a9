"""Quality-control figures of the protein abundances: PCA, run correlation, CV per condition.

All functions take the long protein abundance table (``protein``, ``run``, ``abundance`` in log2;
one row per protein and run, missing abundances as NaN or absent rows) and a
:class:`~pepmix.plots.style.Runs`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle
from numpy.typing import NDArray

from pepmix.plots.labels import label_points
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


def abundance_matrix(abundance: pd.DataFrame, order: Sequence[str]) -> pd.DataFrame:
    """Wide protein x run matrix of log2 abundances (NaN where missing), runs in ``order``."""
    table = abundance.loc[:, ["protein", "run", "abundance"]].astype(
        {"protein": str, "run": str, "abundance": float}
    )
    wide = table.pivot_table(index="protein", columns="run", values="abundance", aggfunc="first")
    return wide.reindex(columns=[r for r in order if r in wide.columns]).sort_index()


def pca_scores(
    matrix: pd.DataFrame, max_missing: float = 0.0
) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
    """PCA of runs on protein abundances (proteins centred, no scaling).

    Proteins with more than ``max_missing`` missing runs (a fraction) are dropped; remaining
    gaps are filled with the protein's mean.

    Returns
    -------
    scores : ndarray, shape (n_runs, n_components)
    explained : ndarray
        Fraction of variance of each component.
    n_proteins : int
        Proteins used.
    """
    values = matrix.to_numpy(dtype=float)
    keep = np.isnan(values).mean(axis=1) <= max_missing
    values = values[keep]
    means = np.nanmean(values, axis=1, keepdims=True) if len(values) else values
    centred = np.where(np.isnan(values), 0.0, values - means)
    if centred.shape[0] < 2 or centred.shape[1] < 2:
        return np.zeros((centred.shape[1], 2)), np.zeros(2), int(centred.shape[0])
    u, s, _ = np.linalg.svd(centred.T, full_matrices=False)
    scores = u * s
    # fix the sign (largest loading of each component positive) for stable output
    signs = np.sign(scores[np.argmax(np.abs(scores), axis=0), np.arange(scores.shape[1])])
    scores = scores * np.where(signs == 0, 1.0, signs)
    explained = s**2 / max(float(np.sum(s**2)), 1e-300)
    return scores, explained, int(centred.shape[0])


@styled
def pca(abundance: pd.DataFrame, runs: Runs, path: Paths) -> None:
    """PCA of the runs on protein abundances, coloured by condition and marked by batch.

    Uses proteins quantified in every run (or, if fewer than 50 are, those missing in at most
    a quarter of the runs, gaps filled with the protein mean). Left: first two components with
    run labels; right: variance explained by each component.

    Parameters
    ----------
    abundance : pandas.DataFrame
        Long protein abundance table (``protein``, ``run``, ``abundance``).
    runs : pepmix.plots.style.Runs
        Run order, conditions, colours and batch markers.
    path : str, pathlib.Path or sequence of them
        Output file(s).
    """
    matrix = abundance_matrix(abundance, runs.order)
    order = list(matrix.columns)
    scores, explained, n_used = pca_scores(matrix, 0.0)
    note = "without missing values"
    if n_used < 50:
        scores, explained, n_used = pca_scores(matrix, 0.25)
        note = "missing in at most 25% of runs, gaps filled with the protein mean"
    fig = new_figure(8.6, 4.4)
    ax, scree = fig.subplots(1, 2, width_ratios=[2.4, 1])
    pc2 = scores[:, 1] if scores.shape[1] > 1 else np.zeros(len(order))
    for i, run in enumerate(order):
        ax.scatter(
            scores[i, 0],
            pc2[i],
            s=46,
            color=runs.colors[runs.condition[run]],
            marker=runs.markers.get(runs.batch[run], "o"),
            edgecolors="white",
            linewidths=0.6,
            zorder=3,
        )
    ax.axhline(0, lw=0.5, color=GUIDE, alpha=0.5, zorder=0)
    ax.axvline(0, lw=0.5, color=GUIDE, alpha=0.5, zorder=0)
    ax.set_xlabel(f"PC1 ({100 * explained[0]:.1f}% of variance)")
    ax.set_ylabel(f"PC2 ({100 * explained[1]:.1f}% of variance)" if len(explained) > 1 else "PC2")
    ax.set_title(f"PCA of {len(order)} runs on {n_used:,} proteins", loc="left")
    ax.margins(0.18)
    handles = legend_handles({c: runs.colors[c] for c in runs.conditions})
    batches = list(runs.markers)
    if len(batches) > 1:
        from matplotlib.lines import Line2D

        handles += [
            Line2D([], [], ls="", marker=runs.markers[b], ms=6, mfc="#777777", mec="none", label=b)
            for b in batches
        ]
    title = "condition / batch" if len(batches) > 1 else "condition"
    ax.legend(handles=handles, title=title, loc="best", fontsize=7)
    ax.text(0.0, -0.16, f"proteins {note}", transform=ax.transAxes, fontsize=6.5, color="#555555")
    k = min(len(explained), 8)
    scree.bar(np.arange(1, k + 1), 100 * explained[:k], color="#8c8c8c", width=0.7)
    scree.set_xticks(np.arange(1, k + 1))
    scree.set_xlabel("principal component")
    scree.set_ylabel("variance explained (%)")
    scree.set_title("Scree plot", loc="left")
    label_points(ax, scores[:, 0], pc2, order, obstacles_x=None, obstacles_y=None, fontsize=6.5)
    save(fig, path)


@styled
def correlation(abundance: pd.DataFrame, runs: Runs, path: Paths) -> None:
    """Heatmap of Pearson correlations of protein abundances between runs.

    Runs are grouped by condition (sheet order); coloured bars along both axes mark the
    conditions. Correlations use the proteins quantified in both runs.

    Parameters
    ----------
    abundance : pandas.DataFrame
        Long protein abundance table.
    runs : pepmix.plots.style.Runs
        Run order, conditions and colours.
    path : str, pathlib.Path or sequence of them
        Output file(s).
    """
    matrix = abundance_matrix(abundance, runs.order)
    order = list(matrix.columns)
    corr = matrix.corr(method="pearson", min_periods=3).to_numpy(dtype=float)
    n = len(order)
    size = max(4.8, 0.32 * n + 2.6)
    fig = new_figure(size + 1.0, size)
    ax = fig.add_subplot()
    off_diag = corr[~np.eye(n, dtype=bool)] if n > 1 else corr.ravel()
    finite = off_diag[np.isfinite(off_diag)]
    vmin = float(np.floor(np.min(finite) * 100) / 100) if len(finite) else 0.0
    vmax = float(np.ceil(np.max(finite) * 100) / 100) if len(finite) else 1.0
    vmin, vmax = min(vmin, 0.99), max(vmax, min(vmin, 0.99) + 0.01)
    shown = corr.copy()
    np.fill_diagonal(shown, np.nan)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#e8e8e8")
    image = ax.imshow(shown, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks(np.arange(n), order, rotation=90)
    ax.set_yticks(np.arange(n), order)
    color_tick_labels(ax.get_xticklabels(), runs)
    color_tick_labels(ax.get_yticklabels(), runs)
    ax.tick_params(length=0, pad=2)
    ax.xaxis.tick_top()
    for spine in ax.spines.values():
        spine.set_visible(False)
    colors = [runs.colors[runs.condition[r]] for r in order]
    strip = -0.5 - max(0.3, 0.012 * n)
    for i, color in enumerate(colors):
        ax.add_patch(_cell(strip, i - 0.5, -0.5 - strip - 0.08, 1.0, color))
        ax.add_patch(_cell(i - 0.5, strip, 1.0, -0.5 - strip - 0.08, color))
    ax.set_xlim(strip, n - 0.5)
    ax.set_ylim(n - 0.5, strip)
    if n <= 16:
        threshold = vmin + 0.6 * (vmax - vmin)
        for i in range(n):
            for j in range(n):
                if i != j and np.isfinite(corr[i, j]):
                    ax.text(
                        j,
                        i,
                        f"{corr[i, j]:.3f}".removeprefix("0"),
                        ha="center",
                        va="center",
                        fontsize=5.5,
                        color="black" if corr[i, j] > threshold else "white",
                        in_layout=False,
                    )
    bar = fig.colorbar(image, ax=ax, shrink=0.7, pad=0.02)
    bar.set_label("Pearson correlation (log2 abundance)")
    ax.set_xlabel(f"Run-to-run correlation ({matrix.shape[0]:,} proteins)", fontweight="bold")
    fig.legend(
        handles=legend_handles({c: runs.colors[c] for c in runs.conditions}, marker="s"),
        title="condition",
        loc="outside right upper",
    )
    save(fig, path)


def _cell(x: float, y: float, w: float, h: float, color: str) -> Rectangle:
    return Rectangle((x, y), w, h, facecolor=color, edgecolor="none", clip_on=False)


def cv_table(abundance: pd.DataFrame, runs: Runs, min_runs: int = 2) -> pd.DataFrame:
    """Coefficient of variation (%) of each protein within each condition.

    Computed on the linear scale (``2 ** abundance``) from the runs where the protein was
    quantified; proteins with fewer than ``min_runs`` values in a condition are skipped.

    Returns
    -------
    pandas.DataFrame
        ``protein``, ``condition``, ``cv`` (percent), ``n_runs``.
    """
    table = abundance.loc[:, ["protein", "run", "abundance"]].astype({"run": str})
    table = table.loc[table["abundance"].notna() & table["run"].isin(runs.order)]
    table = table.assign(
        condition=table["run"].map(runs.condition), linear=np.exp2(table["abundance"])
    )
    grouped = table.groupby(["protein", "condition"], observed=True)["linear"]
    stats = grouped.agg(["mean", "std", "count"]).reset_index()
    stats = stats.loc[stats["count"] >= min_runs]
    return pd.DataFrame(
        {
            "protein": stats["protein"].to_numpy(),
            "condition": stats["condition"].to_numpy(),
            "cv": 100.0 * (stats["std"] / stats["mean"]).to_numpy(),
            "n_runs": stats["count"].to_numpy(),
        }
    )


@styled
def cv(abundance: pd.DataFrame, runs: Runs, path: Paths) -> None:
    """Distribution of protein coefficients of variation within each condition.

    Violins with box plots; the median CV of each condition is printed above it. Low CVs mean
    reproducible replicates; a condition with clearly higher CVs has a problem run or sample.

    Parameters
    ----------
    abundance : pandas.DataFrame
        Long protein abundance table.
    runs : pepmix.plots.style.Runs
        Run order, conditions and colours.
    path : str, pathlib.Path or sequence of them
        Output file(s).
    """
    table = cv_table(abundance, runs)
    conditions = [c for c in runs.conditions if c in set(table["condition"])]
    fig = new_figure(max(4.5, 1.1 * len(conditions) + 2.2), 4.2)
    ax = fig.add_subplot()
    data = [table.loc[table["condition"] == c, "cv"].to_numpy(dtype=float) for c in conditions]
    positions = np.arange(1, len(conditions) + 1)
    top = float(np.percentile(np.concatenate(data), 99)) if data else 100.0
    if data:
        clipped = [np.minimum(d, top) for d in data]
        parts = ax.violinplot(clipped, positions=positions, widths=0.8, showextrema=False)
        for body, c in zip(cast("list[Any]", parts["bodies"]), conditions, strict=True):
            body.set_facecolor(runs.colors[c])
            body.set_alpha(0.55)
            body.set_edgecolor("none")
        ax.boxplot(
            clipped,
            positions=positions,
            widths=0.15,
            showfliers=False,
            patch_artist=True,
            boxprops={"facecolor": "white", "lw": 0.7},
            medianprops={"color": "black", "lw": 1.2},
            whiskerprops={"lw": 0.7},
            capprops={"lw": 0},
        )
        for x, d in zip(positions, data, strict=True):
            ax.text(
                float(x),
                top * 1.04,
                f"median {np.median(d):.1f}%\n{len(d):,} proteins",
                ha="center",
                va="bottom",
                fontsize=6.5,
                in_layout=False,
            )
    ax.set_ylim(0, top * 1.22)
    ax.set_xticks(positions, conditions)
    color_tick_labels(ax.get_xticklabels(), runs)
    for label, c in zip(ax.get_xticklabels(), conditions, strict=True):
        label.set_color(runs.colors[c])
    ax.set_xlabel("condition")
    ax.set_ylabel("CV of protein abundance (%)")
    ax.grid(axis="y", lw=0.4, alpha=0.4)
    ax.set_title("Coefficient of variation within conditions", loc="left")
    save(fig, path)
