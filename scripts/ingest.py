"""Rule ingest: one MS batch into the canonical long table."""

from pepmix.rule import rule_context
from pepmix.stages import ingest

with rule_context(snakemake):
    ingest(
        snakemake.params.entry,
        snakemake.params.filter,
        snakemake.params.feature_level,
        snakemake.output.table,
    )
