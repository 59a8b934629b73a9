"""Alerts: collected per rule, gathered once each, escaped for the report's first page."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from pepmix.alerts import (
    Alert,
    AlertCollector,
    alert,
    gather_alerts,
    read_alerts,
    rst_alerts,
    write_alerts,
)
from pepmix.errors import ConfigError
from pepmix.rule import rule_context, stage_alerts

log = logging.getLogger("pepmix.test_alerts")


def _smk(tmp_path: Path, **outputs: str) -> SimpleNamespace:
    return SimpleNamespace(
        log=[str(tmp_path / "rule.log")],
        output=SimpleNamespace(**outputs),
        rule="normalize",
        threads=1,
    )


def test_rule_writes_its_alerts_and_not_plain_warnings(tmp_path: Path) -> None:
    out = tmp_path / "alerts.tsv"
    with rule_context(_smk(tmp_path, alerts=str(out))):
        alert(log, "normalization_doubtful", "runs R1, R2:\nshifts are large")
        log.warning("an ordinary warning is not an alert")
    assert read_alerts([out]) == [
        Alert("normalize", "normalization_doubtful", "runs R1, R2: shifts are large")
    ]
    assert "shifts are large" in (tmp_path / "rule.log").read_text()


def test_rule_without_alerts_output_and_empty_file(tmp_path: Path) -> None:
    with rule_context(_smk(tmp_path)):
        alert(log, "x", "no file to write to")
    out = tmp_path / "alerts.tsv"
    with rule_context(_smk(tmp_path, alerts=str(out))):
        pass
    assert out.read_text() == "stage\tcode\tmessage\n"
    assert read_alerts([out]) == []


def test_failed_rule_writes_no_alerts(tmp_path: Path) -> None:
    out = tmp_path / "alerts.tsv"
    with pytest.raises(SystemExit), rule_context(_smk(tmp_path, alerts=str(out))):
        alert(log, "x", "before the error")
        raise ConfigError("config: bad")
    assert not out.exists()
    # the collector is removed with the context: later alerts are not kept by it
    handlers = logging.getLogger("pepmix").handlers
    assert not any(isinstance(h, AlertCollector) for h in handlers)


def test_gather_keeps_each_alert_once_in_order(tmp_path: Path) -> None:
    a = Alert("fit", "boundary", "message with * and `ticks` and |bars|")
    b = Alert("test", "technical_replication", "contrast B - A: runs are the replicates")
    write_alerts(tmp_path / "1.tsv", [a, b])
    write_alerts(tmp_path / "2.tsv", [a])
    gathered = gather_alerts([tmp_path / "1.tsv", tmp_path / "2.tsv"], tmp_path / "all.tsv")
    assert gathered == [a, b]
    assert read_alerts([tmp_path / "all.tsv"]) == [a, b]
    rst = rst_alerts(tmp_path / "all.tsv")
    assert rst[0]["message"] == r"message with \* and \`ticks\` and \|bars\|"
    assert rst[1]["code"] == "technical_replication"


def test_stage_alerts_one_file_per_stage_of_a_combined_job(tmp_path: Path) -> None:
    """Rule prepare runs four stages in one job: each stage's alerts go to its own rule's file,
    under its own name, as the separate rules would write them."""
    logger = logging.getLogger("pepmix.filters")
    merge_file, normalize_file = tmp_path / "merge.tsv", tmp_path / "normalize.tsv"
    with stage_alerts("merge", str(merge_file)):
        alert(logger, "heavy_filtering", "removed 620 of 1842 proteins")
    with stage_alerts("normalize", str(normalize_file)):
        logger.warning("a plain warning is not an alert")
    assert read_alerts([merge_file]) == [
        Alert("merge", "heavy_filtering", "removed 620 of 1842 proteins")
    ]
    assert read_alerts([normalize_file]) == []
