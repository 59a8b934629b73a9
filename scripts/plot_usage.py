"""Rule plot_usage: profile plots of the proteins flagged by the peptide-usage test."""

from pepmix.rule import rule_context
from pepmix.stages import plot_usage

with rule_context(snakemake):
    plot_usage.run(
        usage=snakemake.input.usage,
        proteins=snakemake.input.proteins,
        table=snakemake.input.table,
        features=snakemake.input.features,
        samples=snakemake.input.samples,
        abundance=snakemake.input.abundance,
        fixed=snakemake.input.fixed,
        blups=snakemake.input.blups,
        out_pdf=snakemake.output.get("pdf"),
        out_png=snakemake.output.png,
        top_n=snakemake.params.top_n,
        fdr=snakemake.params.fdr,
    )
