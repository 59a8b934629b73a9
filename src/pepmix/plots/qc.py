"""Quality-control figures of the intensities."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from pepmix.plots.style import new_figure, save


def intensity_distributions(
    features: pd.DataFrame,
    run_condition: Mapping[str, str],
    colors: Mapping[str, str],
    path: str | Path,
) -> None:
    """Box plots of log2 intensities per run, before and after normalisation.

    Parameters
    ----------
    features : pandas.DataFrame
        Normalised long table with ``run``, ``log2_raw`` and ``y``.
    run_condition : mapping
        Condition of each run (runs are drawn in this order).
    colors : mapping
        Colour of each condition.
    path : str or pathlib.Path
        Output file (format from the extension).
    """
    runs = [r for r in run_condition if r in set(features["run"])]
    width = max(6.0, 0.35 * len(runs) + 2.0)
    fig = new_figure(width, 6.0)
    axes = fig.subplots(2, 1, sharex=True)
    grouped = features.groupby("run", observed=True)
    for ax, column, title in (
        (axes[0], "log2_raw", "before normalisation"),
        (axes[1], "y", "after normalisation"),
    ):
        data = [grouped.get_group(r)[column].to_numpy() for r in runs]
        box = ax.boxplot(data, patch_artist=True, showfliers=False, widths=0.6)
        for patch, run in zip(box["boxes"], runs, strict=True):
            patch.set_facecolor(colors[run_condition[run]])
            patch.set_alpha(0.8)
        ax.set_ylabel("log2 intensity")
        ax.set_title(f"Feature intensities per run, {title}")
    axes[1].set_xticks(np.arange(1, len(runs) + 1), runs, rotation=90)
    axes[1].set_xlabel("run")
    handles = [_patch(colors[c]) for c in dict.fromkeys(run_condition[r] for r in runs)]
    labels = list(dict.fromkeys(run_condition[r] for r in runs))
    axes[0].legend(handles, labels, title="condition", loc="upper left", bbox_to_anchor=(1, 1))
    save(fig, path)


def _patch(color: str) -> object:
    from matplotlib.patches import Patch

    return Patch(facecolor=color, alpha=0.8)
