"""Rule ``variance_prior``: the empirical-Bayes prior of the variance ratios, estimated on all
proteins before sharding so that results do not depend on the number of shards
(``model.shrinkage``; :mod:`pepmix.model.shrinkage`), that of the feature variance ratios
(``model.feature_weights``; :mod:`pepmix.model.feature_weights`) and that of the feature
majority rule's pure-error variances (``model.feature_majority`` with a robust fit;
:func:`pepmix.model.majority.fit_majority_prior`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pepmix.stages.files import PathLike, read_model_input, read_resolved_sheet

if TYPE_CHECKING:
    from pepmix.model.shrinkage import VariancePrior

__all__ = ["run"]


def run(
    *,
    features: PathLike,
    samples: PathLike,
    model: Mapping[str, Any] | None = None,
    replication: str = "auto",
) -> VariancePrior:
    """The prior (empty when ``model.shrinkage``, ``model.feature_weights`` and the feature
    majority rule are off); write it with ``.to_json(path)``.

    Parameters
    ----------
    features : path
        ``results/normalize/features.parquet`` (all proteins).
    samples : path
        ``results/ingest/samples.tsv``.
    model : mapping, optional
        The ``model:`` section.
    replication : {"auto", "biological", "technical"}, default "auto"
        ``testing.replication`` (with technical replication the run takes the sample's place).

    Returns
    -------
    pepmix.model.shrinkage.VariancePrior
        Per factor ``df, ratio, se_log_df, se_log_ratio, n_proteins`` (JSON, read by every
        shard's fit); with ``model.feature_weights: empirical_bayes`` also the feature-variance
        prior (:mod:`pepmix.model.feature_weights`, from the additive fits of all proteins);
        with the feature majority rule its ``[df_prior, var_prior]`` (``majority``).
    """
    from pepmix.model.majority import DEFAULT as DEFAULT_MAJORITY
    from pepmix.model.protein_fit import run_design
    from pepmix.model.robust import DEFAULT_METHOD as DEFAULT_ROBUST
    from pepmix.model.shrinkage import VariancePrior, fit_variance_prior

    model = model or {}
    shrinkage = bool(model.get("shrinkage", False))
    feature_weights = str(model.get("feature_weights", "none"))
    majority = bool(model.get("feature_majority", DEFAULT_MAJORITY)) and (
        str(model.get("robust", DEFAULT_ROBUST)) != "none"
    )
    if not shrinkage and feature_weights == "none" and not majority:
        return VariancePrior()
    sheet = read_resolved_sheet(samples)
    table = read_model_input(features)
    design = run_design(sheet, model, replication)
    prior = fit_variance_prior(table, design) if shrinkage else VariancePrior()
    if feature_weights != "none":
        prior.features = _feature_prior(table, design)
    if majority:
        from pepmix.model.fit import encode
        from pepmix.model.majority import fit_majority_prior

        prior.majority = list(fit_majority_prior(encode(table, design), design))
    return prior


def _feature_prior(table: Any, design: Any) -> dict[str, float]:
    """The feature-variance prior on all proteins (its JSON values; no model fit needed:
    :func:`pepmix.model.feature_weights.fit_feature_prior`)."""
    from pepmix.model.feature_weights import fit_feature_prior
    from pepmix.model.fit import encode

    return fit_feature_prior(encode(table, design)).to_dict()
