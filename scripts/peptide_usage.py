"""Rule peptide_usage: gather the fit jobs' peptide-usage rows into one table."""

from pepmix.rule import rule_context
from pepmix.stages import peptide_usage_stage

with rule_context(snakemake):
    peptide_usage_stage(
        list(snakemake.input.parts), snakemake.output[0], removed=snakemake.input.removed
    )
