"""Status summary: how many proteins got each status, and how many are significant, per contrast."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from pepmix.plots.results import DOWN, UP, contrast_rows, significance_rule, significant
from pepmix.plots.style import new_figure, save, styled

log = logging.getLogger(__name__)

Paths = str | Path | Sequence[str | Path]

STATUS_ORDER = (
    "ok",
    "boundary",
    "reduced_model",
    "one_condition_missing",
    "too_few_observations",
    "not_estimable",
    "filtered",
)
"""Known statuses, tested ones first; others follow alphabetically."""

TESTED = ("ok", "boundary", "reduced_model")


def status_counts(table: pd.DataFrame, contrasts: Sequence[str]) -> pd.DataFrame:
    """Number of proteins per status (rows) and contrast (columns)."""
    part = table.loc[table["contrast"].astype(str).isin(contrasts)]
    counts = pd.crosstab(part["status"].astype(str), part["contrast"].astype(str))
    known = [s for s in STATUS_ORDER if s in counts.index]
    other = sorted(s for s in counts.index if s not in STATUS_ORDER)
    return counts.reindex(index=known + other, columns=list(contrasts), fill_value=0)


@styled
def status_figure(
    table: pd.DataFrame,
    contrasts: Sequence[tuple[str, str, str]],
    fdr: float = 0.05,
    lfc_threshold: float = 0.0,
) -> Figure:
    """Proteins per status and contrast (table heatmap) and significant proteins per contrast.

    Left: the count of proteins of each status (columns) in each contrast (rows); ``ok``,
    ``boundary`` and ``reduced_model`` were tested, the others have no p-value (``filtered``:
    removed by the filters before the model). The panel keeps a legible width with a single
    status. Right: proteins significant at adjusted p < ``fdr``, higher in the numerator (right,
    :data:`~pepmix.plots.results.UP`) or the denominator (left,
    :data:`~pepmix.plots.results.DOWN`), the colours of the volcano plots.

    Parameters
    ----------
    table : pandas.DataFrame
        Differential abundance table (``protein``, ``contrast``, ``status``, ``log2fc``,
        ``adj_pvalue``).
    contrasts : sequence of (name, numerator, denominator)
        Contrasts in display order.
    fdr : float, default 0.05
        Adjusted p-value threshold.
    lfc_threshold : float, default 0.0
        Minimum absolute log2 fold change of a significant protein.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (left axes: the counts as texts; right axes: bars with ``gid`` ``"up"`` and
        ``"down"``).
    """
    names = [c[0] for c in contrasts]
    counts = status_counts(table, names).T  # contrasts x statuses
    n_contrast, n_status = counts.shape
    left_width = max(2.4, 0.8 * n_status)
    fig = new_figure(left_width + 5.6, max(2.6, 0.42 * n_contrast + 1.7))
    left, right = fig.subplots(1, 2, sharey=True, width_ratios=[left_width, 3.0])
    _status_table(left, counts)
    most = 1
    for k, (name, num, den) in enumerate(contrasts):
        up_mask, down_mask = significant(contrast_rows(table, name), fdr, lfc_threshold)
        up, down = int(up_mask.sum()), int(down_mask.sum())
        most = max(most, up, down)
        right.barh(k, up, color=UP, height=0.6, gid="up")
        right.barh(k, -down, color=DOWN, height=0.6, gid="down")
        for value, text, sign in (
            (up, f"{up:,} higher in {num}", 1),
            (down, f"{down:,} higher in {den}", -1),
        ):
            right.annotate(
                text,
                (sign * value, k),
                xytext=(3 * sign, 0),
                textcoords="offset points",
                va="center",
                ha="left" if sign > 0 else "right",
                fontsize=6.5,
                in_layout=False,
            )
    right.set_xlim(-2.6 * most, 2.6 * most)
    right.axvline(0, color="black", lw=0.7)
    right.set_ylim(n_contrast - 0.5, -0.5)
    right.tick_params(axis="y", left=False, labelleft=False)
    right.spines["left"].set_visible(False)
    right.set_xlabel("significant proteins")
    right.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{abs(v):g}"))
    right.set_title(f"Significant at {significance_rule(fdr, lfc_threshold)}", loc="left")
    return fig


def _status_table(ax: Axes, counts: pd.DataFrame) -> None:
    """Counts (contrasts x statuses) as a shaded table; untested statuses in red."""
    n_contrast, n_status = counts.shape
    values = counts.to_numpy(dtype=float)
    top = max(float(np.log10(values.max() + 1.0)), 1.0) if values.size else 1.0
    shade = 0.08 + 0.5 * np.log10(values + 1.0) / top  # light blues: black text stays legible
    ax.imshow(shade, cmap="Blues", aspect="auto", vmin=0, vmax=1, interpolation="nearest")
    for i in range(n_contrast):
        for j in range(n_status):
            ax.text(
                j,
                i,
                f"{int(values[i, j]):,}",
                ha="center",
                va="center",
                fontsize=7,
                in_layout=False,
            )
    labels = [str(c).replace("_", " ") for c in counts.columns]
    rotation = 0 if n_status <= 2 else 30
    ax.set_xticks(
        np.arange(n_status), labels, rotation=rotation, ha="right" if rotation else "center"
    )
    for label, status in zip(ax.get_xticklabels(), counts.columns, strict=True):
        if str(status) not in TESTED:
            label.set_color("#b03a2e")
    ax.set_yticks(np.arange(n_contrast), list(counts.index))
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title("Proteins per status", loc="left")
    if any(str(s) not in TESTED for s in counts.columns):
        ax.set_xlabel("red: not tested", color="#b03a2e", fontsize=7)


@styled
def status_summary(
    table: pd.DataFrame,
    contrasts: Sequence[tuple[str, str, str]],
    path: Paths,
    fdr: float = 0.05,
    lfc_threshold: float = 0.0,
) -> Figure:
    """Draw :func:`status_figure` and write it to ``path`` (one file per format); returns it."""
    fig = status_figure(table, contrasts, fdr, lfc_threshold)
    save(fig, path)
    return fig
