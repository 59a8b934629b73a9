r"""Variance partition of single proteins: stacked shares of each variance component.

For protein :math:`i` with random terms :math:`t` (feature, sample or run, batch when random)
and residual variance :math:`\sigma^2`, the share of term :math:`t` is

.. math:: \mathrm{icc}_t = \sigma_t^2 / (\textstyle\sum_u \sigma_u^2 + \sigma^2),

the ``icc_<t>`` column of ``results/tables/variance_components.tsv``
(:func:`pepmix.model.variance_tests.variance_test_table`); the residual's share is
:math:`\sigma^2` over the same total. One horizontal bar per protein, its segments these shares
(summing to 1). A component whose likelihood-ratio test of :math:`H_0: \sigma_t^2 = 0` has
``adj_p_<t>`` < FDR is drawn in full colour, a component that is not significant (or was not
tested) pale; the residual is always in full colour.

Which proteins (:func:`partition_proteins`): the ``n`` proteins with the smallest adjusted
p-value of any contrast (then the smallest p-value, then the name), among those with estimated
variance components -- the proteins a reader of the volcano plots and profile pages looks at.
Colours: the Okabe-Ito palette (Okabe & Ito 2008), distinguishable with the common forms of
colour blindness.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter

from pepmix.plots.style import new_figure, save, short_name, styled

log = logging.getLogger(__name__)

Paths = str | Path | Sequence[str | Path]

OKABE_ITO = {
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
    "grey": "#999999",
}
"""The Okabe-Ito colour-blind-safe palette (black replaced by grey)."""

PARTITION_COLORS = {
    "feature": OKABE_ITO["blue"],
    "sample": OKABE_ITO["orange"],
    "run": OKABE_ITO["reddish_purple"],
    "batch": OKABE_ITO["bluish_green"],
    "batch:condition": OKABE_ITO["sky_blue"],
    "residual": OKABE_ITO["grey"],
}
"""Colour of each variance component in the partition figure."""

OTHER_COLOR = OKABE_ITO["vermillion"]
"""Colour of a component not in :data:`PARTITION_COLORS`."""

PALE_ALPHA = 0.3
"""Opacity of a component whose variance is not significant (full colour: 1)."""

FITTED = ("ok", "boundary", "reduced_model")
"""Protein statuses with estimated variance components."""


def partition_shares(variance: pd.DataFrame) -> pd.DataFrame:
    """Share of each variance component per protein, as in ``variance_components.tsv``.

    Parameters
    ----------
    variance : pandas.DataFrame
        ``variance_components.tsv``: ``protein``, ``status``, ``var_<c>`` and, with the
        variance tests, ``icc_<t>``.

    Returns
    -------
    pandas.DataFrame
        Index ``protein``; one column per component in the order feature, sample, run, batch,
        others, residual. A term's share is its ``icc_<t>`` column when the table has one, else
        ``var_<c>`` over the sum of all ``var_`` columns (the residual's share always).
        Fitted proteins with finite shares only.
    """
    var_cols = [c for c in variance.columns if c.startswith("var_")]
    names = [c.removeprefix("var_") for c in var_cols]
    order = list(PARTITION_COLORS)
    names.sort(key=lambda n: (order.index(n) if n in order else len(order) - 1, n))
    fitted = variance.loc[variance["status"].astype(str).isin(FITTED)]
    fitted = fitted.set_index(fitted["protein"].astype(str))
    var = fitted[[f"var_{n}" for n in names]].astype(np.float64)
    total = var.sum(axis=1, min_count=len(names))
    shares = pd.DataFrame(index=fitted.index)
    for n in names:
        icc = f"icc_{n}"
        if icc in fitted.columns:
            shares[n] = fitted[icc].astype(np.float64)
        else:
            shares[n] = var[f"var_{n}"] / total
    finite = np.isfinite(shares.to_numpy(dtype=np.float64)).all(axis=1)
    out: pd.DataFrame = shares.loc[finite]
    return out


def partition_proteins(differential: pd.DataFrame, candidates: Sequence[str], n: int) -> list[str]:
    """The ``n`` proteins of ``candidates`` with the smallest adjusted p-value of any contrast.

    Ties: smallest p-value, then protein name. Proteins without a p-value are left out.

    Parameters
    ----------
    differential : pandas.DataFrame
        The differential table (``protein``, ``pvalue``, ``adj_pvalue``; all contrasts).
    candidates : sequence of str
        Proteins that can be drawn (those with variance shares).
    n : int
        How many (0 or less: none).
    """
    rows = differential.loc[np.isfinite(differential["pvalue"].to_numpy(dtype=np.float64))]
    rows = rows.assign(protein=rows["protein"].astype(str))
    rows = rows.loc[rows["protein"].isin(set(candidates))]
    best = rows.groupby("protein", sort=False).agg(adj=("adj_pvalue", "min"), p=("pvalue", "min"))
    best = best.reset_index().sort_values(["adj", "p", "protein"], kind="mergesort")
    return [str(p) for p in best["protein"].head(max(n, 0))]


def significant_components(
    variance: pd.DataFrame, proteins: Sequence[str], fdr: float
) -> pd.DataFrame:
    """Per protein (index) and tested term (column): ``adj_p_<t>`` < ``fdr`` (bool).

    Parameters
    ----------
    variance : pandas.DataFrame
        ``variance_components.tsv`` (``protein``, ``adj_p_<t>``; the bootstrap's
        ``adj_p_boot_<t>`` are not terms).
    proteins : sequence of str
        Rows of the result, in this order (a protein not in the table: all false).
    fdr : float
        Threshold.

    Returns
    -------
    pandas.DataFrame
        Bool, no columns when the table has no tests.
    """
    table = variance.set_index(variance["protein"].astype(str))
    terms = [c.removeprefix("adj_p_") for c in table.columns if c.startswith("adj_p_")]
    terms = [t for t in terms if not t.startswith("boot_")]
    out = pd.DataFrame(index=pd.Index(list(proteins), name="protein"))
    for t in terms:
        adj = table[f"adj_p_{t}"].reindex(out.index).to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore"):
            out[t] = adj < fdr
    return out


@styled
def variance_partition_figure(
    shares: pd.DataFrame, significant: pd.DataFrame, fdr: float = 0.05, title: str = ""
) -> Figure:
    """Horizontal stacked bars of the variance shares, one bar per protein (first on top).

    One :class:`~matplotlib.container.BarContainer` per component, labelled with its name, the
    bars in the order of ``shares``' rows; a component with ``significant`` true is opaque,
    otherwise its bars have alpha :data:`PALE_ALPHA` (the residual is never pale).

    Parameters
    ----------
    shares : pandas.DataFrame
        Index protein, one column per component (:func:`partition_shares`), rows in display
        order.
    significant : pandas.DataFrame
        Index protein, bool column per tested term (:func:`significant_components`); terms
        without a column count as not significant.
    fdr : float, default 0.05
        The threshold of ``significant`` (legend).
    title : str, default ""
        Figure title (default: a description of the selection).

    Returns
    -------
    matplotlib.figure.Figure
    """
    n = len(shares)
    fig = new_figure(6.8, 1.3 + 0.19 * max(n, 3))
    ax = fig.subplots()
    y = np.arange(n, dtype=np.float64)
    left = np.zeros(n)
    tested = set(significant.columns)
    for name in shares.columns:
        width = shares[name].to_numpy(dtype=np.float64)
        color = PARTITION_COLORS.get(name, OTHER_COLOR)
        bars = ax.barh(y, width, left=left, height=0.75, color=color, label=name, lw=0)
        if name != "residual":
            sig = (
                significant[name].reindex(shares.index, fill_value=False).to_numpy(dtype=bool)
                if name in tested
                else np.zeros(n, dtype=bool)
            )
            for patch, s in zip(bars.patches, sig, strict=True):
                patch.set_alpha(1.0 if s else PALE_ALPHA)
        left = left + width
    ax.set_yticks(y, [short_name(str(p)) for p in shares.index], fontsize=6.5 if n > 30 else 7.5)
    ax.set_ylim(max(n, 1) - 0.5, -0.5)  # first protein on top
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    ax.set_xlabel("share of the protein's total variance")
    ax.set_title(title or f"Variance partition of the top {n} proteins", loc="left")
    handles: list[Patch] = [
        Patch(color=PARTITION_COLORS.get(c, OTHER_COLOR), label=c) for c in shares.columns
    ]
    if tested:
        pale = Patch(color=PARTITION_COLORS["residual"], alpha=PALE_ALPHA)
        handles.append(pale)
        pale.set_label(f"pale: variance not significant (LRT adj. p ≥ {fdr:g})")
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=min(len(handles), 6),
        handlelength=1.2,
        columnspacing=1.0,
    )
    if not n:
        ax.text(
            0.5,
            0.5,
            "no tested protein with variance components",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
    return fig


@styled
def variance_partition(
    variance: pd.DataFrame,
    differential: pd.DataFrame,
    path: Paths,
    n: int = 20,
    fdr: float = 0.05,
) -> list[str]:
    """Draw and save the variance partition of the top ``n`` proteins (module docstring).

    Parameters
    ----------
    variance : pandas.DataFrame
        ``results/tables/variance_components.tsv``.
    differential : pandas.DataFrame
        The differential table (all contrasts).
    path : str, pathlib.Path or sequence of them
        Output file(s).
    n : int, default 20
        Proteins drawn (``plots.top_n``).
    fdr : float, default 0.05
        Threshold of the variance tests' adjusted p-values (``fdr``).

    Returns
    -------
    list of str
        The proteins drawn, top first.
    """
    shares = partition_shares(variance)
    proteins = partition_proteins(differential, list(shares.index), n)
    significant = significant_components(variance, proteins, fdr)
    tests = "" if len(significant.columns) else " (variance tests off)"
    title = f"Variance partition of the top {len(proteins)} proteins{tests}"
    fig = variance_partition_figure(shares.loc[proteins], significant, fdr, title)
    save(fig, path)
    log.info("variance partition of %d proteins", len(proteins))
    return proteins
