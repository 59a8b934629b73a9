# Parametric bootstraps that need all shards (config variance_tests; pepmix.bootstrap): the
# contrasts' t tests (bootstrap_contrasts) and the term LRTs of the top N proteins
# (bootstrap_proteins: top N). `all` or a list of proteins for the term LRTs stays in the fit
# jobs (per shard).

BOOT_CONTRASTS = "results/tables/bootstrap_contrasts.tsv"
BOOT_TERMS = "results/tables/bootstrap_terms.tsv"
_BOOT_SECTION = config.get("variance_tests") or {}
# Without any bootstrap setting (the default) there is nothing to run or to check: the options
# class (pepmix.model.variance_tests: scipy.special and the model modules, ~0.15 CPU s) is then
# not imported into every snakemake call.
if (
    int(_BOOT_SECTION.get("bootstrap", 0)) == 0
    and not _BOOT_SECTION.get("bootstrap_contrasts", False)
    and _BOOT_SECTION.get("bootstrap_proteins", "all") == "all"
):
    BOOT_FILES = {}
else:
    from pepmix.model.variance_tests import VarianceTestOptions

    try:
        BOOT_OPTIONS = VarianceTestOptions.from_config(_BOOT_SECTION)
    except PepmixError as exc:
        _fail(str(exc))
    BOOT_FILES = {
        **({"contrasts": BOOT_CONTRASTS} if BOOT_OPTIONS.bootstrap > 0 and BOOT_OPTIONS.contrasts else {}),
        **({"terms": BOOT_TERMS} if BOOT_OPTIONS.after_gather and BOOT_OPTIONS.top and BOOT_OPTIONS.lrt else {}),
    }
BOOTSTRAP_OUTPUTS = list(BOOT_FILES.values())


if BOOT_FILES:

    rule bootstrap:
        """Parametric bootstrap of the contrasts (and of the top N proteins' variance tests),
        after the gather; split over the job's threads (one process each)."""
        input:
            features="results/normalize/features.parquet",
            samples="results/ingest/samples.tsv",
            # the top N ranking, and the model-based p-values next to the bootstrap ones
            differential="results/tables/differential_abundance.parquet",
        output:
            **BOOT_FILES,
        params:
            config={
                key: config.get(key, {})
                for key in ("variance_tests", "contrasts", "model", "testing")
            },
        benchmark:
            "logs/benchmarks/bootstrap.tsv"
        log:
            "logs/bootstrap.log",
        threads: 2
        resources:
            # every process holds the table (fork) and its bootstrap chunks
            mem_mb=lambda wc, input, threads, attempt: attempt
            * threads
            * (1000 + int(10 * input_mb(input))),
            runtime=lambda wc, attempt: attempt * 60,
        conda:
            "../envs/pepmix.yaml"
        script:
            "../scripts/bootstrap.py"
