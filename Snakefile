# pepmix: peptide-level linear mixed models for differential protein abundance.
#
#   snakemake -s <repo>/Snakefile --directory <dir> --configfile <dir>/config.yaml --cores 2
#
# Stages: ingest (one job per MS batch) -> merge -> normalize -> fit -> test -> plots -> report.
# Config keys are documented in config/README.md; the schema is workflow/schemas/config.schema.yaml.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "rules/common.smk"


scattergather:
    split=N_SHARDS,


include: "rules/prepare.smk"
include: "rules/ingest.smk"
include: "rules/normalize.smk"
include: "rules/bootstrap.smk"
include: "rules/fit.smk"
include: "rules/test.smk"
include: "rules/plot.smk"
include: "rules/calibration.smk"
include: "rules/alerts.smk"
include: "rules/report.smk"


rule all:
    input:
        "results/tables/differential_abundance.tsv",
        "results/tables/variance_components.tsv",
        "results/tables/protein_abundance.tsv",
        all_plots(),
        ALERTS_FILE,
        USAGE_OUTPUTS,
        DETECTION_OUTPUTS,
        BOOTSTRAP_OUTPUTS,
        rules.report_pages.output,
        CALIBRATION_OUTPUTS if config["calibration"]["in_all"] else [],
    default_target: True


onsuccess:
    print_alerts()
