"""Warnings that matter to the user: logged, collected per rule, shown at the end and in the report.

Library code raises an *alert* where a result is doubtful (no biological replication, a
normalisation that may be unreliable, zero tested proteins, heavy filtering)::

    from pepmix.alerts import alert

    alert(logger, "technical_replication", "contrast B - A: no biological replicates; ...")

An alert is a ``WARNING`` log record that carries a short machine-readable ``code``. Without
Snakemake it is just a logged warning. Inside a rule (:func:`pepmix.rule.rule_context`) the
records are also collected, and if the rule declares an output named ``alerts`` they are written
there as TSV (``stage, code, message``; header only when there are none). The rule
``report_pages`` gathers those files into ``results/alerts.tsv`` (:func:`unique_alerts`), which
the workflow prints when it finishes and which the report shows on its first page.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

#: attribute of a :class:`logging.LogRecord` that marks it as an alert (its value is the code)
ALERT_ATTR = "pepmix_alert"
COLUMNS = ("stage", "code", "message")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    """One warning for the user.

    Attributes
    ----------
    stage : str
        The workflow stage (rule) that raised it, e.g. ``"normalize"``.
    code : str
        Short identifier, e.g. ``"technical_replication"``.
    message : str
        One line for people: what happened, what it means, what to do.
    """

    stage: str
    code: str
    message: str


def alert(logger: logging.Logger, code: str, message: str) -> None:
    """Log ``message`` as a warning marked as an alert with ``code``.

    Parameters
    ----------
    logger : logging.Logger
        Logger of the module that raises the alert (a ``pepmix.*`` logger).
    code : str
        Short machine-readable identifier of the kind of alert.
    message : str
        One line for people (newlines are replaced by spaces).
    """
    logger.warning("%s", " ".join(message.split()), extra={ALERT_ATTR: code})


class AlertCollector(logging.Handler):
    """Logging handler that keeps the alert records it sees.

    Parameters
    ----------
    stage : str
        Stage name written into each collected :class:`Alert`.
    """

    def __init__(self, stage: str) -> None:
        super().__init__(level=logging.WARNING)
        self.stage = stage
        self.alerts: list[Alert] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep ``record`` if it is an alert."""
        code = getattr(record, ALERT_ATTR, None)
        if code is not None:
            self.alerts.append(Alert(self.stage, str(code), record.getMessage()))


def write_alerts(path: str | Path, alerts: Sequence[Alert]) -> None:
    """Write ``alerts`` as a TSV with columns ``stage, code, message`` (header always)."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(COLUMNS)
        for item in alerts:
            writer.writerow((item.stage, item.code, item.message))


def read_alerts(paths: Iterable[str | Path]) -> list[Alert]:
    """Read and concatenate alert files written by :func:`write_alerts` (missing files skipped)."""
    out: list[Alert] = []
    for path in paths:
        if not Path(path).is_file():
            continue
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t")
            out.extend(Alert(row["stage"], row["code"], row["message"]) for row in reader)
    return out


def format_alerts(alerts: Sequence[Alert]) -> str:
    """Alerts as lines for a terminal: ``WARNING [stage] message``; empty string if none."""
    return "\n".join(f"WARNING [{a.stage}] {a.message}" for a in alerts)


def unique_alerts(inputs: Iterable[str | Path]) -> list[Alert]:
    """The distinct alerts of the per-rule alert files, in input order, logged at INFO.

    Parameters
    ----------
    inputs : iterable of path
        Alert files of the rules (in DAG order: ingest, merge, normalize, fit shards, test).

    Returns
    -------
    list of Alert
        Each distinct alert once, in input order.
    """
    unique = list(dict.fromkeys(read_alerts(inputs)))
    if unique:
        logger.info("%d warning(s) for this analysis:\n%s", len(unique), format_alerts(unique))
    else:
        logger.info("no warnings for this analysis")
    return unique


def gather_alerts(inputs: Iterable[str | Path], output: str | Path) -> list[Alert]:
    """Concatenate the per-rule alert files into ``output``, each distinct alert once.

    Parameters
    ----------
    inputs : iterable of path
        Alert files of the rules (in DAG order: ingest, merge, normalize, fit shards, test).
    output : path
        The gathered TSV (``results/alerts.tsv``).

    Returns
    -------
    list of Alert
        The distinct alerts, in input order (:func:`unique_alerts`).
    """
    unique = unique_alerts(inputs)
    write_alerts(output, unique)
    return unique


def rst_alerts(path: str | Path) -> list[dict[str, str]]:
    """Alerts of ``path`` with text escaped for reStructuredText (the report's first page)."""
    special = str.maketrans({c: "\\" + c for c in "*`_|\\"})
    return [
        {"stage": a.stage, "code": a.code, "message": a.message.translate(special)}
        for a in read_alerts([path])
    ]
