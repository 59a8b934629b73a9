"""Rule bootstrap: parametric bootstraps after the gather (contrasts; term LRTs of the top N)."""

from pepmix.rule import rule_context
from pepmix.stages import bootstrap_stage

with rule_context(snakemake):
    bootstrap_stage(
        snakemake.input.features,
        snakemake.input.samples,
        snakemake.params.config,
        out_contrasts=snakemake.output.get("contrasts"),
        out_terms=snakemake.output.get("terms"),
        differential=snakemake.input.differential,
        threads=snakemake.threads,
    )
