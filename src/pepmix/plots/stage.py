"""Plot stage entry points: read stage outputs, draw, write (called by rule scripts)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pepmix.plots.qc import intensity_distributions
from pepmix.plots.style import condition_colors
from pepmix.stages import read_resolved_sheet


def intensity_plot(features: str | Path, samples: str | Path, output: str | Path) -> None:
    """Intensity distributions per run before and after normalisation."""
    table = pd.read_parquet(features, columns=["run", "log2_raw", "y"])
    sheet = read_resolved_sheet(samples)
    run_condition = dict(zip(sheet["run"], sheet["condition"], strict=True))
    colors = condition_colors(list(dict.fromkeys(sheet["condition"])))
    intensity_distributions(table, run_condition, colors, output)
