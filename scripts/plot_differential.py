"""Rule plot_differential: volcano, MA plot and p-value histogram per contrast; status summary."""

import gc

gc.disable()  # while the modules below are imported: rule_context resumes it (pepmix.rule)

from pepmix.rule import rule_context, skip_artist_docstrings

skip_artist_docstrings()  # before matplotlib is imported (pepmix.rule)
from pepmix.plots.inputs import ContrastInfo
from pepmix.stages import plot_differential

with rule_context(snakemake):
    plot_differential.run(
        table=snakemake.input.table,
        fixed=snakemake.input.fixed,
        samples=snakemake.input.samples,
        contrasts=[ContrastInfo.from_mapping(c) for c in snakemake.params.contrasts],
        out_dir=snakemake.params.out_dir,
        status_dir=snakemake.params.status_dir,
        formats=snakemake.params.formats,
        fdr=snakemake.params.fdr,
        lfc_threshold=snakemake.params.lfc_threshold,
    )
