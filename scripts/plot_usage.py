"""Rule plot_usage (peptide_usage with the usage refit in a job of its own): profile plots of the
proteins flagged by the peptide-usage test (pepmix.stages.plot_usage)."""

import gc

gc.disable()  # while the modules below are imported: rule_context resumes it (pepmix.rule)

from pepmix.rule import rule_context, skip_artist_docstrings

skip_artist_docstrings()  # before matplotlib is imported (pepmix.rule)
from pepmix.stages import plot_usage

with rule_context(snakemake):
    plot_usage.run_rule(snakemake.input, snakemake.output, snakemake.params)
