"""Rule fit: one linear mixed model per protein."""

from pepmix.rule import rule_context
from pepmix.stages import fit_stage

with rule_context(snakemake):
    fit_stage(
        snakemake.input.features,
        snakemake.input.samples,
        snakemake.params.model,
        snakemake.output.proteins,
        snakemake.output.fit,
        snakemake.output.fixed,
        snakemake.output.blups,
        snakemake.output.abundance,
        replication=snakemake.params.replication,
        prior=snakemake.input.get("prior") or None,
        variance_tests=snakemake.params.get("variance_tests") or None,
        # one shard: the job writes the gathered files itself (rules/fit.smk)
        out_wide=snakemake.output.get("wide"),
        # config peptide_usage: the shard's peptide-usage rows (rule peptide_usage gathers)
        out_usage=snakemake.output.get("usage"),
    )
