"""Rule plot_volcano: volcano plot of one contrast."""

import pandas as pd

from pepmix.plots.results import volcano
from pepmix.rule import rule_context

with rule_context(snakemake):
    volcano(
        pd.read_parquet(snakemake.input[0]),
        snakemake.params.contrast,
        snakemake.output[0],
        fdr=snakemake.params.fdr,
        lfc_threshold=snakemake.params.lfc_threshold,
    )
