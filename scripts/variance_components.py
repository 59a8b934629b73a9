"""Rule variance_components: the per-protein variance table for people."""

from pepmix.rule import rule_context
from pepmix.stages import variance_table

with rule_context(snakemake):
    variance_table(
        snakemake.input.proteins,
        snakemake.output[0],
        snakemake.input.removed,
        boot_terms=snakemake.input.get("boot_terms") or None,
    )
