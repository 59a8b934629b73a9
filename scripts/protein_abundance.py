"""Rule protein_abundance: per-run protein abundances of one shard."""

from pepmix.rule import rule_context
from pepmix.stages import abundance_stage

with rule_context(snakemake):
    abundance_stage(snakemake.input.features, snakemake.input.samples, snakemake.output[0])
