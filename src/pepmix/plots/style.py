"""Shared look of all figures: condition colours, batch markers, rc settings, saving.

All figures are drawn object-oriented (:class:`matplotlib.figure.Figure` with an Agg canvas), so
nothing here touches pyplot's global state or switches backends. Matplotlib's rc settings are
applied per function with :func:`styled` (a :func:`matplotlib.rc_context`), never globally.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.typing import RcKeyType

from pepmix.io import atomic_path

log = logging.getLogger(__name__)

PALETTE = (
    "#1b9e77",
    "#d95f02",
    "#7570b3",
    "#e7298a",
    "#66a61e",
    "#e6ab02",
    "#a6761d",
    "#666666",
    "#1f78b4",
    "#b2df8a",
)
"""Condition colours (ColorBrewer Dark2, then Paired), assigned in sample-sheet order."""

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
"""Batch markers, assigned in order of first appearance in the sample sheet."""

NEUTRAL = "#a0a0a0"
"""Colour of non-significant or background elements."""

GUIDE = "#555555"
"""Colour of threshold and reference lines."""

DPI = 150
"""Resolution of rasterised layers in vector output (PDF, SVG) and of the profile pages."""

PNG_DPI = 120
"""Resolution of PNG figures (the report embeds them; PDF or SVG are for print).

With the indexed colours of :func:`~pepmix.plots.imagepdf.encode_png_indexed` a figure is
25-45 kB at 120 dpi (70-140 kB as RGB at 150 dpi), which keeps the demo report under 4 MB."""

RC: dict[RcKeyType, Any] = {
    "font.size": 8.5,
    "axes.titlesize": 9.5,
    "axes.titleweight": "bold",
    "axes.labelsize": 8.5,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "legend.fontsize": 7.5,
    "legend.title_fontsize": 8,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.7,
    "xtick.major.width": 0.7,
    "ytick.major.width": 0.7,
    "lines.linewidth": 1.0,
    "svg.hashsalt": "pepmix",
    "svg.fonttype": "none",
    "pdf.fonttype": 3,
    "pdf.compression": 6,
    "path.simplify": True,
    "image.cmap": "viridis",
}
"""rc settings of every pepmix figure (text stays text in SVG; fixed SVG ids).

PDF fonts are Type 3 subsets: TrueType (42) embedding costs about 0.2 s per file.
"""

P = ParamSpec("P")
R = TypeVar("R")


def styled(func: Callable[P, R]) -> Callable[P, R]:
    """Decorator: run ``func`` inside ``matplotlib.rc_context(RC)``."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with matplotlib.rc_context(RC):
            return func(*args, **kwargs)

    return wrapper


def condition_colors(conditions: Sequence[str]) -> dict[str, str]:
    """A fixed colour per condition, in sheet order (same in every figure).

    Parameters
    ----------
    conditions : sequence of str
        Condition levels in sample-sheet order.

    Returns
    -------
    dict
        Condition to hex colour; colours repeat after ``len(PALETTE)`` conditions.
    """
    return {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(conditions)}


def batch_markers(batches: Iterable[str]) -> dict[str, str]:
    """A fixed marker per batch, in order of first appearance."""
    unique = list(dict.fromkeys(batches))
    return {b: MARKERS[i % len(MARKERS)] for i, b in enumerate(unique)}


def new_figure(
    width: float = 6.0,
    height: float = 4.5,
    layout: Literal["constrained", "compressed", "tight"] | None = "constrained",
) -> Figure:
    """A new figure with its own Agg canvas (no pyplot state, no backend switch).

    Parameters
    ----------
    width, height : float, default 6.0, 4.5
        Size in inches.
    layout : str or None, default "constrained"
        Matplotlib layout engine.
    """
    fig = Figure(figsize=(width, height), dpi=100, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def tidy(ax: Axes) -> None:
    """Remove the top and right spines."""
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)


def short_name(name: str, width: int = 28) -> str:
    """Shorten a protein identifier for a label (``…`` marks a cut).

    For ``|``-separated FASTA-style identifiers the readable part is kept: a UniProt entry name
    (``sp|P02787|TRFE_HUMAN`` -> ``TRFE_HUMAN``; the last part when it contains ``_``),
    otherwise the first part (``Cre01.g000350.t1.1|PACid:30788481|`` -> ``Cre01.g000350.t1.1``).
    Protein groups (``A;B``) keep their first member with ``;…``.
    """
    group = name.split(";")
    first = group[0]
    parts = [p for p in first.split("|") if p and p not in ("sp", "tr") and ":" not in p]
    if len(parts) > 1 and "_" in parts[-1]:
        first = parts[-1]
    elif parts:
        first = parts[0]
    label = first + (";…" if len(group) > 1 else "")
    return label if len(label) <= width else label[: width - 1] + "…"


def metadata_for(fmt: str) -> dict[str, str | None]:
    """Metadata that keeps the output free of dates and versions (byte-identical reruns)."""
    if fmt == "png":
        return {"Software": None}
    if fmt == "pdf":
        return {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None}
    return {"Date": None, "Creator": None}


def figure_paths(base: str | Path, formats: Sequence[str]) -> list[Path]:
    """``base`` (without extension) in every format, PNG first and always included.

    Parameters
    ----------
    base : str or pathlib.Path
        Path without the extension, e.g. ``results/plots/qc/pca``.
    formats : sequence of str
        Extra formats (``png``, ``pdf``, ``svg``); duplicates and ``png`` are ignored.
    """
    base = Path(base)
    fmts = list(dict.fromkeys(["png", *[f.lower() for f in formats]]))
    return [base.with_name(f"{base.name}.{f}") for f in fmts]


def freeze_layout(fig: Figure) -> None:
    """Run the figure's layout engine once and keep the result.

    Saving in several formats would otherwise lay the figure out (and draw it) again for each.
    """
    engine = fig.get_layout_engine()
    if engine is None:
        return
    if type(engine).__name__ != "PlaceHolderLayoutEngine":
        # at the output resolution; one execution (constrained layout iterates twice itself)
        dpi = fig.dpi
        fig.set_dpi(DPI)
        engine.execute(fig)
        fig.set_dpi(dpi)
    # no engine at all: savefig draws a figure with an engine (even a placeholder) twice
    with matplotlib.rc_context(
        {"figure.autolayout": False, "figure.constrained_layout.use": False}
    ):
        fig.set_layout_engine(None)


def render_png(fig: Figure, dpi: float = PNG_DPI) -> bytes:
    """The figure drawn with Agg at ``dpi`` and encoded as an indexed PNG (no metadata).

    What ``savefig(format="png")`` draws, encoded by
    :func:`pepmix.plots.imagepdf.encode_png_indexed` (256 colours): about a third of the size of
    the RGB PNG, which matters for the report (every figure is embedded in it).
    """
    from pepmix.plots.imagepdf import encode_png_indexed

    canvas: Any = fig.canvas
    if not isinstance(canvas, FigureCanvasAgg):
        canvas = FigureCanvasAgg(fig)
    original = fig.dpi
    fig.set_dpi(dpi)
    try:
        canvas.draw()
        rgba = np.asarray(canvas.buffer_rgba())
    finally:
        fig.set_dpi(original)
    return encode_png_indexed(rgba, dpi=dpi)


def save(fig: Figure, path: str | Path | Sequence[str | Path]) -> None:
    """Save deterministically (no timestamps or versions in the metadata), atomically.

    The layout is computed once (:func:`freeze_layout`), then each format is written: PNG by
    :func:`render_png`, the others by ``savefig``.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : str, pathlib.Path or sequence of them
        Output file(s); the format comes from each extension.
    """
    paths = [path] if isinstance(path, str | Path) else list(path)
    freeze_layout(fig)
    with matplotlib.rc_context({"svg.hashsalt": "pepmix", "svg.fonttype": "none"}):
        for item in paths:
            target = Path(item)
            fmt = target.suffix.lstrip(".").lower()
            with atomic_path(target) as tmp:
                if fmt == "png":
                    tmp.write_bytes(render_png(fig))
                else:
                    fig.savefig(tmp, format=fmt, metadata=metadata_for(fmt), dpi=DPI)
            log.info("wrote %s", target)


def legend_handles(colors: Mapping[str, str], marker: str = "o") -> list[Any]:
    """Legend handles (filled markers) for a colour mapping."""
    from matplotlib.lines import Line2D

    return [
        Line2D([], [], ls="", marker=marker, ms=6, mfc=color, mec="none", label=name)
        for name, color in colors.items()
    ]


@dataclass(frozen=True)
class Runs:
    """Runs in plotting order with their condition, batch, colours and markers.

    Attributes
    ----------
    order : list of str
        Runs grouped by condition (conditions in sheet order), sheet order within a condition.
    condition : dict
        Condition of each run.
    batch : dict
        Batch of each run (empty string when unknown).
    colors : dict
        Colour of each condition (:func:`condition_colors`, sheet order).
    markers : dict
        Marker of each batch (:func:`batch_markers`).
    sample : dict
        Biological replicate of each run (the run itself when the sheet has none).
    covariates : dict
        Numeric sheet columns other than the standard ones (name to values per run).
    """

    order: list[str]
    condition: dict[str, str]
    batch: dict[str, str]
    colors: dict[str, str]
    markers: dict[str, str]
    sample: dict[str, str] = field(default_factory=dict)
    covariates: dict[str, dict[str, float]] = field(default_factory=dict)

    @classmethod
    def from_sheet(cls, sheet: pd.DataFrame, present: Iterable[str] | None = None) -> Runs:
        """Build from a sample sheet with ``run``, ``condition`` and optionally ``batch``.

        Parameters
        ----------
        sheet : pandas.DataFrame
            Sample sheet (one row per run).
        present : iterable of str, optional
            Keep only these runs (e.g. the runs in the data).
        """
        conditions = list(dict.fromkeys(str(c) for c in sheet["condition"]))
        runs = [str(r) for r in sheet["run"]]
        condition = dict(zip(runs, (str(c) for c in sheet["condition"]), strict=True))
        if "batch" in sheet.columns:
            batches = ["" if pd.isna(b) else str(b) for b in sheet["batch"]]
        else:
            batches = [""] * len(runs)
        batch = dict(zip(runs, batches, strict=True))
        if "bioreplicate" in sheet.columns:
            reps = [
                r if pd.isna(b) or b == "" else str(b)
                for r, b in zip(runs, sheet["bioreplicate"], strict=True)
            ]
        else:
            reps = list(runs)
        covariates: dict[str, dict[str, float]] = {}
        for column in sheet.columns:
            if column in ("run", "condition", "bioreplicate", "batch"):
                continue
            values = pd.to_numeric(sheet[column], errors="coerce")
            if values.notna().all():
                covariates[str(column)] = dict(zip(runs, values.astype(float), strict=True))
        keep = set(runs) if present is None else {str(r) for r in present}
        rank = {c: i for i, c in enumerate(conditions)}
        order = sorted((r for r in runs if r in keep), key=lambda r: rank[condition[r]])
        return cls(
            order=order,
            condition=condition,
            batch=batch,
            colors=condition_colors(conditions),
            markers=batch_markers(batch[r] for r in order),
            sample=dict(zip(runs, reps, strict=True)),
            covariates=covariates,
        )

    @property
    def conditions(self) -> list[str]:
        """Conditions of the plotted runs, in sheet order."""
        return list(dict.fromkeys(self.condition[r] for r in self.order))

    def run_colors(self) -> list[str]:
        """Colour of each run in :attr:`order`."""
        return [self.colors[self.condition[r]] for r in self.order]


def color_tick_labels(labels: Iterable[Any], runs: Runs) -> None:
    """Colour run tick labels by condition."""
    for label in labels:
        run = label.get_text()
        if run in runs.condition:
            label.set_color(runs.colors[runs.condition[run]])


MAX_RUN_AXIS_WIDTH = 14.0
"""Widest figure (inches) of a per-run axis; beyond it runs get narrower, labels thinner."""

MIN_RUN_LABEL_SIZE = 5.5
"""Smallest font size (points) of run labels; below it only every k-th run is labelled."""


def run_axis_width(
    n_runs: int, per_run: float = 0.32, margin: float = 2.5, minimum: float = 6.5
) -> float:
    """Width (inches) of a figure with one slot per run: grows with the runs, then is capped.

    Parameters
    ----------
    n_runs : int
        Runs along the axis.
    per_run : float, default 0.32
        Inches per run while below the cap.
    margin : float, default 2.5
        Inches for labels, legend and margins.
    minimum : float, default 6.5
        Smallest width.
    """
    return min(max(minimum, per_run * n_runs + margin), MAX_RUN_AXIS_WIDTH)


def label_stride(
    n_labels: int, length_in: float, fontsize: float, spacing: float = 1.6
) -> tuple[int, float]:
    """Stride and font size of run labels along an axis so that they do not overlap.

    Labels (one text line each, stacked along the axis) keep their font size while they fit,
    shrink down to :data:`MIN_RUN_LABEL_SIZE`, and beyond that only every ``k``-th is shown,
    ``k`` in 2, 5, 10, 20, 50, ..., with some room between them (fewer tick artists, and
    legible).

    Parameters
    ----------
    n_labels : int
        Labels along the axis.
    length_in : float
        Length of the axis (inches, an estimate before the layout).
    fontsize : float
        Preferred font size (points).
    spacing : float, default 1.6
        Distance between thinned labels, in font sizes.

    Returns
    -------
    stride : int
        Label every ``stride``-th position.
    fontsize : float
        Font size to use.
    """
    pitch = 72.0 * max(length_in, 0.1) / max(n_labels, 1)  # points between positions
    line = 1.3  # a text line is about 1.3 font sizes high
    if pitch >= line * fontsize:
        return 1, fontsize
    size = max(MIN_RUN_LABEL_SIZE, min(fontsize, pitch / line))
    if pitch >= line * size:
        return 1, size
    need = spacing * size / pitch
    stride, scale = 1, 1
    while stride < need:  # 2, 5, 10, 20, 50, 100, ...
        for step in (2, 5, 10):
            stride = step * scale
            if stride >= need:
                break
        scale *= 10
    return stride, size


def run_ticks(
    ax: Axes,
    positions: Sequence[float],
    order: Sequence[str],
    runs: Runs,
    length_in: float,
    axis: Literal["x", "y"] = "x",
    fontsize: float | None = None,
    spacing: float = 1.6,
    max_chars: int | None = None,
) -> int:
    """Put run names on an axis, coloured by condition, thinned when they would overlap.

    When the names do not fit even at :data:`MIN_RUN_LABEL_SIZE`, only every ``k``-th run gets a
    tick and its name (:func:`label_stride`; a tick per run would cost hundreds of tick artists
    per axis). x labels are vertical.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Target axes.
    positions : sequence of float
        Data coordinate of each run.
    order : sequence of str
        Run names, in the order of ``positions``.
    runs : Runs
        Conditions and colours.
    length_in : float
        Approximate length of the axis in inches.
    axis : {"x", "y"}, default "x"
        Which axis.
    fontsize : float, optional
        Preferred font size (default: the rc tick label size).
    spacing : float, default 1.6
        Distance between thinned labels, in font sizes (:func:`label_stride`).
    max_chars : int, optional
        Longer names are cut in the middle to this many characters (``…`` marks the cut).

    Returns
    -------
    int
        The stride (1: every run is named).
    """
    target = ax.xaxis if axis == "x" else ax.yaxis
    from matplotlib.font_manager import FontProperties

    rc_size = matplotlib.rcParams["xtick.labelsize" if axis == "x" else "ytick.labelsize"]
    base = fontsize if fontsize is not None else FontProperties(size=rc_size).get_size_in_points()
    stride, size = label_stride(len(order), length_in, base, spacing)
    shown = list(range(0, len(order), stride))
    ticks = [positions[i] for i in shown]
    names = [order[i] for i in shown]
    texts = names if max_chars is None else [middle_cut(n, max_chars) for n in names]
    if axis == "x":
        ax.set_xticks(ticks, texts, fontsize=size, rotation=90)
    else:
        ax.set_yticks(ticks, texts, fontsize=size)
    for label, name in zip(target.get_ticklabels(), names, strict=True):
        if name in runs.condition:
            label.set_color(runs.colors[runs.condition[name]])
    return stride


def middle_cut(name: str, width: int = 17) -> str:
    """Shorten a name in the middle (names sharing a prefix stay distinguishable)."""
    if len(name) <= width:
        return name
    head = (width - 1) // 2
    return name[:head] + "…" + name[len(name) - (width - 1 - head) :]


def run_axis_label(n_runs: int, stride: int, name: str = "run") -> str:
    """Axis label of a run axis: ``"run"``, or with the thinning, ``"run (every 5th of 200)"``."""
    if stride <= 1:
        return name
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(stride % 10 if stride % 100 not in (11, 12, 13) else 0)
    return f"{name} (every {stride}{suffix or 'th'} of {n_runs:,} named)"
