# One `inputs:` batch: rules ingest, merge, normalize and shard run as one job, which writes the
# same files as the four would (each stage's alerts under its own rule name). The four run one
# after the other anyway (each needs the previous one's table); one job saves three jobs'
# start-up (Python, pandas, Arrow: ~0.5-1.5 s each) on the critical path. Editing a setting of
# any of the four stages re-runs the whole job (its params are theirs). The four rules stay
# defined (several batches use them); `ruleorder` makes Snakemake pick this one for their files.

if PREPARE_IN_ONE_JOB:

    ruleorder: prepare > ingest
    ruleorder: prepare > merge
    ruleorder: prepare > normalize
    ruleorder: prepare > shard

    rule prepare:
        """Ingest, merge, normalise and shard in one job (one batch)."""
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
            shards=scatter.split("results/model/shards/{scatteritem}/features.parquet"),
            largest=scatter.split("results/model/shards/{scatteritem}/largest.json"),
        params:
            entry=INPUT_BY_NAME[BATCHES[0]],
            filter=config["filter"],
            feature_level=config["feature_level"],
            sheet=config.get("sample_sheet", {}),
            normalization=config["normalization"],
        benchmark:
            "logs/benchmarks/prepare.tsv"
        # the job's log, and each stage's records also in the log its own rule would write
        log:
            prepare="logs/prepare.log",
            ingest=f"logs/ingest/{BATCHES[0]}.log",
            merge="logs/merge.log",
            normalize="logs/normalize.log",
            shard="logs/shard.log",
        threads: 2
        resources:
            # the ingest rule's: reading the input is the peak of the four stages
            mem_mb=lambda wc, input, attempt: attempt * (800 + int(10 * input_mb(input))),
            runtime=lambda wc, input, attempt: attempt * (20 + int(input_mb(input) / 5)),
        conda:
            "../envs/pepmix.yaml"
        script:
            "../scripts/prepare.py"
