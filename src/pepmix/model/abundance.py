"""Per-run protein abundances from a per-protein mixed model (the "intelligent aggregator").

For each protein, ``y_fr = mu_r + u_f + e_fr`` with fixed run means :math:`\\mu_r`, random feature
effects :math:`u_f \\sim N(0, \\sigma_f^2)` and residuals :math:`e \\sim N(0, \\sigma^2)`, fitted
by REML with the batched engine (:mod:`pepmix.model`). The abundance of the protein in run ``r``
is :math:`\\hat\\mu_r`, on the log2 scale of the features; its standard error reflects how many
features were observed in that run and how noisy they are. Missing features are handled by the
model (a run where only a low-responding peptide was seen is corrected by that peptide's effect),
not by averaging whatever is present.

Proteins with a single feature (or too few observations for the model) get the mean of their
observed values per run, with no standard error, and keep the model's status.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pepmix.model.design import abundance_design
from pepmix.model.fit import FITTED, Encoded, fit_proteins

log = logging.getLogger(__name__)


def protein_abundance(
    table: pd.DataFrame, runs: Sequence[str], encoded: Encoded | None = None
) -> pd.DataFrame:
    """Estimate protein abundances per run.

    Parameters
    ----------
    table : pandas.DataFrame
        Normalised long table with ``protein, feature, run, y`` (observed cells only).
    runs : sequence of str
        All runs (sample-sheet order).
    encoded : Encoded, optional
        The table as already encoded by the differential model's fit (``ModelFit.encoded``),
        reused instead of encoding the table a second time.

    Returns
    -------
    pandas.DataFrame
        Long table ``protein, run, abundance, se, n_features, status`` with one row per protein
        and run in which the protein was observed.
    """
    fit = fit_proteins(
        table.loc[:, ["protein", "feature", "run", "y"]],
        abundance_design(runs),
        what="protein abundance models",
        encoded=encoded,
    )
    status = pd.Series(fit.status, index=fit.proteins)
    modelled = fit.run_effects.copy()
    modelled["status"] = modelled["protein"].map(status)
    modelled = modelled.loc[modelled["status"].isin(FITTED)]
    fallback_proteins = status.index[~status.isin(FITTED)]
    simple = table.loc[table["protein"].isin(fallback_proteins)]
    averaged = (
        simple.groupby(["protein", "run"], observed=True)
        .agg(abundance=("y", "mean"), n_features=("y", "size"))
        .reset_index()
    )
    averaged["se"] = np.nan
    averaged["status"] = averaged["protein"].map(status)
    out = pd.concat([modelled, averaged], ignore_index=True)
    order = {r: i for i, r in enumerate(runs)}
    out["_run"] = out["run"].map(order)
    out = out.sort_values(["protein", "_run"], kind="stable").drop(columns="_run")
    log.info(
        "protein abundances: %d proteins modelled, %d averaged (single feature or too few values)",
        int(status.isin(FITTED).sum()),
        len(fallback_proteins),
    )
    return out.loc[:, ["protein", "run", "abundance", "se", "n_features", "status"]].reset_index(
        drop=True
    )


def wide(abundance: pd.DataFrame, runs: Sequence[str]) -> pd.DataFrame:
    """Proteins x runs table of abundances (missing where the protein was not observed)."""
    table = abundance.pivot(index="protein", columns="run", values="abundance")
    table = table.reindex(columns=[r for r in runs if r in table.columns])
    table.columns.name = None
    return table.reset_index()
