"""Rule usage_refit (one shard): the peptide-usage table from the fit's stored end
(pepmix.stages.usage_refit)."""

import gc

gc.disable()  # while the modules below are imported: rule_context resumes it (pepmix.rule)

from pepmix.rule import rule_context
from pepmix.stages import usage_refit

with rule_context(snakemake):
    rows = usage_refit.run(
        features=snakemake.input.features,
        samples=snakemake.input.samples,
        start=snakemake.input.start,
        model=snakemake.params.model,
        replication=snakemake.params.replication,
        usage_weights=snakemake.params.get("usage_weights") or None,
    )
    usage_refit.usage_table(rows, removed=snakemake.input.removed).write(snakemake.output[0])
