"""Rule ``test``: contrasts, moderated tests, p-values and Benjamini-Hochberg per contrast
(:func:`pepmix.api.test` on the stored fit).

Each contrast's estimate, SE and Satterthwaite df are computed from the model stage's stored fit
(:mod:`pepmix.model.stored`), so that editing ``contrasts:`` does not refit. With ``missing:
detection`` they are the detection model's, computed by the fit jobs for the config's contrasts
(:mod:`pepmix.model.missing`); moderation and Benjamini-Hochberg are the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from pepmix.config import Contrast, contrasts_for
from pepmix.errors import PepmixError
from pepmix.io import write_parquet, write_tsv
from pepmix.stages.files import PathLike, read_removed, read_resolved_sheet

if TYPE_CHECKING:
    from pepmix.api import Fit

__all__ = ["TestResult", "run"]


@dataclass(frozen=True)
class TestResult:
    """The differential table and the proteins never observed in one condition of a contrast.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per protein and contrast (:func:`pepmix.inference.differential.differential_table`,
        filtered proteins after the tested ones).
    missing : pandas.DataFrame
        ``one_condition_missing.tsv`` (:func:`pepmix.inference.differential.one_condition_missing`).
    """

    __test__ = False  # not a pytest test class

    table: pd.DataFrame
    missing: pd.DataFrame

    def write(self, *, tsv: PathLike, parquet: PathLike, missing: PathLike) -> None:
        """Write the table as TSV and Parquet, and the missing-condition list."""
        write_tsv(self.table, tsv)
        write_parquet(self.table, parquet)
        write_tsv(self.missing, missing)


def run(
    *,
    fit: PathLike,
    samples: PathLike,
    config: Mapping[str, Any],
    removed: PathLike | None = None,
    detection: PathLike | None = None,
) -> TestResult:
    """Test the config's contrasts on the stored fit.

    Parameters
    ----------
    fit : path
        ``results/model/fit.parquet``.
    samples : path
        ``results/ingest/samples.tsv``.
    config : mapping
        The validated config (``contrasts``, ``model``, ``testing``, ``moderation``,
        ``lfc_threshold``).
    removed : path, optional
        The merge stage's removed proteins, added to every contrast with status ``filtered``
        (default None: none).
    detection : path, optional
        ``results/model/detection_contrasts.parquet`` (``missing: detection``): test the
        detection model's contrast rows instead of the MAR ones (default None: MAR).

    Returns
    -------
    TestResult
    """
    from pepmix import api
    from pepmix.inference.differential import one_condition_missing

    sheet = read_resolved_sheet(samples)
    testing = config.get("testing", {}) or {}
    stored = api.Fit.read(
        fit,
        runs=sheet,
        model=config.get("model", {}) or {},
        replication=testing.get("replication", "auto"),
        removed=read_removed(removed) if removed is not None else None,
    )
    contrasts = contrasts_for(config["contrasts"], sheet)
    if detection is not None:
        return _test_detection(pd.read_parquet(detection), stored, config, contrasts)
    table = api.test(
        stored,
        config["contrasts"],
        moderation=bool(config.get("moderation", True)),
        robust=bool(testing.get("robust", True)),
        df_cap=bool(testing.get("df_cap", True)),
        lfc_threshold=float(config.get("lfc_threshold", 0.0)),
        variance_prior=str(testing.get("variance_prior", "limma")),
    )
    stats = stored.stored.contrast_table([(c.name, c.numerator, c.denominator) for c in contrasts])
    return TestResult(table, one_condition_missing(stats))


def _test_detection(
    stats: pd.DataFrame, stored: Fit, config: Mapping[str, Any], contrasts: Sequence[Contrast]
) -> TestResult:
    """:func:`pepmix.api.test`'s steps on the detection model's contrast rows ``stats``."""
    from pepmix.inference.differential import (
        InferenceOptions,
        add_filtered,
        differential_table,
        one_condition_missing,
    )

    testing = config.get("testing", {}) or {}
    order = [c.name for c in contrasts]
    found = sorted(set(stats["contrast"].astype(str)))
    if found != sorted(order):
        raise PepmixError(
            "the detection model was fitted for other contrasts than the config's: run the "
            "model stage again"
        )
    options = InferenceOptions(
        moderation=bool(config.get("moderation", True)) and not stored.shrinkage,
        robust=bool(testing.get("robust", True)),
        df_cap=bool(testing.get("df_cap", True)),
        lfc_threshold=float(config.get("lfc_threshold", 0.0)),
    )
    from pepmix.model.missing import alert_absent
    from pepmix.model.mnar import apply_fold_change_prior

    # absent-condition rows: the posterior under the fold-change prior of all proteins
    stats = apply_fold_change_prior(stats.copy(), options.confidence)
    alert_absent(stats)
    table = add_filtered(differential_table(stats, order, options), stored.removed, order)
    return TestResult(table, one_condition_missing(stats))
