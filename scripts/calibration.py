"""Rule calibration_check: refit and test with permuted condition labels.

See :mod:`pepmix.inference.calibration`.
"""

from pepmix.inference.calibration import calibration_stage
from pepmix.rule import rule_context

with rule_context(snakemake):
    calibration_stage(
        snakemake.input.features,
        snakemake.input.samples,
        snakemake.params.config,
        snakemake.output.table,
        snakemake.output.figure,
    )
