"""Rule variance_prior: the empirical-Bayes prior of the variance ratios, on all proteins."""

import gc

gc.disable()  # while the modules below are imported: rule_context resumes it (pepmix.rule)

from pepmix.rule import rule_context
from pepmix.stages import variance_prior

with rule_context(snakemake):
    variance_prior.run(
        features=snakemake.input.features,
        samples=snakemake.input.samples,
        model=snakemake.params.model,
        replication=snakemake.params.replication,
    ).to_json(snakemake.output[0])
