"""Shared look of all figures: backend, sizes, condition colours, saving."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from pepmix.io import atomic_path

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

DPI = 150


def condition_colors(conditions: Sequence[str]) -> dict[str, str]:
    """A fixed colour per condition, in sheet order (same in every figure)."""
    return {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(conditions)}


def new_figure(width: float = 6.0, height: float = 4.5) -> Figure:
    """A new figure (object-oriented matplotlib: no pyplot state, no backend switch)."""
    return Figure(figsize=(width, height), dpi=100)


def tidy(ax: Axes) -> None:
    """Remove the top and right spines."""
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)


def save(fig: Figure, path: str | Path) -> None:
    """Save deterministically (no timestamps or versions in the metadata)."""
    target = Path(path)
    fmt = target.suffix.lstrip(".").lower()
    metadata: dict[str, str | None]
    if fmt == "png":
        metadata = {"Software": None}
    elif fmt == "pdf":
        metadata = {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None}
    else:
        metadata = {"Date": None, "Creator": None}
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format=fmt, metadata=metadata, bbox_inches="tight", dpi=DPI)
