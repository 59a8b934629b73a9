"""Rule test: differential abundance per protein and contrast."""

from pepmix.rule import rule_context
from pepmix.stages import test_stage

with rule_context(snakemake):
    test_stage(
        snakemake.input.contrasts,
        snakemake.input.samples,
        snakemake.params.contrasts,
        snakemake.output.tsv,
        snakemake.output.parquet,
    )
