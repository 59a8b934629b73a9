"""Rule prepare: ingest, merge, normalize and shard in one job (one batch)."""

import gc

gc.disable()  # while the modules below are imported: rule_context resumes it (pepmix.rule)

from pepmix.rule import rule_context
from pepmix.stages import prepare

with rule_context(snakemake):
    out = snakemake.output
    logs = snakemake.log
    prepare.run(
        entry=snakemake.params.entry,
        filters=snakemake.params.filter,
        feature_level=snakemake.params.feature_level,
        samples=snakemake.input.samples,
        sheet_config=snakemake.params.sheet,
        normalization=snakemake.params.normalization,
        outputs=prepare.PrepareOutputs(
            batch=out.batch,
            merged=out.merged,
            samples=out.samples,
            removed=out.removed,
            features=out.features,
            runs=out.runs,
            shards=list(out.shards),
            largest=list(out.largest),
            alerts={
                "ingest": out.alerts_ingest,
                "merge": out.alerts_merge,
                "normalize": out.alerts_normalize,
            },
            logs={
                "ingest": logs.ingest,
                "merge": logs.merge,
                "normalize": logs.normalize,
                "shard": logs.shard,
            },
        ),
    )
