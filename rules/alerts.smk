# Warnings that matter (pepmix.alerts): every rule that can raise one writes results/alerts/...;
# rule report_pages (rules/report.smk) gathers them into results/alerts.tsv, which the end of the
# workflow prints and the report's first page lists. (A rule `alerts` of its own until
# 2026-12-07: one job's start-up and one gap on the end of the DAG for ~0.01 s of work;
# benchmarks/README.md, "Fewer jobs on one shard".)

# the rules' alert files, in DAG order (ingest, merge, normalize, fit shards, test)
ALERT_PARTS = [
    *expand("results/alerts/ingest/{batch}.tsv", batch=BATCHES),
    "results/alerts/merge.tsv",
    "results/alerts/normalize.tsv",
    *gather.split("results/alerts/fit/{scatteritem}.tsv"),
    "results/alerts/test.tsv",
]
