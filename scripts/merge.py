"""Rule merge: concatenate batches, check against the sample sheet, protein filters."""

from pepmix.rule import rule_context
from pepmix.stages import merge

with rule_context(snakemake):
    merge(
        snakemake.input.batches,
        snakemake.input.samples,
        snakemake.params.sheet,
        snakemake.params.filter,
        snakemake.output.features,
        snakemake.output.samples,
        snakemake.output.removed,
    )
