"""Quality-control figures of the protein abundances: PCA, run correlation, CV per condition.

All functions take the long protein abundance table (``protein``, ``run``, ``abundance`` in log2;
one row per protein and run, missing abundances as NaN or absent rows) and a
:class:`~pepmix.plots.style.Runs`. The wide protein x run matrix is built from integer codes
(:func:`~pepmix.plots.aggregate.wide_matrix`), correlations come from masked matrix products,
and the figures adapt to many runs (no per-cell numbers, thinned run names, a few labelled
runs in the PCA).
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

from pepmix.plots.aggregate import codes_of, grouped_box_stats, position_codes, stats_dicts
from pepmix.plots.aggregate import wide_matrix as _wide_matrix
from pepmix.plots.labels import label_points
from pepmix.plots.style import (
    GUIDE,
    Runs,
    color_tick_labels,
    legend_handles,
    new_figure,
    run_axis_label,
    run_ticks,
    save,
    styled,
)

log = logging.getLogger(__name__)

Paths = str | Path | Sequence[str | Path]
FloatArray = NDArray[np.float64]

MAX_CELL_NUMBERS = 16
"""The correlation heatmap prints its coefficients up to this many runs."""

MAX_LABELLED_RUNS = 40
"""The PCA names every run up to this many runs; beyond, only :data:`OUTLYING_LABELS`."""

OUTLYING_LABELS = 8
"""Runs named in the PCA of many runs: those farthest from their condition's centre."""

MAX_HEATMAP_SIZE = 10.0
"""Largest height (inches) of the correlation heatmap."""


def abundance_matrix(
    abundance: pd.DataFrame, order: Sequence[str]
) -> tuple[FloatArray, list[str], list[str]]:
    """Wide protein x run matrix of log2 abundances (NaN where missing).

    Returns
    -------
    matrix : ndarray, shape (n_proteins, n_runs)
    proteins : list of str
        Sorted protein identifiers (rows).
    runs : list of str
        Runs of ``order`` present in the table, in that order (columns).
    """
    return _wide_matrix(abundance, "protein", "run", "abundance", order)


def pca_scores(matrix: FloatArray, max_missing: float = 0.0) -> tuple[FloatArray, FloatArray, int]:
    """PCA of runs (columns) on protein abundances (rows; proteins centred, no scaling).

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
    values = np.asarray(matrix, dtype=float)
    if values.shape[1] == 0:
        return np.zeros((0, 2)), np.zeros(2), 0
    keep = np.isnan(values).mean(axis=1) <= max_missing
    values = values[keep]
    ok = np.isfinite(values)
    counts = ok.sum(axis=1, keepdims=True)
    sums = np.where(ok, values, 0.0).sum(axis=1, keepdims=True)
    means = sums / np.maximum(counts, 1)
    centred = np.where(ok, values - means, 0.0)
    if centred.shape[0] < 2 or centred.shape[1] < 2:
        return np.zeros((centred.shape[1], 2)), np.zeros(2), int(centred.shape[0])
    # eigen-decomposition of the small run x run Gram matrix (as the SVD of the runs x proteins
    # matrix, at a fraction of the cost for thousands of proteins)
    gram = centred.T @ centred
    eigval, eigvec = np.linalg.eigh(gram)
    rank = np.argsort(-eigval, kind="stable")
    s = np.sqrt(np.clip(eigval[rank], 0.0, None))
    scores = eigvec[:, rank] * s
    # fix the sign (largest loading of each component positive) for stable output
    signs = np.sign(scores[np.argmax(np.abs(scores), axis=0), np.arange(scores.shape[1])])
    scores = scores * np.where(signs == 0, 1.0, signs)
    explained = s**2 / max(float(np.sum(s**2)), 1e-300)
    return scores, explained, int(centred.shape[0])


def outlying_runs(
    scores: FloatArray, groups: Sequence[str], k: int = OUTLYING_LABELS
) -> NDArray[np.intp]:
    """Indices of the ``k`` runs farthest from the median of their group (2-D scores).

    Each axis is scaled by its standard deviation over runs, so both components count.
    Returned in run order; ties broken by run order.
    """
    xy = np.asarray(scores, dtype=float)[:, :2]
    if len(xy) == 0:
        return np.zeros(0, dtype=np.intp)
    scale = xy.std(axis=0)
    xy = xy / np.where(scale > 0, scale, 1.0)
    names = np.asarray(list(groups), dtype=object)
    distance = np.zeros(len(xy))
    for group in dict.fromkeys(groups):
        members = names == group
        centre = np.median(xy[members], axis=0)
        distance[members] = np.hypot(*(xy[members] - centre).T)
    chosen = np.argsort(-distance, kind="stable")[: max(k, 0)]
    return np.sort(chosen)


@styled
def pca(abundance: pd.DataFrame, runs: Runs, path: Paths) -> None:
    """PCA of the runs on protein abundances, coloured by condition and marked by batch.

    Uses proteins quantified in every run (or, if fewer than 50 are, those missing in at most
    a quarter of the runs, gaps filled with the protein mean). Left: first two components with
    run labels (beyond :data:`MAX_LABELLED_RUNS` runs only the :data:`OUTLYING_LABELS` runs
    farthest from their condition's centre are named); right: variance explained by each
    component.

    Parameters
    ----------
    abundance : pandas.DataFrame
        Long protein abundance table (``protein``, ``run``, ``abundance``).
    runs : pepmix.plots.style.Runs
        Run order, conditions, colours and batch markers.
    path : str, pathlib.Path or sequence of them
        Output file(s).
    """
    matrix, _, order = abundance_matrix(abundance, runs.order)
    n = len(order)
    scores, explained, n_used = pca_scores(matrix, 0.0)
    note = "without missing values"
    if n_used < 50:
        scores, explained, n_used = pca_scores(matrix, 0.25)
        note = "missing in at most 25% of runs, gaps filled with the protein mean"
    fig = new_figure(8.6, 4.4)
    ax, scree = fig.subplots(1, 2, width_ratios=[2.4, 1])
    pc1 = scores[:, 0] if scores.shape[1] else np.zeros(n)
    pc2 = scores[:, 1] if scores.shape[1] > 1 else np.zeros(n)
    size = 46.0 if n <= MAX_LABELLED_RUNS else max(14.0, 46.0 * np.sqrt(MAX_LABELLED_RUNS / n))
    groups: dict[tuple[str, str], list[int]] = {}
    for i, run in enumerate(order):
        groups.setdefault((runs.condition[run], runs.batch[run]), []).append(i)
    for (condition, batch), members in groups.items():
        ax.scatter(
            pc1[members],
            pc2[members],
            s=size,
            color=runs.colors[condition],
            marker=runs.markers.get(batch, "o"),
            edgecolors="white",
            linewidths=0.6 if n <= MAX_LABELLED_RUNS else 0.4,
            zorder=3,
        )
    ax.axhline(0, lw=0.5, color=GUIDE, alpha=0.5, zorder=0)
    ax.axvline(0, lw=0.5, color=GUIDE, alpha=0.5, zorder=0)
    ax.set_xlabel(f"PC1 ({100 * explained[0]:.1f}% of variance)")
    ax.set_ylabel(f"PC2 ({100 * explained[1]:.1f}% of variance)" if len(explained) > 1 else "PC2")
    ax.set_title(f"PCA of {n} runs on {n_used:,} proteins", loc="left")
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
    if n > MAX_LABELLED_RUNS:
        labelled = outlying_runs(np.column_stack([pc1, pc2]), [runs.condition[r] for r in order])
        note += f"; named: the {len(labelled)} runs farthest from their condition's centre"
    else:
        labelled = np.arange(n)
    ax.text(0.0, -0.16, f"proteins {note}", transform=ax.transAxes, fontsize=6.5, color="#555555")
    k = min(len(explained), 8)
    scree.bar(np.arange(1, k + 1), 100 * explained[:k], color="#8c8c8c", width=0.7)
    scree.set_xticks(np.arange(1, k + 1))
    scree.set_xlabel("principal component")
    scree.set_ylabel("variance explained (%)")
    scree.set_title("Scree plot", loc="left")
    others = np.setdiff1d(np.arange(n), labelled)
    label_points(
        ax,
        pc1[labelled],
        pc2[labelled],
        [order[i] for i in labelled],
        obstacles_x=pc1[others] if len(others) else None,
        obstacles_y=pc2[others] if len(others) else None,
        fontsize=6.5,
    )
    save(fig, path)


def run_correlation(matrix: FloatArray, min_periods: int = 3) -> FloatArray:
    """Pearson correlation of every pair of columns over the rows observed in both.

    Pairwise-complete like :meth:`pandas.DataFrame.corr`, but from five masked matrix products
    instead of a loop over pairs: with ``M`` the observed mask and ``Z`` the column-centred
    values (0 where missing), the sums over the common rows of each pair are ``M'M`` (count),
    ``Z'M`` (sum of x), ``(Z*Z)'M`` (sum of x²) and ``Z'Z`` (sum of xy).

    Parameters
    ----------
    matrix : ndarray, shape (n_rows, n_columns)
        Values, NaN where missing.
    min_periods : int, default 3
        Pairs with fewer common rows get NaN.

    Returns
    -------
    ndarray, shape (n_columns, n_columns)
        Correlations (NaN where undefined).
    """
    x = np.asarray(matrix, dtype=float)
    ok = np.isfinite(x)
    mask = ok.astype(float)
    counts = ok.sum(axis=0)
    centre = np.where(ok, x, 0.0).sum(axis=0) / np.maximum(counts, 1)
    z = np.where(ok, x - centre, 0.0)
    n = mask.T @ mask
    sx = z.T @ mask  # [i, j]: sum of column i over the rows observed in both i and j
    sxx = (z * z).T @ mask
    sxy = z.T @ z
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = sxy - sx * sx.T / n
        var_x = sxx - sx * sx / n
        denom = np.sqrt(var_x * var_x.T)
        corr = np.where((n >= max(min_periods, 2)) & (denom > 0), cov / denom, np.nan)
    out: FloatArray = np.clip(corr, -1.0, 1.0)
    return out


def _blocks(labels: Sequence[str]) -> list[tuple[int, int, str]]:
    """Runs of equal consecutive labels as ``(start, stop, label)``."""
    out: list[tuple[int, int, str]] = []
    for i, label in enumerate(labels):
        if out and out[-1][2] == label:
            out[-1] = (out[-1][0], i + 1, label)
        else:
            out.append((i, i + 1, label))
    return out


@styled
def correlation(abundance: pd.DataFrame, runs: Runs, path: Paths) -> None:
    """Heatmap of Pearson correlations of protein abundances between runs.

    Runs are grouped by condition (sheet order); coloured bars along both axes mark the
    conditions. Correlations use the proteins quantified in both runs
    (:func:`run_correlation`). Up to :data:`MAX_CELL_NUMBERS` runs each cell shows its value;
    with many runs the figure stops growing at :data:`MAX_HEATMAP_SIZE` inches and only every
    k-th run is named.

    Parameters
    ----------
    abundance : pandas.DataFrame
        Long protein abundance table.
    runs : pepmix.plots.style.Runs
        Run order, conditions and colours.
    path : str, pathlib.Path or sequence of them
        Output file(s).
    """
    matrix, _, order = abundance_matrix(abundance, runs.order)
    corr = run_correlation(matrix, min_periods=3)
    n = len(order)
    size = min(max(4.8, 0.32 * n + 2.6), MAX_HEATMAP_SIZE)
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
    positions = np.arange(n, dtype=float).tolist()
    length = size - 2.2
    # a heatmap's rows are easy to follow across: name fewer of them than a bar chart does
    stride = run_ticks(ax, positions, order, runs, length, axis="x", spacing=3.0)
    run_ticks(ax, positions, order, runs, length, axis="y", spacing=3.0)
    ax.tick_params(length=0, pad=2)
    ax.xaxis.tick_top()
    for spine in ax.spines.values():
        spine.set_visible(False)
    strip = -0.5 - max(0.3, 0.012 * n)
    for start, stop, condition in _blocks([runs.condition[r] for r in order]):
        color = runs.colors[condition]
        ax.add_patch(_cell(strip, start - 0.5, -0.5 - strip - 0.08, stop - start, color))
        ax.add_patch(_cell(start - 0.5, strip, stop - start, -0.5 - strip - 0.08, color))
    ax.set_xlim(strip, n - 0.5)
    ax.set_ylim(n - 0.5, strip)
    if n <= MAX_CELL_NUMBERS:
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
    title = f"Run-to-run correlation ({matrix.shape[0]:,} proteins)"
    if stride > 1:
        title += f"\n{run_axis_label(n, stride, 'runs')}"
    ax.set_xlabel(title, fontweight="bold")
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
    Means and standard deviations (two passes) come from :func:`numpy.bincount` on
    protein x condition codes.

    Returns
    -------
    pandas.DataFrame
        ``protein``, ``condition``, ``cv`` (percent), ``n_runs``; sorted by protein, then
        condition in sheet order.
    """
    conditions = runs.conditions
    run_pos = position_codes(abundance["run"], runs.order)
    cond_of_run = np.array(
        [conditions.index(runs.condition[r]) for r in runs.order] + [-1], dtype=np.intp
    )
    condition = cond_of_run[run_pos]
    protein, proteins = codes_of(abundance["protein"])
    values = abundance["abundance"].to_numpy(dtype=float, na_value=np.nan)
    keep = (condition >= 0) & (protein >= 0) & np.isfinite(values)
    n_cond = max(len(conditions), 1)
    key = protein[keep] * n_cond + condition[keep]
    linear = np.exp2(values[keep])
    size = max(len(proteins), 1) * n_cond
    count = np.bincount(key, minlength=size)
    mean = np.bincount(key, weights=linear, minlength=size) / np.maximum(count, 1)
    squares = np.bincount(key, weights=(linear - mean[key]) ** 2, minlength=size)
    use = np.flatnonzero(count >= max(min_runs, 2))
    sd = np.sqrt(squares[use] / (count[use] - 1))
    names = np.asarray([str(p) for p in proteins[use // n_cond]], dtype=object)
    table = pd.DataFrame(
        {
            "protein": names,
            "condition": np.asarray(conditions, dtype=object)[use % n_cond],
            "cv": 100.0 * sd / mean[use],
            "n_runs": count[use],
        }
    )
    rank = np.argsort(names.astype(str), kind="stable") if len(names) else np.zeros(0, int)
    return table.iloc[rank].reset_index(drop=True)


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
    present = set(table["condition"])
    conditions = [c for c in runs.conditions if c in present]
    fig = new_figure(max(4.5, 1.1 * len(conditions) + 2.2), 4.2)
    ax = fig.add_subplot()
    values = table["cv"].to_numpy(dtype=float)
    index = {c: i for i, c in enumerate(conditions)}
    which = np.asarray(table["condition"].map(index).to_numpy(dtype=np.intp), dtype=np.intp)
    data = [values[which == i] for i in range(len(conditions))]
    positions = np.arange(1, len(conditions) + 1)
    top = float(np.percentile(values, 99)) if len(values) else 100.0
    if data:
        clipped = [np.minimum(d, top) for d in data]
        parts = ax.violinplot(clipped, positions=positions, widths=0.8, showextrema=False)
        for body, c in zip(cast("list[Any]", parts["bodies"]), conditions, strict=True):
            body.set_facecolor(runs.colors[c])
            body.set_alpha(0.55)
            body.set_edgecolor("none")
        stats = grouped_box_stats(np.minimum(values, top), which, len(conditions))
        ax.bxp(
            stats_dicts(stats),
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
