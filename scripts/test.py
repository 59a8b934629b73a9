"""Rule test: differential abundance per protein and contrast."""

import gc

gc.disable()  # while the modules below are imported: rule_context resumes it (pepmix.rule)

from pepmix.rule import rule_context
from pepmix.stages import test

with rule_context(snakemake):
    out = snakemake.output
    test.run(
        fit=snakemake.input.fit,
        samples=snakemake.input.samples,
        config=snakemake.params.config,
        removed=snakemake.input.removed,
        # missing: detection: the detection model's contrast rows (rules/fit.smk)
        detection=snakemake.input.get("detection") or None,
    ).write(tsv=out.tsv, parquet=out.parquet, missing=out.missing)
