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
    log:
        "logs/normalize.log",
    resources:
        mem_mb=lambda wc, input, attempt: attempt * max(1000, int(40 * input.size_mb)),
        runtime=lambda wc, attempt: attempt * 30,
    conda:
        "../envs/pepmix.yaml"
    script:
        "../scripts/normalize.py"
