"""Figures of the fitted models: distribution of the variance components across proteins."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from pepmix.plots.style import new_figure, save, styled

log = logging.getLogger(__name__)

Paths = str | Path | Sequence[str | Path]

COMPONENT_COLORS = {
    "feature": "#4c72b0",
    "sample": "#dd8452",
    "run": "#8172b3",
    "batch": "#937860",
    "feature:condition": "#55a868",
    "batch:condition": "#da8bc3",
    "residual": "#8c8c8c",
}
"""Colour of each variance component (the same in every model figure)."""

COMPONENT_LABELS = {
    "feature": "feature\n(peptide)",
    "sample": "sample\n(biological)",
    "run": "run\n(technical)",
    "batch": "batch",
    "feature:condition": "peptide usage\n(feature x condition)",
    "batch:condition": "batch x\ncondition",
    "residual": "residual",
}

FITTED = ("ok", "boundary", "reduced_model")
"""Protein statuses with estimated variance components."""


def variance_shares(proteins: pd.DataFrame) -> pd.DataFrame:
    """Share of each variance component in the total, per fitted protein.

    Parameters
    ----------
    proteins : pandas.DataFrame
        Model protein table with ``protein``, ``status`` and ``var_<component>`` columns.

    Returns
    -------
    pandas.DataFrame
        Index ``protein``; one column per component (``feature``, ``sample``, ...,
        ``residual``), rows summing to 1. Proteins without finite variances are left out.
    """
    columns = [c for c in proteins.columns if c.startswith("var_")]
    names = [c.removeprefix("var_") for c in columns]
    order = sorted(
        names, key=lambda n: list(COMPONENT_COLORS).index(n) if n in COMPONENT_COLORS else 99
    )
    fitted = proteins.loc[proteins["status"].astype(str).isin(FITTED)]
    var = fitted.set_index(fitted["protein"].astype(str))[columns]
    var.columns = pd.Index(names)
    var = var.loc[:, order].clip(lower=0.0)
    total = var.sum(axis=1)
    ok = np.isfinite(total.to_numpy(dtype=float)) & (total.to_numpy(dtype=float) > 0)
    shares: pd.DataFrame = var.loc[ok].div(total.loc[ok], axis=0)
    return shares


@styled
def variance_components(proteins: pd.DataFrame, path: Paths) -> None:
    """Distribution of the variance components across proteins.

    Left: share of the total variance (feature + sample + ... + residual) of each component,
    one violin over proteins, with the median and the number of proteins where the component
    was estimated at zero. Right: each component as a standard deviation in log2 units (the
    residual SD of 0.2 is a CV of about 14 %), on a log scale.

    Parameters
    ----------
    proteins : pandas.DataFrame
        Model protein table (``results/model/proteins.parquet``).
    path : str, pathlib.Path or sequence of them
        Output file(s).
    """
    shares = variance_shares(proteins)
    names = list(shares.columns)
    fitted = proteins.loc[proteins["status"].astype(str).isin(FITTED)]
    fig = new_figure(max(7.5, 2.2 * len(names) + 2.5), 4.4)
    left, right = fig.subplots(1, 2)
    positions = np.arange(1, len(names) + 1)
    colors = [COMPONENT_COLORS.get(n, "#666666") for n in names]
    data = [100.0 * shares[n].to_numpy(dtype=float) for n in names]
    if len(shares):
        parts = left.violinplot(data, positions=positions, widths=0.85, showextrema=False)
        for body, color in zip(cast("list[Any]", parts["bodies"]), colors, strict=True):
            body.set_facecolor(color)
            body.set_alpha(0.6)
            body.set_edgecolor("none")
        left.boxplot(
            data,
            positions=positions,
            widths=0.12,
            showfliers=False,
            patch_artist=True,
            boxprops={"facecolor": "white", "lw": 0.7},
            medianprops={"color": "black", "lw": 1.2},
            whiskerprops={"lw": 0.7},
            capprops={"lw": 0},
        )
        for x, n, d in zip(positions, names, data, strict=True):
            zero = int(np.sum(shares[n].to_numpy() <= 1e-8))
            left.text(
                float(x),
                104,
                f"median {np.median(d):.0f}%\nzero in {zero:,}",
                ha="center",
                va="bottom",
                fontsize=6.5,
                in_layout=False,
            )
    left.set_ylim(0, 122)
    left.set_yticks([0, 25, 50, 75, 100])
    left.set_xticks(positions, [COMPONENT_LABELS.get(n, n) for n in names])
    left.set_ylabel("share of total variance (%)")
    left.set_title(f"Variance partition ({len(shares):,} proteins)", loc="left")
    left.grid(axis="y", lw=0.4, alpha=0.4)
    sds = []
    for n in names:
        values = np.sqrt(fitted[f"var_{n}"].to_numpy(dtype=float))
        sds.append(values[np.isfinite(values) & (values > 1e-4)])
    if any(len(v) for v in sds):
        box = right.boxplot(
            [v if len(v) else np.array([np.nan]) for v in sds],
            positions=positions,
            widths=0.55,
            showfliers=False,
            patch_artist=True,
            medianprops={"color": "black", "lw": 1.2},
        )
        for patch, color in zip(box["boxes"], colors, strict=True):
            patch.set_facecolor(color)
            patch.set_alpha(0.6)
        right.set_yscale("log", base=2)
    right.set_xticks(positions, [COMPONENT_LABELS.get(n, n) for n in names])
    right.set_ylabel("standard deviation (log2 units)")
    right.set_title("Size of each component (non-zero)", loc="left")
    right.grid(axis="y", which="major", lw=0.4, alpha=0.4)
    save(fig, path)
