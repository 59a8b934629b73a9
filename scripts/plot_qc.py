"""Rule plot_qc: QC figures of the feature intensities (distributions, counts, missingness); with
one shard also those of the protein abundances (PCA, correlation, CV)."""

import gc

gc.disable()  # while the modules below are imported: rule_context resumes it (pepmix.rule)

from pepmix.rule import rule_context, skip_artist_docstrings

skip_artist_docstrings()  # before matplotlib is imported (pepmix.rule)
from pepmix.stages import plot_qc

with rule_context(snakemake):
    plot_qc.run(
        features=snakemake.input.features,
        samples=snakemake.input.samples,
        out_dir=snakemake.params.out_dir,
        formats=snakemake.params.formats,
        # one shard: the protein-abundance QC figures too (rules/plot.smk, QC_IN_ONE_JOB)
        abundance=snakemake.input.get("abundance") or None,
    )
