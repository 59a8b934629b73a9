"""Rule ``fit``: one linear mixed model per protein of a shard (:func:`pepmix.api.fit`), and the
protein abundance model on the same table (:mod:`pepmix.model.abundance`).

With ``missing: detection`` the shard's proteins are also fitted with the detection model
(:func:`pepmix.model.missing.detection_table`, given the curve of rule ``detection_curve``), for
the config's contrasts; the test stage tests that table instead of the MAR contrasts.

The stored fit (``fit.parquet``, :mod:`pepmix.model.stored`) holds what every contrast test
needs; the test stage computes the contrasts, so editing ``contrasts:`` does not refit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pandas as pd

from pepmix.api import Dataset, Fit
from pepmix.io import write_parquet
from pepmix.stages.files import (
    PathLike,
    TsvTable,
    read_model_arrow,
    read_model_input,
    read_removed,
    read_resolved_sheet,
    write_wide,
)

if TYPE_CHECKING:
    from pepmix.model.majority_shards import ShardSample
    from pepmix.model.usage import UsageShard

__all__ = ["FitResult", "run"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitResult:
    """The shard's model outputs.

    Attributes
    ----------
    fit : pepmix.api.Fit
        The fit (with ``proteins`` and ``model``); its stored fit holds the contrasts of the
        usage model for the proteins config ``peptide_usage_contrasts`` switched
        (:mod:`pepmix.model.pretest`).
    abundance : pandas.DataFrame or None
        Protein abundance per run (:func:`pepmix.model.abundance.protein_abundance`), when
        asked for.
    usage : pandas.DataFrame or None
        The shard's peptide-usage rows (:func:`pepmix.model.usage.usage_shard_table`), when
        asked for (config ``peptide_usage``).
    detection : pandas.DataFrame or None
        The detection model's contrast rows (:func:`pepmix.model.missing.detection_table`),
        with ``missing: detection``.
    usage_test : pepmix.model.usage.UsageShard or None
        The usage test with the usage model's fit (:func:`pepmix.model.usage.usage_shard`), when
        computed; not written (benchmarks re-decide the contrasts from it: its fit has
        covariances and contrasts only with ``run(usage_inference=True)`` or contrasts taken
        from the usage model).
    """

    fit: Fit
    abundance: pd.DataFrame | None = None
    usage: pd.DataFrame | None = None
    detection: pd.DataFrame | None = None
    usage_test: UsageShard | None = None

    def usage_table(self, *, removed: PathLike | None = None) -> TsvTable:
        """The peptide-usage table of this fit alone (``results/tables/peptide_usage.tsv`` when
        the fit is the only shard; :func:`pepmix.model.usage.gather_usage_table`), the removed
        proteins of the merge stage (default None: none) after the tested ones."""
        from pepmix.model.usage import gather_usage_table

        if self.usage is None:
            raise ValueError("FitResult.usage_table: the fit did not test peptide usage")
        extra = read_removed(removed) if removed is not None else None
        return TsvTable(gather_usage_table([self.usage], extra))

    def write(
        self,
        *,
        proteins: PathLike,
        fit: PathLike,
        fixed: PathLike,
        blups: PathLike,
        abundance: PathLike | None = None,
        wide: PathLike | None = None,
        usage: PathLike | None = None,
        detection: PathLike | None = None,
        usage_start: PathLike | None = None,
    ) -> None:
        """Write the protein table, the stored fit, fixed effects, BLUPs and (each when given
        and computed) the abundances, their proteins x runs TSV (``wide``: one shard, whose job
        writes the gathered files itself), the usage rows and the detection model's contrast
        rows; with ``usage_start`` (default None) the start of the usage refit in a job of its
        own (:class:`pepmix.model.usage.UsageStart`, rule ``usage_refit``)."""
        model = self.fit.model
        if self.fit.proteins is None or model is None:
            raise ValueError("FitResult.write: the fit has no per-protein results")
        write_parquet(self.fit.proteins, proteins)
        if usage is not None and self.usage is not None:
            write_parquet(self.usage, usage)
        if detection is not None and self.detection is not None:
            write_parquet(self.detection, detection)
        if usage_start is not None:
            from pepmix.model.usage import UsageStart, needs_refit

            if not needs_refit(model):
                raise ValueError("FitResult.write: this fit's usage test is not a refit")
            UsageStart.from_fit(model).write(usage_start)
        self.fit.stored.write(fit)
        write_parquet(model.fixed_effects(), fixed)
        write_parquet(model.blups, blups)
        if abundance is not None and self.abundance is not None:
            write_parquet(self.abundance, abundance)
            if wide is not None:
                write_wide(abundance, list(self.fit.runs["run"]), wide)


def run(
    *,
    features: PathLike,
    samples: PathLike,
    model: Mapping[str, Any] | None = None,
    replication: str = "auto",
    prior: PathLike | None = None,
    majority_shards: Sequence[PathLike] | None = None,
    variance_tests: Mapping[str, Any] | None = None,
    abundance: bool = True,
    usage: bool = False,
    missing: str = "mar",
    curve: PathLike | None = None,
    contrasts: Sequence[Sequence[str]] = (),
    usage_contrasts: str = "never",
    pretest_alpha: float = 0.25,
    stratum: bool = False,
    usage_inference: bool | None = None,
    usage_weights: str | None = None,
) -> FitResult:
    """Fit the shard.

    Parameters
    ----------
    features : path
        The shard's ``features.parquet`` (normalised).
    samples : path
        ``results/ingest/samples.tsv``.
    model : mapping, optional
        The ``model:`` section.
    replication : {"auto", "biological", "technical"}, default "auto"
        ``testing.replication``.
    prior : path, optional
        The variance-ratio prior of :mod:`pepmix.stages.variance_prior` (used when
        ``model.shrinkage`` is on; default None), with the feature-variance prior when
        ``model.feature_weights`` is on (without it the shard's own proteins estimate it).
    majority_shards : sequence of paths, optional
        Every shard's ``features.parquet``, this one's included (the workflow's fit jobs with
        several shards and the feature majority rule): the rule's prior is fitted on the
        :func:`pepmix.model.majority.prior_sample` of all shards' proteins, bit for bit the
        prior of one job (:mod:`pepmix.model.majority_shards`); default None: on this table's
        proteins (one shard), by the same rule.
    variance_tests : mapping, optional
        The ``variance_tests:`` section (default: LRTs on, no bootstrap).
    abundance : bool, default True
        Also fit the protein abundance model.
    usage : bool, default False
        Also test peptide usage (config ``peptide_usage``).
    missing : {"mar", "detection"}, default "mar"
        Config ``missing``: with ``detection`` also fit the detection model
        (:mod:`pepmix.model.missing`).
    curve : path, optional
        ``results/model/detection_curve.tsv`` (required with ``missing: detection``).
    contrasts : sequence of (name, numerator, denominator), default ()
        The config's contrasts (the detection model's table is computed for these).
    usage_contrasts : str, default "never"
        Config ``peptide_usage_contrasts`` (one of :data:`pepmix.model.pretest.MODES`): which
        proteins' contrasts come from the usage model (:mod:`pepmix.model.pretest`); only with
        ``usage`` (else no effect).
    pretest_alpha : float, default 0.25
        Config ``peptide_usage_pretest_alpha``.
    stratum : bool, default False
        ``testing.variance_prior: stratum``: export the residual floors and between-replicate
        mean squares the test stage's stratum prior needs (:func:`pepmix.api.fit`).
    usage_inference : bool, optional
        Whether the usage model's refit computes covariances and contrasts
        (:attr:`FitResult.usage_test`); default None: only when ``usage_contrasts`` takes
        contrasts from it (not ``never``). The usage rows are the same either way.
    usage_weights : {"usage_fit", "default_fit"}, optional
        Config ``peptide_usage_weights`` (:mod:`pepmix.model.usage`, "Weights of the test");
        default None: :data:`pepmix.model.usage.DEFAULT_WEIGHTS`. Only with
        ``usage_contrasts`` ``never`` (the other modes take contrasts from the usage model's
        fit, which stays the re-iterated Huber fit).

    Returns
    -------
    FitResult
    """
    from pepmix import api
    from pepmix.model.abundance import protein_abundance
    from pepmix.model.design import SLOPE_TERM
    from pepmix.model.majority import DEFAULT as DEFAULT_MAJORITY
    from pepmix.model.robust import DEFAULT_METHOD as DEFAULT_ROBUST

    model = dict(model or {})
    table = read_model_input(features)
    sheet = read_resolved_sheet(samples)
    shrinkage = bool(model.get("shrinkage", False)) and prior is not None
    feature_weights = str(model.get("feature_weights", "none"))
    ratio_prior = None
    feature_prior = None
    majority = _majority_sample(features, majority_shards, table, sheet, model, replication)
    if prior is not None and (shrinkage or feature_weights != "none"):
        # imported only here: its module loads scipy.optimize (~0.1 s per fit job)
        from pepmix.model.shrinkage import VariancePrior

        ratio_prior = VariancePrior.from_json(prior)
        if ratio_prior.features is not None:
            from pepmix.model.feature_weights import FeaturePrior

            feature_prior = FeaturePrior.from_dict(ratio_prior.features)
        if not shrinkage:
            ratio_prior = None
    data = Dataset(features=table, runs=sheet, removed=pd.DataFrame())
    robust = str(model.get("robust", DEFAULT_ROBUST))
    fit = api.fit(
        data,
        random=model.get("random"),
        fixed=model.get("fixed"),
        covariates=tuple(model.get("covariates", ())),
        robust=robust,
        shrinkage=shrinkage,
        replication=replication,
        variance_tests=variance_tests,
        prior=ratio_prior,
        feature_weights=feature_weights,
        feature_prior=feature_prior,
        stratum=stratum,
        feature_majority=bool(model.get("feature_majority", DEFAULT_MAJORITY)),
        majority_prior=majority,
    )
    engine = fit.model
    if engine is None or fit.proteins is None:
        raise ValueError("the fit returned no per-protein results")
    counts = fit.proteins["status"].value_counts().to_dict()
    log.info("protein statuses: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
    shard = None
    if usage and SLOPE_TERM in fit.spec.random:
        log.info("peptide usage: not tested with the random slope %s", SLOPE_TERM)
    elif usage:
        from pepmix.model.usage import DEFAULT_WEIGHTS, usage_shard

        # the boundary screen leaves proteins out of the usage fit: not where the contrasts
        # take every refitted protein's usage fit
        screen = usage_contrasts not in ("always", "no_majority")
        # the usage model's covariances and contrasts only serve the contrasts taken from it
        inference = usage_contrasts != "never" if usage_inference is None else usage_inference
        weights = usage_weights or DEFAULT_WEIGHTS
        if usage_contrasts != "never":  # contrasts from the usage model: its Huber refit
            weights = "usage_fit"
        shard = usage_shard(
            engine, fit.proteins, table, sheet, robust, screen=screen, inference=inference,
            weights=weights,
        )  # fmt: skip
        fit = _usage_contrasts(fit, shard, usage_contrasts, pretest_alpha)
    detection = None
    if missing == "detection":
        detection = _detection(fit, curve, contrasts)
    ab = None
    if abundance:
        ab = protein_abundance(table, list(sheet["run"]), encoded=engine.encoded)
    usage_rows = None if shard is None else shard.table
    return FitResult(fit=fit, abundance=ab, usage=usage_rows, usage_test=shard, detection=detection)


def _majority_sample(
    features: PathLike,
    shards: Sequence[PathLike] | None,
    table: pd.DataFrame,
    sheet: pd.DataFrame,
    model: Mapping[str, Any],
    replication: str,
) -> ShardSample | None:
    """The feature majority rule's prior sample of all ``shards`` (``features`` among them,
    read as ``table``) with the other shards' sampled variances
    (:func:`pepmix.model.majority_shards.shard_sample`), or None (fitted on this job's proteins:
    one shard, or the rule off)."""
    import os

    from pepmix.model.majority import DEFAULT as DEFAULT_MAJORITY
    from pepmix.model.robust import DEFAULT_METHOD as DEFAULT_ROBUST

    if not shards or not bool(model.get("feature_majority", DEFAULT_MAJORITY)):
        return None
    from pepmix.model.design import SLOPE_TERM

    if str(model.get("robust", DEFAULT_ROBUST)) == "none" or SLOPE_TERM in (
        model.get("random") or ()
    ):  # the rule is not applied (plain REML, or the random-slope model's own fit)
        return None
    from pepmix.model.majority_shards import shard_sample
    from pepmix.model.protein_fit import run_design

    own = os.path.realpath(features)
    others = [p for p in shards if os.path.realpath(p) != own]
    if len(others) != len(shards) - 1:
        raise ValueError(f"majority_shards must list this shard's table {features} once")
    tables = (read_model_arrow(p) for p in others)  # one at a time, Arrow: few rows kept
    return shard_sample(table, tables, run_design(sheet, model, replication))


def _detection(
    fit: Fit, curve: PathLike | None, contrasts: Sequence[Sequence[str]]
) -> pd.DataFrame:
    """The detection model's contrast rows of the shard
    (:func:`pepmix.model.missing.detection_table`)."""
    from pepmix.model.missing import detection_table, read_curve

    if curve is None or fit.model is None:
        raise ValueError("missing: detection needs the detection curve and the MAR fit")
    detection_curve, prior_sd = read_curve(curve, fit.model.design.runs)
    triples = [(str(c[0]), str(c[1]), str(c[2])) for c in contrasts]
    return detection_table(fit.model, fit.stored, detection_curve, prior_sd, triples)


def _usage_contrasts(fit: Fit, shard: UsageShard, mode: str, alpha: float) -> Fit:
    """``fit`` whose stored contrasts follow ``peptide_usage_contrasts``
    (:func:`pepmix.model.pretest.usage_contrasts`); unchanged for ``never``."""
    from pepmix.model.pretest import usage_contrasts

    if mode == "never":
        return fit
    stored, n_switched = usage_contrasts(fit.stored, shard, mode, alpha)
    log.info(
        "peptide_usage_contrasts %s: %d proteins' contrasts from the usage model", mode, n_switched
    )
    return replace(fit, stored=stored)
