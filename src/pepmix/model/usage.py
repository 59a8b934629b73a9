r"""Per-protein summary of the peptide-usage term (issue 13, item 3a): which proteins' peptides do
not move together.

With ``feature:condition`` in ``model.random`` (:mod:`pepmix.model.suffstats`, "Peptide usage")
every protein has a usage variance :math:`\sigma_U^2` (the variance of the feature x condition
interaction) and, from :mod:`pepmix.model.variance_tests`, the boundary REML likelihood-ratio
test of :math:`H_0: \sigma_U^2 = 0` (p-value from the :math:`\tfrac12\chi^2_0 + \tfrac12\chi^2_1`
mixture, BH-adjusted over proteins). A usage variance above zero means that some peptide's
change between conditions differs from the protein's (isoforms, modifications, interferences);
the most deviating cells are those with the largest usage BLUPs :math:`|\hat w_{fc}|` (log2
units, like ``lme4::ranef``).

This module only assembles the table from the variance-components table and the BLUPs; it is not
wired into a workflow rule yet.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pepmix.model.design import USAGE_FACTOR

#: columns of :func:`peptide_usage_table`
USAGE_COLUMNS = (
    "protein",
    "var_usage",
    "lrt",
    "pvalue",
    "adj_pvalue",
    "status",
    "top_cells",
)


def _top_cells(blups: pd.DataFrame, n_top: int) -> pd.Series:
    """``"<feature>:<condition> (+x.xx); ..."`` of the ``n_top`` largest usage BLUPs per
    protein, largest first."""
    usage = blups.loc[blups["factor"].astype(str) == USAGE_FACTOR]
    if usage.empty:
        return pd.Series(dtype=object)
    usage = usage.assign(
        protein=usage["protein"].astype(str),
        size=usage["blup"].abs(),
        text=usage["level"].astype(str) + " (" + usage["blup"].map("{:+.2f}".format) + ")",
    )
    usage = usage.loc[usage["size"] > 0].sort_values(["protein", "size"], ascending=[True, False])
    top = usage.groupby("protein", sort=False).head(n_top)
    return top.groupby("protein", sort=False)["text"].agg("; ".join)


def peptide_usage_table(
    components: pd.DataFrame, blups: pd.DataFrame, n_top: int = 3
) -> pd.DataFrame:
    """One row per protein: usage variance, its LRT and the most deviating cells.

    Parameters
    ----------
    components : pandas.DataFrame
        The variance-components table (``results/tables/variance_components.tsv``): ``protein``,
        ``status``, ``var_feature:condition`` and, when the variance tests ran,
        ``lrt_feature:condition``, ``p_feature:condition``, ``adj_p_feature:condition``.
    blups : pandas.DataFrame
        BLUPs ``protein, factor, level, blup`` (:attr:`pepmix.model.fit.ModelFit.blups`).
    n_top : int, default 3
        Cells listed per protein in ``top_cells``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`USAGE_COLUMNS`; ``top_cells`` is empty where the usage variance is 0, the
        test columns NaN where the tests did not run. Sorted by ``pvalue`` (NaN last).

    Raises
    ------
    ValueError
        When ``components`` has no usage column (the model has no ``feature:condition`` term).
    """
    var_col = f"var_{USAGE_FACTOR}"
    if var_col not in components.columns:
        raise ValueError("the model has no feature:condition term (model.random)")
    nan = pd.Series(np.nan, index=components.index)
    out = pd.DataFrame(
        {
            "protein": components["protein"].astype(str),
            "var_usage": components[var_col],
            "lrt": components.get(f"lrt_{USAGE_FACTOR}", nan),
            "pvalue": components.get(f"p_{USAGE_FACTOR}", nan),
            "adj_pvalue": components.get(f"adj_p_{USAGE_FACTOR}", nan),
            "status": components["status"],
        }
    )
    top = _top_cells(blups, n_top)
    out["top_cells"] = out["protein"].map(top).fillna("")
    out = out.sort_values("pvalue", kind="stable", na_position="last")
    return out.reset_index(drop=True).loc[:, list(USAGE_COLUMNS)]
