"""Rule plot_usage (peptide_usage with the usage refit in a job of its own): profile plots of the
proteins flagged by the peptide-usage test (pepmix.stages.plot_usage)."""

from pepmix.rule import rule_context
from pepmix.stages import plot_usage

with rule_context(snakemake):
    plot_usage.run_rule(snakemake.input, snakemake.output, snakemake.params)
