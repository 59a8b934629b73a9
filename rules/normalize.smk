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
    params:
        normalization=config["normalization"],
    benchmark:
        "logs/benchmarks/normalize.tsv"
    log:
        "logs/normalize.log",
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: attempt * (800 + int(15 * input_mb(input))),
        runtime=lambda wc, input, attempt: attempt * (10 + int(input_mb(input) / 10)),
    conda:
        "../envs/pepmix.yaml"
    script:
        "../scripts/normalize.py"
