"""Rule gather_abundance: protein abundances of all shards, long and wide."""

from pepmix.rule import rule_context
from pepmix.stages import gather_abundance_stage

with rule_context(snakemake):
    gather_abundance_stage(
        snakemake.input.parts,
        snakemake.input.samples,
        snakemake.output.long,
        snakemake.output.wide,
    )
