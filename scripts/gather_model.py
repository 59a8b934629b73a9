"""Rule gather_model: concatenate the shards' model outputs in single-job order."""

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
