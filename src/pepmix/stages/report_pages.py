"""Rule ``report_pages``: the report's first page (summary, methods) and per-contrast tables.

Reads the result tables, builds the :class:`~pepmix.report.summary.Summary`, and returns

- ``summary.rst`` and ``methods.rst``, which ``workflow/report/workflow.rst`` includes on the
  report's first page;
- one HTML page per contrast with its top proteins (:mod:`pepmix.report.tables`), shown in the
  report next to the contrast's volcano plot;
- given the rules' alert files, their distinct alerts (``results/alerts.tsv``, which the
  workflow prints at the end and the report's first page lists): the workflow gathers them in
  this job rather than in one of its own (one job's start-up fewer at the end of the DAG).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pepmix.alerts import read_alerts, unique_alerts, write_alerts
from pepmix.io import atomic_path
from pepmix.model.design import fitted_spec
from pepmix.report.methods import methods_rst, model_formula
from pepmix.report.summary import Summary, summarize, summary_rst
from pepmix.report.tables import top_table_html
from pepmix.stages.files import PathLike, read_resolved_sheet

__all__ = ["ReportPages", "fitted_formula", "run"]

log = logging.getLogger(__name__)


def fitted_formula(config: Mapping[str, Any], sheet: pd.DataFrame) -> str:
    """The model formula the fit used (:func:`pepmix.model.design.fitted_spec`)."""
    spec = fitted_spec(config, sheet)
    return model_formula(spec.random, spec.fixed_batch, spec.covariates)


def _write_text(text: str, path: PathLike) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


@dataclass(frozen=True)
class ReportPages:
    """The pages' texts.

    Attributes
    ----------
    summary : pepmix.report.summary.Summary
        The numbers of the first page.
    summary_rst, methods_rst : str
        reStructuredText of the summary and the methods.
    tables : list of str
        HTML page of each contrast's top proteins, in the order of the contrasts.
    """

    summary: Summary
    summary_rst: str
    methods_rst: str
    tables: list[str]

    def write(
        self,
        *,
        summary: PathLike,
        methods: PathLike,
        tables: Sequence[PathLike],
        alerts: PathLike | None = None,
    ) -> None:
        """Write the two reStructuredText files and the per-contrast pages (``tables[i]`` is
        the page of the i-th contrast); with ``alerts`` (default None) also the run's alerts
        (:func:`pepmix.alerts.write_alerts`, the table rule ``alerts`` used to write)."""
        if alerts is not None:
            write_alerts(alerts, self.summary.alerts)
        _write_text(self.summary_rst, summary)
        _write_text(self.methods_rst, methods)
        for text, path in zip(self.tables, tables, strict=True):
            _write_text(text, path)


def run(
    *,
    inputs: Mapping[str, PathLike],
    config: Mapping[str, Any],
    contrasts: Sequence[str],
    table_names: Sequence[str],
    top_n: int = 200,
    category: str | None = None,
    alert_parts: Sequence[PathLike] | None = None,
) -> ReportPages:
    """Build the summary, the methods and the per-contrast tables (see module docstring).

    Parameters
    ----------
    inputs : mapping of str to path
        ``differential`` (Parquet), ``variance`` (``variance_components.tsv``), ``runs``
        (``results/normalize/runs.tsv``), ``samples`` (resolved sheet), ``alerts``
        (``results/alerts.tsv``; not with ``alert_parts``) and, when the calibration check ran,
        ``calibration`` (``results/calibration/calibration.tsv``; optional).
    config : mapping
        The validated config.
    contrasts : sequence of str
        Contrast names, in config order.
    table_names : sequence of str
        File name of each contrast's page (the summary links to them).
    top_n : int, default 200
        Rows per contrast page (0: all).
    category : str, optional
        Report category of the per-contrast figures (linked from the summary; default none).
    alert_parts : sequence of path, optional
        The rules' alert files (in DAG order): their distinct alerts are the run's
        (:func:`pepmix.alerts.unique_alerts`; write them with ``ReportPages.write(alerts=)``).
        Default None: read the gathered ``inputs["alerts"]``.

    Returns
    -------
    ReportPages
    """
    differential = pd.read_parquet(inputs["differential"])
    variance = pd.read_csv(inputs["variance"], sep="\t", keep_default_na=False, na_values=["NA"])
    runs = pd.read_csv(inputs["runs"], sep="\t", keep_default_na=False, na_values=["NA"])
    sheet = read_resolved_sheet(inputs["samples"])
    alerts = (
        unique_alerts(alert_parts) if alert_parts is not None else read_alerts([inputs["alerts"]])
    )
    calibration = None
    if inputs.get("calibration"):
        calibration = pd.read_csv(
            inputs["calibration"], sep="\t", keep_default_na=False, na_values=["NA"]
        )
    summary = summarize(
        differential, variance, runs, sheet, config, alerts, list(contrasts), calibration
    )
    targets = dict(zip(contrasts, table_names, strict=True))
    pages = [
        top_table_html(differential, contrast, top_n, summary.fdr, summary.lfc_threshold)
        for contrast in contrasts
    ]
    log.info(
        "report pages: %d proteins read, %d removed, %s, %d contrasts, %d calls, %d warnings",
        summary.proteins_read,
        summary.proteins_removed,
        "feature majority rule off"
        if summary.majority_excluded is None
        else f"{summary.majority_excluded} with a feature excluded by the feature majority rule",
        len(summary.contrasts),
        summary.called,
        len(summary.alerts),
    )
    return ReportPages(
        summary=summary,
        summary_rst=summary_rst(summary, targets, category),
        methods_rst=methods_rst(config, summary, fitted_formula(config, sheet)),
        tables=pages,
    )
