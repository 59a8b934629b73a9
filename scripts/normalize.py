"""Rule normalize: log2 transform and run normalisation."""

import gc

gc.disable()  # while the modules below are imported: rule_context resumes it (pepmix.rule)

from pepmix.rule import rule_context
from pepmix.stages import normalize

with rule_context(snakemake):
    normalize.run(
        features=snakemake.input.features,
        samples=snakemake.input.samples,
        options=snakemake.params.normalization,
    ).write(features=snakemake.output.features, runs=snakemake.output.runs)
