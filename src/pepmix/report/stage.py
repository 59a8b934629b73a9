"""Rule ``report_pages``: the report's first page (summary, methods) and per-contrast tables.

Reads the result tables, builds the :class:`~pepmix.report.summary.Summary`, and writes

- ``summary.rst`` and ``methods.rst``, which ``workflow/report/workflow.rst`` includes on the
  report's first page;
- one HTML page per contrast with its top proteins (:mod:`pepmix.report.tables`), shown in the
  report next to the contrast's volcano plot.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pepmix.alerts import read_alerts
from pepmix.io import atomic_path
from pepmix.report.methods import methods_rst, model_formula
from pepmix.report.summary import Summary, summarize, summary_rst
from pepmix.report.tables import top_table_html

log = logging.getLogger(__name__)

PathLike = str | Path


def fitted_formula(config: Mapping[str, Any], sheet: pd.DataFrame) -> str:
    """The model formula the fit used (:func:`pepmix.stages.fitted_spec`)."""
    from pepmix.stages import fitted_spec

    spec = fitted_spec(config, sheet)
    return model_formula(spec.random, spec.fixed_batch, spec.covariates)


def _write_text(text: str, path: PathLike) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def report_pages_stage(
    inputs: Mapping[str, PathLike],
    config: Mapping[str, Any],
    contrasts: Sequence[str],
    tables: Sequence[PathLike],
    out_summary: PathLike,
    out_methods: PathLike,
    top_n: int = 500,
    category: str | None = None,
) -> Summary:
    """Write the summary, the methods and the per-contrast tables (see module docstring).

    Parameters
    ----------
    inputs : mapping of str to path
        ``differential`` (Parquet), ``variance`` (``variance_components.tsv``), ``runs``
        (``results/normalize/runs.tsv``), ``samples`` (resolved sheet), ``alerts``
        (``results/alerts.tsv``) and, when the calibration check ran, ``calibration``
        (``results/calibration/calibration.tsv``; optional).
    config : mapping
        The validated config.
    contrasts : sequence of str
        Contrast names, in config order; ``tables[i]`` is the page of ``contrasts[i]``.
    tables : sequence of path
        Output HTML page per contrast.
    out_summary, out_methods : path
        Output reStructuredText files.
    top_n : int, default 500
        Rows per contrast page (0: all).
    category : str, optional
        Report category of the per-contrast figures (linked from the summary; default none).

    Returns
    -------
    Summary
    """
    from pepmix.samples import read_resolved_sheet

    differential = pd.read_parquet(inputs["differential"])
    variance = pd.read_csv(inputs["variance"], sep="\t", keep_default_na=False, na_values=["NA"])
    runs = pd.read_csv(inputs["runs"], sep="\t", keep_default_na=False, na_values=["NA"])
    sheet = read_resolved_sheet(inputs["samples"])
    alerts = read_alerts([inputs["alerts"]])
    calibration = None
    if inputs.get("calibration"):
        calibration = pd.read_csv(
            inputs["calibration"], sep="\t", keep_default_na=False, na_values=["NA"]
        )
    summary = summarize(
        differential, variance, runs, sheet, config, alerts, list(contrasts), calibration
    )
    targets = {c: Path(p).name for c, p in zip(contrasts, tables, strict=True)}
    _write_text(summary_rst(summary, targets, category), out_summary)
    _write_text(methods_rst(config, summary, fitted_formula(config, sheet)), out_methods)
    for contrast, path in zip(contrasts, tables, strict=True):
        page = top_table_html(differential, contrast, top_n, summary.fdr, summary.lfc_threshold)
        _write_text(page, path)
    log.info(
        "report pages: %d proteins read, %d removed, %d contrasts, %d calls, %d warnings",
        summary.proteins_read,
        summary.proteins_removed,
        len(summary.contrasts),
        summary.called,
        len(summary.alerts),
    )
    return summary
