"""Rule report_pages: the report's summary and methods (first page), per-contrast tables, and
every rule's alerts gathered into results/alerts.tsv."""

import gc

gc.disable()  # while the modules below are imported: rule_context resumes it (pepmix.rule)

from pathlib import Path

from pepmix.rule import rule_context
from pepmix.stages import report_pages

with rule_context(snakemake):
    inputs = {k: snakemake.input[k] for k in ("differential", "variance", "runs", "samples")}
    # optional: the calibration table, when the check is part of the run (else an empty list)
    calibration = snakemake.input.get("calibration") or []
    calibration = [calibration] if isinstance(calibration, str) else list(calibration)
    if calibration:
        inputs["calibration"] = str(calibration[0])
    calibration_alerts = snakemake.input.get("calibration_alerts") or []
    if isinstance(calibration_alerts, str):
        calibration_alerts = [calibration_alerts]
    tables = list(snakemake.output.tables)
    report_pages.run(
        inputs=inputs,
        config=snakemake.config,
        contrasts=snakemake.params.contrasts,
        table_names=[Path(t).name for t in tables],
        top_n=snakemake.params.top_n,
        category=snakemake.params.category,
        # every rule's alerts (and the calibration check's, when it ran): gathered here
        alert_parts=[*snakemake.input.alert_parts, *calibration_alerts],
    ).write(
        summary=snakemake.output.summary,
        methods=snakemake.output.methods,
        tables=tables,
        alerts=snakemake.output.alert_table,
    )
