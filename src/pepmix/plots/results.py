"""Figures of the differential abundance results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pepmix.plots.style import new_figure, save


def volcano(
    table: pd.DataFrame,
    contrast: str,
    path: str | Path,
    fdr: float = 0.05,
    lfc_threshold: float = 0.0,
    n_labels: int = 10,
) -> None:
    """Volcano plot of one contrast: log2 fold change against -log10 p-value.

    Proteins significant at adjusted p < ``fdr`` are highlighted; the p-value that corresponds to
    the adjusted threshold is drawn as a dashed line, ``lfc_threshold`` as vertical guides, and the
    ``n_labels`` most significant proteins are labelled.

    Parameters
    ----------
    table : pandas.DataFrame
        Differential abundance table (all contrasts).
    contrast : str
        Contrast to draw.
    path : str or pathlib.Path
        Output file.
    fdr : float, default 0.05
    lfc_threshold : float, default 0.0
    n_labels : int, default 10
    """
    part = table.loc[(table["contrast"] == contrast) & table["pvalue"].notna()]
    fig = new_figure(6.5, 5.0)
    ax = fig.add_subplot()
    x = part["log2fc"].to_numpy()
    yv = -np.log10(np.maximum(part["pvalue"].to_numpy(), 1e-300))
    sig = (part["adj_pvalue"] < fdr).to_numpy()
    ax.scatter(x[~sig], yv[~sig], s=6, c="#9e9e9e", alpha=0.6, lw=0, label="not significant")
    ax.scatter(x[sig], yv[sig], s=9, c="#c0392b", alpha=0.85, lw=0, label=f"adj. p < {fdr:g}")
    if sig.any():
        cut = float(np.max(part.loc[sig, "pvalue"]))
        ax.axhline(-np.log10(cut), ls="--", lw=0.8, c="#555555")
    if lfc_threshold > 0:
        for v in (-lfc_threshold, lfc_threshold):
            ax.axvline(v, ls=":", lw=0.8, c="#555555")
    top = part.assign(_y=yv).nsmallest(n_labels, "pvalue")
    for _, row in top.iterrows():
        ax.annotate(
            _short(str(row["protein"])),
            (row["log2fc"], row["_y"]),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    ax.set_xlabel(f"log2 fold change ({contrast})")
    ax.set_ylabel("-log10 p-value")
    ax.set_title(f"Volcano plot: {contrast} ({int(sig.sum())} of {len(part)} significant)")
    ax.legend(loc="upper left", frameon=False)
    save(fig, path)


def _short(name: str, width: int = 24) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"
