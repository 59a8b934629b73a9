"""Rule ``test``: contrasts, moderated tests, p-values and Benjamini-Hochberg per contrast
(:func:`pepmix.api.test` on the stored fit).

Each contrast's estimate, SE and Satterthwaite df are computed from the model stage's stored fit
(:mod:`pepmix.model.stored`), so that editing ``contrasts:`` does not refit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pepmix.config import contrasts_for
from pepmix.io import write_parquet, write_tsv
from pepmix.stages.files import PathLike, read_removed, read_resolved_sheet

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
    table = api.test(
        stored,
        config["contrasts"],
        moderation=bool(config.get("moderation", True)),
        robust=bool(testing.get("robust", True)),
        df_cap=bool(testing.get("df_cap", True)),
        lfc_threshold=float(config.get("lfc_threshold", 0.0)),
        variance_prior=str(testing.get("variance_prior", "limma")),
    )
    contrasts = contrasts_for(config["contrasts"], sheet)
    stats = stored.stored.contrast_table([(c.name, c.numerator, c.denominator) for c in contrasts])
    return TestResult(table, one_condition_missing(stats))
