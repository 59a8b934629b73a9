# Figures, one rule per family: QC of the feature intensities (needs only the normalised features,
# so it runs while the models are fitted) and of the protein abundances; differential abundance
# (per contrast, plus the status summary of all contrasts, drawn from the same table); model
# (variance components, profile plots, and with peptide_usage the usage-flagged profiles). Every
# figure is drawn as PNG (for the report) plus the extra formats of `plots.formats` (PDF, SVG)
# for papers; with `pdf` also the profile PDFs (all `plots.top_n` proteins; without it only the
# report's first few profiles are drawn). The PDFs are off by default: they were ~7 of the
# demo's ~17 CPU s of plot jobs (benchmarks/README.md, "Plot jobs and PDFs, third pass"). One job
# per family over all contrasts keeps the script start-up cost (Python, pandas, matplotlib: ~1 s
# CPU each) from dominating the plots' run time.

# One shard: rule plot_qc also draws the protein-abundance QC figures (rule plot_qc_abundance's),
# after rule abundance (~1.4 CPU s, beside the fit on the second core): one job's start-up and
# reads fewer (~0.6 CPU s: 1.53 + 1.52 -> 2.49 on the demo), and the job still ends about when
# the fit does (benchmarks/README.md, "Fewer jobs on one shard"). Several shards: the abundances
# come from gather_model after all fit jobs, so the feature figures keep their own job
# (drawn while the shards are fitted).
QC_IN_ONE_JOB = SINGLE_SHARD
QC_JOB_FIGURES = QC_FEATURE_FIGURES + (QC_ABUNDANCE_FIGURES if QC_IN_ONE_JOB else ())


rule plot_qc:
    """QC figures of the feature intensities: intensities, features and missing values per run,
    missingness against intensity. Needs only the normalised features: runs while the models are
    fitted. With one shard also the protein-abundance QC figures (after rule abundance)."""
    input:
        features="results/normalize/features.parquet",
        samples="results/ingest/samples.tsv",
        # one shard (QC_IN_ONE_JOB): rule abundance's table, for rule plot_qc_abundance's figures
        abundance="results/tables/protein_abundance.parquet" if QC_IN_ONE_JOB else [],
    output:
        png=[
            report_item(
                f"results/plots/qc/{name}.png",
                category="QC",
                subcategory=QC_CAPTIONS[name][2],
                caption=f"../workflow/report/{QC_CAPTIONS[name][1]}",
                labels={"figure": QC_CAPTIONS[name][0]},
            )
            for name in QC_JOB_FIGURES
        ],
        paper=[p for name in QC_JOB_FIGURES for p in paper_copies(f"results/plots/qc/{name}")],
    params:
        out_dir=lambda wc, output: os.path.dirname(output.png[0]),
        formats=PLOT_FORMATS,
    benchmark:
        "logs/benchmarks/plot_qc.tsv"
    log:
        "logs/plots/qc.log",
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: attempt * (1000 + int(10 * input_mb(input))),
        runtime=lambda wc, input, attempt: attempt * (10 + int(input_mb(input) / 20)),
    conda:
        "../envs/pepmix.yaml"
    script:
        "../scripts/plot_qc.py"


# several shards only (one shard: rule plot_qc draws these figures, QC_IN_ONE_JOB)
if not QC_IN_ONE_JOB:

    rule plot_qc_abundance:
        """QC figures of the protein abundances: PCA, run correlation, CV per condition."""
        input:
            samples="results/ingest/samples.tsv",
            abundance="results/tables/protein_abundance.parquet",
        output:
            png=[
                report_item(
                    f"results/plots/qc/{name}.png",
                    category="QC",
                    subcategory=QC_CAPTIONS[name][2],
                    caption=f"../workflow/report/{QC_CAPTIONS[name][1]}",
                    labels={"figure": QC_CAPTIONS[name][0]},
                )
                for name in QC_ABUNDANCE_FIGURES
            ],
            paper=[
                p
                for name in QC_ABUNDANCE_FIGURES
                for p in paper_copies(f"results/plots/qc/{name}")
            ],
        params:
            out_dir=lambda wc, output: os.path.dirname(output.png[0]),
            formats=PLOT_FORMATS,
        benchmark:
            "logs/benchmarks/plot_qc_abundance.tsv"
        log:
            "logs/plots/qc_abundance.log",
        threads: 1
        resources:
            mem_mb=lambda wc, input, attempt: attempt * (1000 + int(10 * input_mb(input))),
            runtime=lambda wc, input, attempt: attempt * (10 + int(input_mb(input) / 20)),
        conda:
            "../envs/pepmix.yaml"
        script:
            "../scripts/plot_qc_abundance.py"


rule plot_differential:
    """Volcano, MA plot and p-value histogram of every contrast; status summary of all contrasts."""
    input:
        table="results/tables/differential_abundance.parquet",
        fixed="results/model/fixed_effects.parquet",
        samples="results/ingest/samples.tsv",
    output:
        volcano=contrast_report("volcano"),
        ma=contrast_report("ma"),
        pvalue_hist=contrast_report("pvalue_hist"),
        paper=[
            p
            for c in PLOT_CONTRASTS
            for name in CONTRAST_FIGURES
            for p in paper_copies(f"results/plots/contrasts/{c['slug']}/{name}")
        ],
        status=report(
            "results/plots/status.png",
            category="Differential abundance",
            subcategory="All contrasts",
            caption="../workflow/report/status.rst",
            labels={"figure": "Status summary"},
        ),
        status_paper=paper_copies("results/plots/status"),
    params:
        out_dir=lambda wc, output: os.path.dirname(os.path.dirname(output.volcano[0])),
        status_dir=lambda wc, output: os.path.dirname(output.status),
        formats=PLOT_FORMATS,
        contrasts=PLOT_CONTRASTS,
        fdr=config["fdr"],
        lfc_threshold=config["lfc_threshold"],
    benchmark:
        "logs/benchmarks/plot_differential.tsv"
    log:
        "logs/plots/differential.log",
    # with plot_model, before the QC and usage figures: when the usage refit runs in a job of its
    # own, it was often the last job (its chain test -> plot_differential is on the end of the DAG)
    priority: 1
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: attempt * (1000 + int(10 * input_mb(input))),
        runtime=lambda wc, input, attempt: attempt * (10 + int(input_mb(input) / 20)),
    conda:
        "../envs/pepmix.yaml"
    script:
        "../scripts/plot_differential.py"


# config peptide_usage: the usage-flagged proteins' profiles, drawn by rule plot_model (one job's
# start-up and reads fewer), or with the usage refit in a job of its own (USAGE_JOB) by rule
# plot_usage, so that plot_model need not wait for the refit
USAGE_FIGURES = (
    {
        "usage_png": report_item(
            "results/plots/model/peptide_usage.png",
            category="Model",
            caption="../workflow/report/peptide_usage.rst",
            labels={"figure": "Peptide usage: flagged proteins"},
        ),
        # plots.formats with pdf: all flagged proteins (at most plots.top_n), one page each
        **({"usage_pdf": "results/plots/model/peptide_usage.pdf"} if PROFILE_PDFS else {}),
    }
    if PEPTIDE_USAGE
    else {}
)
USAGE_IN_PLOT_MODEL = PEPTIDE_USAGE and not USAGE_JOB


rule plot_model:
    """Variance components across proteins and per top protein (variance partition); profile
    plots of the top proteins of each contrast; with peptide_usage the profiles of the proteins
    the usage test flags (in this job: the same inputs, one start-up and read fewer)."""
    input:
        # config peptide_usage: the flagged proteins' profiles (pepmix.stages.plot_usage)
        usage="results/tables/peptide_usage.tsv" if USAGE_IN_PLOT_MODEL else [],
        proteins="results/model/proteins.parquet",
        variance="results/tables/variance_components.tsv",
        table="results/tables/differential_abundance.parquet",
        features="results/normalize/features.parquet",
        samples="results/ingest/samples.tsv",
        abundance="results/tables/protein_abundance.parquet",
        fixed="results/model/fixed_effects.parquet",
        blups="results/model/blups.parquet",
    output:
        variance=report(
            "results/plots/model/variance_components.png",
            category="Model",
            caption="../workflow/report/variance_components_plot.rst",
            labels={"figure": "Variance components"},
        ),
        variance_paper=paper_copies("results/plots/model/variance_components"),
        partition=report(
            "results/plots/model/variance_partition.png",
            category="Model",
            caption="../workflow/report/variance_partition.rst",
            labels={"figure": "Variance partition of the top proteins"},
        ),
        partition_paper=paper_copies("results/plots/model/variance_partition"),
        profiles_png=[
            report_item(
                f"results/plots/contrasts/{c['slug']}/profiles.png",
                category="Model",
                subcategory=c["name"],
                caption="../workflow/report/profiles.rst",
                labels={"figure": "Protein profiles", "contrast": c["name"]},
            )
            for c in PLOT_CONTRASTS
        ],
        # plots.formats with pdf: all plots.top_n profiles per contrast, one page each
        profiles_pdf=[
            f"results/plots/contrasts/{c['slug']}/profiles.pdf"
            for c in PLOT_CONTRASTS
            if PROFILE_PDFS
        ],
        **(USAGE_FIGURES if USAGE_IN_PLOT_MODEL else {}),
    params:
        out_dir=lambda wc, output: os.path.dirname(os.path.dirname(output.variance)),
        formats=PLOT_FORMATS,
        contrasts=PLOT_CONTRASTS,
        top_n=config["plots"]["top_n"],
        fdr=config["fdr"],
    benchmark:
        "logs/benchmarks/plot_model.tsv"
    log:
        "logs/plots/model.log",
    # the longest plot job, and the last in the DAG: start it before the shorter plot jobs
    priority: 1
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: attempt * (1000 + int(10 * input_mb(input))),
        runtime=lambda wc, input, attempt: attempt * (10 + int(input_mb(input) / 20)),
    conda:
        "../envs/pepmix.yaml"
    script:
        "../scripts/plot_model.py"


if USAGE_JOB:

    rule plot_usage:
        """Profile plots of the proteins flagged by the peptide-usage test (config
        peptide_usage), after rule usage_refit (pepmix.stages.plot_usage)."""
        input:
            usage="results/tables/peptide_usage.tsv",
            proteins="results/model/proteins.parquet",
            table="results/tables/differential_abundance.parquet",
            features="results/normalize/features.parquet",
            samples="results/ingest/samples.tsv",
            abundance="results/tables/protein_abundance.parquet",
            fixed="results/model/fixed_effects.parquet",
            blups="results/model/blups.parquet",
        output:
            **USAGE_FIGURES,
        params:
            top_n=config["plots"]["top_n"],
            fdr=config["fdr"],
        benchmark:
            "logs/benchmarks/plot_usage.tsv"
        log:
            "logs/plots/usage.log",
        threads: 1
        resources:
            mem_mb=lambda wc, input, attempt: attempt * (1000 + int(10 * input_mb(input))),
            runtime=lambda wc, input, attempt: attempt * (10 + int(input_mb(input) / 20)),
        conda:
            "../envs/pepmix.yaml"
        script:
            "../scripts/plot_usage.py"
