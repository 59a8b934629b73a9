"""Rule ingest: one MS batch into the canonical long table."""

import gc

gc.disable()  # while the modules below are imported: rule_context resumes it (pepmix.rule)

from pepmix.rule import rule_context
from pepmix.stages import ingest

with rule_context(snakemake):
    ingest.run(
        entry=snakemake.params.entry,
        filters=snakemake.params.filter,
        feature_level=snakemake.params.feature_level,
    ).write(table=snakemake.output.table)
