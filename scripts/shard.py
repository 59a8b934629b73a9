"""Rule shard: split the normalised table into protein shards balanced by observations."""

from pepmix.rule import rule_context
from pepmix.shards import split

with rule_context(snakemake):
    split(snakemake.input[0], list(snakemake.output.features), list(snakemake.output.largest))
