"""Rule prepare: ingest, merge, normalize and shard in one job (one batch)."""

from pepmix.rule import rule_context, stage_alerts
from pepmix.shards import split
from pepmix.stages import ingest, merge, normalize_stage

with rule_context(snakemake) as logger:
    out = snakemake.output
    with stage_alerts("ingest", out.alerts_ingest, snakemake.log.ingest):
        logger.info("stage ingest")
        ingest(
            snakemake.params.entry,
            snakemake.params.filter,
            snakemake.params.feature_level,
            out.batch,
        )
    with stage_alerts("merge", out.alerts_merge, snakemake.log.merge):
        logger.info("stage merge")
        merge(
            [out.batch],
            snakemake.input.samples,
            snakemake.params.sheet,
            snakemake.params.filter,
            out.merged,
            out.samples,
            out.removed,
        )
    with stage_alerts("normalize", out.alerts_normalize, snakemake.log.normalize):
        logger.info("stage normalize")
        normalize_stage(
            out.merged,
            out.samples,
            snakemake.params.normalization,
            out.features,
            out.runs,
        )
    with stage_alerts("shard", None, snakemake.log.shard):
        logger.info("stage shard")
        split(out.features, list(out.shards), list(out.largest))
