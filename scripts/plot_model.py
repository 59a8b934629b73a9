"""Rule plot_model: variance components and per-protein profile plots."""

from pepmix.plots.stage import ContrastInfo, model_plots
from pepmix.rule import rule_context

with rule_context(snakemake):
    model_plots(
        snakemake.input.proteins,
        snakemake.input.table,
        snakemake.input.features,
        snakemake.input.samples,
        snakemake.input.abundance,
        snakemake.input.fixed,
        snakemake.input.blups,
        [ContrastInfo.from_mapping(c) for c in snakemake.params.contrasts],
        snakemake.params.out_dir,
        snakemake.params.formats,
        top_n=snakemake.params.top_n,
        variance=snakemake.input.variance,
        fdr=snakemake.params.fdr,
    )
