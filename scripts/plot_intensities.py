"""Rule plot_intensities: intensity distributions per run."""

from pepmix.plots.stage import intensity_plot
from pepmix.rule import rule_context

with rule_context(snakemake):
    intensity_plot(snakemake.input.features, snakemake.input.samples, snakemake.output[0])
