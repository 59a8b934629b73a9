"""Per-protein profile plots: features across runs, the fitted abundance, missing cells, BLUPs.

A profile has two panels:

- left: every feature's log2 intensity across the runs (one line per feature, gaps where it is
  missing), runs grouped by condition; the protein abundance per run (black, ± 95 % CI); the
  model's condition means (coloured bars) with 95 % intervals that leave out the uncertainty
  shared by all conditions; red crosses where a feature is missing, drawn at the value the model
  expects there (fitted run value + feature effect);
- right: each feature's effect, raw (open circle: its mean deviation from the fitted run
  values) and as the model's BLUP (filled), so the shrinkage towards zero is visible.

Features share a colour across the panels, ordered by their effect. Pages are drawn by one
:class:`ProfileCanvas` that keeps the layout and only replaces the data (about 0.1 s a page).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure
from matplotlib.ticker import MaxNLocator
from numpy.typing import NDArray

from pepmix.plots.profile_data import Z95, PreparedProfile, ProteinProfile, prepare
from pepmix.plots.style import GUIDE, Runs, new_figure, short_name, styled

log = logging.getLogger(__name__)

MAX_EFFECT_ROWS = 24
"""Features listed in the effect panel (the most deviating ones; all are drawn as lines)."""

PAGE_SIZE = (9.0, 5.1)
"""Size of a profile page in inches."""

MISSING = "#c0392b"

KEY = (
    "Lines: features. ◆: protein abundance (grey: 95% CI). Bars: condition means, 95% CI for "
    "comparisons. ×: missing, at the expected level. Right: ○ raw effect, ● BLUP."
)
"""One-line key at the bottom of every page (the report caption explains it in full)."""


def middle_cut(name: str, width: int = 17) -> str:
    """Shorten a feature name in the middle (peptides sharing a prefix stay distinguishable)."""
    if len(name) <= width:
        return name
    head = (width - 1) // 2
    return name[:head] + "…" + name[len(name) - (width - 1 - head) :]


def feature_colors(n: int) -> Any:
    """``n`` colours from viridis, high effects yellow, low effects dark blue."""
    cmap = matplotlib.colormaps["viridis"]
    return cmap(np.linspace(0.9, 0.05, n) if n > 1 else np.full(n, 0.35))


def _segments(xs: Any, ys: Any) -> tuple[list[Any], list[int]]:
    """Pieces of a polyline between missing values, and the indices of isolated points."""
    ok = np.isfinite(ys)
    pieces, single = [], []
    start = None
    for i, good in enumerate([*ok.tolist(), False]):
        if good and start is None:
            start = i
        elif not good and start is not None:
            if i - start >= 2:
                pieces.append(np.column_stack([xs[start:i], ys[start:i]]))
            else:
                single.append(start)
            start = None
    return pieces, single


def _effect_rows(prepared: PreparedProfile) -> Any:
    """Indices of the features listed in the effect panel (in effect order)."""
    n = len(prepared.names)
    if n <= MAX_EFFECT_ROWS:
        return np.arange(n)
    deviation = np.abs(np.where(np.isfinite(prepared.raw), prepared.raw, 0.0))
    keep = np.sort(np.argsort(-deviation, kind="mergesort")[:MAX_EFFECT_ROWS])
    return keep


class ProfileCanvas:
    """A profile layout drawn once and refilled for every protein (fast multi-page output).

    Parameters
    ----------
    fig : matplotlib.figure.Figure or SubFigure
        Target.
    runs : pepmix.plots.style.Runs
        Run order, conditions and colours (the same for all proteins).
    """

    def __init__(self, fig: Figure | SubFigure, runs: Runs) -> None:
        self.fig = fig
        self.runs = runs
        self.order = list(runs.order)
        n = len(self.order)
        self.xs = np.arange(n, dtype=float)
        gs = fig.add_gridspec(
            1,
            2,
            width_ratios=[3.4, 1.0],
            left=0.075,
            right=0.80,
            top=0.80,
            bottom=0.27,
            wspace=0.12,
        )
        self.ax: Axes = fig.add_subplot(gs[0, 0])
        self.effect: Axes = fig.add_subplot(gs[0, 1])
        ax, effect = self.ax, self.effect
        for condition in runs.conditions:
            cols = [i for i, r in enumerate(self.order) if runs.condition[r] == condition]
            lo, hi = min(cols) - 0.5, max(cols) + 0.5
            ax.axvspan(lo, hi, color=runs.colors[condition], alpha=0.08, lw=0)
            ax.text(
                (lo + hi) / 2,
                1.01,
                condition,
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="bottom",
                fontsize=7.5,
                color=runs.colors[condition],
                fontweight="bold",
            )
        ax.set_xlim(-0.5, n - 0.5)
        ax.set_xticks(self.xs, self.order, rotation=90, fontsize=6.5)
        for label in ax.get_xticklabels():
            label.set_color(runs.colors[runs.condition[label.get_text()]])
        ax.set_ylabel("log2 intensity")
        ax.grid(axis="y", lw=0.4, alpha=0.4)
        effect.set_xlim(-1.0, 1.0)  # symmetric on every page: the zero line stays put
        effect.xaxis.set_major_locator(MaxNLocator(nbins=4, symmetric=True))
        effect.axvline(0, color=GUIDE, lw=0.7)
        effect.yaxis.tick_right()
        effect.tick_params(axis="y", length=0, labelsize=5.8, pad=2)
        effect.tick_params(axis="x", labelsize=6.5)
        effect.set_xlabel("feature effect (log2)", fontsize=7)
        effect.grid(axis="x", lw=0.4, alpha=0.4)
        fig.text(0.01, 0.012, KEY, fontsize=6, color="#444444", va="bottom")
        self.headline = fig.text(0.01, 0.985, "", fontsize=9.5, fontweight="bold", va="top")
        self.info = fig.text(0.01, 0.94, "", fontsize=6.8, va="top", color="#444444")
        self.title = fig.text(0.01, 0.905, "", fontsize=7, va="top", linespacing=1.35)
        self.note = effect.text(
            0.5, 1.01, "", transform=effect.transAxes, fontsize=6, ha="center", va="bottom"
        )
        self._artists: list[Any] = []
        self._background: Any = None

    def _keep(self, artist: Any) -> None:
        self._artists.append(artist)

    def clear(self) -> None:
        """Remove the previous protein's data."""
        for artist in self._artists:
            artist.remove()
        self._artists = []

    def draw(self, profile: ProteinProfile) -> None:
        """Draw ``profile`` (replacing the previous one).

        Parameters
        ----------
        profile : ProteinProfile
            Data of the protein.
        """
        from matplotlib.collections import LineCollection, PolyCollection

        self.clear()
        runs, order, xs, ax = self.runs, self.order, self.xs, self.ax
        p = prepare(profile, runs)
        colors = feature_colors(len(p.names))
        # feature lines; isolated points get a marker
        segs: list[Any] = []
        seg_colors: list[Any] = []
        dots_x: list[float] = []
        dots_y: list[float] = []
        dots_c: list[Any] = []
        for k in range(len(p.names)):
            pieces, single = _segments(xs, p.values[k])
            segs += pieces
            seg_colors += [colors[k]] * len(pieces)
            dots_x += [float(xs[i]) for i in single]
            dots_y += [float(p.values[k, i]) for i in single]
            dots_c += [colors[k]] * len(single)
        self._keep(ax.add_collection(LineCollection(segs, colors=seg_colors, lw=0.9, alpha=0.8)))
        if dots_x:
            self._keep(ax.scatter(dots_x, dots_y, s=7, c=dots_c, lw=0))
        # missing cells at their expected value
        miss = ~np.isfinite(p.values) & np.isfinite(p.expected)
        rows, cols = np.nonzero(miss)
        if len(rows):
            self._keep(
                ax.scatter(xs[cols], p.expected[rows, cols], marker="x", s=14, c=MISSING, lw=0.9)
            )
        # condition means with comparison intervals
        polys, bars, bar_colors = [], [], []
        for condition, (mean, se) in p.means.iterrows():
            cols_c = [i for i, r in enumerate(order) if runs.condition[r] == condition]
            lo, hi = min(cols_c) - 0.42, max(cols_c) + 0.42
            half = Z95 * se if np.isfinite(se) else 0.0
            polys.append(
                [(lo, mean - half), (hi, mean - half), (hi, mean + half), (lo, mean + half)]
            )
            bars.append([(lo, mean), (hi, mean)])
            bar_colors.append(runs.colors[str(condition)])
        self._keep(ax.add_collection(PolyCollection(polys, facecolors=bar_colors, alpha=0.3, lw=0)))
        self._keep(ax.add_collection(LineCollection(bars, colors=bar_colors, lw=2.4)))
        # protein abundance per run
        a, se = p.abundance, p.abundance_se
        ok = np.isfinite(a) & np.isfinite(se)
        if ok.any():
            err = [
                [(x, v - Z95 * e), (x, v + Z95 * e)]
                for x, v, e in zip(xs[ok], a[ok], se[ok], strict=True)
            ]
            soft = LineCollection(err, colors="black", lw=3.5, alpha=0.18, capstyle="butt")
            self._keep(ax.add_collection(soft))
        if np.isfinite(a).any():
            (line,) = ax.plot(xs, a, color="black", lw=1.5, marker="D", ms=3.2, zorder=5)
            self._keep(line)
        shown = [
            p.values,
            p.expected[miss],
            a,
            a - Z95 * np.nan_to_num(se),
            a + Z95 * np.nan_to_num(se),
        ]
        for mean, s in p.means.itertuples(index=False):
            shown.append(np.array([mean - Z95 * s, mean + Z95 * s]))
        finite = np.concatenate([np.ravel(v) for v in shown])
        finite = finite[np.isfinite(finite)]
        if len(finite):
            lo, hi = float(finite.min()), float(finite.max())
            pad = max(0.05 * (hi - lo), 0.2)
            ax.set_ylim(lo - pad, hi + pad)
        self._draw_effects(p, colors)
        self.headline.set_text(short_name(profile.protein, 80))
        self.title.set_text(profile.title)
        self.info.set_text(profile.info)

    def _draw_effects(self, p: PreparedProfile, colors: Any) -> None:
        from matplotlib.collections import LineCollection

        effect = self.effect
        idx = _effect_rows(p)
        n_rows = max(len(idx), 1)
        ys = np.arange(len(idx), dtype=float)
        raw, shrunk = p.raw[idx], p.blup[idx]
        links = [
            [(r, y), (b, y)] for r, b, y in zip(raw, shrunk, ys, strict=True) if np.isfinite(r + b)
        ]
        self._keep(effect.add_collection(LineCollection(links, colors="#999999", lw=0.8)))
        rgba = [tuple(c) for c in colors[idx]]
        self._keep(effect.scatter(raw, ys, s=42, facecolors="none", edgecolors=rgba, lw=0.8))
        self._keep(effect.scatter(shrunk, ys, s=14, c=rgba, lw=0, zorder=4))
        both = np.concatenate([raw, shrunk])
        both = both[np.isfinite(both)]
        span = max(float(np.max(np.abs(both))) if len(both) else 0.0, 0.1) * 1.15
        effect.set_xlim(-span, span)
        effect.set_ylim(n_rows - 0.5, -0.5)
        effect.set_yticks(ys, [middle_cut(p.names[i], 17) for i in idx])
        effect.tick_params(axis="y", labelsize=max(4.5, min(6.5, 150.0 / n_rows)))
        hidden = len(p.names) - len(idx)
        self.note.set_text(
            f"{len(idx)} of {len(p.names)} features (most deviating)" if hidden > 0 else ""
        )

    def render(self, profile: ProteinProfile) -> NDArray[np.uint8]:
        """Draw ``profile`` and return the page as an RGB image (Agg, white background).

        The parts that are the same on every page (run and condition labels, the key, spines,
        shading) are rendered once and restored for each page; only the protein's artists and
        the axes whose ticks change are drawn again (about a third faster).
        """
        canvas: Any = self.fig.canvas  # an Agg canvas (new_figure)
        dynamic_axes = [self.ax.yaxis, self.effect.xaxis, self.effect.yaxis]
        if self._background is None:
            self.clear()
            for text in (self.headline, self.title, self.info, self.note):
                text.set_text("")
            for axis in dynamic_axes:
                axis.set_visible(False)
            canvas.draw()
            self._background = canvas.copy_from_bbox(self.fig.bbox)
            for axis in dynamic_axes:
                axis.set_visible(True)
        self.draw(profile)
        canvas.restore_region(self._background)
        for axes, axis in ((self.ax, self.ax.yaxis), (self.effect, self.effect.xaxis)):
            axes.draw_artist(axis)
        self.effect.draw_artist(self.effect.yaxis)
        for artist in sorted(self._artists, key=lambda a: a.get_zorder()):
            artist.axes.draw_artist(artist)
        for text in (self.headline, self.title, self.info):
            self.ax.draw_artist(text)
        self.effect.draw_artist(self.note)
        rgba = np.asarray(canvas.buffer_rgba())
        return np.array(rgba[..., :3])


def draw_profile(fig: Figure | SubFigure, profile: ProteinProfile, runs: Runs) -> ProfileCanvas:
    """Draw one protein profile into ``fig`` (a figure or a subfigure).

    Parameters
    ----------
    fig : matplotlib.figure.Figure or SubFigure
        Target.
    profile : ProteinProfile
        Data of the protein.
    runs : pepmix.plots.style.Runs
        Run order, conditions and colours.

    Returns
    -------
    ProfileCanvas
        The layout (call its ``draw`` to show another protein).
    """
    canvas = ProfileCanvas(fig, runs)
    canvas.draw(profile)
    return canvas


@styled
def write_profile_files(
    profiles: Mapping[str, ProteinProfile],
    outputs: Sequence[tuple[Sequence[str], str | Path, str | Path]],
    runs: Runs,
    png_count: int = 4,
    png_columns: int = 2,
) -> None:
    """Write profile PDFs (one page per protein) and PNG grids of their first pages.

    Each protein's page is drawn once (Agg, :data:`~pepmix.plots.style.DPI`) even when it is a
    top hit of several contrasts, and embedded as an image (:mod:`pepmix.plots.imagepdf`).

    Parameters
    ----------
    profiles : mapping
        Protein to its :class:`ProteinProfile` (the headline lists its contrast results).
    outputs : sequence of (proteins, pdf_path, png_path)
        Per contrast: the proteins in page order, the PDF and the PNG grid to write.
    runs : pepmix.plots.style.Runs
        Run order, conditions and colours.
    png_count : int, default 4
        Profiles in each PNG grid.
    png_columns : int, default 2
        Profiles per row of the PNG grids.
    """
    from pepmix.plots.imagepdf import encode_png, write_image_pdf
    from pepmix.plots.style import DPI

    fig = new_figure(*PAGE_SIZE, layout=None)
    fig.set_dpi(DPI)
    canvas = ProfileCanvas(fig, runs)
    in_grid = {p for proteins, _, _ in outputs for p in list(proteins)[:png_count]}
    encoded: dict[str, bytes] = {}
    pixels: dict[str, NDArray[np.uint8]] = {}
    for proteins, _, _ in outputs:
        for protein in proteins:
            if protein in encoded:
                continue
            rgb = canvas.render(profiles[protein])
            encoded[protein] = encode_png(rgb)
            if protein in in_grid:
                pixels[protein] = rgb
    log.info("drew %d profile pages", len(encoded))
    empty = _empty_page(DPI)
    for proteins, pdf_path, png_path in outputs:
        pages = [encoded[p] for p in proteins] or [encode_png(empty)]
        write_image_pdf(pdf_path, pages, *PAGE_SIZE)
        tiles = [pixels[p] for p in list(proteins)[:png_count]] or [empty]
        write_tiles(tiles, png_path, png_columns)
        log.info("wrote %s (%d pages) and %s", pdf_path, len(proteins), png_path)


def _empty_page(dpi: float) -> NDArray[np.uint8]:
    fig = new_figure(*PAGE_SIZE, layout=None)
    fig.set_dpi(dpi)
    fig.text(0.5, 0.5, "No tested proteins in this contrast.", ha="center", va="center")
    fig.canvas.draw()
    return np.array(np.asarray(fig.canvas.buffer_rgba())[..., :3])  # type: ignore[attr-defined]


def write_tiles(tiles: Sequence[NDArray[np.uint8]], path: str | Path, columns: int = 2) -> None:
    """Tile RGB page images (all the same size) into one PNG, row by row, white filled.

    Parameters
    ----------
    tiles : sequence of ndarray
        RGB images of shape (height, width, 3).
    path : str or pathlib.Path
        Output PNG.
    columns : int, default 2
        Images per row.
    """
    from pepmix.io import atomic_path
    from pepmix.plots.imagepdf import encode_png

    h, w = tiles[0].shape[:2]
    cols = min(columns, len(tiles))
    rows = int(np.ceil(len(tiles) / cols))
    sheet = np.full((rows * h, cols * w, 3), 255, dtype=np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, cols)
        sheet[r * h : (r + 1) * h, c * w : (c + 1) * w] = tile
        if c:  # thin separator between columns
            sheet[r * h : (r + 1) * h, c * w] = 200
        if r:
            sheet[r * h, c * w : (c + 1) * w] = 200
    with atomic_path(path) as tmp:
        tmp.write_bytes(encode_png(sheet))
