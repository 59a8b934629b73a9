"""Rule plot_usage (peptide_usage with the usage refit in a job of its own): profile plots of the
proteins flagged by the peptide-usage test (pepmix.stages.plot_usage)."""

from pepmix.rule import rule_context
from pepmix.stages import plot_usage

with rule_context(snakemake):
    inp = snakemake.input
    plot_usage.run(
        usage=inp.usage,
        proteins=inp.proteins,
        table=inp.table,
        features=inp.features,
        samples=inp.samples,
        abundance=inp.abundance,
        fixed=inp.fixed,
        blups=inp.blups,
        out_pdf=snakemake.output.get("usage_pdf"),
        out_png=snakemake.output.usage_png,
        top_n=snakemake.params.top_n,
        fdr=snakemake.params.fdr,
    )
