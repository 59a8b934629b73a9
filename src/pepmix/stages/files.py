"""Reading the files that the stages pass on, and the config values several stages share.

The resolved sample sheet (``results/ingest/samples.tsv``), the removed proteins
(``results/ingest/removed_proteins.tsv``), the normalised table the model reads, the contrasts
and the inference options of the config, and the model spec as the fit stage built it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow.parquet as pq

from pepmix.config import Contrast, resolve_contrasts
from pepmix.io import write_tsv
from pepmix.samples import condition_levels, read_resolved_sheet

if TYPE_CHECKING:
    from pepmix.inference.differential import InferenceOptions
    from pepmix.model.design import ModelSpec

__all__ = [
    "PathLike",
    "TsvTable",
    "contrasts_for",
    "fitted_spec",
    "inference_options",
    "read_model_input",
    "read_removed",
    "read_resolved_sheet",
    "write_wide",
]

log = logging.getLogger(__name__)

PathLike = str | Path


def read_removed(path: PathLike) -> pd.DataFrame:
    """Read the removed proteins written by :func:`merge` (nullable integer counts)."""
    frame = pd.read_csv(
        path,
        sep="\t",
        dtype={"protein": str, "detail": str},
        keep_default_na=False,
        na_values={"n_features": ["NA"], "n_observations": ["NA"]},
    )
    for col in ("n_features", "n_observations"):
        frame[col] = frame[col].astype("Int64")
    return frame


def read_model_input(path: PathLike) -> pd.DataFrame:
    """Read ``protein, feature, run, y`` of the normalised table, identifiers as categoricals."""
    table = pq.read_table(
        path,
        columns=["protein", "feature", "run", "y"],
        read_dictionary=["protein", "feature", "run"],
    )
    frame: pd.DataFrame = table.to_pandas()
    return frame


def contrasts_for(config_contrasts: Any, sheet: pd.DataFrame) -> list[Contrast]:
    """Resolve the ``contrasts:`` config value against the sheet's conditions."""
    return resolve_contrasts(config_contrasts, condition_levels(sheet))


def inference_options(config: Mapping[str, Any]) -> InferenceOptions:
    """Inference options from the config (``moderation``, ``lfc_threshold``, ``testing``).

    ``moderation`` is off when ``model.shrinkage`` is on (the prior on the variance ratios
    already borrows strength across proteins; see :mod:`pepmix.model.shrinkage`).
    """
    from pepmix.inference.differential import InferenceOptions

    testing = config.get("testing", {}) or {}
    # with model.shrinkage the variance components are already moderated across proteins:
    # moderating the contrast variances again would count the prior twice
    shrinkage = bool((config.get("model", {}) or {}).get("shrinkage", False))
    return InferenceOptions(
        moderation=bool(config.get("moderation", True)) and not shrinkage,
        robust=bool(testing.get("robust", True)),
        df_cap=bool(testing.get("df_cap", True)),
        lfc_threshold=float(config.get("lfc_threshold", 0.0)),
    )


class _NoAlerts(logging.Filter):
    """Drop alert records (:func:`pepmix.alerts.alert`), keep the rest."""

    def filter(self, record: logging.LogRecord) -> bool:
        from pepmix.alerts import ALERT_ATTR

        return getattr(record, ALERT_ATTR, None) is None


def fitted_spec(config: Mapping[str, Any], sheet: pd.DataFrame) -> ModelSpec:
    """The model the fit stage built from the sheet and the ``model`` and
    ``testing.replication`` config (:func:`pepmix.model.design.model_spec_from_config`),
    rebuilt without raising the design's alerts again (the model stage raised them, e.g. an
    unmodelled batch column)."""
    from pepmix.model.design import model_spec_from_config

    replication = (config.get("testing", {}) or {}).get("replication", "auto")
    design_log = logging.getLogger("pepmix.model.design")
    quiet = _NoAlerts()
    design_log.addFilter(quiet)
    try:
        return model_spec_from_config(config.get("model", {}) or {}, sheet, replication)
    finally:
        design_log.removeFilter(quiet)


def write_wide(long: PathLike, runs: list[str], output: PathLike) -> None:
    """Proteins x runs TSV of the long abundance table ``long`` (as written to Parquet)."""
    from pepmix.model.abundance import wide

    write_tsv(wide(pd.read_parquet(long), runs), output)


@dataclass(frozen=True)
class TsvTable:
    """A stage's table for people (``results/tables/*.tsv``).

    Attributes
    ----------
    table : pandas.DataFrame
    """

    table: pd.DataFrame

    def write(self, path: PathLike) -> None:
        """Write it as TSV (:func:`pepmix.io.write_tsv`), atomically."""
        write_tsv(self.table, path)
