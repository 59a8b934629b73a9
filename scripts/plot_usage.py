"""Rule plot_usage: profile plots of the proteins flagged by the peptide-usage test."""

from pepmix.plots.stage import usage_plots
from pepmix.rule import rule_context

with rule_context(snakemake):
    usage_plots(
        snakemake.input.usage,
        snakemake.input.proteins,
        snakemake.input.table,
        snakemake.input.features,
        snakemake.input.samples,
        snakemake.input.abundance,
        snakemake.input.fixed,
        snakemake.input.blups,
        snakemake.output.pdf,
        snakemake.output.png,
        top_n=snakemake.params.top_n,
        fdr=snakemake.params.fdr,
    )
