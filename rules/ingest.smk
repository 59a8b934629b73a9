rule ingest:
    """Read one MS batch (an `inputs:` entry) into the canonical long table."""
    input:
        lambda wc: INPUT_BY_NAME[wc.batch]["path"],
    output:
        table="results/ingest/batches/{batch}.parquet",
        alerts="results/alerts/ingest/{batch}.tsv",
    # Params are a rerun trigger: only this batch's own entry goes in (plus the global filter
    # settings), so adding or editing another batch re-runs that batch's job only. The sample
    # sheet is read by merge, not here, for the same reason (tests/e2e/test_batches.py).
    params:
        entry=lambda wc: INPUT_BY_NAME[wc.batch],
        filter=config["filter"],
        feature_level=config["feature_level"],
    benchmark:
        "logs/benchmarks/ingest/{batch}.tsv"
    log:
        "logs/ingest/{batch}.log",
    # Arrow reads and writes Parquet on `threads` CPUs (it follows the OMP_NUM_THREADS
    # Snakemake sets): these jobs run alone on the critical path, before the shards fan out
    threads: 2
    resources:
        mem_mb=lambda wc, input, attempt: attempt * (800 + int(10 * input_mb(input))),
        runtime=lambda wc, input, attempt: attempt * (10 + int(input_mb(input) / 10)),
    conda:
        "../envs/pepmix.yaml"
    script:
        "../scripts/ingest.py"


rule merge:
    """Concatenate batches, check runs against the sample sheet, apply protein filters."""
    input:
        batches=expand("results/ingest/batches/{batch}.parquet", batch=BATCHES),
        samples=config["samples"],
    output:
        features="results/ingest/features.parquet",
        samples="results/ingest/samples.tsv",
        # every input protein the filters removed, with the reason (status filtered in rule test)
        removed="results/ingest/removed_proteins.tsv",
        alerts="results/alerts/merge.tsv",
    params:
        sheet=config.get("sample_sheet", {}),
        filter=config["filter"],
    benchmark:
        "logs/benchmarks/merge.tsv"
    log:
        "logs/merge.log",
    # Arrow reads and writes Parquet on `threads` CPUs (it follows the OMP_NUM_THREADS
    # Snakemake sets): these jobs run alone on the critical path, before the shards fan out
    threads: 2
    resources:
        mem_mb=lambda wc, input, attempt: attempt * (800 + int(15 * input_mb(input))),
        runtime=lambda wc, input, attempt: attempt * (10 + int(input_mb(input) / 10)),
    conda:
        "../envs/pepmix.yaml"
    script:
        "../scripts/merge.py"
