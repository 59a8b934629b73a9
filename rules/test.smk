rule test:
    """Contrast estimates and tests per protein, computed from the stored fit (no refit when
    `contrasts:` change): t, p and Benjamini-Hochberg adjusted p per contrast."""
    input:
        # the stored fit: contrasts are computed here from the config (pepmix.model.stored)
        fit="results/model/fit.parquet",
        samples="results/ingest/samples.tsv",
        removed="results/ingest/removed_proteins.tsv",
        # missing: detection: the detection model's contrast rows (rules/fit.smk)
        detection="results/model/detection_contrasts.parquet" if DETECTION else [],
    output:
        # not embedded in the report (1.2 MB for the demo, a third of the report's size limit);
        # the report shows the figures and the top proteins, the table stays next to it
        tsv="results/tables/differential_abundance.tsv",
        parquet="results/tables/differential_abundance.parquet",
        missing=report(
            "results/tables/one_condition_missing.tsv",
            category="Differential abundance",
            caption="../workflow/report/one_condition_missing.rst",
        ),
        alerts="results/alerts/test.tsv",
    params:
        config={
            key: config[key]
            for key in ("contrasts", "moderation", "lfc_threshold", "testing", "model")
            + (("missing",) if DETECTION else ())
        },
    benchmark:
        "logs/benchmarks/test.tsv"
    log:
        "logs/test.log",
    priority: 2  # on the critical path to the result plots (see rule fit)
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: attempt * (500 + int(10 * input_mb(input))),
        runtime=lambda wc, attempt: attempt * 20,
    conda:
        "../envs/pepmix.yaml"
    script:
        "../scripts/test.py"
