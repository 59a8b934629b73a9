"""Rule gather_model: concatenate the shards' model outputs in single-job order; with several
shards also rule variance_components's and rule peptide_usage's tables (rules/fit.smk)."""

from pepmix.rule import rule_context
from pepmix.stages import gather_model

with rule_context(snakemake):
    out = snakemake.output
    gather_model.run(
        proteins=snakemake.input.proteins,
        fit=snakemake.input.fit,
        fixed=snakemake.input.fixed,
        blups=snakemake.input.blups,
        outputs={"proteins": out.proteins, "fit": out.fit, "fixed": out.fixed, "blups": out.blups},
    )
    if out.get("variance"):
        # VARIANCE_IN_GATHER: the variance table, from the proteins gathered above
        from pepmix.stages import variance_components

        variance_components.run(proteins=out.proteins, removed=snakemake.input.removed).write(
            out.variance
        )
    if out.get("usage_table"):
        # USAGE_IN_GATHER: the fit jobs' peptide-usage rows, gathered
        from pepmix.stages import peptide_usage

        peptide_usage.run(
            parts=list(snakemake.input.usage), removed=snakemake.input.removed
        ).write(out.usage_table)
