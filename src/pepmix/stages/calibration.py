"""Rule ``calibration_check``: refit and test with permuted condition labels
(:mod:`pepmix.inference.calibration`); the permuted runs' summary table and p-value histogram."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pepmix.stages.files import PathLike, read_model_input, read_resolved_sheet

if TYPE_CHECKING:
    from pepmix.inference.calibration import CalibrationResult

__all__ = ["run"]


def run(*, features: PathLike, samples: PathLike, config: Mapping[str, Any]) -> CalibrationResult:
    """The permutations' refits and tests (:func:`pepmix.inference.calibration.run_calibration`);
    write them with the result's ``write(table=..., figure=..., fdr=...)``.

    Parameters
    ----------
    features : path
        ``results/normalize/features.parquet``.
    samples : path
        ``results/ingest/samples.tsv``.
    config : mapping
        The validated config.
    """
    from pepmix.inference.calibration import run_calibration

    return run_calibration(read_model_input(features), read_resolved_sheet(samples), config)
