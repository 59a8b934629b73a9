"""Rule usage_refit: the peptide-usage test of a shard from the fit's stored end
(pepmix.stages.usage_refit)."""

from pepmix.io import write_parquet
from pepmix.rule import rule_context
from pepmix.stages import usage_refit

with rule_context(snakemake):
    out = snakemake.output
    rows = usage_refit.run(
        features=snakemake.input.features,
        samples=snakemake.input.samples,
        start=snakemake.input.start,
        model=snakemake.params.model,
        replication=snakemake.params.replication,
    )
    if out.get("usage"):  # several shards: rule peptide_usage gathers
        write_parquet(rows, out.usage)
    else:  # one shard: the gathered table
        usage_refit.usage_table(rows, removed=snakemake.input.removed).write(out.usage_table)
