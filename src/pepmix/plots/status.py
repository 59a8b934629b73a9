"""Status summary: how many proteins got each status, and how many are significant, per contrast."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

from pepmix.plots.results import contrast_rows, significant
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
def status_summary(
    table: pd.DataFrame,
    contrasts: Sequence[tuple[str, str, str]],
    colors: Mapping[str, str],
    path: Paths,
    fdr: float = 0.05,
    lfc_threshold: float = 0.0,
) -> None:
    """Proteins per status and contrast (table heatmap) and significant proteins per contrast.

    Left: the count of proteins of each status (columns) in each contrast (rows); ``ok``,
    ``boundary`` and ``reduced_model`` were tested, the others have no p-value (``filtered``:
    removed by the filters before the model). Right: proteins
    significant at adjusted p < ``fdr``, higher in the numerator (right, its colour) or the
    denominator (left).

    Parameters
    ----------
    table : pandas.DataFrame
        Differential abundance table (``protein``, ``contrast``, ``status``, ``log2fc``,
        ``adj_pvalue``).
    contrasts : sequence of (name, numerator, denominator)
        Contrasts in display order.
    colors : mapping
        Condition colours.
    path : str, pathlib.Path or sequence of them
        Output file(s).
    fdr : float, default 0.05
        Adjusted p-value threshold.
    lfc_threshold : float, default 0.0
        Minimum absolute log2 fold change of a significant protein.
    """
    names = [c[0] for c in contrasts]
    counts = status_counts(table, names).T  # contrasts x statuses
    n_contrast, n_status = counts.shape
    width = max(8.5, 0.9 * n_status + 6.5)
    height = max(2.6, 0.42 * n_contrast + 1.6)
    fig = new_figure(width, height)
    left, right = fig.subplots(1, 2, sharey=True, width_ratios=[max(1.2, 0.75 * n_status), 2.2])
    values = counts.to_numpy(dtype=float)
    top = max(float(np.log10(values.max() + 1.0)), 1.0) if values.size else 1.0
    shade = 0.08 + 0.5 * np.log10(values + 1.0) / top  # light blues: black text stays legible
    left.imshow(shade, cmap="Blues", aspect="auto", vmin=0, vmax=1, interpolation="nearest")
    for i in range(n_contrast):
        for j in range(n_status):
            left.text(
                j,
                i,
                f"{int(values[i, j]):,}",
                ha="center",
                va="center",
                fontsize=7,
                in_layout=False,
            )
    left.set_xticks(np.arange(n_status), list(counts.columns), rotation=30, ha="right")
    for label in left.get_xticklabels():
        if label.get_text() not in TESTED:
            label.set_color("#b03a2e")
    left.set_yticks(np.arange(n_contrast), names)
    left.tick_params(length=0)
    for spine in left.spines.values():
        spine.set_visible(False)
    left.set_title("Proteins per status (red: not tested)", loc="left")
    most = 1
    for k, (name, num, den) in enumerate(contrasts):
        up_mask, down_mask = significant(contrast_rows(table, name), fdr, lfc_threshold)
        up, down = int(up_mask.sum()), int(down_mask.sum())
        most = max(most, up, down)
        right.barh(k, up, color=colors.get(num, "#c0392b"), height=0.6)
        right.barh(k, -down, color=colors.get(den, "#2c7fb8"), height=0.6)
        right.annotate(
            f"{up:,} higher in {num}",
            (up, k),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=6.5,
            in_layout=False,
        )
        right.annotate(
            f"{down:,} higher in {den}",
            (-down, k),
            xytext=(-3, 0),
            textcoords="offset points",
            va="center",
            ha="right",
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
    right.set_title(f"Significant at adj. p < {fdr:g}", loc="left")
    save(fig, path)
