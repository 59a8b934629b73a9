"""Rule normalize: log2 transform and run normalisation."""

from pepmix.rule import rule_context
from pepmix.stages import normalize_stage

with rule_context(snakemake):
    normalize_stage(
        snakemake.input.features,
        snakemake.input.samples,
        snakemake.params.normalization,
        snakemake.output.features,
        snakemake.output.runs,
    )
