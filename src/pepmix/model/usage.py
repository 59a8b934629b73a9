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

Workflow output ``results/tables/peptide_usage.tsv`` (config ``peptide_usage: true``): per shard
the fit job calls :func:`usage_shard_table`, rule ``peptide_usage`` gathers with
:func:`gather_usage_table`. When the model (``model.random``) has no ``feature:condition`` term,
the shard's proteins are fitted a second time with the term added (plain REML, the model's
``model.robust`` setting, no variance-ratio prior) and only the usage term is tested: the null
model is the default model, refitted at the usage fit's observation weights (with
``robust: none`` exactly rule fit's model; with Huber weights the weights of the larger model,
held fixed in both fits as in :mod:`pepmix.model.variance_tests`). When the model already has
the term, the fitted model is tested against the model without it, reusing the test the fit job
computes for ``variance_components.tsv``. The p-value is the 50:50 chi-bar-square mixture,
BH-adjusted over all tested proteins.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pepmix.model.design import RANDOM_FACTORS, USAGE_FACTOR, ModelSpec, build_run_design
from pepmix.model.fit import FITTED, ModelFit, fit_proteins

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


def usage_lrt(fit: ModelFit) -> np.ndarray:
    """REML LRT of the usage term of every protein of ``fit`` (a model with the term).

    Only the usage term is tested (:func:`pepmix.model.variance_tests.term_lrts` with
    ``terms``), at the fit's observation weights; NaN where the protein was not fitted or the
    term is not in its model (one feature, or every feature seen in one condition).
    """
    from pepmix.model.variance_tests import refit_problem, term_lrts

    if fit.encoded is None:
        return np.full(len(fit.proteins), np.nan)
    problem, start = refit_problem(fit)
    tests = term_lrts(problem, start, terms=(USAGE_FACTOR,))
    lrt = tests.lrt[:, tests.factors.index(USAGE_FACTOR)].copy()
    lrt[~np.isin(np.asarray(fit.status, dtype=object), FITTED)] = np.nan
    return np.asarray(lrt)


def with_usage(spec: ModelSpec) -> ModelSpec:
    """``spec`` with ``feature:condition`` added to its random terms (canonical order)."""
    random = set(spec.random) | {USAGE_FACTOR}
    return dataclasses.replace(spec, random=tuple(f for f in RANDOM_FACTORS if f in random))


def usage_shard_table(
    fit: ModelFit,
    components: pd.DataFrame,
    table: pd.DataFrame,
    sheet: pd.DataFrame,
    robust: str = "none",
    n_top: int = 3,
) -> pd.DataFrame:
    """The peptide-usage rows of one shard (p-values are added by :func:`gather_usage_table`).

    Parameters
    ----------
    fit : ModelFit
        The model stage's fit of the shard.
    components : pandas.DataFrame
        Its protein table (``fit.variance_components()`` plus the ``lrt_<t>`` test columns,
        when the variance tests ran).
    table : pandas.DataFrame
        The shard's model input (``protein, feature, run, y``).
    sheet : pandas.DataFrame
        Resolved sample sheet.
    robust : str, default "none"
        ``model.robust`` (used for the fit with the usage term added).
    n_top : int, default 3
        Most deviating cells listed per protein.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`USAGE_COLUMNS`.
    """
    lrt_col = f"lrt_{USAGE_FACTOR}"
    if USAGE_FACTOR in fit.factors:
        comp, blups = components, fit.blups
        if lrt_col not in comp.columns:  # variance_tests.lrt: false
            comp = comp.assign(**{lrt_col: usage_lrt(fit)})
    else:
        design = build_run_design(sheet, with_usage(fit.design.spec))
        full = fit_proteins(table, design, robust=robust)
        comp = full.variance_components().assign(**{lrt_col: usage_lrt(full)})
        blups = full.blups
    return peptide_usage_table(comp, blups, n_top)


def gather_usage_table(
    parts: Sequence[pd.DataFrame], removed: pd.DataFrame | None = None
) -> pd.DataFrame:
    """``results/tables/peptide_usage.tsv`` from the shards' rows.

    Adds the mixture p-value (:func:`pepmix.model.variance_tests.mixture_pvalue`) and its
    Benjamini-Hochberg adjustment over all proteins with a test; the ``removed`` proteins
    (the merge stage's list, :mod:`pepmix.stages.merge`; default None: none) follow with
    status ``filtered``.
    Sorted by ``pvalue`` (NaN last), one row per input protein.
    """
    from pepmix.inference.limma import bh_adjust
    from pepmix.model.variance_tests import mixture_pvalue

    frame = pd.concat(list(parts), ignore_index=True)
    pvalue = mixture_pvalue(frame["lrt"].to_numpy(dtype=np.float64))
    frame["pvalue"] = pvalue
    frame["adj_pvalue"] = bh_adjust(pvalue)
    if removed is not None and len(removed):
        extra = pd.DataFrame(
            {"protein": removed["protein"].astype(str), "status": "filtered", "top_cells": ""}
        )
        frame = pd.concat([frame, extra], ignore_index=True)
    frame = frame.sort_values("pvalue", kind="stable", na_position="last")
    return frame.reset_index(drop=True).loc[:, list(USAGE_COLUMNS)]
