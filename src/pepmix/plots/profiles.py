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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure, SubFigure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from numpy.typing import NDArray

from pepmix.plots.profile_data import Z95, PreparedProfile, ProteinProfile, prepare
from pepmix.plots.style import (
    GUIDE,
    Runs,
    middle_cut,
    new_figure,
    run_axis_label,
    run_ticks,
    short_name,
    styled,
)

log = logging.getLogger(__name__)

MAX_EFFECT_ROWS = 24
"""Features listed in the effect panel (the most deviating ones; all are drawn as lines); fewer
when the panel is too low for their names at the smallest font size."""

PAGE_SIZE = (9.0, 5.1)
"""Size of a profile page in inches."""

MISSING = "#c0392b"

DENSE_RUNS = 40
"""Above this many runs, markers and lines of the profile panel shrink with the run width."""

KEY = (
    "Lines: features. ◆: protein abundance (grey: 95% CI). Bars: condition means, 95% CI for "
    "comparisons. ×: missing, at the expected level. Right: ○ raw effect, ● BLUP."
)
"""One-line key at the bottom of every page (the report caption explains it in full)."""

LOW_WEIGHT = 0.5
"""Robust fit: features with an observation weight below this are drawn dashed and faded, and
their smallest weight is given in the effect panel (``w 0.30``)."""


def feature_colors(n: int) -> Any:
    """``n`` colours from viridis, high effects yellow, low effects dark blue."""
    cmap = matplotlib.colormaps["viridis"]
    return cmap(np.linspace(0.9, 0.05, n) if n > 1 else np.full(n, 0.35))


RUN_LABEL_SIZE = 6.5
"""Font size (points) of the run names under the profile panel."""

TITLE_SIZE, TITLE_SPACING = 7.0, 1.35
"""Font size (points) and line spacing of the contrast lines at the top of a page."""


@dataclass(frozen=True)
class PageLayout:
    """Vertical layout of a profile page (figure fractions) and the run-name length.

    Attributes
    ----------
    headline, info, title : float
        Tops of the protein name, the model line and the contrast lines.
    top, bottom : float
        Top and bottom of the two panels.
    run_chars : int
        Run names longer than this are cut in the middle.
    """

    headline: float
    info: float
    title: float
    top: float
    bottom: float
    run_chars: int


def page_layout(height_pt: float, title_lines: int, runs: Sequence[str]) -> PageLayout:
    """Stack the page's text blocks so that none overlaps another or the panels.

    From the top: the protein name, the model line, ``title_lines`` contrast lines, then room
    for the condition names over the profile panel and the two-line note over the effect
    panel. From the bottom: the one-line key, the run axis label, and the run names (rotated;
    the bottom margin fits the longest name, 16-34 % of the page; longer names are cut in the
    middle). Text sizes are estimated from the font size (a glyph of the default sans
    font is at most about 0.62 font sizes wide).

    Parameters
    ----------
    height_pt : float
        Page height in points.
    title_lines : int
        Most contrast lines of any page.
    runs : sequence of str
        Run names.

    Returns
    -------
    PageLayout
        Positions as figure fractions.
    """
    headline_pt, info_pt, title_pt = 5.0, 22.0, 35.0
    title_end = title_pt + max(title_lines, 1) * TITLE_SIZE * TITLE_SPACING
    top_pt = title_end + 4.0 + max(2 * 6.0 * 1.25, 7.5 * 1.25) + 4.0
    key_pt, axis_label_pt, ticks_pt = 14.0, 11.0, 6.0
    glyph = 0.62 * RUN_LABEL_SIZE
    longest = max((len(r) for r in runs), default=1)
    fixed = key_pt + axis_label_pt + ticks_pt
    bottom_pt = min(max(0.16 * height_pt, fixed + glyph * longest), 0.34 * height_pt)
    run_chars = max(int((bottom_pt - fixed) / glyph), 6)
    return PageLayout(
        headline=1.0 - headline_pt / height_pt,
        info=1.0 - info_pt / height_pt,
        title=1.0 - title_pt / height_pt,
        top=1.0 - top_pt / height_pt,
        bottom=bottom_pt / height_pt,
        run_chars=run_chars,
    )


def _isolated(values: Any) -> Any:
    """Mask of the values with no finite neighbour in their row (drawn as dots, not lines)."""
    ok = np.isfinite(values)
    left = np.zeros_like(ok)
    right = np.zeros_like(ok)
    left[:, 1:] = ok[:, :-1]
    right[:, :-1] = ok[:, 1:]
    return ok & ~left & ~right


EFFECT_LABEL_SIZES = (4.5, 6.5)
"""Smallest and largest font size (points) of the feature names in the effect panel."""


def effect_label_size(n_rows: int, height_pt: float) -> float:
    """Font size of ``n_rows`` feature names stacked in ``height_pt`` points without overlap
    (a line is about 1.25 font sizes), within :data:`EFFECT_LABEL_SIZES`."""
    low, high = EFFECT_LABEL_SIZES
    return float(min(high, max(low, height_pt / max(n_rows, 1) / 1.25)))


def _effect_rows(prepared: PreparedProfile, limit: int = MAX_EFFECT_ROWS) -> Any:
    """Indices of the features listed in the effect panel (in effect order), at most ``limit``
    (the most deviating ones)."""
    n = len(prepared.names)
    if n <= limit:
        return np.arange(n)
    deviation = np.abs(np.where(np.isfinite(prepared.raw), prepared.raw, 0.0))
    keep = np.sort(np.argsort(-deviation, kind="mergesort")[:limit])
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

    def __init__(self, fig: Figure | SubFigure, runs: Runs, title_lines: int = 3) -> None:
        self.fig = fig
        self.runs = runs
        self.order = list(runs.order)
        self.xs = np.arange(len(self.order), dtype=float)
        layout = page_layout(fig.bbox.height * 72.0 / fig.dpi, title_lines, self.order)
        self.ax, self.effect = self._panels(layout)
        self._condition_bands()
        self._run_axis(layout)
        # markers shrink with many runs (a run is 1.8 pt wide at 200 runs)
        self.scale = min(1.0, float(np.sqrt(DENSE_RUNS / max(len(self.order), 1))))
        self.ax.set_ylabel("log2 intensity")
        self.ax.grid(axis="y", lw=0.4, alpha=0.4)
        self._effect_axis()
        self._texts(layout)
        self._background: Any = None
        self._data_artists()

    def _panels(self, layout: PageLayout) -> tuple[Axes, Axes]:
        """The profile panel and the effect panel (in the vertical extent of ``layout``).

        Parameters
        ----------
        layout : PageLayout
            Vertical layout of the page.

        Returns
        -------
        ax, effect : matplotlib.axes.Axes
            Left (profile) and right (feature effect) panel.
        """
        fig = self.fig
        gs = fig.add_gridspec(
            1,
            2,
            width_ratios=[3.4, 1.0],
            left=0.075,
            right=0.80,
            top=layout.top,
            bottom=layout.bottom,
            wspace=0.12,
        )
        ax = fig.add_subplot(gs[0, 0])
        effect = fig.add_subplot(gs[0, 1])
        self.effect_height_pt = (layout.top - layout.bottom) * fig.bbox.height * 72.0 / fig.dpi
        return ax, effect

    def _condition_bands(self) -> None:
        """Shade the runs of each condition and name the condition above its band."""
        ax, runs = self.ax, self.runs
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

    def _run_axis(self, layout: PageLayout) -> None:
        """The run axis: its limits and run labels (every ``stride``-th run when crowded).

        Parameters
        ----------
        layout : PageLayout
            Gives the characters a run label may have.
        """
        ax, fig = self.ax, self.fig
        n = len(self.order)
        ax.set_xlim(-0.5, n - 0.5)
        axis_in = 0.545 * fig.bbox.width / fig.dpi  # width of the main panel (_panels)
        stride = run_ticks(
            ax,
            self.xs.tolist(),
            self.order,
            self.runs,
            axis_in,
            fontsize=RUN_LABEL_SIZE,
            max_chars=layout.run_chars,
        )
        if stride > 1:
            ax.set_xlabel(run_axis_label(n, stride), fontsize=6.5)

    def _effect_axis(self) -> None:
        """The effect panel's fixed parts: symmetric x range, zero line, labels on the right."""
        effect = self.effect
        effect.set_xlim(-1.0, 1.0)  # symmetric on every page: the zero line stays put
        effect.xaxis.set_major_locator(MaxNLocator(nbins=4, symmetric=True))
        effect.axvline(0, color=GUIDE, lw=0.7)
        effect.yaxis.tick_right()
        effect.tick_params(axis="y", length=0, labelsize=5.8, pad=2)
        effect.tick_params(axis="x", labelsize=6.5)
        effect.set_xlabel("feature effect (log2)", fontsize=7)
        effect.grid(axis="x", lw=0.4, alpha=0.4)

    def _texts(self, layout: PageLayout) -> None:
        """The key at the bottom, and the empty headline, info, title and effect-panel note.

        Parameters
        ----------
        layout : PageLayout
            Positions of the text blocks above the panels.
        """
        fig, effect = self.fig, self.effect
        fig.text(0.01, 0.012, KEY, fontsize=6, color="#444444", va="bottom")
        self.headline = fig.text(
            0.01, layout.headline, "", fontsize=9.5, fontweight="bold", va="top"
        )
        self.info = fig.text(0.01, layout.info, "", fontsize=6.8, va="top", color="#444444")
        self.title = fig.text(
            0.01, layout.title, "", fontsize=TITLE_SIZE, va="top", linespacing=TITLE_SPACING
        )
        self.note = effect.text(
            0.5, 1.01, "", transform=effect.transAxes, fontsize=6, ha="center", va="bottom"
        )

    def _data_artists(self) -> None:
        """The empty data artists, created once and given new data for every protein.

        Creating scatters and collections per page costs more than drawing them. Marker sizes
        and line widths shrink with ``self.scale`` (many runs).
        """
        ax, effect, scale = self.ax, self.effect, self.scale
        empty = np.empty((0, 2))
        self.lines = LineCollection([], lw=0.9, alpha=0.8)
        self.dots = ax.scatter(empty[:, 0], empty[:, 1], s=7 * scale**2, lw=0)
        self.missing = ax.scatter(
            empty[:, 0],
            empty[:, 1],
            marker="x",
            s=max(14 * scale**2, 4.0),
            c=MISSING,
            lw=0.9 * max(scale, 0.6),
        )
        self.cond_boxes = PolyCollection([], alpha=0.3, lw=0)
        self.cond_bars = LineCollection([], lw=2.4)
        self.soft = LineCollection(
            [], colors="black", lw=max(3.5 * scale, 1.2), alpha=0.18, capstyle="butt"
        )
        self.abundance = Line2D(
            [],
            [],
            color="black",
            lw=1.5 * max(scale, 0.6),
            marker="D",
            ms=max(3.2 * scale, 1.2),
            zorder=5,
        )
        self.links = LineCollection([], colors="#999999", lw=0.8)
        self.raw_points = effect.scatter(
            empty[:, 0], empty[:, 1], s=42, facecolors="none", edgecolors="none", lw=0.8
        )
        self.blup_points = effect.scatter(empty[:, 0], empty[:, 1], s=14, lw=0, zorder=4)
        ax.add_collection(self.lines, autolim=False)
        for artist in (self.cond_boxes, self.cond_bars, self.soft):
            ax.add_collection(artist, autolim=False)
        ax.add_line(self.abundance)
        effect.add_collection(self.links, autolim=False)
        # drawing order: by zorder, ties in this order (as the artists were once added)
        self._artists: list[Any] = [
            self.lines,
            self.dots,
            self.missing,
            self.cond_boxes,
            self.cond_bars,
            self.soft,
            self.abundance,
            self.links,
            self.raw_points,
            self.blup_points,
        ]

    def clear(self) -> None:
        """Empty the data artists (the previous protein's data)."""
        empty = np.empty((0, 2))
        for collection in (self.lines, self.cond_bars, self.soft, self.links):
            collection.set_segments([])
        self.cond_boxes.set_verts([])
        for points in (self.dots, self.missing, self.raw_points, self.blup_points):
            points.set_offsets(empty)
        self.abundance.set_data([], [])

    def draw(self, profile: ProteinProfile) -> None:
        """Draw ``profile`` (replacing the previous one).

        Parameters
        ----------
        profile : ProteinProfile
            Data of the protein.
        """
        self.clear()
        runs, order, xs, ax = self.runs, self.order, self.xs, self.ax
        p = prepare(profile, runs)
        colors = feature_colors(len(p.names))
        # one polyline per feature, broken where values are missing (NaN); points without a
        # neighbour get a marker
        self.lines.set_segments([np.column_stack([xs, row]) for row in p.values])
        low = p.weight < LOW_WEIGHT  # NaN (no robust fit) compares False
        if low.any():
            colors = colors.copy()
            colors[low, 3] = 0.45
        self.lines.set_color(colors if len(p.names) else "none")
        self.lines.set_linestyle(["--" if w else "-" for w in low] if low.any() else "-")
        rows_1, cols_1 = np.nonzero(_isolated(p.values))
        if len(rows_1):
            self.dots.set_offsets(np.column_stack([xs[cols_1], p.values[rows_1, cols_1]]))
            self.dots.set_facecolor(colors[rows_1])
        # missing cells at their expected value
        miss = ~np.isfinite(p.values) & np.isfinite(p.expected)
        rows, cols = np.nonzero(miss)
        if len(rows):
            self.missing.set_offsets(np.column_stack([xs[cols], p.expected[rows, cols]]))
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
        self.cond_boxes.set_verts(polys)
        self.cond_boxes.set_facecolor(bar_colors if polys else "none")
        self.cond_bars.set_segments(bars)
        self.cond_bars.set_color(bar_colors if bars else "none")
        # protein abundance per run
        a, se = p.abundance, p.abundance_se
        ok = np.isfinite(a) & np.isfinite(se)
        if ok.any():
            err = np.stack(
                [
                    np.column_stack([xs[ok], a[ok] - Z95 * se[ok]]),
                    np.column_stack([xs[ok], a[ok] + Z95 * se[ok]]),
                ],
                axis=1,
            )
            self.soft.set_segments(list(err))
        if np.isfinite(a).any():
            self.abundance.set_data(xs, a)
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
        self._draw_effects(p, colors, set(profile.marked))
        self.headline.set_text(short_name(profile.protein, 80))
        self.title.set_text(profile.title)
        self.info.set_text(profile.info)

    def _draw_effects(
        self, p: PreparedProfile, colors: Any, marked: set[str] | None = None
    ) -> None:
        effect = self.effect
        # as many names as fit at the smallest font size, up to MAX_EFFECT_ROWS
        fit = int(self.effect_height_pt / (EFFECT_LABEL_SIZES[0] * 1.25))
        idx = _effect_rows(p, max(1, min(MAX_EFFECT_ROWS, fit)))
        n_rows = max(len(idx), 1)
        ys = np.arange(len(idx), dtype=float)
        raw, shrunk = p.raw[idx], p.blup[idx]
        links = [
            [(r, y), (b, y)] for r, b, y in zip(raw, shrunk, ys, strict=True) if np.isfinite(r + b)
        ]
        self.links.set_segments(links)
        rgba = [tuple(c) for c in colors[idx]]
        if len(idx):
            self.raw_points.set_offsets(np.column_stack([raw, ys]))
            self.raw_points.set_edgecolor(rgba)
            self.blup_points.set_offsets(np.column_stack([shrunk, ys]))
            self.blup_points.set_facecolor(rgba)
        both = np.concatenate([raw, shrunk])
        both = both[np.isfinite(both)]
        span = max(float(np.max(np.abs(both))) if len(both) else 0.0, 0.1) * 1.15
        effect.set_xlim(-span, span)
        effect.set_ylim(n_rows - 0.5, -0.5)
        labels = [middle_cut(p.names[i], 17) for i in idx]
        low = [i for i in range(len(idx)) if p.weight[idx[i]] < LOW_WEIGHT]
        for i in low:
            labels[i] += f" (w {p.weight[idx[i]]:.2f})"
        marks = [str(p.names[i]) in (marked or set()) for i in idx]
        labels = ["► " + text if m else text for text, m in zip(labels, marks, strict=True)]
        effect.set_yticks(ys, labels)
        plain = matplotlib.rcParams["ytick.labelcolor"]
        plain = matplotlib.rcParams["ytick.color"] if plain == "inherit" else plain
        for text, m in zip(effect.get_yticklabels(), marks, strict=True):
            text.set_color(MISSING if m else plain)
            text.set_fontweight("bold" if m else "normal")
        effect.tick_params(axis="y", labelsize=effect_label_size(n_rows, self.effect_height_pt))
        hidden = len(p.names) - len(idx)
        notes = [f"{len(idx)} of {len(p.names)} features (most deviating)"] * (hidden > 0)
        if np.any(p.weight < LOW_WEIGHT):
            notes.append(f"dashed: down-weighted (w = smallest weight < {LOW_WEIGHT})")
        self.note.set_text("\n".join(notes))

    def render(self, profile: ProteinProfile) -> NDArray[np.uint8]:
        """Draw ``profile`` and return the page as an RGBA image (Agg, white background).

        The image is a view of the canvas buffer, valid until the next page is drawn (copy it
        to keep it).

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
            for item in [*dynamic_axes, *self._artists]:
                item.set_visible(False)
            canvas.draw()
            self._background = canvas.copy_from_bbox(self.fig.bbox)
            for item in [*dynamic_axes, *self._artists]:
                item.set_visible(True)
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
        rgba: NDArray[np.uint8] = np.asarray(canvas.buffer_rgba())
        return rgba


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
    canvas = ProfileCanvas(fig, runs, title_lines=profile.title.count("\n") + 1)
    canvas.draw(profile)
    return canvas


@styled
def write_profile_files(
    profiles: Mapping[str, ProteinProfile],
    outputs: Sequence[tuple[Sequence[str], str | Path | None, str | Path]],
    runs: Runs,
    png_count: int = 2,
    png_columns: int = 2,
    empty_text: str = "No tested proteins in this contrast.",
) -> None:
    """Write profile PDFs (one page per protein) and PNG grids of their first pages.

    Each protein's page is drawn once (Agg, :data:`~pepmix.plots.style.DPI`) even when it is a
    top hit of several contrasts, and embedded as an image (:mod:`pepmix.plots.imagepdf`).
    Without a PDF path only the grid's pages are drawn (~0.1 s each: most of a profile job).

    Parameters
    ----------
    profiles : mapping
        Protein to its :class:`ProteinProfile` (the headline lists its contrast results).
    outputs : sequence of (proteins, pdf_path, png_path)
        Per contrast: the proteins in page order, the PDF (None: no PDF) and the PNG grid to
        write.
    runs : pepmix.plots.style.Runs
        Run order, conditions and colours.
    png_count : int, default 2
        Profiles in each PNG grid.
    png_columns : int, default 2
        Profiles per row of the PNG grids.
    empty_text : str, default "No tested proteins in this contrast."
        Text of the page drawn for an output without proteins.
    """
    from pepmix.plots.imagepdf import encode_png, write_image_pdf
    from pepmix.plots.style import DPI

    fig = new_figure(*PAGE_SIZE, layout=None)
    fig.set_dpi(DPI)
    lines = max((p.title.count("\n") + 1 for p in profiles.values()), default=1)
    canvas = ProfileCanvas(fig, runs, title_lines=lines)
    in_grid = {p for proteins, _, _ in outputs for p in list(proteins)[:png_count]}
    in_pdf = {p for proteins, pdf, _ in outputs if pdf is not None for p in proteins}
    encoded: dict[str, bytes] = {}
    pixels: dict[str, NDArray[np.uint8]] = {}
    for proteins, _, _ in outputs:
        for protein in proteins:
            if protein in pixels or protein in encoded or protein not in in_grid | in_pdf:
                continue
            rgba = canvas.render(profiles[protein])
            if protein in in_pdf:
                encoded[protein] = encode_png(rgba)
            if protein in in_grid:
                pixels[protein] = np.array(rgba[..., :3])
    log.info("drew %d profile pages", len(in_grid | in_pdf))
    empty: list[NDArray[np.uint8]] = []  # drawn only if a contrast has no tested protein
    for proteins, pdf_path, png_path in outputs:
        if not proteins and not empty:
            empty.append(_empty_page(DPI, empty_text))
        if pdf_path is not None:
            pages = [encoded[p] for p in proteins] or [encode_png(empty[0])]
            write_image_pdf(pdf_path, pages, *PAGE_SIZE)
            log.info("wrote %s (%d pages)", pdf_path, len(proteins))
        tiles = [pixels[p] for p in list(proteins)[:png_count]] or empty
        write_tiles(tiles, png_path, png_columns)
        log.info("wrote %s", png_path)


def _empty_page(dpi: float, text: str) -> NDArray[np.uint8]:
    fig = new_figure(*PAGE_SIZE, layout=None)
    fig.set_dpi(dpi)
    fig.text(0.5, 0.5, text, ha="center", va="center")
    fig.canvas.draw()
    return np.array(np.asarray(fig.canvas.buffer_rgba())[..., :3])  # type: ignore[attr-defined]


GRID_SCALE = 2.0 / 3.0
"""Scale of the pages in the PNG grid (the report's figure): 100 dpi for pages drawn at 150.

A browser shows the grid scaled to the window anyway; at full resolution it made the three
grids of the demo two thirds of the report's images."""


def write_tiles(
    tiles: Sequence[NDArray[np.uint8]],
    path: str | Path,
    columns: int = 2,
    scale: float = GRID_SCALE,
) -> None:
    """Tile RGB page images (all the same size) into one indexed PNG, row by row, white filled.

    Parameters
    ----------
    tiles : sequence of ndarray
        RGB images of shape (height, width, 3).
    path : str or pathlib.Path
        Output PNG (:func:`~pepmix.plots.imagepdf.encode_png_indexed`).
    columns : int, default 2
        Images per row.
    scale : float, default :data:`GRID_SCALE`
        Size of a tile relative to its page image (box-filtered: each output pixel is the mean
        of the page pixels it covers, which keeps thin lines and text legible).
    """
    from PIL import Image

    from pepmix.io import atomic_path
    from pepmix.plots.imagepdf import encode_png_indexed

    if scale != 1.0:
        size = (
            max(1, round(tiles[0].shape[1] * scale)),
            max(1, round(tiles[0].shape[0] * scale)),
        )
        box = Image.Resampling.BOX
        tiles = [np.asarray(Image.fromarray(t, mode="RGB").resize(size, box)) for t in tiles]
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
        tmp.write_bytes(encode_png_indexed(sheet))
