"""Rule plot_model: variance components and per-protein profile plots; with peptide_usage the
profiles of the usage-flagged proteins (pepmix.stages.plot_usage)."""

import gc

gc.disable()  # while the modules below are imported: rule_context resumes it (pepmix.rule)

from pepmix.rule import rule_context, skip_artist_docstrings

skip_artist_docstrings()  # before matplotlib is imported (pepmix.rule)
from pepmix.plots.inputs import ContrastInfo
from pepmix.stages import plot_model, plot_usage

with rule_context(snakemake):
    inp = snakemake.input
    plot_model.run(
        proteins=inp.proteins,
        table=inp.table,
        features=inp.features,
        samples=inp.samples,
        abundance=inp.abundance,
        fixed=inp.fixed,
        blups=inp.blups,
        contrasts=[ContrastInfo.from_mapping(c) for c in snakemake.params.contrasts],
        out_dir=snakemake.params.out_dir,
        formats=snakemake.params.formats,
        top_n=snakemake.params.top_n,
        variance=inp.variance,
        fdr=snakemake.params.fdr,
    )
    if snakemake.output.get("usage_png"):
        plot_usage.run_rule(inp, snakemake.output, snakemake.params)
