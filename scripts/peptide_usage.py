"""Rule peptide_usage: gather the fit jobs' peptide-usage rows into one table."""

import gc

gc.disable()  # while the modules below are imported: rule_context resumes it (pepmix.rule)

from pepmix.rule import rule_context
from pepmix.stages import peptide_usage

with rule_context(snakemake):
    peptide_usage.run(parts=list(snakemake.input.parts), removed=snakemake.input.removed).write(
        snakemake.output[0]
    )
