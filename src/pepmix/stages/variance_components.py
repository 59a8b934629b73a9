"""Rule ``variance_components``: the per-protein variance table for people
(``results/tables/variance_components.tsv``)."""

from __future__ import annotations

import pandas as pd

from pepmix.stages.files import PathLike, TsvTable, read_removed

__all__ = ["run"]


def run(
    *, proteins: PathLike, removed: PathLike | None = None, boot_terms: PathLike | None = None
) -> TsvTable:
    """The variance table (one row per input protein) of the model stage's ``proteins``.

    Per random term ``<t>`` with a likelihood-ratio test: ``lrt_<t>, p_<t>, adj_p_<t>,
    icc_<t>`` (and ``p_boot_<t>, adj_p_boot_<t>, n_boot_<t>`` with the bootstrap), see
    :func:`pepmix.model.variance_tests.variance_test_table`. With a ``batch:condition`` term,
    ``sd_effect_batch`` = ``sqrt(2 * var_batch:condition)``, the between-batch SD of any
    pairwise condition effect (compound symmetry, :mod:`pepmix.model.design`); with
    ``condition|batch``, ``sd_batch[<c>-<ref>]``, ``cor_batch[...]``, ``sd_effect_batch``,
    ``heterogeneity_lrt`` and ``heterogeneity_p`` of
    :meth:`pepmix.model.slopes_fit.SlopeFit.variance_components` and ``heterogeneity_adj_p``
    (Benjamini-Hochberg over the proteins with a p-value). With ``removed``
    (default None; the merge stage's list), the removed proteins follow, with status
    ``filtered`` and missing variance components. ``boot_terms`` (default None): the term
    table of :mod:`pepmix.stages.bootstrap` (``bootstrap_proteins: top N``), whose
    ``p_boot_<t>, n_boot_<t>`` fill those columns.
    """
    from pepmix.model.variance_tests import variance_test_table

    frame = pd.read_parquet(proteins)
    if boot_terms is not None:
        boot = pd.read_csv(boot_terms, sep="\t", dtype={"protein": str})
        cols = [c for c in boot.columns if c.startswith(("p_boot_", "n_boot_"))]
        frame = frame.drop(columns=[c for c in cols if c in frame.columns])
        frame = frame.merge(boot[["protein", *cols]], on="protein", how="left")
        for c in cols:
            if c.startswith("n_boot_"):
                frame[c] = frame[c].fillna(0).astype(int)
    frame = variance_test_table(frame)
    if removed is not None:
        extra = read_removed(removed).assign(status="filtered")
        frame = pd.concat([frame, extra], ignore_index=True)
    keep = ["protein"] + [c for c in frame.columns if c.startswith("var_")]
    if "var_batch:condition" in frame.columns:
        # between-batch SD of a pairwise condition effect under compound symmetry
        frame["sd_effect_batch"] = (2.0 * frame["var_batch:condition"]) ** 0.5
        keep.append("sd_effect_batch")
    # condition|batch (pepmix.model.slopes_fit): between-batch SDs and correlations of effects
    keep += [c for c in frame.columns if c.startswith(("sd_batch[", "cor_batch["))]
    if "sd_effect_batch" in frame.columns and "sd_effect_batch" not in keep:
        keep.append("sd_effect_batch")
    if "heterogeneity_p" in frame.columns:  # its LRT against (1|batch), BH over proteins
        from pepmix.inference.fdr import bh_adjust

        frame["heterogeneity_adj_p"] = bh_adjust(frame["heterogeneity_p"].to_numpy(float))
        keep += ["heterogeneity_lrt", "heterogeneity_p", "heterogeneity_adj_p"]
    keep += ["n_features", "n_observations", "status", "detail"]
    # model.shrinkage: plain REML estimates and the prior
    keep += [c for c in frame.columns if c.startswith(("reml_ratio_", "shrinkage_prior_"))]
    # variance tests (pepmix.model.variance_tests): per term, test columns then the share
    terms = [c[len("lrt_") :] for c in frame.columns if c.startswith("lrt_")]
    for t in terms:
        cols = [f"lrt_{t}", f"p_{t}", f"adj_p_{t}", f"p_boot_{t}", f"adj_p_boot_{t}"]
        cols += [f"n_boot_{t}", f"icc_{t}"]
        keep += [c for c in cols if c in frame.columns]
    return TsvTable(frame.loc[:, keep])
