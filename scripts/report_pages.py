"""Rule report_pages: the report's summary and methods (first page) and per-contrast tables."""

from pepmix.report.stage import report_pages_stage
from pepmix.rule import rule_context

with rule_context(snakemake):
    inputs = {
        k: snakemake.input[k] for k in ("differential", "variance", "runs", "samples", "alerts")
    }
    # optional: the calibration table, when the check is part of the run (else an empty list)
    calibration = snakemake.input.get("calibration") or []
    calibration = [calibration] if isinstance(calibration, str) else list(calibration)
    if calibration:
        inputs["calibration"] = str(calibration[0])
    report_pages_stage(
        inputs,
        snakemake.config,
        snakemake.params.contrasts,
        list(snakemake.output.tables),
        snakemake.output.summary,
        snakemake.output.methods,
        top_n=snakemake.params.top_n,
        category=snakemake.params.category,
    )
