"""Rule alerts: every rule's warnings in one table (printed at the end, shown in the report)."""

from pepmix.alerts import gather_alerts
from pepmix.rule import rule_context

with rule_context(snakemake):
    gather_alerts(list(snakemake.input), snakemake.output[0])
