"""Rule variance_components: the per-protein variance table for people."""

import gc

gc.disable()  # while the modules below are imported: rule_context resumes it (pepmix.rule)

from pepmix.rule import rule_context
from pepmix.stages import variance_components

with rule_context(snakemake):
    variance_components.run(
        proteins=snakemake.input.proteins,
        removed=snakemake.input.removed,
        # bootstrap_proteins: top N: rule bootstrap's term table
        boot_terms=snakemake.input.get("boot_terms") or None,
    ).write(snakemake.output[0])
