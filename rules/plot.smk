rule plot_volcano:
    """Volcano plot of one contrast."""
    input:
        "results/tables/differential_abundance.parquet",
    output:
        report(
            "results/plots/volcano_{contrast}.png",
            category="Differential abundance",
            subcategory="{contrast}",
            caption="../workflow/report/volcano.rst",
        ),
    params:
        contrast=lambda wc: CONTRAST_SLUGS[wc.contrast],
        fdr=config["fdr"],
        lfc_threshold=config["lfc_threshold"],
    log:
        "logs/plots/volcano_{contrast}.log",
    conda:
        "../envs/pepmix.yaml"
    script:
        "../scripts/plot_volcano.py"


rule plot_intensities:
    """Intensity distributions per run before and after normalisation."""
    input:
        features="results/normalize/features.parquet",
        samples="results/ingest/samples.tsv",
    output:
        report(
            "results/plots/intensity_distributions.png",
            category="QC",
            caption="../workflow/report/intensity_distributions.rst",
        ),
    log:
        "logs/plots/intensity_distributions.log",
    conda:
        "../envs/pepmix.yaml"
    script:
        "../scripts/plot_intensities.py"
