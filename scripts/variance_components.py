"""Rule variance_components: the per-protein variance table for people."""

from pepmix.rule import rule_context
from pepmix.stages import variance_components

with rule_context(snakemake):
    variance_components.run(
        proteins=snakemake.input.proteins, removed=snakemake.input.removed
    ).write(snakemake.output[0])
