"""Profile plots of the proteins flagged by the peptide-usage test (rule ``plot_usage`` after rule
``usage_refit``; in rule ``plot_model`` when the fit jobs test usage)."""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pepmix.plots.inputs import (
    PathLike,
    distinct_values,
    read_proteins,
    read_runs,
)

log = logging.getLogger(__name__)


def _usage_headline(rec: Mapping[Hashable, object]) -> str:
    """Headline line of a usage profile: adjusted p, usage SD and the deviating cells, their
    features cut as in the profile's effect panel (``feature:condition (+blup)``)."""
    from pepmix.plots.style import middle_cut

    cells = []
    raw = rec.get("top_cells")
    for item in str(raw).split("; ") if isinstance(raw, str) and raw else []:
        cell, _, blup = item.rpartition(" (")
        feature, _, condition = cell.rpartition(":")
        cells.append(f"{middle_cut(feature)}:{condition} ({blup}")
    var = float(str(rec["var_usage"]))
    return (
        f"Peptide usage: adj. p {float(str(rec['adj_pvalue'])):.2g}, SD {np.sqrt(var):.2f}; "
        f"most deviating: {'; '.join(cells) or '-'}"
    )


def run_rule(inputs: Any, outputs: Any, params: Any) -> list[Path]:
    """:func:`run` with the named inputs, outputs (``usage_png``, optional ``usage_pdf``) and
    params (``top_n``, ``fdr``) of the Snakemake job that draws the figure (rule ``plot_usage``
    or ``plot_model``)."""
    return run(
        usage=inputs.usage,
        proteins=inputs.proteins,
        table=inputs.table,
        features=inputs.features,
        samples=inputs.samples,
        abundance=inputs.abundance,
        fixed=inputs.fixed,
        blups=inputs.blups,
        out_pdf=outputs.get("usage_pdf"),
        out_png=outputs.usage_png,
        top_n=params.top_n,
        fdr=params.fdr,
    )


def run(
    *,
    usage: PathLike,
    proteins: PathLike,
    table: PathLike,
    features: PathLike,
    samples: PathLike,
    abundance: PathLike,
    fixed: PathLike,
    blups: PathLike,
    out_pdf: PathLike | None,
    out_png: PathLike,
    top_n: int = 20,
    fdr: float = 0.05,
) -> list[Path]:
    """Profile plots of the proteins flagged by the peptide-usage test (config ``peptide_usage``).

    The flagged proteins (``adj_pvalue < fdr`` in ``results/tables/peptide_usage.tsv``, at most
    ``top_n``, smallest p first) get one profile page each in ``out_pdf`` (the model's profile
    plot, :mod:`pepmix.plots.profiles`), whose headline gives the usage test and names the most
    deviating feature x condition cells (the ``top_cells`` column, largest usage BLUP first);
    ``out_png`` is the first page, for the report (one page: the figure is in every default
    report, whose size is bounded). With ``out_pdf`` None (``pdf`` not in ``plots.formats``)
    only that page is drawn.
    """
    from dataclasses import replace

    from pepmix.plots.profile_data import build_profiles
    from pepmix.plots.profiles import write_profile_files

    tab = pd.read_csv(usage, sep="\t", keep_default_na=False, na_values=["NA", ""])
    tab["protein"] = tab["protein"].astype(str)
    hits = tab.loc[tab["adj_pvalue"] < fdr].sort_values("pvalue", kind="stable")
    # without the PDF only the PNG's page is drawn
    drawn = min(len(hits), top_n if out_pdf is not None else min(top_n, 1))
    log.info("peptide usage: %d proteins at adj. p < %g, %d drawn", len(hits), fdr, drawn)
    hits = hits.head(drawn)
    flagged = list(hits["protein"])
    feats = read_proteins(features, flagged, ["protein", "feature", "run", "y"])
    runs = read_runs(samples, distinct_values(features, "run"))
    ab = read_proteins(abundance, flagged, ["protein", "run", "abundance", "se"])
    fx = pd.read_parquet(fixed)
    fx = fx.loc[fx["term"].astype(str).str.startswith("condition[")]
    bl = read_proteins(blups, flagged)
    model = pd.read_parquet(proteins)
    profiles = build_profiles(flagged, feats, ab, fx, bl, model, pd.read_parquet(table))
    for rec in hits.to_dict("records"):
        prof = profiles[str(rec["protein"])]
        head = _usage_headline(rec)
        raw = rec.get("top_cells")
        cells = str(raw).split("; ") if isinstance(raw, str) and raw else []
        marked = tuple(dict.fromkeys(c.rpartition(" (")[0].rpartition(":")[0] for c in cells))
        title = f"{head}\n{prof.title}".rstrip()
        profiles[str(rec["protein"])] = replace(prof, title=title, marked=marked)
    none = f"No protein flagged by the peptide-usage test (adj. p < {fdr:g})."
    write_profile_files(
        profiles, [(flagged, out_pdf, out_png)], runs, png_count=1, png_columns=1, empty_text=none
    )
    return [*([Path(out_pdf)] if out_pdf is not None else []), Path(out_png)]
