"""Box plots from precomputed statistics, drawn as a handful of paths.

Matplotlib's ``boxplot`` takes the raw values (and keeps them), and ``bxp`` makes six artists per
box; for hundreds of runs both cost more than the statistics themselves. Here the statistics
come from :func:`pepmix.plots.aggregate.grouped_box_stats`, and all whiskers are one line, all
medians one line and the boxes one compound path per fill colour (a PDF then holds a few paths
instead of thousands).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.lines import Line2D
from matplotlib.path import Path

from pepmix.plots.aggregate import BoxStats

_RECT = [Path.MOVETO, Path.LINETO, Path.LINETO, Path.LINETO, Path.CLOSEPOLY]


def _add_rectangles(
    ax: Axes,
    groups: dict[Any, list[Any]],
    edgecolor: Any,
    linewidth: float,
    alpha: float,
    zorder: float,
) -> None:
    """Add rectangles (5 vertices each, grouped by fill colour) as one collection.

    Each colour's rectangles are one compound path; the data limits are updated from the
    vertices directly (``add_patch`` walks every path segment in Python).
    """
    if not groups:
        return
    paths, fills, corners = [], [], []
    for fill, rects in groups.items():
        vertices = np.asarray(rects, dtype=float).reshape(-1, 2)
        paths.append(Path(vertices, _RECT * len(rects)))
        fills.append(fill)
        corners.append(vertices)
    collection = PathCollection(
        paths,
        facecolors=fills,
        edgecolors=edgecolor,
        linewidths=linewidth,
        alpha=alpha,
        zorder=zorder,
    )
    ax.add_collection(collection, autolim=False)
    ax.update_datalim(np.vstack(corners))


def _broken_line(segments: list[tuple[float, float, float, float]]) -> tuple[Any, Any]:
    """x and y of one polyline through ``(x0, y0, x1, y1)`` segments, NaN between them."""
    if not segments:
        return np.zeros(0), np.zeros(0)
    seg = np.asarray(segments, dtype=float)
    gap = np.full(len(seg), np.nan)
    xs = np.column_stack([seg[:, 0], seg[:, 2], gap]).ravel()
    ys = np.column_stack([seg[:, 1], seg[:, 3], gap]).ravel()
    return xs, ys


def draw_boxes(
    ax: Axes,
    stats: Sequence[BoxStats],
    positions: Sequence[float],
    facecolors: Sequence[Any] | Any,
    width: float = 0.6,
    alpha: float = 0.75,
    edgecolor: str = "#333333",
    median_color: str = "black",
    linewidth: float = 0.6,
) -> None:
    """Draw box plots (box: quartiles, line: median, whiskers as given, no outliers).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Target axes.
    stats : sequence of (low whisker, q1, median, q3, high whisker)
        Statistics of each box (boxes with a NaN median are skipped).
    positions : sequence of float
        x position of each box.
    facecolors : colour or sequence of colours
        Box fill (one per box, or one for all).
    width : float, default 0.6
        Box width in data units.
    alpha : float, default 0.75
        Opacity of the boxes.
    edgecolor : str, default "#333333"
        Box outline and whisker colour.
    median_color : str, default "black"
        Median line colour.
    linewidth : float, default 0.6
        Box outline width (whiskers are a little thicker, medians twice as thick).
    """
    half = width / 2.0
    per_box = not isinstance(facecolors, str) and len(facecolors) == len(stats)
    whiskers: list[tuple[float, float, float, float]] = []
    medians: list[tuple[float, float, float, float]] = []
    boxes: dict[Any, list[Any]] = {}  # fill colour -> rectangles (in first-seen order)
    for k, (x, (low, q1, med, q3, high)) in enumerate(zip(positions, stats, strict=True)):
        if not np.isfinite(med):
            continue
        whiskers += [(x, low, x, q1), (x, q3, x, high)]
        whiskers += [
            (x - half / 2, low, x + half / 2, low),
            (x - half / 2, high, x + half / 2, high),
        ]
        medians.append((x - half, med, x + half, med))
        fill = facecolors[k] if per_box else facecolors
        key = fill if isinstance(fill, str) else tuple(np.ravel(fill).tolist())
        boxes.setdefault(key, []).append(
            [(x - half, q1), (x + half, q1), (x + half, q3), (x - half, q3), (x - half, q1)]
        )
    xs, ys = _broken_line(whiskers)
    ax.add_line(
        Line2D(xs, ys, color=edgecolor, lw=linewidth + 0.1, solid_capstyle="butt", zorder=2)
    )
    _add_rectangles(ax, boxes, edgecolor, linewidth, alpha, zorder=3)
    xs, ys = _broken_line(medians)
    ax.add_line(
        Line2D(xs, ys, color=median_color, lw=2 * linewidth, solid_capstyle="butt", zorder=4)
    )
    ax.autoscale_view()


def draw_bars(
    ax: Axes,
    x: Sequence[float],
    heights: Sequence[float],
    colors: Sequence[Any],
    width: float = 0.7,
    alpha: float = 0.85,
) -> None:
    """Vertical bars from 0, one compound path per colour (``Axes.bar`` makes a patch per bar).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Target axes (the data limits grow to include the bars).
    x : sequence of float
        Bar centres.
    heights : sequence of float
        Bar heights (NaN: no bar).
    colors : sequence of colours
        Fill of each bar.
    width : float, default 0.7
        Bar width in data units.
    alpha : float, default 0.85
        Fill opacity.
    """
    half = width / 2.0
    bars: dict[Any, list[Any]] = {}
    for xi, h, fill in zip(x, heights, colors, strict=True):
        if not np.isfinite(h):
            continue
        key = fill if isinstance(fill, str) else tuple(np.ravel(fill).tolist())
        bars.setdefault(key, []).append(
            [(xi - half, 0.0), (xi + half, 0.0), (xi + half, h), (xi - half, h), (xi - half, 0.0)]
        )
    _add_rectangles(ax, bars, "none", 0.0, alpha, zorder=1)
    ax.autoscale_view()
