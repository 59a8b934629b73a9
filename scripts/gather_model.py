"""Rule gather_model: concatenate the shards' model outputs in single-job order."""

from pepmix.model.stored import gather_fits
from pepmix.rule import rule_context
from pepmix.shards import gather

with rule_context(snakemake):
    gather(snakemake.input.proteins, snakemake.output.proteins)
    gather_fits(snakemake.input.fit, snakemake.output.fit)
    gather(snakemake.input.fixed, snakemake.output.fixed)
    gather(snakemake.input.blups, snakemake.output.blups)
