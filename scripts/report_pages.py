"""Rule report_pages: the report's summary and methods (first page) and per-contrast tables."""

from pathlib import Path

from pepmix.rule import rule_context
from pepmix.stages import report_pages

with rule_context(snakemake):
    inputs = {
        k: snakemake.input[k] for k in ("differential", "variance", "runs", "samples", "alerts")
    }
    # optional: the calibration table, when the check is part of the run (else an empty list)
    calibration = snakemake.input.get("calibration") or []
    calibration = [calibration] if isinstance(calibration, str) else list(calibration)
    if calibration:
        inputs["calibration"] = str(calibration[0])
    tables = list(snakemake.output.tables)
    report_pages.run(
        inputs=inputs,
        config=snakemake.config,
        contrasts=snakemake.params.contrasts,
        table_names=[Path(t).name for t in tables],
        top_n=snakemake.params.top_n,
        category=snakemake.params.category,
    ).write(summary=snakemake.output.summary, methods=snakemake.output.methods, tables=tables)
