"""Rule shard: split the normalised table into protein shards balanced by observations."""

import gc

gc.disable()  # while the modules below are imported: rule_context resumes it (pepmix.rule)

from pepmix.rule import rule_context
from pepmix.stages import shard

with rule_context(snakemake):
    shard.run(
        features=snakemake.input[0],
        shards=list(snakemake.output.features),
        largest=list(snakemake.output.largest),
    )
