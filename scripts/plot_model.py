"""Rule plot_model: variance components and per-protein profile plots."""

from pepmix.plots.inputs import ContrastInfo
from pepmix.rule import rule_context
from pepmix.stages import plot_model

with rule_context(snakemake):
    plot_model.run(
        proteins=snakemake.input.proteins,
        table=snakemake.input.table,
        features=snakemake.input.features,
        samples=snakemake.input.samples,
        abundance=snakemake.input.abundance,
        fixed=snakemake.input.fixed,
        blups=snakemake.input.blups,
        contrasts=[ContrastInfo.from_mapping(c) for c in snakemake.params.contrasts],
        out_dir=snakemake.params.out_dir,
        formats=snakemake.params.formats,
        top_n=snakemake.params.top_n,
        variance=snakemake.input.variance,
        fdr=snakemake.params.fdr,
    )
