rule fit:
    """One linear mixed model per protein (REML), all proteins batched."""
    input:
        features="results/normalize/features.parquet",
        samples="results/ingest/samples.tsv",
    output:
        proteins="results/model/proteins.parquet",
        contrasts="results/model/contrasts.parquet",
        fixed="results/model/fixed_effects.parquet",
        blups="results/model/blups.parquet",
    params:
        model=config.get("model", {}),
        contrasts=config["contrasts"],
    log:
        "logs/fit.log",
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: attempt * max(1000, int(60 * input.size_mb)),
        runtime=lambda wc, attempt: attempt * 60,
    conda:
        "../envs/pepmix.yaml"
    script:
        "../scripts/fit.py"


rule variance_components:
    """Variance components per protein, as a table for people."""
    input:
        "results/model/proteins.parquet",
    output:
        report(
            "results/tables/variance_components.tsv",
            category="Model",
            caption="../workflow/report/variance_components.rst",
        ),
    log:
        "logs/variance_components.log",
    conda:
        "../envs/pepmix.yaml"
    script:
        "../scripts/variance_components.py"


rule protein_abundance:
    """Per-run protein abundances: fixed run means and random feature effects per protein."""
    input:
        features="results/normalize/features.parquet",
        samples="results/ingest/samples.tsv",
    output:
        long="results/tables/protein_abundance.parquet",
        wide=report(
            "results/tables/protein_abundance.tsv",
            category="Model",
            caption="../workflow/report/protein_abundance.rst",
        ),
    log:
        "logs/protein_abundance.log",
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: attempt * max(1000, int(60 * input.size_mb)),
        runtime=lambda wc, attempt: attempt * 60,
    conda:
        "../envs/pepmix.yaml"
    script:
        "../scripts/protein_abundance.py"
