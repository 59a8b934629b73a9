"""QC figure of the detection probability curve (:mod:`pepmix.model.detection`).

Each feature is a point: its mean observed log2 intensity against the fraction of runs it was
observed in (the data limpa's ``plotDPC`` shows). Overlaid per curve group:

- the fitted curve :math:`P(\\text{detected} \\mid y) = \\Phi(b_0 + b_1 y)` (solid), and
- the model's prediction in the coordinates of the points (dashed): for a feature with
  complete-data mean :math:`\\mu` and SD :math:`s` (the median fitted feature SD), its expected
  detection proportion against its expected mean *observed* intensity
  (:meth:`pepmix.model.detection.DetectionCurve.expected`). Points should scatter around the
  dashed line; the solid line lies to its right because observed means of rarely observed
  features are inflated by the selection.

Binned means of the points (20 quantile bins) are drawn as dots.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from pepmix.model.detection import DetectionCurve
from pepmix.plots.style import new_figure, save, styled, tidy

log = logging.getLogger(__name__)

Paths = str | Path | Sequence[str | Path]

#: most feature points drawn (a fixed-seed subset beyond)
MAX_POINTS = 20_000


@styled
def detection_curve_figure(
    matrix: NDArray[np.float64], curve: DetectionCurve, path: Paths, seed: int = 1
) -> None:
    """Draw the detection QC figure (module docstring) into ``path``.

    Parameters
    ----------
    matrix : ndarray, shape (J, R)
        Features x runs log2 intensities, NaN where not observed
        (:func:`pepmix.model.detection.feature_matrix`).
    curve : DetectionCurve
        The fitted curve.
    path : str, pathlib.Path or sequence of them
        Output file(s).
    seed : int, default 1
        Seed of the point subset beyond :data:`MAX_POINTS` features.
    """
    observed = np.isfinite(matrix)
    keep = observed.sum(axis=1) > 0
    counts = observed[keep].sum(axis=1)
    means = np.where(observed[keep], matrix[keep], 0.0).sum(axis=1) / counts
    prop = counts / matrix.shape[1]
    fig = new_figure(6.0, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    shown = np.arange(means.size)
    if shown.size > MAX_POINTS:
        shown = np.random.default_rng(seed).choice(shown, MAX_POINTS, replace=False)
    ax.scatter(means[shown], prop[shown], s=3, alpha=0.15, color="0.4", linewidths=0)
    edges = np.quantile(means, np.linspace(0, 1, 21))
    bins = np.clip(np.searchsorted(edges, means, side="right") - 1, 0, 19)
    bin_x = np.bincount(bins, weights=means, minlength=20) / np.maximum(np.bincount(bins), 1)
    bin_y = np.bincount(bins, weights=prop, minlength=20) / np.maximum(np.bincount(bins), 1)
    ax.plot(bin_x, bin_y, "o", color="black", markersize=4, label="binned features")
    grid = np.linspace(float(means.min()) - 2.0, float(means.max()) + 1.0, 200)
    for g in range(curve.b0.size):
        label = curve.grouping if curve.b0.size > 1 else "fitted"
        first = g == 0
        ax.plot(
            grid,
            np.asarray(_ndtr(curve.b0[g] + curve.b1[g] * grid)),
            color="C0",
            lw=1.5 if curve.b0.size == 1 else 0.7,
            label=f"P(detected | y), {label}" if first else None,
        )
        if np.isfinite(curve.feature_sd):
            p_exp, m_exp = curve.expected(grid, g)
            ax.plot(
                m_exp, p_exp, "--", color="C1", lw=1.2 if curve.b0.size == 1 else 0.6,
                label="model: proportion vs observed mean" if first else None,
            )  # fmt: skip
    ax.set_xlim(float(means.min()) - 1.0, float(means.max()) + 0.5)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("mean observed log2 intensity of a feature")
    ax.set_ylabel("fraction of runs observed")
    slopes = ", ".join(f"{b:.2f}" for b in np.unique(np.round(curve.b1, 2))[:4])
    ax.set_title(f"Detection curve ({curve.grouping}; slope {slopes})", fontsize=10)
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    tidy(ax)
    save(fig, path)


def _ndtr(x: NDArray[np.float64]) -> NDArray[np.float64]:
    from scipy import special

    out: NDArray[np.float64] = special.ndtr(x)
    return out
