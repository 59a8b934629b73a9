"""Rule plot_qc_abundance: QC figures of the protein abundances (PCA, correlation, CV)."""

from pepmix.plots.stage import qc_abundance_plots
from pepmix.rule import rule_context

with rule_context(snakemake):
    qc_abundance_plots(
        snakemake.input.samples,
        snakemake.input.abundance,
        snakemake.params.out_dir,
        snakemake.params.formats,
    )
