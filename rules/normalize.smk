rule normalize:
    """log2 transform and run normalisation (config `normalization:`)."""
    input:
        features="results/ingest/features.parquet",
        samples="results/ingest/samples.tsv",
    output:
        features="results/normalize/features.parquet",
        runs=report(
            "results/normalize/runs.tsv",
            category="QC",
            caption="../workflow/report/normalization.rst",
        ),
        alerts="results/alerts/normalize.tsv",
    params:
        normalization=config["normalization"],
    benchmark:
        "logs/benchmarks/normalize.tsv"
    log:
        "logs/normalize.log",
    # Arrow reads and writes Parquet on `threads` CPUs (it follows the OMP_NUM_THREADS
    # Snakemake sets): these jobs run alone on the critical path, before the shards fan out
    threads: 2
    resources:
        mem_mb=lambda wc, input, attempt: attempt * (800 + int(15 * input_mb(input))),
        runtime=lambda wc, input, attempt: attempt * (10 + int(input_mb(input) / 10)),
    conda:
        "../envs/pepmix.yaml"
    script:
        "../scripts/normalize.py"
