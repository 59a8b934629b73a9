"""Rule abundance (one shard): the protein abundance model, beside rule fit."""

import gc

gc.disable()  # while the modules below are imported: rule_context resumes it (pepmix.rule)

from pepmix.rule import rule_context
from pepmix.stages import abundance

with rule_context(snakemake):
    abundance.run(
        features=snakemake.input.features,
        samples=snakemake.input.samples,
    ).write(long=snakemake.output.long, wide=snakemake.output.wide)
