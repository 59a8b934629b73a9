rule test:
    """Contrast tests per protein: t, p and Benjamini-Hochberg adjusted p per contrast."""
    input:
        contrasts="results/model/contrasts.parquet",
        samples="results/ingest/samples.tsv",
    output:
        tsv=report(
            "results/tables/differential_abundance.tsv",
            category="Differential abundance",
            caption="../workflow/report/differential_abundance.rst",
        ),
        parquet="results/tables/differential_abundance.parquet",
        missing=report(
            "results/tables/one_condition_missing.tsv",
            category="Differential abundance",
            caption="../workflow/report/one_condition_missing.rst",
        ),
    params:
        config={
            key: config[key]
            for key in ("contrasts", "moderation", "lfc_threshold", "testing")
        },
    log:
        "logs/test.log",
    conda:
        "../envs/pepmix.yaml"
    script:
        "../scripts/test.py"
