"""Rule ``bootstrap``: parametric bootstraps that need all shards (:mod:`pepmix.bootstrap`).

The contrasts' t tests (``variance_tests.bootstrap_contrasts``) and the term LRTs of the top N
proteins (``variance_tests.bootstrap_proteins: top N``), after the gather; ``all`` or a list of
proteins for the term LRTs stays in the fit jobs (per shard).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pepmix.io import write_tsv
from pepmix.stages.files import (
    PathLike,
    read_model_input,
    read_resolved_sheet,
)

__all__ = ["BootstrapResult", "run"]


@dataclass(frozen=True)
class BootstrapResult:
    """The two bootstrap tables.

    Attributes
    ----------
    contrasts : pandas.DataFrame
        One row per selected protein and contrast
        (:data:`pepmix.model.bootstrap_contrasts.COLUMNS` plus the differential table's
        ``pvalue`` and ``adj_pvalue``); empty without ``bootstrap_contrasts``.
    terms : pandas.DataFrame
        ``protein, rank`` and per random term ``lrt_<t>, p_boot_<t>, n_boot_<t>``
        (``bootstrap_proteins: top N``).
    """

    contrasts: pd.DataFrame
    terms: pd.DataFrame

    def write(self, *, contrasts: PathLike | None = None, terms: PathLike | None = None) -> None:
        """Write each table whose path is given (TSV)."""
        if contrasts is not None:
            write_tsv(self.contrasts, contrasts)
        if terms is not None:
            write_tsv(self.terms, terms)


def run(
    *,
    features: PathLike,
    samples: PathLike,
    config: Mapping[str, Any],
    differential: PathLike | None = None,
    threads: int = 1,
) -> BootstrapResult:
    """Bootstrap the chosen proteins.

    Parameters
    ----------
    features : path
        ``results/normalize/features.parquet``.
    samples : path
        ``results/ingest/samples.tsv``.
    config : mapping
        ``variance_tests``, ``contrasts``, ``model`` and ``testing``.
    differential : path, optional
        The differential table (Parquet), for the ``top N`` ranking and the model-based
        p-values (default None).
    threads : int, default 1
        Processes.

    Returns
    -------
    BootstrapResult
    """
    from pepmix.bootstrap import options_from, run_bootstrap, selected_proteins
    from pepmix.config import contrasts_for
    from pepmix.model.design import build_run_design, fitted_spec
    from pepmix.model.robust import DEFAULT_METHOD as DEFAULT_ROBUST

    options = options_from(config)
    sheet = read_resolved_sheet(samples)
    design = build_run_design(sheet, fitted_spec(config, sheet))
    table = read_model_input(features)
    diff = pd.read_parquet(differential) if differential is not None else None
    chosen = selected_proteins(options, table, diff)
    pairs = [
        (c.name, c.numerator, c.denominator) for c in contrasts_for(config["contrasts"], sheet)
    ]
    boot, terms = run_bootstrap(
        table,
        design,
        options,
        pairs if options.contrasts else [],
        chosen,
        robust=str((config.get("model", {}) or {}).get("robust", DEFAULT_ROBUST)),
        threads=threads,
    )
    if diff is not None and not boot.empty:
        cols = diff[["protein", "contrast", "pvalue", "adj_pvalue"]].astype(
            {"protein": str, "contrast": str}
        )
        boot = boot.merge(cols, on=["protein", "contrast"], how="left")
    return BootstrapResult(contrasts=boot, terms=terms)
