# Shared set-up: validate the config (one-line errors), resolve the sample sheet and contrasts.

import os
import re
import sys


from pepmix.config import load_yaml, validate_config
from pepmix.alerts import format_alerts, read_alerts, rst_alerts
from pepmix.errors import PepmixError
from pepmix.locks import lock_notice
from pepmix.resources import declared_mem_mb
from pepmix.shards import BOOT_SHARDS, auto_shards, boot_in_fit
from pepmix.samples import load_design, sheet_options
from pepmix.config import check_detection_design, contrasts_for
from pepmix.plots.names import extra_formats


def _fail(message):
    # one line, once: a WorkflowError would make Snakemake print the message again with the
    # Snakefile lines it passed through
    sys.stderr.write(f"pepmix: error: {message}\n")
    raise SystemExit(1)


# Another run holding this directory: say so before Snakemake suggests --rerun-incomplete.
if workflow.is_main_process and (_notice := lock_notice()):
    sys.stderr.write(_notice)

try:
    config = validate_config(
        config, load_yaml(workflow.source_path("../workflow/schemas/config.schema.yaml"))
    )
    SHEET = load_design(config["samples"], **sheet_options(config.get("sample_sheet"))).runs
    CONTRASTS = contrasts_for(config["contrasts"], SHEET)
    if config["missing"] == "detection":  # its random terms, with this sample sheet
        check_detection_design(config, SHEET)
except PepmixError as exc:
    _fail(str(exc))

BATCHES = [entry["name"] for entry in config["inputs"]]

# Warnings of the last run (rule alerts). `snakemake --report` parses this file after the run, so
# the report's first page (workflow/report/workflow.rst, rendered with `snakemake.config`) can
# list them; the key is not a config option and no rule reads it.
ALERTS_FILE = "results/alerts.tsv"
config["_alerts"] = rst_alerts(ALERTS_FILE) if os.path.isfile(ALERTS_FILE) else []


def print_alerts():
    """Print the gathered warnings at the end of a successful run (Snakefile `onsuccess`)."""
    if os.path.isfile(ALERTS_FILE):
        alerts = read_alerts([ALERTS_FILE])
        if alerts:
            sys.stderr.write(
                f"\npepmix: {len(alerts)} warning(s) for this analysis "
                f"(also in {ALERTS_FILE} and on the report's first page):\n"
                f"{format_alerts(alerts)}\n"
            )


def _input_bytes():
    return sum(
        os.path.getsize(entry["path"]) for entry in config["inputs"] if os.path.exists(entry["path"])
    )


N_SHARDS = auto_shards(_input_bytes()) if config["shards"] == "auto" else int(config["shards"])
# variance_tests.bootstrap of all (or listed) proteins runs in the fit jobs and dominates them:
# with shards: auto, at least two shards, so that it uses two cores (pepmix.shards.BOOT_SHARDS)
if config["shards"] == "auto" and boot_in_fit(config.get("variance_tests")):
    N_SHARDS = max(N_SHARDS, BOOT_SHARDS)
INPUT_BY_NAME = {entry["name"]: entry for entry in config["inputs"]}
# one batch: ingest, merge, normalize and shard run as one job (rules/prepare.smk)
PREPARE_IN_ONE_JOB = len(BATCHES) == 1
# With one shard the fit job writes the gathered files itself (the gather of one part is the part:
# same rows, same order), which saves two jobs (~1 s of start-up each) on small inputs.
SINGLE_SHARD = N_SHARDS == 1
# the shard wildcard, or the one shard's name (a single-shard fit job has no wildcard)
SHARD = "1-of-1" if SINGLE_SHARD else "{scatteritem}"
# several shards, model.feature_majority on with a robust fit -> every fit job reads all shards'
# tables and fits the majority prior on all proteins itself, the same as one job would
# (pepmix.model.majority_shards); with one shard the fit job has them all in its own table
# (snakemake --lint reads the word r-u-l-e and a later colon in this file as a rule)
MAJORITY_SHARDS = (
    not SINGLE_SHARD
    and bool(config.get("model", {}).get("feature_majority", True))
    and config.get("model", {}).get("robust", "huber") != "none"
)


# config peptide_usage: the fit jobs test the feature:condition term (pepmix.model.usage)
# not with the random slope condition|batch: the usage refit needs the random-intercept engine
PEPTIDE_USAGE = bool(config.get("peptide_usage", True)) and "condition|batch" not in (
    config.get("model", {}).get("random") or []
)
# One shard: the usage refit in a job of its own (rule usage_refit, from the fit's
# usage_start.parquet), on the second core beside the test and plot jobs, so that the critical
# path to the differential table is the default fit alone. Not with several shards (their fit
# jobs already use the cores: a job more per shard only adds its start-up), nor when the
# contrasts come from the usage model (peptide_usage_contrasts: decided in the fit job) or the
# model already has the term (no refit: the fit's own test).
USAGE_JOB = (
    PEPTIDE_USAGE
    and SINGLE_SHARD
    and config.get("peptide_usage_contrasts", "never") == "never"
    and "feature:condition" not in (config.get("model", {}).get("random") or [])
)
# plots.formats with pdf: the profile PDFs too (all top proteins, one page each; rules/plot.smk)
PROFILE_PDFS = "pdf" in [str(f).lower() for f in config["plots"]["formats"]]
USAGE_OUTPUTS = (
    [
        "results/tables/peptide_usage.tsv",
        "results/plots/model/peptide_usage.png",
        *(["results/plots/model/peptide_usage.pdf"] if PROFILE_PDFS else []),
    ]
    if PEPTIDE_USAGE
    else []
)


# config missing: detection: the detection curve (rule detection_curve, on all proteins) and the
# detection model in the fit jobs for the config's contrasts (pepmix.model.missing)
DETECTION = config.get("missing", "mar") == "detection"
DETECTION_OUTPUTS = (
    ["results/model/detection_curve.tsv", "results/plots/qc/detection_curve.png"]
    + [f"results/plots/qc/detection_curve.{fmt}" for fmt in extra_formats(config["plots"]["formats"])]
    if DETECTION
    else []
)


def model_out(name, final):
    """Output `name` of the fit job: its shard's file, or with one shard the gathered `final`."""
    return final if SINGLE_SHARD else f"results/model/shards/{SHARD}/{name}"


# rule abundance (one shard) or gather_model; not embedded in the report (its size)
ABUNDANCE_WIDE = "results/tables/protein_abundance.tsv"


def input_mb(files):
    """Total size in MB of a job's existing input files (for mem_mb/runtime of rules)."""
    return sum(os.path.getsize(f) for f in files if os.path.exists(f)) / 1e6


def fit_input_mb(input):
    """input_mb of a fit job without the other shards' tables (MAJORITY_SHARDS): it reads them
    one at a time before its fit, for the majority prior, and keeps only the sampled proteins'
    rows (pepmix.model.majority_shards), below the fit's own peak (benchmarks/README.md)."""
    others = set(input.get("majority_shards", [])) - {input.features}
    return input_mb([f for f in input if f not in others])


def slug(text):
    """File-name-safe version of a contrast name: 'B - A' -> 'B_vs_A'."""
    text = text.replace(" - ", "_vs_")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


CONTRAST_SLUGS = {slug(c.name): c.name for c in CONTRASTS}
if len(CONTRAST_SLUGS) != len(CONTRASTS):
    _fail("contrast names collide after making them file-name safe")


wildcard_constraints:
    batch="|".join(re.escape(b) for b in BATCHES),
    contrast="|".join(re.escape(c) for c in CONTRAST_SLUGS),


# Plot rules (rules/plot.smk): formats, contrasts and report items.
import os.path

from pepmix.plots.names import (
    CONTRAST_FIGURES,
    MODEL_FIGURES,
    QC_ABUNDANCE_FIGURES,
    QC_FEATURE_FIGURES,
    QC_FIGURES,
    extra_formats,
)

# `report` at the start of a line is a Snakefile keyword; this alias keeps list items legible.
report_item = report
PLOT_FORMATS = extra_formats(config["plots"]["formats"])
PLOT_CONTRASTS = [
    {"name": c.name, "slug": slug(c.name), "numerator": c.numerator, "denominator": c.denominator}
    for c in CONTRASTS
]

FEATURES, PROTEINS = "Feature intensities", "Protein abundances"
QC_CAPTIONS = {  # figure: (label, caption, subcategory)
    "intensity_distributions": ("Intensity distributions", "intensity_distributions.rst", FEATURES),
    "features_per_run": ("Features and missing values per run", "features_per_run.rst", FEATURES),
    "missingness": ("Missing values against intensity", "missingness.rst", FEATURES),
    "pca": ("PCA of the runs", "pca.rst", PROTEINS),
    "correlation": ("Run-to-run correlation", "correlation.rst", PROTEINS),
    "cv": ("Coefficients of variation", "cv.rst", PROTEINS),
}
CONTRAST_CAPTIONS = {
    "volcano": ("Volcano plot", "volcano.rst"),
    "ma": ("MA plot", "ma.rst"),
    "pvalue_hist": ("p-value histogram", "pvalue_hist.rst"),
}


def paper_copies(base):
    """The extra-format copies of figure `base` (path without extension)."""
    return [f"{base}.{fmt}" for fmt in PLOT_FORMATS]


def contrast_report(name):
    """One report item per contrast: results/plots/contrasts/<slug>/<name>.png."""
    label, caption = CONTRAST_CAPTIONS[name]
    return [
        report_item(
            f"results/plots/contrasts/{c['slug']}/{name}.png",
            category="Differential abundance",
            subcategory=c["name"],
            caption=f"../workflow/report/{caption}",
            labels={"figure": label, "contrast": c["name"]},
        )
        for c in PLOT_CONTRASTS
    ]


def all_plots():
    """Every figure file of the plot rules (PNG for the report plus the `plots.formats` copies)."""
    fmts = ["png", *PLOT_FORMATS]
    profile_fmts = ["png", "pdf"] if PROFILE_PDFS else ["png"]
    files = [f"results/plots/qc/{n}.{f}" for n in QC_FIGURES for f in fmts]
    files += [f"results/plots/model/{n}.{f}" for n in MODEL_FIGURES for f in fmts]
    files += [f"results/plots/status.{f}" for f in fmts]
    for s in CONTRAST_SLUGS:
        files += [f"results/plots/contrasts/{s}/{n}.{f}" for n in CONTRAST_FIGURES for f in fmts]
        files += [f"results/plots/contrasts/{s}/profiles.{f}" for f in profile_fmts]
    return files
