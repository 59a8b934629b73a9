"""Rule bootstrap: parametric bootstraps after the gather (contrasts; term LRTs of the top N)."""

import gc

gc.disable()  # while the modules below are imported: rule_context resumes it (pepmix.rule)

from pepmix.rule import rule_context
from pepmix.stages import bootstrap

with rule_context(snakemake):
    bootstrap.run(
        features=snakemake.input.features,
        samples=snakemake.input.samples,
        config=snakemake.params.config,
        differential=snakemake.input.differential,
        threads=snakemake.threads,
    ).write(contrasts=snakemake.output.get("contrasts"), terms=snakemake.output.get("terms"))
