"""Rule gather_abundance: protein abundances of all shards, long and wide."""

from pepmix.rule import rule_context
from pepmix.stages import gather_abundance

with rule_context(snakemake):
    gather_abundance.run(
        parts=snakemake.input.parts,
        samples=snakemake.input.samples,
        long=snakemake.output.long,
        wide=snakemake.output.wide,
    )
