"""Rule merge: concatenate batches, check against the sample sheet, protein filters."""

import gc

gc.disable()  # while the modules below are imported: rule_context resumes it (pepmix.rule)

from pepmix.rule import rule_context
from pepmix.stages import merge

with rule_context(snakemake):
    out = snakemake.output
    merge.run(
        batches=snakemake.input.batches,
        samples=snakemake.input.samples,
        sheet_config=snakemake.params.sheet,
        filters=snakemake.params.filter,
    ).write(features=out.features, samples=out.samples, removed=out.removed)
