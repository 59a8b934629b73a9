rule ingest:
    """Read one MS batch (an `inputs:` entry) into the canonical long table."""
    input:
        lambda wc: INPUT_BY_NAME[wc.batch]["path"],
    output:
        "results/ingest/batches/{batch}.parquet",
    params:
        entry=lambda wc: INPUT_BY_NAME[wc.batch],
        filter=config["filter"],
        feature_level=config["feature_level"],
    log:
        "logs/ingest/{batch}.log",
    resources:
        mem_mb=lambda wc, input, attempt: attempt * max(1000, int(20 * input.size_mb)),
        runtime=lambda wc, attempt: attempt * 30,
    conda:
        "../envs/pepmix.yaml"
    script:
        "../scripts/ingest.py"


rule merge:
    """Concatenate batches, check runs against the sample sheet, apply protein filters."""
    input:
        batches=expand("results/ingest/batches/{batch}.parquet", batch=BATCHES),
        samples=config["samples"],
    output:
        features="results/ingest/features.parquet",
        samples="results/ingest/samples.tsv",
    params:
        sheet=config.get("sample_sheet", {}),
        filter=config["filter"],
    log:
        "logs/merge.log",
    resources:
        mem_mb=lambda wc, input, attempt: attempt * max(1000, int(30 * input.size_mb)),
        runtime=lambda wc, attempt: attempt * 30,
    conda:
        "../envs/pepmix.yaml"
    script:
        "../scripts/merge.py"
