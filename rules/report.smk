# The report's own pages (pepmix.report): the summary and the methods text, which the first page
# (workflow/report/workflow.rst) includes, and one sortable, searchable table of the top proteins
# per contrast, shown next to its volcano plot.

REPORT_PAGES = "results/report"
RESULTS_CATEGORY = "Differential abundance"

# The summary and methods of the first page, if a finished run wrote them (else None): read by
# `snakemake --report` after the run (like config["_alerts"]); not a config option.
_PAGES = {n: os.path.abspath(f"{REPORT_PAGES}/{n}.rst") for n in ("summary", "methods")}
config["_report_pages"] = _PAGES if all(os.path.isfile(p) for p in _PAGES.values()) else None


rule report_pages:
    """Summary and methods of the report's first page; a top-protein table per contrast; the
    rules' alerts gathered into one table (printed at the end of the run)."""
    input:
        differential="results/tables/differential_abundance.parquet",
        variance="results/tables/variance_components.tsv",
        runs="results/normalize/runs.tsv",
        samples="results/ingest/samples.tsv",
        # every rule's alerts (rules/alerts.smk), gathered into ALERTS_FILE by this job
        alert_parts=ALERT_PARTS,
        # rules/calibration.smk: when the check runs or ran (its alerts too)
        calibration_alerts=lambda wc: calibration_alert_inputs(
            config, workflow, CALIBRATION_ALERTS
        ),
        # rules/calibration.smk: when the check runs or ran (one line of the summary)
        calibration=lambda wc: calibration_alert_inputs(config, workflow, CALIBRATION_OUTPUTS[0]),
    output:
        # not named `alerts`: pepmix.rule.rule_context writes a job's own alerts to that output
        alert_table=report(
            ALERTS_FILE,
            category="Summary",
            caption="../workflow/report/alerts.rst",
        ),
        summary=f"{REPORT_PAGES}/summary.rst",
        methods=f"{REPORT_PAGES}/methods.rst",
        tables=[
            report(
                f"{REPORT_PAGES}/top_proteins_{c['slug']}.html",
                category=RESULTS_CATEGORY,
                subcategory=c["name"],
                caption="../workflow/report/top_proteins.rst",
                labels={"figure": "Top proteins (table)", "contrast": c["name"]},
            )
            for c in PLOT_CONTRASTS
        ],
    # the rest of the config the methods text describes is a parameter of an upstream rule
    # (its change re-runs that rule and this one); these are not, and are shown in the report
    params:
        contrasts=[c["name"] for c in PLOT_CONTRASTS],
        fdr=config["fdr"],
        top_n=config["report"]["top_n"],
        category=RESULTS_CATEGORY,
    benchmark:
        "logs/benchmarks/report_pages.tsv"
    log:
        "logs/report_pages.log",
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: attempt * (500 + int(10 * input_mb(input))),
        runtime=lambda wc, attempt: attempt * 10,
    conda:
        "../envs/pepmix.yaml"
    script:
        "../scripts/report_pages.py"
