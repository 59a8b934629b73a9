"""Rule plot_qc: QC figures of intensities, missing values and protein abundances."""

from pepmix.plots.stage import qc_plots
from pepmix.rule import rule_context

with rule_context(snakemake):
    qc_plots(
        snakemake.input.features,
        snakemake.input.samples,
        snakemake.input.abundance,
        snakemake.params.out_dir,
        snakemake.params.formats,
    )
