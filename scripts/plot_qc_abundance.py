"""Rule plot_qc_abundance: QC figures of the protein abundances (PCA, correlation, CV) and the
variance components across proteins (both need only the fit)."""

from pepmix.rule import rule_context
from pepmix.stages import plot_model, plot_qc_abundance

with rule_context(snakemake):
    plot_qc_abundance.run(
        samples=snakemake.input.samples,
        abundance=snakemake.input.abundance,
        out_dir=snakemake.params.out_dir,
        formats=snakemake.params.formats,
    )
    plot_model.variance_plot(
        proteins=snakemake.input.proteins,
        out_dir=snakemake.params.plots_dir,
        formats=snakemake.params.formats,
    )
