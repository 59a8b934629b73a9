# Warnings that matter (pepmix.alerts): every rule that can raise one writes results/alerts/...;
# this rule gathers them into results/alerts.tsv, which the end of the workflow prints and the
# report's first page lists.


rule alerts:
    """Gather the rules' alerts (warnings that matter) into one table."""
    input:
        expand("results/alerts/ingest/{batch}.tsv", batch=BATCHES),
        "results/alerts/merge.tsv",
        "results/alerts/normalize.tsv",
        gather.split("results/alerts/fit/{scatteritem}.tsv"),
        "results/alerts/test.tsv",
        # rules/calibration.smk: when the check runs or ran (evaluated when the DAG is built)
        lambda wc: calibration_alert_inputs(config, workflow, CALIBRATION_ALERTS),
    output:
        report(
            ALERTS_FILE,
            category="Summary",
            caption="../workflow/report/alerts.rst",
        ),
    benchmark:
        "logs/benchmarks/alerts.tsv"
    log:
        "logs/alerts.log",
    threads: 1
    resources:
        mem_mb=300,
        runtime=5,
    conda:
        "../envs/pepmix.yaml"
    script:
        "../scripts/alerts.py"
