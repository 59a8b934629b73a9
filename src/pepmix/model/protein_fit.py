"""The model stage on in-memory tables: sample sheet and model config in, per-protein tables out.

Shared by the workflow's fit stage (:mod:`pepmix.stages.fit`, one shard) and the Python
API (:func:`pepmix.api.fit`, all proteins): the model spec and run design from the config
(:mod:`pepmix.model.design`), the optional variance-ratio prior (:mod:`pepmix.model.shrinkage`),
the batched fit (:mod:`pepmix.model.fit`) and the variance-component tests
(:mod:`pepmix.model.variance_tests`), assembled into the protein table of
``results/model/proteins.parquet``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from pepmix.model.design import ModelSpec, RunDesign
    from pepmix.model.feature_weights import FeaturePrior
    from pepmix.model.fit import ModelFit
    from pepmix.model.majority_shards import ShardSample
    from pepmix.model.shrinkage import VariancePrior

__all__ = ["ProteinFit", "fit_protein_models", "protein_table", "run_design"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProteinFit:
    """The engine's fit and the protein table built from it.

    Attributes
    ----------
    model : pepmix.model.fit.ModelFit
        Arrays per protein (:func:`pepmix.model.fit.fit_proteins`).
    proteins : pandas.DataFrame
        One row per protein: variance components and statuses
        (:meth:`pepmix.model.fit.ModelFit.variance_components`), ``theta_<factor>``, ``sigma``,
        ``converged``, ``iterations`` and the test columns of
        :func:`pepmix.model.variance_tests.fit_tests`.
    spec : pepmix.model.design.ModelSpec
        The model fitted.
    """

    model: ModelFit
    proteins: pd.DataFrame
    spec: ModelSpec


def run_design(
    sheet: pd.DataFrame, model_config: Mapping[str, Any], replication: str = "auto"
) -> RunDesign:
    """Model spec and run design of the ``model:`` config for a sample sheet, logged once.

    ``replication`` is ``testing.replication`` (default ``"auto"``, see
    :func:`pepmix.model.design.replication_unit`).
    """
    from pepmix.model.design import build_run_design, model_spec_from_config

    spec = model_spec_from_config(model_config, sheet, replication)
    design = build_run_design(sheet, spec)
    log.info(
        "model: random %s, fixed %s, replication %s",
        "+".join(spec.random),
        "+".join(design.x_names),
        spec.replication,
    )
    return design


def protein_table(fit: ModelFit, variance_tests: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The protein table of a fit (see :class:`ProteinFit`); ``variance_tests`` is the config
    section (default None: likelihood-ratio tests on, bootstrap off)."""
    from pepmix.model.variance_tests import VarianceTestOptions, fit_tests

    proteins = fit.variance_components()
    for f, name in enumerate(fit.factors):
        proteins[f"theta_{name}"] = fit.theta[:, f]
    proteins["sigma"] = fit.sigma
    proteins["converged"] = fit.converged
    proteins["iterations"] = fit.iterations
    tests = fit_tests(fit, VarianceTestOptions.from_config(variance_tests))
    for col in tests.columns[1:]:
        proteins[col] = tests[col].to_numpy()
    return proteins


def fit_protein_models(
    table: pd.DataFrame,
    sheet: pd.DataFrame,
    model_config: Mapping[str, Any],
    *,
    replication: str = "auto",
    prior: VariancePrior | None = None,
    variance_tests: Mapping[str, Any] | None = None,
    feature_prior: FeaturePrior | None = None,
    stratum: bool = False,
    majority_prior: tuple[float, float] | ShardSample | None = None,
) -> ProteinFit:
    """Fit the ``model:`` config's model to every protein of ``table``.

    Parameters
    ----------
    table : pandas.DataFrame
        ``protein, feature, run, y`` (normalised log2 intensities, observed cells only).
    sheet : pandas.DataFrame
        The resolved sample sheet, one row per run.
    model_config : mapping
        The ``model:`` section (``random``, ``fixed``, ``covariates``, ``robust`` (default
        ``huber``), ``shrinkage``, ``feature_weights``, ``feature_majority`` (default True)).
    replication : {"auto", "biological", "technical"}, default "auto"
        ``testing.replication``.
    prior : pepmix.model.shrinkage.VariancePrior, optional
        Variance-ratio prior (``model.shrinkage``; default None: plain REML).
    variance_tests : mapping, optional
        The ``variance_tests:`` section (default None: LRTs on, bootstrap off).
    feature_prior : pepmix.model.feature_weights.FeaturePrior, optional
        With ``model.feature_weights``: the prior of the feature variances (default None:
        estimated on ``table``).
    stratum : bool, default False
        Export what ``testing.variance_prior: stratum`` needs
        (:func:`pepmix.model.fit.fit_proteins`).
    majority_prior : (float, float) or ShardSample, optional
        With ``model.feature_majority``: the prior of its pure-error variances fitted on all
        proteins (:func:`pepmix.model.majority.fit_majority_prior`), or the sample of all
        shards it is fitted from with ``table``'s proteins
        (:class:`pepmix.model.majority_shards.ShardSample`); default None: fitted on ``table``.

    Returns
    -------
    ProteinFit
    """
    from pepmix.model.fit import fit_proteins
    from pepmix.model.majority import DEFAULT as DEFAULT_MAJORITY
    from pepmix.model.robust import DEFAULT_METHOD as DEFAULT_ROBUST

    design = run_design(sheet, model_config, replication)
    if prior is not None:
        log.info("model.shrinkage: variance-ratio prior %s", prior.describe() or "none")
    fit = fit_proteins(
        table,
        design,
        prior=prior,
        robust=str(model_config.get("robust", DEFAULT_ROBUST)),
        feature_weights=str(model_config.get("feature_weights", "none")),
        feature_prior=feature_prior,
        stratum=stratum,
        feature_majority=bool(model_config.get("feature_majority", DEFAULT_MAJORITY)),
        majority_prior=majority_prior,
    )
    proteins = protein_table(fit, variance_tests)
    fit.builder = None  # the robust iteration's structure served the variance tests: released
    return ProteinFit(model=fit, proteins=proteins, spec=design.spec)
