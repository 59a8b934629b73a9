"""Rule fit: one linear mixed model per protein (pepmix.stages.fit)."""

import gc

gc.disable()  # while the modules below are imported: rule_context resumes it (pepmix.rule)

from pepmix.rule import rule_context
from pepmix.stages import fit, variance_components

with rule_context(snakemake):
    out = snakemake.output
    result = fit.run(
        features=snakemake.input.features,
        samples=snakemake.input.samples,
        model=snakemake.params.model,
        replication=snakemake.params.replication,
        prior=snakemake.input.get("prior") or None,
        # several shards, feature majority rule: all shards' tables (the rule's prior)
        majority_shards=list(snakemake.input.get("majority_shards") or []) or None,
        variance_tests=snakemake.params.get("variance_tests") or None,
        # config peptide_usage: the shard's peptide-usage rows (rule peptide_usage gathers)
        usage=bool(out.get("usage") or out.get("usage_table")),
        # missing: detection: the detection model's contrast rows for the config's contrasts
        missing=snakemake.params.get("missing", "mar"),
        curve=snakemake.input.get("curve") or None,
        contrasts=snakemake.params.get("contrasts", []),
        # config peptide_usage_contrasts: contrasts of some proteins from the usage model
        usage_contrasts=snakemake.params.get("usage_contrasts") or "never",
        pretest_alpha=float(snakemake.params.get("pretest_alpha") or 0.25),
        # config peptide_usage_weights: the usage test's observation weights
        usage_weights=snakemake.params.get("usage_weights") or None,
        # one shard: rule abundance fits the abundances beside this job (rules/fit.smk)
        abundance=bool(out.get("abundance")),
        # testing.variance_prior: stratum: the residual floors and between-replicate mean squares
        stratum=bool(snakemake.params.get("stratum", False)),
    )
    result.write(
        proteins=out.proteins,
        fit=out.fit,
        fixed=out.fixed,
        blups=out.blups,
        abundance=out.get("abundance"),
        usage=out.get("usage"),
        detection=out.get("detection"),
        # peptide_usage in a job of its own (rule usage_refit): where the default fit ended
        usage_start=out.get("usage_start"),
    )
    if out.get("usage_table"):
        # one shard: the gathered peptide-usage table (rule peptide_usage's output)
        result.usage_table(removed=snakemake.input.removed).write(out.usage_table)
    if out.get("variance"):
        # one shard: rule variance_components's table, from the proteins written above
        variance_components.run(proteins=out.proteins, removed=snakemake.input.removed).write(
            out.variance
        )
