"""Rule detection_curve: the detection probability curve on all proteins (missing: detection)."""

import gc

gc.disable()  # while the modules below are imported: rule_context resumes it (pepmix.rule)

from pepmix.rule import rule_context
from pepmix.stages import detection_curve

with rule_context(snakemake):
    out = snakemake.output
    detection_curve.run(features=snakemake.input.features, samples=snakemake.input.samples).write(
        table=out.table, figures=[out.png, *out.extra] if out.png else []
    )
