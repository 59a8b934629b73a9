"""Figure of the calibration check: p-value histograms of the runs with permuted labels.

One panel per contrast: the p-values of every permutation pooled (grey bars, density scale, so
a uniform distribution is the flat line at 1) and each permutation's histogram as a thin step
line, so that one odd permutation stands out from a general tilt. See
:mod:`pepmix.inference.calibration` for what the permutations are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pepmix.plots.style import GUIDE, new_figure, save, styled

Paths = str | Path | Sequence[str | Path]

N_BINS = 20
COLUMNS = 3


@styled
def permuted_pvalue_histogram(
    pvalues: pd.DataFrame, summary: pd.DataFrame, path: Paths, fdr: float = 0.05
) -> None:
    """Histogram of the permuted runs' p-values, one panel per contrast.

    Parameters
    ----------
    pvalues : pandas.DataFrame
        ``permutation, contrast, pvalue`` of the tested proteins
        (:attr:`pepmix.inference.calibration.CalibrationResult.pvalues`).
    summary : pandas.DataFrame
        The calibration table (calls per permutation and contrast, for the panel titles).
    path : str, pathlib.Path or sequence of them
        Output file(s).
    fdr : float, default 0.05
        The adjusted p-value threshold of the calls (title).
    """
    contrasts = list(dict.fromkeys(summary["contrast"])) if len(summary) else []
    n_cols = max(1, min(COLUMNS, len(contrasts)))
    n_rows = max(1, math.ceil(len(contrasts) / n_cols))
    fig = new_figure(3.4 * n_cols + 0.4, 2.8 * n_rows + 0.3)
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    edges = np.linspace(0.0, 1.0, N_BINS + 1)
    for ax, contrast in zip(axes, contrasts, strict=False):
        part = pvalues.loc[pvalues["contrast"] == contrast]
        pooled = part["pvalue"].to_numpy(dtype=np.float64)
        ax.hist(pooled, bins=edges.tolist(), density=True, color="#bdbdbd", edgecolor="white")
        for _, one in part.groupby("permutation", sort=True):
            dens, _ = np.histogram(one["pvalue"].to_numpy(dtype=np.float64), edges, density=True)
            ax.stairs(dens, edges, color="#4d4d4d", lw=0.6, alpha=0.7)
        ax.axhline(1.0, ls="--", lw=0.9, c=GUIDE)
        rows = summary.loc[summary["contrast"] == contrast]
        calls = ", ".join(str(int(c)) for c in rows["calls"])
        ax.set_title(f"{contrast}\ncalls at adj. p < {fdr:g}: {calls}", loc="left", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_xlabel("p-value (permuted labels)")
        ax.set_ylabel("density")
    for ax in axes[len(contrasts) :]:
        ax.set_axis_off()
    if not contrasts:
        axes[0].text(0.5, 0.5, "no permutation could be run", ha="center", va="center")
    save(fig, path)
