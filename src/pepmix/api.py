"""The Python API: the pipeline's four steps on in-memory tables, without Snakemake.

>>> import pepmix
>>> data = pepmix.read(entries, samples="config/samples.tsv")      # doctest: +SKIP
>>> data = pepmix.normalize(data)                                   # doctest: +SKIP
>>> fit = pepmix.fit(data)                                          # doctest: +SKIP
>>> table = pepmix.test(fit, contrasts="all_pairwise")              # doctest: +SKIP

Each function takes the options of one section of the workflow's config as keyword arguments
with the same names and defaults (``config/README.md``; a test checks the defaults against the
config schema), so a config and a script say the same thing. The steps pass small typed objects:

- :class:`Dataset`: the canonical long table of features, the sample sheet resolved against the
  data (one row per run) and the proteins removed by the filters; after :func:`normalize` also
  the normalised ``y`` column and the per-run normalisation table.
- :class:`Fit`: per-protein model results (statuses, variance components and their tests,
  fixed effects, BLUPs) and the stored fit from which :func:`test` computes any contrast.

The results equal the workflow's tables for the same config (tested on the demo). What the
workflow adds around them is files, sharding over proteins, plots and the report.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from pepmix.errors import ConfigError

if TYPE_CHECKING:
    from pepmix.model.design import ModelSpec
    from pepmix.model.feature_weights import FeaturePrior
    from pepmix.model.fit import ModelFit
    from pepmix.model.majority_shards import ShardSample
    from pepmix.model.shrinkage import VariancePrior
    from pepmix.model.stored import StoredFit

__all__ = ["Dataset", "Fit", "fit", "normalize", "read", "test"]

log = logging.getLogger(__name__)

PathLike = str | Path

#: defaults of the ``filter:`` config section (checked against the schema by a test)
FILTER_DEFAULTS: Mapping[str, Any] = {
    "q_value": 0.01,
    "pg_q_value": 0.01,
    "remove_decoys": True,
    "remove_contaminants": True,
    "shared_peptides": "exclude",
    "min_features": 2,
    "min_observations": 2,
}


@dataclass(frozen=True)
class Dataset:
    """Features of all runs, the runs' sample sheet and what the filters removed.

    Attributes
    ----------
    features : pandas.DataFrame
        Canonical long table (:mod:`pepmix.canonical`): one row per feature and run. After
        :func:`normalize`: ``protein, feature, peptide, run, log2_raw, y``.
    runs : pandas.DataFrame
        The sample sheet resolved against the data, one row per run (``run, condition,
        bioreplicate, batch`` and any further columns), all values text as in
        ``results/ingest/samples.tsv``.
    removed : pandas.DataFrame
        Proteins of the input removed by the filters: ``protein, detail, n_features,
        n_observations``; :func:`test` lists them with status ``filtered``.
    normalization : pandas.DataFrame or None, default None
        After :func:`normalize`: one row per run with its shift and diagnostics
        (:func:`pepmix.normalization.normalize`).
    """

    features: pd.DataFrame
    runs: pd.DataFrame
    removed: pd.DataFrame
    normalization: pd.DataFrame | None = None


@dataclass(frozen=True)
class Fit:
    """One linear mixed model per protein (:func:`fit`), or the workflow's stored fit
    (:meth:`read`).

    Attributes
    ----------
    stored : pepmix.model.stored.StoredFit
        What every contrast needs (estimates, covariances and their derivatives, per protein);
        ``stored.design.spec`` is the model that was fitted.
    runs : pandas.DataFrame
        The resolved sample sheet the model was fitted with.
    removed : pandas.DataFrame
        Proteins removed by the filters before the model (:attr:`Dataset.removed`).
    shrinkage : bool, default False
        Whether the variance ratios were shrunk (then :func:`test` does not moderate again).
    proteins : pandas.DataFrame or None, default None
        One row per modelled protein: status, detail, counts, variance components, their
        likelihood-ratio tests (``results/model/proteins.parquet``). None for a stored fit.
    model : pepmix.model.fit.ModelFit or None, default None
        The engine's full result (arrays per protein; fixed effects by
        ``model.fixed_effects()``, BLUPs and robust weights by ``model.blups``). None for a
        stored fit.
    """

    stored: StoredFit
    runs: pd.DataFrame
    removed: pd.DataFrame
    shrinkage: bool = False
    proteins: pd.DataFrame | None = field(default=None, repr=False)
    model: ModelFit | None = field(default=None, repr=False)

    @property
    def spec(self) -> ModelSpec:
        """The model that was fitted (random and fixed terms, replication unit)."""
        return self.stored.design.spec

    @classmethod
    def read(
        cls,
        path: PathLike,
        *,
        runs: pd.DataFrame,
        model: Mapping[str, Any] | None = None,
        replication: str = "auto",
        removed: pd.DataFrame | None = None,
    ) -> Fit:
        """The stored fit the workflow writes (``results/model/fit.parquet``).

        Parameters
        ----------
        path : path
            The stored fit (:mod:`pepmix.model.stored`).
        runs : pandas.DataFrame
            The resolved sample sheet it was fitted with (``results/ingest/samples.tsv``).
        model : mapping, optional
            The ``model:`` config section it was fitted with (default: the defaults).
        replication : {"auto", "biological", "technical"}, default "auto"
            ``testing.replication`` it was fitted with.
        removed : pandas.DataFrame, optional
            The removed proteins (``results/ingest/removed_proteins.tsv``); default none.

        Returns
        -------
        Fit
            Without ``proteins`` and ``model``.
        """
        from pepmix.model.design import build_run_design, fitted_spec
        from pepmix.model.stored import StoredFit

        model = dict(model or {})
        config = {"model": model, "testing": {"replication": replication}}
        design = build_run_design(runs, fitted_spec(config, runs))
        return cls(
            stored=StoredFit.read(path, design),
            runs=runs,
            removed=removed if removed is not None else _no_removed(),
            shrinkage=bool(model.get("shrinkage", False)),
        )


def _no_removed() -> pd.DataFrame:
    """An empty table of removed proteins."""
    return pd.DataFrame(
        {
            "protein": pd.Series([], dtype=object),
            "detail": pd.Series([], dtype=object),
            "n_features": pd.array([], dtype="Int64"),
            "n_observations": pd.array([], dtype="Int64"),
        }
    )


def _entries(inputs: Any, fmt: str) -> list[dict[str, Any]]:
    """``inputs:`` entries from paths or mappings (a single path or mapping allowed)."""
    items = [inputs] if isinstance(inputs, str | Path | Mapping) else list(inputs)
    if not items:
        raise ConfigError("pepmix.read: no input given")
    entries = []
    for item in items:
        entry = dict(item) if isinstance(item, Mapping) else {"path": str(item)}
        if "path" not in entry:
            raise ConfigError(f"pepmix.read: input entry without 'path': {entry!r}")
        entry.setdefault("format", fmt)
        entry.setdefault("name", Path(str(entry["path"])).name.split(".")[0] or "input")
        entries.append(entry)
    return entries


def read(
    inputs: PathLike | Mapping[str, Any] | Sequence[PathLike | Mapping[str, Any]],
    *,
    samples: PathLike,
    format: str = "auto",
    feature_level: str = "precursor",
    filters: Mapping[str, Any] | None = None,
    sample_sheet: Mapping[str, Any] | None = None,
    base_dir: PathLike = ".",
) -> Dataset:
    """Read search-engine outputs and the sample sheet; apply the filters.

    Parameters
    ----------
    inputs : path, mapping, or a sequence of them
        The input batches. A path is read with ``format``; a mapping is an entry of the config's
        ``inputs:`` list (``path``, ``format``, ``name`` and the reader's options such as
        ``columns`` or ``id_column``). One entry is one batch.
    samples : path
        Sample sheet (TSV or SDRF), the config's ``samples:``.
    format : str, default "auto"
        Reader for inputs given as paths (``src/pepmix/readers/__init__.py``); ``"auto"`` detects
        it from the file's header.
    feature_level : {"precursor", "peptide"}, default "precursor"
        The config's ``feature_level``.
    filters : mapping, optional
        The config's ``filter:`` section; missing keys take :data:`FILTER_DEFAULTS`.
    sample_sheet : mapping, optional
        The config's ``sample_sheet:`` section (``format``, ``condition_column``, ...).
    base_dir : path, default "."
        Directory that relative input paths are relative to.

    Returns
    -------
    Dataset
        Features of the proteins that pass the filters, resolved sample sheet, removed proteins.

    Raises
    ------
    pepmix.errors.InputFormatError, pepmix.errors.SampleSheetError, pepmix.errors.ConfigError
        With one line saying what and where.
    """
    from pepmix.ingest import ingest_batch
    from pepmix.merge import merge_with_sheet
    from pepmix.samples import load_design, sheet_options

    filter_config = {**FILTER_DEFAULTS, **(filters or {})}
    tables = [
        ingest_batch(entry, filter_config, feature_level, base_dir)
        for entry in _entries(inputs, format)
    ]
    opts = dict(sample_sheet or {})
    design = load_design(samples, **sheet_options(opts))
    merged, runs, removed = merge_with_sheet(tables, design, filter_config, str(samples))
    return Dataset(features=merged, runs=_as_text(runs), removed=removed)


def _as_text(runs: pd.DataFrame) -> pd.DataFrame:
    """The sheet as the workflow re-reads it (``results/ingest/samples.tsv``): text, NA."""
    from io import BytesIO

    from pepmix.io import tsv_bytes
    from pepmix.samples import read_resolved_sheet

    return read_resolved_sheet(BytesIO(tsv_bytes(runs)))


def normalize(
    data: Dataset,
    *,
    method: str = "protein_median",
    location: str = "mode",
    reference_proteins: Sequence[str] = (),
    within_batch: bool = False,
) -> Dataset:
    """log2-transform and normalise the runs (the config's ``normalization:`` section).

    Parameters
    ----------
    data : Dataset
        From :func:`read`.
    method : {"protein_median", "median_ratio", "median", "quantile", "reference", "none"}, \
default "protein_median"
        See :mod:`pepmix.normalization` and the README's Statistics section.
    location : {"median", "mode"}, default "mode"
        Location over proteins for ``protein_median``.
    reference_proteins : sequence of str, default ()
        For ``method="reference"`` (required) and ``protein_median`` (optional).
    within_batch : bool, default False
        Equalise runs within each batch only.

    Returns
    -------
    Dataset
        ``features`` with the normalised log2 intensity ``y``; ``normalization`` one row per run.
    """
    from pepmix.normalization import normalize as normalize_table

    runs = data.runs
    features, shifts = normalize_table(
        data.features,
        method=method,
        reference_proteins=list(reference_proteins),
        within_batch=within_batch,
        run_batch=dict(zip(runs["run"], runs["batch"].fillna(""), strict=True)),
        location=location,
        run_condition=dict(zip(runs["run"], runs["condition"], strict=True)),
    )
    return Dataset(features=features, runs=runs, removed=data.removed, normalization=shifts)


def fit(
    data: Dataset,
    *,
    random: Sequence[str] | None = None,
    fixed: Sequence[str] | None = None,
    covariates: Sequence[str] = (),
    robust: str = "huber",
    shrinkage: bool = False,
    replication: str = "auto",
    variance_tests: Mapping[str, Any] | None = None,
    prior: VariancePrior | None = None,
    feature_weights: str = "none",
    feature_prior: FeaturePrior | None = None,
    stratum: bool = False,
    feature_majority: bool = True,
    majority_prior: tuple[float, float] | ShardSample | None = None,
) -> Fit:
    """Fit one linear mixed model per protein (the config's ``model:`` section).

    Parameters
    ----------
    data : Dataset
        From :func:`normalize` (needs the ``y`` column).
    random : sequence of str, optional
        Random terms (``model.random``); default ``feature`` plus the replication unit
        (:func:`pepmix.model.design.default_random`).
    fixed : sequence of str, optional
        Fixed terms (``model.fixed``); default ``["condition"]``.
    covariates : sequence of str, default ()
        Numeric sample-sheet columns added as fixed effects.
    robust : {"huber", "bisquare", "none"}, default "huber"
        M-estimation weights (:mod:`pepmix.model.robust`).
    shrinkage : bool, default False
        Empirical-Bayes shrinkage of the variance ratios (:mod:`pepmix.model.shrinkage`).
    replication : {"auto", "biological", "technical"}, default "auto"
        ``testing.replication`` (:func:`pepmix.model.design.replication_unit`).
    variance_tests : mapping, optional
        The ``variance_tests:`` section (default: likelihood-ratio tests on, no bootstrap).
    prior : pepmix.model.shrinkage.VariancePrior, optional
        With ``shrinkage``: the variance-ratio prior to use (the workflow estimates it once on
        all proteins and fits shards with it); default None: estimated from ``data``.
    feature_weights : {"none", "empirical_bayes"}, default "none"
        Feature precision weights (:mod:`pepmix.model.feature_weights`).
    feature_prior : pepmix.model.feature_weights.FeaturePrior, optional
        Their prior (the workflow estimates it once on all proteins); default None: estimated
        from ``data``.
    stratum : bool, default False
        Also export each protein's residual floor and between-replicate mean square, which
        :func:`test` needs with ``variance_prior="stratum"`` (``testing.variance_prior:
        stratum``; ~3 % more fit CPU time).
    feature_majority : bool, default True
        Robust fits: exclude a minority feature whose condition profile disagrees with the
        protein's other features (``model.feature_majority``, :mod:`pepmix.model.majority`).
    majority_prior : (float, float) or ShardSample, optional
        The prior of that rule's pure-error variances fitted on all proteins
        (:func:`pepmix.model.majority.fit_majority_prior`), or the sample of all shards from
        which it is fitted with ``data``'s proteins
        (:class:`pepmix.model.majority_shards.ShardSample`: the workflow's sharded fit jobs);
        default None: fitted on ``data``.

    Returns
    -------
    Fit

    Notes
    -----
    The engine's linear algebra is many small batched matrices, on which a multi-threaded BLAS
    gains no time (its extra threads spin on products of a few dozen rows): the fit runs with
    BLAS limited to one thread (threadpoolctl; the previous limits are restored on return), as
    the workflow's fit jobs do (:func:`pepmix.rule.limit_threads`). Measured on one shard of
    the 10,000 x 200 cohort (warm, two alternated pairs): 24.1-24.3 s of wall either way,
    27.6 CPU s with OpenBLAS's two threads against 24.3-24.4 with one (``benchmarks/README.md``,
    "BLAS threads of the Python API").
    """
    from threadpoolctl import threadpool_limits

    from pepmix.model.protein_fit import fit_protein_models, run_design
    from pepmix.model.stored import StoredFit

    if "y" not in data.features.columns:
        raise ConfigError("pepmix.fit: the data have no 'y' column: call pepmix.normalize first")
    model_config: dict[str, Any] = {
        "covariates": list(covariates),
        "robust": robust,
        "shrinkage": shrinkage,
        "feature_weights": feature_weights,
        "feature_majority": feature_majority,
    }
    if random is not None:
        model_config["random"] = list(random)
    if fixed is not None:
        model_config["fixed"] = list(fixed)
    table = _model_input(data.features)
    if not shrinkage:
        prior = None
    elif prior is None:
        from pepmix.model.shrinkage import fit_variance_prior

        prior = fit_variance_prior(table, run_design(data.runs, model_config, replication))
    with threadpool_limits(limits=1):
        result = fit_protein_models(
            table,
            data.runs,
            model_config,
            replication=replication,
            prior=prior,
            variance_tests=variance_tests,
            feature_prior=feature_prior,
            stratum=stratum,
            majority_prior=majority_prior,
        )
    return Fit(
        stored=StoredFit.from_model_fit(result.model),
        runs=data.runs,
        removed=data.removed,
        shrinkage=shrinkage,
        proteins=result.proteins,
        model=result.model,
    )


def _model_input(features: pd.DataFrame) -> pd.DataFrame:
    """``protein, feature, run, y`` with categorical identifiers, as the fit stage reads them."""
    table = features.loc[:, ["protein", "feature", "run", "y"]].copy()
    for col in ("protein", "feature", "run"):
        if not isinstance(table[col].dtype, pd.CategoricalDtype):
            table[col] = table[col].astype("category")
    return table


def test(
    fit: Fit,
    contrasts: Any = "all_pairwise",
    *,
    moderation: bool = True,
    robust: bool = True,
    df_cap: bool = True,
    lfc_threshold: float = 0.0,
    variance_prior: str = "limma",
) -> pd.DataFrame:
    """Test contrasts of the conditions: moderated t-tests, Benjamini-Hochberg per contrast.

    Parameters
    ----------
    fit : Fit
        From :func:`fit`.
    contrasts : default "all_pairwise"
        The config's ``contrasts:`` value: ``"all_pairwise"``, a list of ``"A - B"`` strings, or
        ``{"versus": "control"}``.
    moderation : bool, default True
        Empirical-Bayes moderation of the contrast variances (``moderation``; off with
        shrinkage, which already borrows strength across proteins).
    robust : bool, default True
        limma's robust prior (``testing.robust``).
    df_cap : bool, default True
        Cap Satterthwaite df at the between-sample df (``testing.df_cap``).
    lfc_threshold : float, default 0.0
        TREAT threshold on the absolute log2 fold change (``lfc_threshold``).
    variance_prior : {"limma", "vash", "vash_censored", "stratum"}, default "limma"
        Prior of the moderation (``testing.variance_prior``): limma's scaled inverse
        chi-square, the vash mixture (:mod:`pepmix.inference.vash`), or the prior on the
        replicate stratum's variance above each protein's residual floor
        (:mod:`pepmix.inference.stratum`).

    Returns
    -------
    pandas.DataFrame
        The differential table (``results/tables/differential_abundance.tsv``): one row per
        protein and contrast, tested proteins first, then the filtered ones.
    """
    from pepmix.config import resolve_contrasts
    from pepmix.inference.differential import InferenceOptions, add_filtered, differential_table
    from pepmix.samples import condition_levels

    runs = fit.runs
    resolved = resolve_contrasts(contrasts, condition_levels(runs))
    stats = fit.stored.contrast_table([(c.name, c.numerator, c.denominator) for c in resolved])
    options = InferenceOptions(
        moderation=moderation and not fit.shrinkage,
        robust=robust,
        prior=variance_prior,
        df_cap=df_cap,
        lfc_threshold=float(lfc_threshold),
    )
    order = [c.name for c in resolved]
    table = differential_table(stats, order, options)
    return add_filtered(table, fit.removed, order)
