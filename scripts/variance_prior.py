"""Rule variance_prior: the empirical-Bayes prior of the variance ratios, on all proteins."""

from pepmix.rule import rule_context
from pepmix.stages import variance_prior_stage

with rule_context(snakemake):
    variance_prior_stage(
        snakemake.input.features,
        snakemake.input.samples,
        snakemake.params.model,
        snakemake.output[0],
        replication=snakemake.params.replication,
    )
