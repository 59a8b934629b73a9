"""Rule ``variance_prior``: the empirical-Bayes prior of the variance ratios, estimated on all
proteins before sharding so that results do not depend on the number of shards
(``model.shrinkage``; :mod:`pepmix.model.shrinkage`) and that of the feature variance ratios
(``model.feature_weights``; :mod:`pepmix.model.feature_weights`). The feature majority rule's
prior is fitted by every fit job from all shards' tables instead
(:mod:`pepmix.model.majority_shards`)."""

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
    """The prior (empty when ``model.shrinkage`` and ``model.feature_weights`` are off); write
    it with ``.to_json(path)``.

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
        prior (:mod:`pepmix.model.feature_weights`, from the additive fits of all proteins).
    """
    from pepmix.model.protein_fit import run_design
    from pepmix.model.shrinkage import VariancePrior, fit_variance_prior

    model = model or {}
    shrinkage = bool(model.get("shrinkage", False))
    feature_weights = str(model.get("feature_weights", "none"))
    if not shrinkage and feature_weights == "none":
        return VariancePrior()
    sheet = read_resolved_sheet(samples)
    table = read_model_input(features)
    design = run_design(sheet, model, replication)
    prior = fit_variance_prior(table, design) if shrinkage else VariancePrior()
    if feature_weights != "none":
        prior.features = _feature_prior(table, design)
    return prior


def _feature_prior(table: Any, design: Any) -> dict[str, float]:
    """The feature-variance prior on all proteins (its JSON values; no model fit needed:
    :func:`pepmix.model.feature_weights.fit_feature_prior`)."""
    from pepmix.model.feature_weights import fit_feature_prior
    from pepmix.model.fit import encode

    return fit_feature_prior(encode(table, design)).to_dict()
