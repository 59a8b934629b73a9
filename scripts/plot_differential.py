"""Rule plot_differential: volcano, MA plot and p-value histogram per contrast; status summary."""

from pepmix.plots.stage import ContrastInfo, differential_plots, status_plot
from pepmix.rule import rule_context

with rule_context(snakemake):
    contrasts = [ContrastInfo.from_mapping(c) for c in snakemake.params.contrasts]
    options = {"fdr": snakemake.params.fdr, "lfc_threshold": snakemake.params.lfc_threshold}
    differential_plots(
        snakemake.input.table,
        snakemake.input.fixed,
        snakemake.input.samples,
        contrasts,
        snakemake.params.out_dir,
        snakemake.params.formats,
        **options,
    )
    status_plot(
        snakemake.input.table,
        snakemake.input.samples,
        contrasts,
        snakemake.params.status_dir,
        snakemake.params.formats,
        **options,
    )
