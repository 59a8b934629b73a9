"""Point labels that do not overlap each other (a small repel, like ggrepel or adjustText).

Labels are boxes in display space, placed one after the other (most important first) at the
free spot around their point that covers the fewest plotted points, then pushed apart where they
still overlap, all inside the axes. A thin leader line connects a label to its point when it had
to move away.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.text import Text
from numpy.typing import ArrayLike, NDArray

from pepmix.plots.style import freeze_layout

FloatArray = NDArray[np.float64]


def _overlap_1d(
    c1: FloatArray, half1: FloatArray | float, c2: FloatArray, half2: FloatArray | float
) -> FloatArray:
    """Overlap length of intervals ``c ± half`` (negative when apart), broadcasting."""
    return (half1 + half2) - np.abs(c1 - c2)


def _segments_cross(p1: FloatArray, p2: FloatArray, q1: FloatArray, q2: FloatArray) -> bool:
    """Whether segments p1-p2 and q1-q2 properly intersect."""

    def orient(a: FloatArray, b: FloatArray, c: FloatArray) -> float:
        return float((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))

    d1, d2 = orient(q1, q2, p1), orient(q1, q2, p2)
    d3, d4 = orient(p1, p2, q1), orient(p1, p2, q2)
    return d1 * d2 < 0 and d3 * d4 < 0


def _candidates(anchor: FloatArray, half: FloatArray, gap: float) -> FloatArray:
    """Candidate label centres around ``anchor``: 16 directions at growing distances."""
    angles = np.deg2rad(np.array([30, 0, 330, 150, 180, 210, 60, 120, 300, 240, 90, 270]))
    angles = np.concatenate([angles, np.deg2rad(np.array([15, 345, 165, 195]))])
    rings = gap * np.array([1.0, 2.5, 4.5, 7.0, 10.0, 14.0])
    cos, sin = np.cos(angles), np.sin(angles)
    out = []
    for r in rings:
        dx = cos * (half[0] + r)
        dy = sin * (half[1] + r)
        out.append(np.column_stack([anchor[0] + dx, anchor[1] + dy]))
    return np.vstack(out)


def repel_boxes(
    anchors: FloatArray,
    sizes: FloatArray,
    bounds: tuple[float, float, float, float],
    obstacles: FloatArray | None = None,
    padding: float = 2.0,
    point_radius: float = 3.0,
    max_iter: int = 200,
) -> FloatArray:
    """Centres of non-overlapping label boxes near their anchors (all in display units).

    Labels are placed greedily in the given order (most important first): each takes the
    candidate position around its point that overlaps no placed label, stays inside
    ``bounds``, covers the fewest points and is closest. Remaining overlaps are then pushed
    apart, and crossing leader lines are uncrossed by swapping positions.

    Parameters
    ----------
    anchors : ndarray, shape (n, 2)
        Points being labelled.
    sizes : ndarray, shape (n, 2)
        Width and height of each label.
    bounds : tuple of float
        ``(x0, y0, x1, y1)`` the boxes must stay within.
    obstacles : ndarray, shape (m, 2), optional
        Other points the labels should not cover (the anchors are always obstacles).
    padding : float, default 2.0
        Minimum gap between labels.
    point_radius : float, default 3.0
        Radius kept free around every point.
    max_iter : int, default 200
        Iteration limit of the push-apart phase.

    Returns
    -------
    ndarray, shape (n, 2)
        Label centres.
    """
    n = len(anchors)
    if n == 0:
        return np.empty((0, 2))
    x0, y0, x1, y1 = bounds
    half = sizes / 2.0 + padding / 2.0
    points = anchors if obstacles is None else np.vstack([anchors, obstacles])
    lo = np.array([x0, y0]) + half
    hi = np.maximum(np.array([x1, y1]) - half, lo)
    pos = np.empty((n, 2))
    t = np.linspace(0.05, 0.95, 10)
    leaders = np.empty((0, 2))  # sample points along the placed leader lines
    mid_x = (x0 + x1) / 2.0
    gap = point_radius + 2.0
    for i in range(n):
        cand = _candidates(anchors[i], half[i], gap=gap)
        if anchors[i, 0] < mid_x:  # prefer the side away from the centre on ties
            cand[:, 0] = 2 * anchors[i, 0] - cand[:, 0]
        inside = np.all((cand >= lo[i]) & (cand <= hi[i]), axis=1)
        cand = np.clip(cand, lo[i], hi[i])
        # only the points a candidate box can reach (linear in the points, not candidates x
        # points: a volcano plot has tens of thousands)
        reach = np.max(np.abs(cand - anchors[i]), axis=0) + half[i] + point_radius
        near = points[np.all(np.abs(points - anchors[i]) <= reach, axis=1)]
        px = _overlap_1d(cand[:, None, 0], half[i, 0], near[None, :, 0], point_radius)
        py = _overlap_1d(cand[:, None, 1], half[i, 1], near[None, :, 1], point_radius)
        covered = np.sum((px > 0) & (py > 0), axis=1)
        clash = np.zeros(len(cand))
        crossing = np.zeros(len(cand))
        if i:
            ox = _overlap_1d(cand[:, None, 0], half[i, 0], pos[None, :i, 0], half[None, :i, 0])
            oy = _overlap_1d(cand[:, None, 1], half[i, 1], pos[None, :i, 1], half[None, :i, 1])
            clash = np.sum(np.clip(ox, 0, None) * np.clip(oy, 0, None), axis=1)
            # this label's leader through placed labels
            seg = anchors[i] + t[None, :, None] * (cand[:, None, :] - anchors[i])
            sx = np.abs(seg[:, :, None, 0] - pos[None, None, :i, 0]) < half[None, None, :i, 0]
            sy = np.abs(seg[:, :, None, 1] - pos[None, None, :i, 1]) < half[None, None, :i, 1]
            crossing = np.sum(sx & sy, axis=(1, 2)).astype(float)
            # placed leaders through this label
            if len(leaders):
                lx = np.abs(leaders[None, :, 0] - cand[:, None, 0]) < half[i, 0]
                ly = np.abs(leaders[None, :, 1] - cand[:, None, 1]) < half[i, 1]
                crossing += np.sum(lx & ly, axis=1)
        edge = np.maximum(np.abs(cand - anchors[i]) - half[i], 0.0)
        distance = np.hypot(edge[:, 0], edge[:, 1])
        cost = 1e6 * (clash > 0) + 1e4 * ~inside + 2000.0 * crossing + 30.0 * covered + distance
        best = int(np.argmin(cost))
        pos[i] = cand[best]
        if distance[best] > point_radius + 2.5:
            leaders = np.vstack([leaders, anchors[i] + t[:, None] * (pos[i] - anchors[i])])
    pos = _push_apart(pos, half, lo, hi, max_iter)
    pos = _uncross(anchors, pos, half)
    return _push_apart(pos, half, lo, hi, max_iter)


def _push_apart(
    pos: FloatArray, half: FloatArray, lo: FloatArray, hi: FloatArray, max_iter: int
) -> FloatArray:
    """Push overlapping boxes apart along the axis of least overlap, inside ``lo``/``hi``."""
    pos = pos.copy()
    n = len(pos)
    # deterministic tie-break for boxes with identical centres
    pos += np.column_stack([np.linspace(-0.01, 0.01, n), np.linspace(0.01, -0.01, n)])
    for _ in range(max_iter):
        ox = _overlap_1d(pos[:, None, 0], half[:, None, 0], pos[None, :, 0], half[None, :, 0])
        oy = _overlap_1d(pos[:, None, 1], half[:, None, 1], pos[None, :, 1], half[None, :, 1])
        np.fill_diagonal(ox, -1.0)
        both = (ox > 0) & (oy > 0)
        if not both.any():
            break
        dx = pos[:, None, 0] - pos[None, :, 0]
        dy = pos[:, None, 1] - pos[None, :, 1]
        along_x = both & (ox <= oy)
        along_y = both & (ox > oy)
        sx = np.where(dx >= 0, 1.0, -1.0)
        sy = np.where(dy >= 0, 1.0, -1.0)
        push = np.column_stack(
            [
                np.sum(np.where(along_x, sx * (ox / 2.0 + 0.5), 0.0), axis=1),
                np.sum(np.where(along_y, sy * (oy / 2.0 + 0.5), 0.0), axis=1),
            ]
        )
        pos = np.clip(pos + push, lo, hi)
    return pos


def _uncross(anchors: FloatArray, pos: FloatArray, half: FloatArray, passes: int = 3) -> FloatArray:
    """Swap the positions of similar-sized labels whose leader lines cross."""
    pos = pos.copy()
    n = len(pos)
    for _ in range(passes):
        swapped = False
        for i in range(n):
            for j in range(i + 1, n):
                if np.any(np.abs(half[i] - half[j]) > 0.5 * np.maximum(half[i], half[j])):
                    continue
                if _segments_cross(anchors[i], pos[i], anchors[j], pos[j]):
                    pos[[i, j]] = pos[[j, i]]
                    swapped = True
        if not swapped:
            break
    return pos


def label_points(
    ax: Axes,
    x: ArrayLike,
    y: ArrayLike,
    texts: Sequence[str],
    obstacles_x: ArrayLike | None = None,
    obstacles_y: ArrayLike | None = None,
    fontsize: float = 6.5,
    color: str = "#222222",
) -> list[Text]:
    """Label points of ``ax`` without overlaps, with leader lines where labels moved away.

    Call it after everything else is drawn (it uses the current axes limits and layout).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Axes holding the points.
    x, y : array_like
        Data coordinates of the labelled points.
    texts : sequence of str
        One label per point.
    obstacles_x, obstacles_y : array_like, optional
        Other plotted points the labels should not cover.
    fontsize : float, default 6.5
        Label font size in points.
    color : str, default "#222222"
        Label colour.

    Returns
    -------
    list of matplotlib.text.Text
        The labels, in the order of ``texts`` (leader lines are one extra LineCollection).
    """
    fig = ax.get_figure(root=True)
    if fig is None or len(texts) == 0:
        return []
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    freeze_layout(fig)  # display coordinates are final from here on
    trans = ax.transData
    xy = np.column_stack([np.asarray(x, dtype=float), np.asarray(y, dtype=float)])
    anchors = trans.transform(xy)
    obstacles = None
    if obstacles_x is not None and obstacles_y is not None:
        other = np.column_stack(
            [np.asarray(obstacles_x, dtype=float), np.asarray(obstacles_y, dtype=float)]
        )
        other = other[np.isfinite(other).all(axis=1)]
        obstacles = trans.transform(other) if len(other) else None
    probes = [
        ax.text(float(px), float(py), t, fontsize=fontsize)
        for t, px, py in zip(texts, xy[:, 0], xy[:, 1], strict=True)
    ]
    extents = [p.get_window_extent(renderer) for p in probes]
    for probe in probes:
        probe.remove()
    sizes = np.array([[e.width, e.height] for e in extents], dtype=float)
    box = ax.get_window_extent(renderer)
    centres = repel_boxes(anchors, sizes, (box.x0, box.y0, box.x1, box.y1), obstacles)
    inverse = trans.inverted()
    labels: list[Text] = []
    leaders = []
    for text, centre, anchor, size in zip(texts, centres, anchors, sizes, strict=True):
        target = inverse.transform(centre)
        label = ax.text(
            float(target[0]),
            float(target[1]),
            text,
            fontsize=fontsize,
            color=color,
            ha="center",
            va="center",
            clip_on=False,
        )
        label.set_in_layout(False)
        labels.append(label)
        gap = np.abs(centre - anchor) - size / 2.0
        if float(np.max(gap)) > 7.0:
            leaders.append(inverse.transform(_leader(anchor, centre, size / 2.0 + 1.0)))
    if leaders:
        lines = LineCollection(leaders, colors="#777777", linewidths=0.5, zorder=2.5)
        lines.set_in_layout(False)
        ax.add_collection(lines, autolim=False)
    return labels


def _leader(anchor: FloatArray, centre: FloatArray, half: FloatArray, gap: float = 2.5) -> Any:
    """Segment from near ``anchor`` to the edge of the box around ``centre`` (display units)."""
    d = anchor - centre
    scale = min(
        half[0] / abs(d[0]) if d[0] else np.inf,
        half[1] / abs(d[1]) if d[1] else np.inf,
    )
    edge = centre + d * min(scale, 1.0)
    length = float(np.hypot(*(anchor - edge)))
    start = anchor - (anchor - edge) * (gap / length) if length > gap else anchor
    return np.array([start, edge])
