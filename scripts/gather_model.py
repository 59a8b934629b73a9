"""Rule gather_model: concatenate the shards' model outputs and protein abundances in
single-job order; the variance and peptide-usage tables (rules/fit.smk)."""

import gc

gc.disable()  # while the modules below are imported: rule_context resumes it (pepmix.rule)

from pepmix.rule import rule_context
from pepmix.stages import gather_model

with rule_context(snakemake):
    inp, out = snakemake.input, snakemake.output
    gather_model.run(
        proteins=inp.proteins,
        fit=inp.fit,
        fixed=inp.fixed,
        blups=inp.blups,
        outputs={"proteins": out.proteins, "fit": out.fit, "fixed": out.fixed, "blups": out.blups},
    )
    if out.get("variance"):
        # VARIANCE_IN_GATHER: rule variance_components's table, from the proteins gathered above
        from pepmix.stages import variance_components

        variance_components.run(proteins=out.proteins, removed=inp.removed).write(out.variance)
    if out.get("usage_table"):
        # USAGE_IN_GATHER: rule peptide_usage's table, the fit jobs' usage rows gathered
        from pepmix.stages import peptide_usage

        peptide_usage.run(parts=list(inp.usage), removed=inp.removed).write(out.usage_table)
    if out.get("abundance_long"):
        # ABUNDANCE_IN_GATHER: the protein abundances, long and as a proteins x runs table
        from pepmix.stages import gather_abundance

        gather_abundance.run(
            parts=inp.abundance,
            samples=inp.samples,
            long=out.abundance_long,
            wide=out.abundance_wide,
        )
