"""Rule gather_detection: the shards' detection-model contrast rows (missing: detection)."""

import gc

gc.disable()  # while the modules below are imported: rule_context resumes it (pepmix.rule)

from pepmix.rule import rule_context
from pepmix.stages import detection_curve

with rule_context(snakemake):
    detection_curve.gather(
        parts=snakemake.input.parts,
        contrasts=snakemake.params.contrasts,
        output=snakemake.output[0],
    )
