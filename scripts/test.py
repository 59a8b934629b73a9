"""Rule test: differential abundance per protein and contrast."""

from pepmix.rule import rule_context
from pepmix.stages import differential_stage

with rule_context(snakemake):
    differential_stage(
        snakemake.input.fit,
        snakemake.input.samples,
        snakemake.params.config,
        snakemake.output.tsv,
        snakemake.output.parquet,
        snakemake.output.missing,
        snakemake.input.removed,
    )
