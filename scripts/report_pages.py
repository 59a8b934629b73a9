"""Rule report_pages: the report's summary and methods (first page) and per-contrast tables."""

from pepmix.report.stage import report_pages_stage
from pepmix.rule import rule_context

with rule_context(snakemake):
    report_pages_stage(
        {k: snakemake.input[k] for k in ("differential", "variance", "runs", "samples", "alerts")},
        snakemake.config,
        snakemake.params.contrasts,
        list(snakemake.output.tables),
        snakemake.output.summary,
        snakemake.output.methods,
        top_n=snakemake.params.top_n,
        category=snakemake.params.category,
    )
