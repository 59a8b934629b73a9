# Calibration check on the user's own data (pepmix.inference.calibration): condition labels
# permuted within batches over the replication units, the model refitted and the contrasts
# tested as rule `test` does, a few times. A named target, not part of `all` unless
# `calibration.in_all: true`:  snakemake ... calibration


CALIBRATION_OUTPUTS = ["results/calibration/calibration.tsv", "results/calibration/pvalue_hist.png"]
CALIBRATION_ALERTS = "results/alerts/calibration.tsv"

from pepmix.inference.calibration import alert_inputs as calibration_alert_inputs



rule calibration:
    """Named target: the whole analysis (rule `all`) and the calibration check, with its alerts
    gathered (`snakemake calibration`), so that the report can be built afterwards."""
    input:
        # evaluated when the DAG is built, after the Snakefile defined rule `all`
        lambda wc: [*rules.all.input, *CALIBRATION_OUTPUTS],


rule calibration_check:
    """Permuted condition labels: refit, test, and report the null calls and p-values."""
    input:
        features="results/normalize/features.parquet",
        samples="results/ingest/samples.tsv",
        # the shards' largest proteins: memory as for the whole table in one fit job
        largest=gather.split("results/model/shards/{scatteritem}/largest.json"),
    output:
        table=report(
            CALIBRATION_OUTPUTS[0],
            category="Calibration",
            caption="../workflow/report/calibration.rst",
            labels={"table": "Permuted condition labels: calls and p-values"},
        ),
        figure=report(
            CALIBRATION_OUTPUTS[1],
            category="Calibration",
            caption="../workflow/report/calibration_hist.rst",
            labels={"figure": "p-values with permuted condition labels"},
        ),
        alerts=CALIBRATION_ALERTS,
    params:
        # `calibration.in_all` only chooses the targets: changing it reruns nothing
        config={
            **{
                key: config[key]
                for key in ("contrasts", "moderation", "lfc_threshold", "testing", "model", "fdr")
            },
            "calibration": {k: v for k, v in config["calibration"].items() if k != "in_all"},
        },
    benchmark:
        "logs/benchmarks/calibration.tsv"
    log:
        "logs/calibration.log",
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: attempt
        * declared_mem_mb(list(input.largest), input_mb(input)),
        # about `permutations` times the model stage
        runtime=lambda wc, input, attempt: attempt
        * (10 + config["calibration"]["permutations"] * (10 + int(input_mb(input)))),
    conda:
        "../envs/pepmix.yaml"
    script:
        "../scripts/calibration.py"
