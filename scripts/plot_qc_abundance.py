"""Rule plot_qc_abundance: QC figures of the protein abundances (PCA, correlation, CV)."""

import gc

gc.disable()  # while the modules below are imported: rule_context resumes it (pepmix.rule)

from pepmix.rule import rule_context, skip_artist_docstrings

skip_artist_docstrings()  # before matplotlib is imported (pepmix.rule)
from pepmix.stages import plot_qc_abundance

with rule_context(snakemake):
    plot_qc_abundance.run(
        samples=snakemake.input.samples,
        abundance=snakemake.input.abundance,
        out_dir=snakemake.params.out_dir,
        formats=snakemake.params.formats,
    )
