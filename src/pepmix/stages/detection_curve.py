"""Rule ``detection_curve`` (config ``missing: detection``): the detection probability curve and
the condition prior SD, fitted once on all proteins before the model stage is split into shards
(so that results do not depend on the number of shards; :mod:`pepmix.model.missing`), and its QC
figure (:mod:`pepmix.plots.detection`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from pepmix.io import write_tsv
from pepmix.stages.files import PathLike, read_model_input, read_resolved_sheet

if TYPE_CHECKING:
    from pepmix.model.detection import DetectionCurve

__all__ = ["CurveResult", "gather", "run"]


@dataclass(frozen=True)
class CurveResult:
    """The fitted curve, the condition prior SD and the features x runs matrix behind them.

    Attributes
    ----------
    curve : pepmix.model.detection.DetectionCurve
    prior_sd : float
        SD of the condition prior of :mod:`pepmix.model.mnar` (log2 units).
    matrix : ndarray, shape (J, R)
        Normalised log2 intensities, features x runs, NaN where not observed.
    """

    curve: DetectionCurve
    prior_sd: float
    matrix: NDArray[np.float64]

    def write(self, *, table: PathLike, figures: Sequence[PathLike] = ()) -> None:
        """Write ``results/model/detection_curve.tsv`` and the QC figure (each given format)."""
        from pepmix.model.missing import curve_table

        write_tsv(curve_table(self.curve, self.prior_sd), table)
        if figures:
            from pepmix.plots.detection import detection_curve_figure

            detection_curve_figure(self.matrix, self.curve, list(figures))


def run(*, features: PathLike, samples: PathLike) -> CurveResult:
    """Fit the curve on ``results/normalize/features.parquet`` (all proteins).

    Parameters
    ----------
    features : path
        The normalised feature table.
    samples : path
        ``results/ingest/samples.tsv``.

    Returns
    -------
    CurveResult
    """
    from pepmix.model.missing import fit_workflow_curve

    curve, prior_sd, matrix = fit_workflow_curve(
        read_model_input(features), read_resolved_sheet(samples)
    )
    return CurveResult(curve, prior_sd, matrix)


def gather(*, parts: Sequence[PathLike], contrasts: Sequence[str], output: PathLike) -> None:
    """Rule ``gather_detection``: the shards' detection-model contrast rows, in the order of a
    single job (:func:`pepmix.model.missing.gather_detection`), written to ``output``."""
    import pandas as pd

    from pepmix.io import write_parquet
    from pepmix.model.missing import gather_detection

    tables = [pd.read_parquet(path) for path in parts]
    write_parquet(gather_detection(tables, list(contrasts)), output)
