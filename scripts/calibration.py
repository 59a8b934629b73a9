"""Rule calibration_check: refit and test with permuted condition labels.

See :mod:`pepmix.inference.calibration`.
"""

import gc

gc.disable()  # while the modules below are imported: rule_context resumes it (pepmix.rule)

from pepmix.rule import rule_context
from pepmix.stages import calibration

with rule_context(snakemake):
    config = snakemake.params.config
    calibration.run(
        features=snakemake.input.features, samples=snakemake.input.samples, config=config
    ).write(
        table=snakemake.output.table,
        figure=snakemake.output.figure,
        fdr=float(config.get("fdr", 0.05)),
    )
