"""One function per workflow stage: read the stage's inputs, call the library, write outputs.

These are what the rule scripts in ``scripts/`` call; they work without Snakemake (tests call them
directly). All outputs are written atomically. The modelling and inference modules (numba, scipy)
are imported inside the stages that use them, so that every rule job starts quickly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow.parquet as pq

from pepmix import canonical
from pepmix.config import Contrast, resolve_contrasts
from pepmix.errors import SampleSheetError
from pepmix.io import write_parquet, write_tsv
from pepmix.samples import SampleDesign, condition_levels, load_design
from pepmix.shards import gather

if TYPE_CHECKING:
    from pepmix.inference.differential import InferenceOptions
    from pepmix.model.design import ModelSpec

log = logging.getLogger(__name__)

PathLike = str | Path


def load_sheet(path: PathLike, options: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Read the sample sheet named in the config (TSV or SDRF, see ``sample_sheet:``): runs."""
    return load_sheet_design(path, options).runs


def load_sheet_design(path: PathLike, options: Mapping[str, Any] | None = None) -> SampleDesign:
    """Read the sample sheet named in the config with the data files of each run."""
    opts = dict(options or {})
    return load_design(
        path,
        fmt=opts.get("format", "auto"),
        condition_column=opts.get("condition_column"),
        bioreplicate_column=opts.get("bioreplicate_column"),
        batch_column=opts.get("batch_column"),
    )


def ingest(
    entry: Mapping[str, Any],
    filter_config: Mapping[str, Any],
    feature_level: str,
    output: PathLike,
) -> None:
    """Stage ``ingest``: one ``inputs:`` entry to ``results/ingest/batches/<name>.parquet``."""
    from pepmix.ingest import ingest_batch

    table = ingest_batch(entry, filter_config, feature_level)
    canonical.write_parquet(table, output)


def merge(
    batches: Sequence[PathLike],
    samples: PathLike,
    sheet_options: Mapping[str, Any],
    filter_config: Mapping[str, Any],
    out_features: PathLike,
    out_samples: PathLike,
    out_removed: PathLike | None = None,
) -> None:
    """Stage ``merge``: concatenate batches, check runs against the sheet, protein filters.

    Writes the canonical table and the resolved sample sheet, one row per run (``batch`` filled
    from the input name where the sheet has none). Data files listed as fractions of one run in
    the sheet are summed into that run. ``out_removed`` (default None: not written): every input
    protein absent from the merged table, ``protein, detail, n_features, n_observations``
    (:func:`pepmix.ingest.removed_in_merge`), listed by the test stage with status ``filtered``.
    """
    from pepmix.filters import REMOVED_PROTEINS, removed_proteins
    from pepmix.ingest import merge_batches, removed_frame

    tables = [canonical.read_parquet(p) for p in batches]
    design = load_sheet_design(samples, sheet_options)
    sheet = design.runs
    merged = merge_batches(
        tables, sheet, filter_config, sheet_source=str(samples), file_runs=design.file_runs()
    )
    first = pd.Series(canonical.row_key(merged, ["run"])).drop_duplicates().index
    batch_of_run = pd.Series(
        merged["batch"].iloc[first].astype(str).to_numpy(),
        index=merged["run"].iloc[first].astype(str).to_numpy(),
    )
    sheet = sheet.copy()
    sheet["batch"] = sheet["batch"].fillna(sheet["run"].map(batch_of_run))
    removed = removed_proteins(merged)
    merged.attrs.pop(REMOVED_PROTEINS, None)
    canonical.write_parquet(merged, out_features)
    if out_removed is not None:
        write_tsv(removed_frame(removed), out_removed)
    write_tsv(sheet, out_samples)
    log.info(
        "merged %d batch(es): %d observations, %d runs, %d proteins kept, %d removed",
        len(tables),
        len(merged),
        len(batch_of_run),
        merged["protein"].nunique(),
        len(removed),
    )


def read_removed(path: PathLike) -> pd.DataFrame:
    """Read the removed proteins written by :func:`merge` (nullable integer counts)."""
    frame = pd.read_csv(
        path,
        sep="\t",
        dtype={"protein": str, "detail": str},
        keep_default_na=False,
        na_values={"n_features": ["NA"], "n_observations": ["NA"]},
    )
    for col in ("n_features", "n_observations"):
        frame[col] = frame[col].astype("Int64")
    return frame


def read_resolved_sheet(path: PathLike) -> pd.DataFrame:
    """Read the sample sheet written by :func:`merge`."""
    sheet = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_values=["NA"])
    if sheet.empty:
        raise SampleSheetError(f"{path}: empty sample sheet")
    return sheet


def normalize_stage(
    features: PathLike,
    samples: PathLike,
    norm_config: Mapping[str, Any],
    out_features: PathLike,
    out_runs: PathLike,
) -> None:
    """Stage ``normalize``: log2 and run normalisation (see :mod:`pepmix.normalize`)."""
    from pepmix.normalize import normalization_options, normalize

    table = canonical.read_parquet(
        features, columns=["protein", "feature", "peptide", "run", "intensity", "batch"]
    )
    sheet = read_resolved_sheet(samples)
    run_batch = dict(zip(sheet["run"], sheet["batch"].fillna(""), strict=True))
    run_condition = dict(zip(sheet["run"], sheet["condition"], strict=True))
    normalized, runs = normalize(
        table,
        run_batch=run_batch,
        run_condition=run_condition,
        **normalization_options(norm_config),
    )
    write_parquet(normalized, out_features)
    write_tsv(runs, out_runs)


def read_model_input(path: PathLike) -> pd.DataFrame:
    """Read ``protein, feature, run, y`` of the normalised table, identifiers as categoricals."""
    table = pq.read_table(
        path,
        columns=["protein", "feature", "run", "y"],
        read_dictionary=["protein", "feature", "run"],
    )
    frame: pd.DataFrame = table.to_pandas()
    return frame


def contrasts_for(config_contrasts: Any, sheet: pd.DataFrame) -> list[Contrast]:
    """Resolve the ``contrasts:`` config value against the sheet's conditions."""
    return resolve_contrasts(config_contrasts, condition_levels(sheet))


def fit_stage(
    features: PathLike,
    samples: PathLike,
    model_config: Mapping[str, Any],
    out_proteins: PathLike,
    out_fit: PathLike,
    out_fixed: PathLike,
    out_blups: PathLike,
    out_abundance: PathLike | None = None,
    replication: str = "auto",
    prior: PathLike | None = None,
    variance_tests: Mapping[str, Any] | None = None,
    out_wide: PathLike | None = None,
    out_usage: PathLike | None = None,
) -> None:
    """Stage ``fit``: one mixed model per protein (see :mod:`pepmix.model.fit`).

    Depends on the model config only: ``out_fit`` stores what every contrast test needs
    (:mod:`pepmix.model.stored`); the test stage computes the contrasts. With ``out_abundance``,
    the protein abundance model (:mod:`pepmix.abundance`) is fitted in the same job, on the same
    table read once. ``replication`` is ``testing.replication`` (default ``"auto"``, see
    :func:`pepmix.model.design.replication_unit`). ``prior``: the variance-ratio prior written
    by :func:`variance_prior_stage` (used when ``model.shrinkage`` is on). ``variance_tests``:
    the ``variance_tests:`` config (default None: likelihood-ratio tests on, bootstrap off);
    the protein table gains ``lrt_<term>`` (and ``p_boot_<term>``, ``n_boot_<term>``), see
    :mod:`pepmix.model.variance_tests`. ``out_wide`` (default None: not written; needs
    ``out_abundance``): the proteins x runs table of :func:`gather_abundance_stage`, for a single
    shard whose job writes the gathered files itself. ``out_usage`` (default None: not
    written; config ``peptide_usage``): the shard's peptide-usage rows
    (:func:`pepmix.model.usage.usage_shard_table`), gathered by :func:`peptide_usage_stage`.
    """
    from pepmix.abundance import protein_abundance
    from pepmix.model.design import build_run_design, model_spec_from_config
    from pepmix.model.fit import fit_proteins
    from pepmix.model.robust import DEFAULT_METHOD as DEFAULT_ROBUST
    from pepmix.model.stored import StoredFit
    from pepmix.model.variance_tests import VarianceTestOptions, fit_tests

    test_options = VarianceTestOptions.from_config(variance_tests)
    table = read_model_input(features)
    sheet = read_resolved_sheet(samples)
    spec = model_spec_from_config(model_config, sheet, replication)
    design = build_run_design(sheet, spec)
    log.info(
        "model: random %s, fixed %s, replication %s",
        "+".join(spec.random),
        "+".join(design.x_names),
        spec.replication,
    )
    shrink = bool(model_config.get("shrinkage", False)) and prior is not None
    ratio_prior = None
    if shrink and prior is not None:
        # imported only here: its module loads scipy.optimize (~0.1 s per fit job)
        from pepmix.model.shrinkage import VariancePrior

        ratio_prior = VariancePrior.from_json(prior)
    if ratio_prior is not None:
        log.info("model.shrinkage: variance-ratio prior %s", ratio_prior.describe() or "none")
    fit = fit_proteins(
        table,
        design,
        prior=ratio_prior,
        robust=str(model_config.get("robust", DEFAULT_ROBUST)),
    )
    proteins = fit.variance_components()
    for f, name in enumerate(fit.factors):
        proteins[f"theta_{name}"] = fit.theta[:, f]
    proteins["sigma"] = fit.sigma
    proteins["converged"] = fit.converged
    proteins["iterations"] = fit.iterations
    tests = fit_tests(fit, test_options)
    for col in tests.columns[1:]:
        proteins[col] = tests[col].to_numpy()
    write_parquet(proteins, out_proteins)
    if out_usage is not None:
        from pepmix.model.usage import usage_shard_table

        robust = str(model_config.get("robust", DEFAULT_ROBUST))
        write_parquet(usage_shard_table(fit, proteins, table, sheet, robust), out_usage)
    StoredFit.from_model_fit(fit).write(out_fit)
    write_parquet(fit.fixed_effects(), out_fixed)
    write_parquet(fit.blups, out_blups)
    counts = proteins["status"].value_counts().to_dict()
    log.info("protein statuses: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
    if out_abundance is not None:
        abundance = protein_abundance(table, list(sheet["run"]), encoded=fit.encoded)
        write_parquet(abundance, out_abundance)
        if out_wide is not None:
            _write_wide(out_abundance, list(sheet["run"]), out_wide)


def variance_prior_stage(
    features: PathLike,
    samples: PathLike,
    model_config: Mapping[str, Any],
    output: PathLike,
    replication: str = "auto",
) -> None:
    """Stage ``variance_prior``: the variance-ratio prior, estimated on all proteins.

    ``replication`` is ``testing.replication`` (the fit's model: with technical replication the
    run takes the sample's place, see :func:`pepmix.model.design.replication_unit`).

    Writes JSON (factor -> ``df, ratio, se_log_df, se_log_ratio, n_proteins``; empty object
    when ``model.shrinkage`` is off), read by every shard's fit (see
    :mod:`pepmix.model.shrinkage`).
    """
    from pepmix.model.design import build_run_design, model_spec_from_config
    from pepmix.model.shrinkage import VariancePrior, fit_variance_prior

    if not model_config.get("shrinkage", False):
        VariancePrior().to_json(output)
        return
    sheet = read_resolved_sheet(samples)
    design = build_run_design(sheet, model_spec_from_config(model_config, sheet, replication))
    fit_variance_prior(read_model_input(features), design).to_json(output)


def gather_abundance_stage(
    parts: Sequence[PathLike], samples: PathLike, out_long: PathLike, out_wide: PathLike
) -> None:
    """Gather shard abundances: long Parquet and proteins x runs TSV."""
    gather(parts, out_long)
    _write_wide(out_long, list(read_resolved_sheet(samples)["run"]), out_wide)


def _write_wide(long: PathLike, runs: list[str], output: PathLike) -> None:
    """Proteins x runs TSV of the long abundance table ``long`` (as written to Parquet)."""
    from pepmix.abundance import wide

    write_tsv(wide(pd.read_parquet(long), runs), output)


def variance_table(proteins: PathLike, output: PathLike, removed: PathLike | None = None) -> None:
    """Write ``results/tables/variance_components.tsv`` from the model stage's protein table.

    Per random term ``<t>`` with a likelihood-ratio test: ``lrt_<t>, p_<t>, adj_p_<t>,
    icc_<t>`` (and ``p_boot_<t>, adj_p_boot_<t>, n_boot_<t>`` with the bootstrap), see
    :func:`pepmix.model.variance_tests.variance_test_table`. With a ``batch:condition`` term,
    ``sd_effect_batch`` = ``sqrt(2 * var_batch:condition)``, the between-batch SD of any
    pairwise condition effect (compound symmetry, :mod:`pepmix.model.design`); with
    ``condition|batch``, ``sd_batch[<c>-<ref>]``, ``cor_batch[...]``, ``sd_effect_batch``,
    ``heterogeneity_lrt`` and ``heterogeneity_p`` of
    :meth:`pepmix.model.slopes_fit.SlopeFit.variance_components` and ``heterogeneity_adj_p``
    (Benjamini-Hochberg over the proteins with a p-value). With ``removed``
    (:func:`merge`'s list), the removed proteins follow, with status ``filtered`` and missing
    variance components.
    """
    from pepmix.model.variance_tests import variance_test_table

    frame = variance_test_table(pd.read_parquet(proteins))
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
        from pepmix.inference.ebayes import bh_adjust

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
    write_tsv(frame.loc[:, keep], output)


def peptide_usage_stage(
    parts: Sequence[PathLike], output: PathLike, removed: PathLike | None = None
) -> None:
    """Write ``results/tables/peptide_usage.tsv`` from the fit jobs' shard rows (config
    ``peptide_usage``; :func:`pepmix.model.usage.gather_usage_table`). With ``removed``
    (default None), the removed proteins follow with status ``filtered``."""
    from pepmix.model.usage import gather_usage_table

    frames = [pd.read_parquet(p) for p in parts]
    extra = read_removed(removed) if removed is not None else None
    write_tsv(gather_usage_table(frames, extra), output)


def inference_options(config: Mapping[str, Any]) -> InferenceOptions:
    """Inference options from the config (``moderation``, ``lfc_threshold``, ``testing``).

    ``moderation`` is off when ``model.shrinkage`` is on (the prior on the variance ratios
    already borrows strength across proteins; see :mod:`pepmix.model.shrinkage`).
    """
    from pepmix.inference.differential import InferenceOptions

    testing = config.get("testing", {}) or {}
    # with model.shrinkage the variance components are already moderated across proteins:
    # moderating the contrast variances again would count the prior twice
    shrinkage = bool((config.get("model", {}) or {}).get("shrinkage", False))
    return InferenceOptions(
        moderation=bool(config.get("moderation", True)) and not shrinkage,
        robust=bool(testing.get("robust", True)),
        df_cap=bool(testing.get("df_cap", True)),
        lfc_threshold=float(config.get("lfc_threshold", 0.0)),
    )


class _NoAlerts(logging.Filter):
    """Drop alert records (:func:`pepmix.alerts.alert`), keep the rest."""

    def filter(self, record: logging.LogRecord) -> bool:
        from pepmix.alerts import ALERT_ATTR

        return getattr(record, ALERT_ATTR, None) is None


def fitted_spec(config: Mapping[str, Any], sheet: pd.DataFrame) -> ModelSpec:
    """The model the fit stage built from the sheet and the ``model`` and
    ``testing.replication`` config (:func:`pepmix.model.design.model_spec_from_config`),
    rebuilt without raising the design's alerts again (the model stage raised them, e.g. an
    unmodelled batch column)."""
    from pepmix.model.design import model_spec_from_config

    replication = (config.get("testing", {}) or {}).get("replication", "auto")
    design_log = logging.getLogger("pepmix.model.design")
    quiet = _NoAlerts()
    design_log.addFilter(quiet)
    try:
        return model_spec_from_config(config.get("model", {}) or {}, sheet, replication)
    finally:
        design_log.removeFilter(quiet)


def contrast_stats(fit: PathLike, sheet: pd.DataFrame, config: Mapping[str, Any]) -> pd.DataFrame:
    """Contrast table (:meth:`pepmix.model.stored.StoredFit.contrast_table`) of the config's
    ``contrasts:`` from the model stage's stored fit; the design is rebuilt as the fit built it
    (:func:`fitted_spec`)."""
    from pepmix.model.design import build_run_design
    from pepmix.model.stored import StoredFit

    stored = StoredFit.read(fit, build_run_design(sheet, fitted_spec(config, sheet)))
    contrasts = contrasts_for(config["contrasts"], sheet)
    return stored.contrast_table([(c.name, c.numerator, c.denominator) for c in contrasts])


def differential_stage(
    fit: PathLike,
    samples: PathLike,
    config: Mapping[str, Any],
    out_tsv: PathLike,
    out_parquet: PathLike,
    out_missing: PathLike,
    removed: PathLike | None = None,
) -> None:
    """Stage ``test``: contrasts, moderated tests, p-values and Benjamini-Hochberg per contrast.

    ``fit`` is the model stage's stored fit (:mod:`pepmix.model.stored`); each contrast's
    estimate, SE and Satterthwaite df are computed here (:func:`contrast_stats`), so that
    editing ``contrasts:`` does not refit. ``removed`` (default None): :func:`merge`'s removed
    proteins, added to every contrast with status ``filtered`` after the tested rows
    (:func:`pepmix.inference.differential.add_filtered`).
    """
    from pepmix.inference.differential import (
        add_filtered,
        differential_table,
        one_condition_missing,
    )

    sheet = read_resolved_sheet(samples)
    stats = contrast_stats(fit, sheet, config)
    order = [c.name for c in contrasts_for(config["contrasts"], sheet)]
    table = differential_table(stats, order, inference_options(config))
    if removed is not None:
        table = add_filtered(table, read_removed(removed), order)
    write_tsv(table, out_tsv)
    write_parquet(table, out_parquet)
    write_tsv(one_condition_missing(stats), out_missing)
