"""Rule plot_qc: QC figures of the feature intensities (distributions, counts, missingness)."""

from pepmix.rule import rule_context
from pepmix.stages import plot_qc

with rule_context(snakemake):
    plot_qc.run(
        features=snakemake.input.features,
        samples=snakemake.input.samples,
        out_dir=snakemake.params.out_dir,
        formats=snakemake.params.formats,
    )
