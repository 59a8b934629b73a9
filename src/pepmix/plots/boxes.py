"""Box plots as three collections (matplotlib's ``boxplot`` makes six artists per box)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection
from numpy.typing import NDArray


def box_stats(values: NDArray[np.float64], whis: float = 1.5) -> tuple[float, ...]:
    """``(low whisker, q1, median, q3, high whisker)`` of the finite values (Tukey whiskers).

    Whiskers end at the most extreme values within ``whis`` IQR of the box; all NaN for no
    values.
    """
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return (np.nan,) * 5
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    iqr = q3 - q1
    low = float(np.min(v[v >= q1 - whis * iqr]))
    high = float(np.max(v[v <= q3 + whis * iqr]))
    return low, float(q1), float(med), float(q3), high


def draw_boxes(
    ax: Axes,
    data: Sequence[NDArray[np.float64]],
    positions: Sequence[float],
    facecolors: Sequence[Any] | Any,
    width: float = 0.6,
    alpha: float = 0.75,
    edgecolor: str = "#333333",
    median_color: str = "black",
) -> None:
    """Draw box plots (box: quartiles, line: median, whiskers: 1.5 IQR, no outliers).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Target axes.
    data : sequence of ndarray
        Values of each box.
    positions : sequence of float
        x position of each box.
    facecolors : colour or sequence of colours
        Box fill.
    width : float, default 0.6
        Box width in data units.
    alpha : float, default 0.75
        Fill opacity.
    edgecolor : str, default "#333333"
        Box outline and whisker colour.
    median_color : str, default "black"
        Median line colour.
    """
    boxes, medians, whiskers = [], [], []
    half = width / 2.0
    for x, values in zip(positions, data, strict=True):
        low, q1, med, q3, high = box_stats(np.asarray(values, dtype=float))
        if not np.isfinite(med):
            continue
        boxes.append([(x - half, q1), (x + half, q1), (x + half, q3), (x - half, q3)])
        medians.append([(x - half, med), (x + half, med)])
        whiskers += [[(x, low), (x, q1)], [(x, q3), (x, high)]]
        whiskers += [[(x - half / 2, low), (x + half / 2, low)]]
        whiskers += [[(x - half / 2, high), (x + half / 2, high)]]
    ax.add_collection(LineCollection(whiskers, colors=edgecolor, linewidths=0.7, zorder=2))
    ax.add_collection(
        PolyCollection(
            boxes,
            facecolors=facecolors,
            edgecolors=edgecolor,
            linewidths=0.6,
            alpha=alpha,
            zorder=3,
        )
    )
    ax.add_collection(LineCollection(medians, colors=median_color, linewidths=1.2, zorder=4))
    ax.autoscale_view()
