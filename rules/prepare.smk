# Small inputs (one `inputs:` batch and one shard): rules ingest, merge, normalize and shard run as
# one job, which writes the same files as the four would (each stage's alerts under its own rule
# name) and saves three jobs' start-up (Python, pandas, Arrow: ~0.5-1 s each) on the critical
# path. Editing a setting of any of the four stages re-runs the whole job (its params are theirs).

if PREPARE_IN_ONE_JOB:

    rule prepare:
        """Ingest, merge, normalise and shard in one job (one batch, one shard)."""
        input:
            batch=lambda wc: INPUT_BY_NAME[BATCHES[0]]["path"],
            samples=config["samples"],
        output:
            batch=f"results/ingest/batches/{BATCHES[0]}.parquet",
            alerts_ingest=f"results/alerts/ingest/{BATCHES[0]}.tsv",
            merged="results/ingest/features.parquet",
            samples="results/ingest/samples.tsv",
            removed="results/ingest/removed_proteins.tsv",
            alerts_merge="results/alerts/merge.tsv",
            features="results/normalize/features.parquet",
            runs=report(
                "results/normalize/runs.tsv",
                category="QC",
                caption="../workflow/report/normalization.rst",
            ),
            alerts_normalize="results/alerts/normalize.tsv",
            shard="results/model/shards/1-of-1/features.parquet",
            largest="results/model/shards/1-of-1/largest.json",
        params:
            entry=INPUT_BY_NAME[BATCHES[0]],
            filter=config["filter"],
            feature_level=config["feature_level"],
            sheet=config.get("sample_sheet", {}),
            normalization=config["normalization"],
        benchmark:
            "logs/benchmarks/prepare.tsv"
        log:
            "logs/prepare.log",
        threads: 2
        resources:
            mem_mb=lambda wc, input, attempt: attempt * (800 + int(15 * input_mb(input))),
            runtime=lambda wc, input, attempt: attempt * (10 + int(input_mb(input) / 5)),
        conda:
            "../envs/pepmix.yaml"
        script:
            "../scripts/prepare.py"
