"""Figures of the differential abundance results, one contrast at a time: volcano, MA, p-values.

Significant proteins are coloured by direction in two colours of the Okabe-Ito palette that stay
distinct with every common colour-vision deficiency (Okabe & Ito 2008; Wong 2011, Nature Methods
8:441): vermillion for higher in the numerator (up), blue for higher in the denominator (down).
Each figure is drawn by a ``*_figure`` function that returns the
:class:`~matplotlib.figure.Figure` (tests inspect its artists); the function without the suffix
draws it and writes the files.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from numpy.typing import NDArray

from pepmix.plots.labels import label_points
from pepmix.plots.style import GUIDE, NEUTRAL, new_figure, save, short_name, styled

log = logging.getLogger(__name__)

Paths = str | Path | Sequence[str | Path]

UP = "#D55E00"
"""Colour of proteins significantly higher in the numerator (Okabe-Ito vermillion)."""

DOWN = "#0072B2"
"""Colour of proteins significantly higher in the denominator (Okabe-Ito blue)."""

RASTER_POINTS = 2000
"""Point layers larger than this are rasterised in vector output (PDF, SVG) at the figure
resolution: a vector PDF with ten thousand markers is slow to write and to view, and looks
the same."""


def contrast_rows(table: pd.DataFrame, contrast: str) -> pd.DataFrame:
    """Rows of one contrast with a finite p-value and fold change (the tested proteins)."""
    part = table.loc[table["contrast"].astype(str) == contrast]
    tested = np.isfinite(part["pvalue"].to_numpy(dtype=float)) & np.isfinite(
        part["log2fc"].to_numpy(dtype=float)
    )
    rows: pd.DataFrame = part.loc[tested].reset_index(drop=True)
    return rows


def top_proteins(part: pd.DataFrame, n: int, fdr: float | None = None) -> pd.DataFrame:
    """The ``n`` most significant rows (adjusted p, then p, then protein id; stable order).

    With ``fdr`` given, only rows with ``adj_pvalue < fdr`` qualify.
    """
    rows = part if fdr is None else part.loc[part["adj_pvalue"] < fdr]
    keyed = rows.assign(_abs=-rows["log2fc"].abs())
    keyed = keyed.sort_values(["adj_pvalue", "pvalue", "_abs", "protein"], kind="mergesort")
    return keyed.head(max(n, 0)).drop(columns="_abs")


def significant(
    part: pd.DataFrame, fdr: float, lfc_threshold: float = 0.0
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Masks of proteins significantly up and down: adjusted p < ``fdr`` and beyond the threshold.

    Parameters
    ----------
    part : pandas.DataFrame
        Rows of one contrast (``log2fc``, ``adj_pvalue``).
    fdr : float
        Adjusted p-value threshold.
    lfc_threshold : float, default 0.0
        Minimum absolute log2 fold change (0: none).
    """
    sig = (part["adj_pvalue"] < fdr).to_numpy()
    lfc = part["log2fc"].to_numpy(dtype=float)
    if lfc_threshold > 0:
        sig = sig & (np.abs(lfc) > lfc_threshold)  # to_numpy() may be read-only
    return sig & (lfc > 0), sig & (lfc < 0)


def untested_note(table: pd.DataFrame, contrast: str) -> str:
    """``"1,222 proteins tested; 620 filtered"``: tested rows and the others by status.

    Parameters
    ----------
    table : pandas.DataFrame
        Differential abundance table (all contrasts; ``status`` optional).
    contrast : str
        The contrast.
    """
    part = table.loc[table["contrast"].astype(str) == contrast]
    tested = np.isfinite(part["pvalue"].to_numpy(dtype=float)) & np.isfinite(
        part["log2fc"].to_numpy(dtype=float)
    )
    note = f"{int(tested.sum()):,} proteins tested"
    rest = part.loc[~tested]
    if rest.empty:
        return note
    if "status" not in rest.columns:
        return f"{note}; {len(rest):,} not tested"
    counts = rest["status"].astype(str).value_counts()
    order = sorted(counts.index, key=lambda k: (-int(counts[k]), k))
    words = {"one_condition_missing": "missing in one condition"}
    parts = (f"{int(counts[k]):,} {words.get(k, k.replace('_', ' '))}" for k in order)
    return f"{note}; " + ", ".join(parts)


def significance_rule(fdr: float, lfc_threshold: float = 0.0) -> str:
    """``"adj. p < 0.05"``, with ``" and |log2 FC| > 1"`` when a threshold is set."""
    rule = f"adj. p < {fdr:g}"
    return rule + (f" and |log2 FC| > {lfc_threshold:g}" if lfc_threshold > 0 else "")


def direction_labels(
    up: NDArray[np.bool_], down: NDArray[np.bool_], numerator: str, denominator: str
) -> tuple[str, str, str]:
    """Legend entries ``"58 up (higher in A)"``, ``"3 down (higher in B)"`` and
    ``"1,161 not significant"``."""
    rest = int((~(up | down)).sum())
    return (
        f"{int(up.sum()):,} up (higher in {numerator})",
        f"{int(down.sum()):,} down (higher in {denominator})",
        f"{rest:,} not significant",
    )


def _scatter_classes(
    ax: Axes,
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    up: NDArray[np.bool_],
    down: NDArray[np.bool_],
    numerator: str,
    denominator: str,
) -> None:
    """Three point layers with ``gid`` ``"not significant"``, ``"up"``, ``"down"`` (in order)."""
    rest = ~(up | down)
    up_label, down_label, rest_label = direction_labels(up, down, numerator, denominator)
    groups = (
        ("not significant", rest, 7, NEUTRAL, 0.5, rest_label),
        ("up", up, 12, UP, 0.9, up_label),
        ("down", down, 12, DOWN, 0.9, down_label),
    )
    for gid, mask, size, color, alpha, label in groups:
        layer = ax.scatter(
            x[mask],
            y[mask],
            s=size,
            c=color,
            alpha=alpha,
            lw=0,
            label=label,
            rasterized=bool(mask.sum() > RASTER_POINTS),
        )
        layer.set_gid(gid)


def _fc_guides(ax: Axes, lfc_threshold: float, vertical: bool = True) -> None:
    """Dotted lines at ``±lfc_threshold`` (none when it is 0), labelled once."""
    if lfc_threshold <= 0:
        return
    for v in (-lfc_threshold, lfc_threshold):
        if vertical:
            ax.axvline(v, ls=":", lw=0.8, c=GUIDE, zorder=0, gid="lfc_threshold")
        else:
            ax.axhline(v, ls=":", lw=0.8, c=GUIDE, zorder=0, gid="lfc_threshold")
    where = (lfc_threshold, 1.0) if vertical else (1.0, lfc_threshold)
    coords = ("data", "axes fraction") if vertical else ("axes fraction", "data")
    ax.annotate(
        f"|log2 FC| = {lfc_threshold:g}",
        where,
        xycoords=coords,
        xytext=(2, -2) if vertical else (-2, 2),
        textcoords="offset points",
        ha="left" if vertical else "right",
        va="top" if vertical else "bottom",
        fontsize=6.5,
        color=GUIDE,
        in_layout=False,
    )


def _fdr_line(ax: Axes, pvalues: NDArray[np.float64], sig: NDArray[np.bool_], fdr: float) -> None:
    """Dashed line at the largest p-value still significant (none without significant ones)."""
    if not sig.any():
        return
    cut = float(np.max(pvalues[sig]))
    ax.axhline(-np.log10(cut), ls="--", lw=0.8, c=GUIDE, zorder=0)
    ax.annotate(
        f"adj. p = {fdr:g}",
        (1.0, -np.log10(cut)),
        xycoords=("axes fraction", "data"),
        xytext=(-2, 2),
        textcoords="offset points",
        ha="right",
        va="bottom",
        fontsize=6.5,
        color=GUIDE,
        in_layout=False,
    )


def _legend(fig: Figure, note: str, rule: str, ncols: int) -> None:
    fig.legend(
        loc="outside lower center",
        ncols=ncols,
        markerscale=1.6,
        title=f"{note}. Significant: {rule}",
    )


@styled
def volcano_figure(
    table: pd.DataFrame,
    contrast: str,
    numerator: str,
    denominator: str,
    fdr: float = 0.05,
    lfc_threshold: float = 0.0,
    n_labels: int = 12,
) -> Figure:
    """Volcano plot of one contrast: log2 fold change against -log10 p-value.

    Proteins significant at adjusted p < ``fdr`` (and beyond ``lfc_threshold``) are coloured by
    direction (:data:`UP`, :data:`DOWN`). The dashed line is the largest p-value still
    significant after the adjustment; dotted lines mark ``±lfc_threshold`` when it is set. The
    legend gives the tested proteins, the untested ones by status, and the counts up and down.
    The ``n_labels`` most significant proteins are labelled without overlaps.

    Parameters
    ----------
    table : pandas.DataFrame
        Differential abundance table (``protein``, ``contrast``, ``log2fc``, ``pvalue``,
        ``adj_pvalue``, ``status``; all contrasts).
    contrast : str
        Contrast to draw.
    numerator, denominator : str
        Its conditions.
    fdr : float, default 0.05
        Adjusted p-value threshold.
    lfc_threshold : float, default 0.0
        Fold-change threshold of the test (log2; 0: none, no lines).
    n_labels : int, default 12
        Number of labelled proteins.

    Returns
    -------
    matplotlib.figure.Figure
        The figure, laid out; its point layers have ``gid`` ``"not significant"``, ``"up"`` and
        ``"down"``.
    """
    part = contrast_rows(table, contrast)
    fig = new_figure(6.6, 5.8)
    ax = fig.add_subplot()
    x = part["log2fc"].to_numpy(dtype=float)
    y = -np.log10(np.maximum(part["pvalue"].to_numpy(dtype=float), 1e-300))
    up, down = significant(part, fdr, lfc_threshold)
    _scatter_classes(ax, x, y, up, down, numerator, denominator)
    _fdr_line(ax, part["pvalue"].to_numpy(dtype=float), up | down, fdr)
    _fc_guides(ax, lfc_threshold)
    span = float(np.nanmax(np.abs(x))) if len(x) else 1.0
    span = max(span, lfc_threshold, 0.5) * 1.08
    ax.set_xlim(-span, span)
    ax.set_ylim(0, (float(np.max(y)) if len(y) else 1.0) * 1.06 + 0.1)
    ax.set_xlabel(f"log2 fold change ({numerator} / {denominator})")
    ax.set_ylabel("−log10 p-value")
    ax.set_title(f"Volcano plot: {contrast}", loc="left")
    _legend(fig, untested_note(table, contrast), significance_rule(fdr, lfc_threshold), 3)
    top = top_proteins(part.assign(_y=y), n_labels, fdr=fdr)
    if top.empty:
        top = top_proteins(part.assign(_y=y), min(n_labels, 5))
    label_points(
        ax,
        top["log2fc"].to_numpy(dtype=float),
        top["_y"].to_numpy(dtype=float),
        [short_name(str(p)) for p in top["protein"]],
        obstacles_x=x,
        obstacles_y=y,
    )
    return fig


@styled
def volcano(
    table: pd.DataFrame,
    contrast: str,
    numerator: str,
    denominator: str,
    path: Paths,
    fdr: float = 0.05,
    lfc_threshold: float = 0.0,
    n_labels: int = 12,
) -> Figure:
    """Draw :func:`volcano_figure` and write it to ``path`` (one file per format); returns it."""
    fig = volcano_figure(table, contrast, numerator, denominator, fdr, lfc_threshold, n_labels)
    save(fig, path)
    return fig


@styled
def ma_figure(
    table: pd.DataFrame,
    means: pd.Series,
    contrast: str,
    numerator: str,
    denominator: str,
    fdr: float = 0.05,
    lfc_threshold: float = 0.0,
    n_labels: int = 6,
) -> Figure:
    """MA plot of one contrast: log2 fold change against mean log2 abundance.

    The black line is the running median of the fold changes along the abundance axis; it should
    stay at zero (a trend points to intensity-dependent normalisation problems). Colours and
    legend as in :func:`volcano_figure`; proteins without a mean abundance are left out (and
    counted in the legend).

    Parameters
    ----------
    table : pandas.DataFrame
        Differential abundance table (all contrasts).
    means : pandas.Series
        Mean log2 abundance of each protein in the two conditions (index: protein).
    contrast, numerator, denominator : str
        Contrast and its conditions.
    fdr : float, default 0.05
        Adjusted p-value threshold.
    lfc_threshold : float, default 0.0
        Fold-change threshold of the test (log2; 0: none, no lines).
    n_labels : int, default 6
        Number of labelled proteins.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (point layers with ``gid`` as in :func:`volcano_figure`).
    """
    part = contrast_rows(table, contrast)
    a = part["protein"].astype(str).map(means).to_numpy(dtype=float)
    keep = np.isfinite(a)
    part, a = part.loc[keep].reset_index(drop=True), a[keep]
    m = part["log2fc"].to_numpy(dtype=float)
    fig = new_figure(6.6, 5.2)
    ax = fig.add_subplot()
    up, down = significant(part, fdr, lfc_threshold)
    _scatter_classes(ax, a, m, up, down, numerator, denominator)
    ax.axhline(0, lw=0.7, c=GUIDE, zorder=0)
    _fc_guides(ax, lfc_threshold, vertical=False)
    if len(a) >= 20:
        centres, medians = _running_median(a, m)
        ax.plot(centres, medians, color="black", lw=1.2, label="running median")
    ax.set_xlabel(f"mean log2 abundance ({numerator}, {denominator})")
    ax.set_ylabel(f"log2 fold change ({numerator} / {denominator})")
    span = max(float(np.nanmax(np.abs(m))) if len(m) else 1.0, lfc_threshold, 0.5) * 1.08
    ax.set_ylim(-span, span)
    ax.set_title(f"MA plot: {contrast}", loc="left")
    note = untested_note(table, contrast)
    if not keep.all():
        note += f" ({int((~keep).sum()):,} without a mean abundance, not drawn)"
    _legend(fig, note, significance_rule(fdr, lfc_threshold), 2)
    top = top_proteins(part.assign(_a=a), n_labels, fdr=fdr)
    label_points(
        ax,
        top["_a"].to_numpy(dtype=float),
        top["log2fc"].to_numpy(dtype=float),
        [short_name(str(p)) for p in top["protein"]],
        obstacles_x=a,
        obstacles_y=m,
    )
    return fig


@styled
def ma_plot(
    table: pd.DataFrame,
    means: pd.Series,
    contrast: str,
    numerator: str,
    denominator: str,
    path: Paths,
    fdr: float = 0.05,
    lfc_threshold: float = 0.0,
    n_labels: int = 6,
) -> Figure:
    """Draw :func:`ma_figure` and write it to ``path`` (one file per format); returns it."""
    fig = ma_figure(table, means, contrast, numerator, denominator, fdr, lfc_threshold, n_labels)
    save(fig, path)
    return fig


def _running_median(
    x: NDArray[np.float64], y: NDArray[np.float64], n_bins: int = 20
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    edges = np.unique(np.quantile(x, np.linspace(0, 1, n_bins + 1)))
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
    centres = np.array([np.median(x[which == b]) for b in range(len(edges) - 1)])
    medians = np.array([np.median(y[which == b]) for b in range(len(edges) - 1)])
    return centres, medians


def storey_pi0(pvalues: NDArray[np.float64], lam: float = 0.5) -> float:
    """Storey's estimate of the share of true null hypotheses, ``#(p > lam) / (n (1 - lam))``."""
    if len(pvalues) == 0:
        return 1.0
    share = float(np.mean(pvalues > lam)) / (1.0 - lam)
    return min(1.0, share)


@styled
def pvalue_figure(
    table: pd.DataFrame, contrast: str, fdr: float = 0.05, n_bins: int = 40
) -> Figure:
    """Histogram of the p-values of one contrast.

    Under the null hypothesis p-values are uniform: a flat histogram with a peak at 0 (the
    differentially abundant proteins) is what a well-calibrated test gives. The dashed line is
    the flat level of the true nulls estimated by Storey's method (lambda = 0.5). A slope or a
    bump towards 1 points to a misspecified model or a violated assumption.

    Parameters
    ----------
    table : pandas.DataFrame
        Differential abundance table (all contrasts).
    contrast : str
        Contrast to draw.
    fdr : float, default 0.05
        Adjusted p-value threshold (for the count in the title).
    n_bins : int, default 40
        Number of bins on [0, 1].

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    part = contrast_rows(table, contrast)
    p = part["pvalue"].to_numpy(dtype=float)
    fig = new_figure(5.6, 3.8)
    ax = fig.add_subplot()
    ax.hist(
        p, bins=np.linspace(0, 1, n_bins + 1).tolist(), color="#8c8c8c", edgecolor="white", lw=0.4
    )
    pi0 = storey_pi0(p)
    level = pi0 * len(p) / n_bins
    ax.axhline(level, ls="--", lw=0.9, c="black")
    ax.text(
        0.99,
        0.97,
        f"dashed line: estimated share of\nunchanged proteins π0 = {pi0:.2f}",
        transform=ax.transAxes,
        ha="right",
        va="top",
        fontsize=7,
        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 2},
        in_layout=False,
    )
    n_sig = int((part["adj_pvalue"] < fdr).sum())
    ax.set_xlim(0, 1)
    ax.set_xlabel("p-value")
    ax.set_ylabel("proteins")
    ax.set_title(
        f"p-values: {contrast} ({len(p):,} tested, {n_sig:,} at adj. p < {fdr:g})", loc="left"
    )
    return fig


@styled
def pvalue_histogram(
    table: pd.DataFrame, contrast: str, path: Paths, fdr: float = 0.05, n_bins: int = 40
) -> Figure:
    """Draw :func:`pvalue_figure` and write it to ``path`` (one file per format); returns it."""
    fig = pvalue_figure(table, contrast, fdr, n_bins)
    save(fig, path)
    return fig
