"""Rule plot_qc: QC figures of the feature intensities (distributions, counts, missingness)."""

from pepmix.plots.stage import qc_feature_plots
from pepmix.rule import rule_context

with rule_context(snakemake):
    qc_feature_plots(
        snakemake.input.features,
        snakemake.input.samples,
        snakemake.params.out_dir,
        snakemake.params.formats,
    )
