# The model stage runs as independent jobs over protein shards (scatter), gathered afterwards.
# Shards are balanced by observations; `shards:` in the config (auto: one per 200 MB of input).
# With one shard the fit job writes the gathered files itself (SINGLE_SHARD, rules/common.smk).


# with one batch this runs inside rule prepare (rules/prepare.smk, ruleorder)
rule shard:
    """Split the normalised table into protein shards balanced by observations."""
    input:
        "results/normalize/features.parquet",
    output:
        features=scatter.split("results/model/shards/{scatteritem}/features.parquet"),
        # features and observations of each shard's largest protein: the fit rule's mem_mb
        largest=scatter.split("results/model/shards/{scatteritem}/largest.json"),
    benchmark:
        "logs/benchmarks/shard.tsv"
    log:
        "logs/shard.log",
    # Arrow reads and writes Parquet on `threads` CPUs (it follows the OMP_NUM_THREADS
    # Snakemake sets): these jobs run alone on the critical path, before the shards fan out
    threads: 2
    resources:
        mem_mb=lambda wc, input, attempt: attempt * (500 + int(10 * input_mb(input))),
        runtime=lambda wc, attempt: attempt * 20,
    conda:
        "../envs/pepmix.yaml"
    script:
        "../scripts/shard.py"


rule variance_prior:
    """Empirical-Bayes prior of the sample (and run) variance ratios (model.shrinkage) and of
    the feature variance ratios (model.feature_weights), estimated on all proteins before
    sharding so that results do not depend on the number of shards (the feature majority
    rule's prior: each fit job fits it from all shards, MAJORITY_SHARDS)."""
    input:
        features="results/normalize/features.parquet",
        samples="results/ingest/samples.tsv",
        largest=gather.split("results/model/shards/{scatteritem}/largest.json"),
    output:
        "results/model/variance_prior.json",
    params:
        model=config.get("model", {}),
        replication=config.get("testing", {}).get("replication", "auto"),
    benchmark:
        "logs/benchmarks/variance_prior.tsv"
    log:
        "logs/variance_prior.log",
    priority: 2
    threads: 1
    resources:
        # the input size and the largest protein (pepmix.resources); Snakemake evaluates this
        # again when the job is ready, after the shard job wrote the JSON files
        mem_mb=lambda wc, input, attempt: attempt
        * declared_mem_mb(list(input.largest), input_mb(input)),
        runtime=lambda wc, input, attempt: attempt * (10 + int(input_mb(input))),
    conda:
        "../envs/pepmix.yaml"
    script:
        "../scripts/variance_prior.py"


rule detection_curve:
    """The detection probability curve and the condition prior SD, fitted once on all proteins
    before sharding (missing: detection; pepmix.model.missing), and its QC figure."""
    input:
        features="results/normalize/features.parquet",
        samples="results/ingest/samples.tsv",
    output:
        table="results/model/detection_curve.tsv",
        png=report(
            "results/plots/qc/detection_curve.png",
            category="QC",
            subcategory="Feature intensities",
            caption="../workflow/report/detection_curve.rst",
            labels={"figure": "Detection probability curve"},
        ),
        extra=[
            f"results/plots/qc/detection_curve.{fmt}"
            for fmt in extra_formats(config["plots"]["formats"])
        ],
    benchmark:
        "logs/benchmarks/detection_curve.tsv"
    log:
        "logs/detection_curve.log",
    priority: 2
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: attempt * (1000 + int(20 * input_mb(input))),
        runtime=lambda wc, input, attempt: attempt * (10 + int(input_mb(input))),
    conda:
        "../envs/pepmix.yaml"
    script:
        "../scripts/detection_curve.py"


# One shard: the fit job also writes the variance table (rule variance_components's, from the
# proteins.parquet it has just written; ruleorder below): one job's start-up (~0.5-0.7 CPU s of
# Python, pandas and the variance-test modules) for ~0.05 s of work. Not when rule bootstrap's
# term table (bootstrap_proteins: top N, after the fit) fills columns of it.
VARIANCE_IN_FIT = SINGLE_SHARD and "terms" not in BOOT_FILES


# the fit job's peptide-usage output: its shard's rows, or with one shard the gathered table
USAGE_FIT_OUTPUT = (
    {"usage_table": "results/tables/peptide_usage.tsv"}
    if SINGLE_SHARD
    else {"usage": f"results/model/shards/{SHARD}/usage.parquet"}
)


rule fit:
    """One linear mixed model per protein of a shard (REML), all proteins batched; and the
    protein abundance model (fixed run means, random feature effects) on the same table."""
    input:
        features=f"results/model/shards/{SHARD}/features.parquet",
        samples="results/ingest/samples.tsv",
        largest=f"results/model/shards/{SHARD}/largest.json",
        # the variance-ratio prior only when model.shrinkage is on, the feature-variance
        # prior only with model.feature_weights (else no extra job)
        prior=(
            "results/model/variance_prior.json"
            if config.get("model", {}).get("shrinkage", False)
            or config.get("model", {}).get("feature_weights", "none") != "none"
            else []
        ),
        # several shards, feature majority rule: every shard's table, from which the job fits
        # the rule's prior on all proteins itself (MAJORITY_SHARDS; one shard: its own table)
        majority_shards=(
            gather.split("results/model/shards/{scatteritem}/features.parquet")
            if MAJORITY_SHARDS
            else []
        ),
        # one shard: the removed proteins close the usage table (peptide_usage in this job)
        # and the variance table (VARIANCE_IN_FIT)
        removed=(
            "results/ingest/removed_proteins.tsv"
            if SINGLE_SHARD and ((PEPTIDE_USAGE and not USAGE_JOB) or VARIANCE_IN_FIT)
            else []
        ),
        # missing: detection: the curve fitted on all proteins (rule detection_curve)
        curve="results/model/detection_curve.tsv" if DETECTION else [],
    output:
        proteins=model_out("proteins.parquet", "results/model/proteins.parquet"),
        # what every contrast test needs (pepmix.model.stored): the test stage computes the
        # contrasts, so editing `contrasts:` does not refit
        fit=model_out("fit.parquet", "results/model/fit.parquet"),
        fixed=model_out("fixed_effects.parquet", "results/model/fixed_effects.parquet"),
        blups=model_out("blups.parquet", "results/model/blups.parquet"),
        # several shards: the shard's protein abundances (one shard: rule abundance)
        **(
            {}
            if SINGLE_SHARD
            else {"abundance": f"results/model/shards/{SHARD}/protein_abundance.parquet"}
        ),
        alerts=f"results/alerts/fit/{SHARD}.tsv",
        # one shard: rule variance_components's table (VARIANCE_IN_FIT)
        **({"variance": "results/tables/variance_components.tsv"} if VARIANCE_IN_FIT else {}),
        # peptide_usage: the shard's usage rows (rule peptide_usage gathers them); one shard:
        # the job writes the gathered table itself. USAGE_JOB (one shard): rule usage_refit
        # computes them from where this fit ended (relative SDs and final robust weights)
        **(USAGE_FIT_OUTPUT if PEPTIDE_USAGE and not USAGE_JOB else {}),
        **({"usage_start": "results/model/usage_start.parquet"} if USAGE_JOB else {}),
        # missing: detection: the detection model's contrast rows (one shard: gathered)
        **(
            {
                "detection": model_out(
                    "detection.parquet", "results/model/detection_contrasts.parquet"
                )
            }
            if DETECTION
            else {}
        ),
    params:
        model=config.get("model", {}),
        replication=config.get("testing", {}).get("replication", "auto"),
        variance_tests=config.get("variance_tests", {}),
        # testing.variance_prior: stratum needs the residual floors (other runs keep their params)
        **(
            {"stratum": True}
            if config.get("testing", {}).get("variance_prior") == "stratum"
            else {}
        ),
        # only with missing: detection (editing contrasts then refits; MAR runs keep their params)
        **(
            {
                "missing": "detection",
                "contrasts": [[c.name, c.numerator, c.denominator] for c in CONTRASTS],
            }
            if DETECTION
            else {}
        ),
        # with peptide_usage: which proteins' contrasts come from the usage model
        usage_contrasts=config.get("peptide_usage_contrasts", "never"),
        pretest_alpha=config.get("peptide_usage_pretest_alpha", 0.25),
        # with peptide_usage: the usage test's observation weights
        usage_weights=config.get("peptide_usage_weights"),
    benchmark:
        f"logs/benchmarks/fit/{SHARD}.tsv"
    log:
        f"logs/fit/{SHARD}.log",
    # the shards are the critical path: start all of them before the QC plots, which are ready
    # at the same time
    priority: 2
    threads: 1
    resources:
        # the input size and the shard's largest protein (pepmix.resources); Snakemake evaluates
        # this again when the job is ready, after the shard job wrote largest.json. The other
        # shards' tables (MAJORITY_SHARDS) do not count: fit_input_mb
        mem_mb=lambda wc, input, attempt: attempt
        * declared_mem_mb(input.largest, fit_input_mb(input)),
        runtime=lambda wc, input, attempt: attempt * (10 + int(fit_input_mb(input))),
    conda:
        "../envs/pepmix.yaml"
    script:
        "../scripts/fit.py"


if USAGE_JOB:

    rule usage_refit:
        """Peptide usage (feature:condition) test (config peptide_usage; pepmix.model.usage) of
        the one shard, refitted from where the default fit ended: beside the test and plot jobs
        instead of after the default fit in the fit job."""
        input:
            features=f"results/model/shards/{SHARD}/features.parquet",
            samples="results/ingest/samples.tsv",
            largest=f"results/model/shards/{SHARD}/largest.json",
            start="results/model/usage_start.parquet",
            # the removed proteins close the usage table
            removed="results/ingest/removed_proteins.tsv",
        output:
            "results/tables/peptide_usage.tsv",  # not embedded in the report (its size)
        params:
            model=config.get("model", {}),
            replication=config.get("testing", {}).get("replication", "auto"),
            usage_weights=config.get("peptide_usage_weights"),
        benchmark:
            f"logs/benchmarks/usage_refit/{SHARD}.tsv"
        log:
            f"logs/usage_refit/{SHARD}.log",
        # the longest chain after the fit (refit, then the usage figure): started first
        priority: 3
        threads: 1
        resources:
            # as rule fit: the same engine on the same table, with one more term
            mem_mb=lambda wc, input, attempt: attempt
            * declared_mem_mb(input.largest, input_mb(input)),
            runtime=lambda wc, input, attempt: attempt * (10 + int(input_mb(input))),
        conda:
            "../envs/pepmix.yaml"
        script:
            "../scripts/usage_refit.py"


# with one shard the fit job writes the gathered files (rules/common.smk: SINGLE_SHARD), and
# rule abundance the protein abundances
if SINGLE_SHARD:

    ruleorder: fit > gather_model
    ruleorder: fit > peptide_usage
    ruleorder: fit > gather_detection

    if VARIANCE_IN_FIT:

        ruleorder: fit > variance_components

    rule abundance:
        """Protein abundance per run (one shard): beside rule fit, which needs 2-3x longer, on
        the second core; the abundance QC plots can then be drawn while the fit runs."""
        input:
            features=f"results/model/shards/{SHARD}/features.parquet",
            samples="results/ingest/samples.tsv",
            largest=f"results/model/shards/{SHARD}/largest.json",
        output:
            long="results/tables/protein_abundance.parquet",
            wide=ABUNDANCE_WIDE,
        benchmark:
            "logs/benchmarks/abundance.tsv"
        log:
            "logs/abundance.log",
        priority: 2
        threads: 1
        resources:
            # as rule fit (the same engine on the same table; fewer terms)
            mem_mb=lambda wc, input, attempt: attempt
            * declared_mem_mb(input.largest, input_mb(input)),
            runtime=lambda wc, input, attempt: attempt * (10 + int(input_mb(input))),
        conda:
            "../envs/pepmix.yaml"
        script:
            "../scripts/abundance.py"

    if USAGE_JOB:

        ruleorder: usage_refit > peptide_usage


# Several shards: rule gather_model gathers the protein abundances too (the long Parquet and
# the proteins x runs TSV, rule gather_abundance's until 2026-12-07) and writes the variance table
# (rule variance_components's, from the proteins.parquet it has just gathered) and the
# peptide-usage table (rule peptide_usage's, from the fit jobs' usage rows): three jobs'
# start-up (~0.5 CPU s each of Python, pandas and Arrow) for ~0.8 s of work, after the fits,
# where both cores are busy until the end (benchmarks/README.md, "The jobs after the fits").
# Rules variance_components and peptide_usage stay for one shard's other routes and for rule
# bootstrap's term table (bootstrap_proteins: top N).
ABUNDANCE_IN_GATHER = not SINGLE_SHARD
VARIANCE_IN_GATHER = not SINGLE_SHARD and "terms" not in BOOT_FILES
USAGE_IN_GATHER = not SINGLE_SHARD and PEPTIDE_USAGE
if VARIANCE_IN_GATHER:

    ruleorder: gather_model > variance_components


if USAGE_IN_GATHER:

    ruleorder: gather_model > peptide_usage


rule gather_model:
    """Gather the shards' model outputs (rows in the order of a single job) and protein
    abundances (long Parquet and a proteins x runs TSV); the variance and peptide-usage tables
    (VARIANCE_IN_GATHER, USAGE_IN_GATHER)."""
    input:
        proteins=gather.split("results/model/shards/{scatteritem}/proteins.parquet"),
        fit=gather.split("results/model/shards/{scatteritem}/fit.parquet"),
        fixed=gather.split("results/model/shards/{scatteritem}/fixed_effects.parquet"),
        blups=gather.split("results/model/shards/{scatteritem}/blups.parquet"),
        abundance=(
            gather.split("results/model/shards/{scatteritem}/protein_abundance.parquet")
            if ABUNDANCE_IN_GATHER
            else []
        ),
        # the runs' order of the abundance TSV
        samples="results/ingest/samples.tsv" if ABUNDANCE_IN_GATHER else [],
        # USAGE_IN_GATHER: the fit jobs' usage rows; with VARIANCE_IN_GATHER too, the removed
        # proteins close both tables
        usage=(
            gather.split("results/model/shards/{scatteritem}/usage.parquet")
            if USAGE_IN_GATHER
            else []
        ),
        removed=(
            "results/ingest/removed_proteins.tsv"
            if USAGE_IN_GATHER or VARIANCE_IN_GATHER
            else []
        ),
    output:
        proteins="results/model/proteins.parquet",
        fit="results/model/fit.parquet",
        fixed="results/model/fixed_effects.parquet",
        blups="results/model/blups.parquet",
        **(
            {
                "abundance_long": "results/tables/protein_abundance.parquet",
                # not embedded in the report (its size)
                "abundance_wide": ABUNDANCE_WIDE,
            }
            if ABUNDANCE_IN_GATHER
            else {}
        ),
        **({"variance": "results/tables/variance_components.tsv"} if VARIANCE_IN_GATHER else {}),
        **({"usage_table": "results/tables/peptide_usage.tsv"} if USAGE_IN_GATHER else {}),
    benchmark:
        "logs/benchmarks/gather_model.tsv"
    log:
        "logs/gather_model.log",
    priority: 3  # first of the gathers: the differential table (rule test) waits for it
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: attempt * (500 + int(10 * input_mb(input))),
        runtime=lambda wc, attempt: attempt * 20,
    conda:
        "../envs/pepmix.yaml"
    script:
        "../scripts/gather_model.py"


rule gather_detection:
    """Gather the shards' detection-model contrast rows (missing: detection), in the order of a
    single job."""
    input:
        parts=gather.split("results/model/shards/{scatteritem}/detection.parquet"),
    output:
        "results/model/detection_contrasts.parquet",
    params:
        contrasts=[c.name for c in CONTRASTS],
    benchmark:
        "logs/benchmarks/gather_detection.tsv"
    log:
        "logs/gather_detection.log",
    priority: 3
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: attempt * (500 + int(10 * input_mb(input))),
        runtime=lambda wc, attempt: attempt * 20,
    conda:
        "../envs/pepmix.yaml"
    script:
        "../scripts/gather_detection.py"


# with one shard written by rule fit (VARIANCE_IN_FIT), unless rule bootstrap fills columns of it
rule variance_components:
    """Variance components per protein, as a table for people."""
    input:
        proteins="results/model/proteins.parquet",
        removed="results/ingest/removed_proteins.tsv",
        # bootstrap_proteins: top N: the term bootstraps of rule bootstrap (rules/bootstrap.smk)
        boot_terms=BOOT_FILES.get("terms", []),
    output:
        "results/tables/variance_components.tsv",  # not embedded in the report (its size)
    benchmark:
        "logs/benchmarks/variance_components.tsv"
    log:
        "logs/variance_components.log",
    # with rule test before the abundance QC plots: rule plot_model (the longest plot job)
    # needs both
    priority: 2
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: attempt * (500 + int(10 * input_mb(input))),
        runtime=lambda wc, attempt: attempt * 10,
    conda:
        "../envs/pepmix.yaml"
    script:
        "../scripts/variance_components.py"


rule peptide_usage:
    """Peptide usage (feature:condition) test per protein, gathered over the shards
    (config peptide_usage; pepmix.model.usage)."""
    input:
        parts=gather.split("results/model/shards/{scatteritem}/usage.parquet"),
        removed="results/ingest/removed_proteins.tsv",
    output:
        "results/tables/peptide_usage.tsv",  # not embedded in the report (its size)
    benchmark:
        "logs/benchmarks/peptide_usage.tsv"
    log:
        "logs/peptide_usage.log",
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: attempt * (500 + int(10 * input_mb(input))),
        runtime=lambda wc, attempt: attempt * 10,
    conda:
        "../envs/pepmix.yaml"
    script:
        "../scripts/peptide_usage.py"
