"""Calibration of the build's default config on the hard scenarios of issue 10.

The data come from ``benchmarks/scenarios.py`` (the same generator as the ground-truth benchmark
``benchmarks/ground_truth.py``) and run through the workflow's stage functions with the config
the workflow would use, defaults filled in by the schema (``benchmarks/stage_runner.py``), so the
tests follow whatever the build's defaults are.

- Null data (no protein changes): p-values of the tested proteins uniform (Kolmogorov-Smirnov
  p > 0.01 over ~1,700 proteins, one seed).
- Data with changes: false discovery proportion at adjusted p < 0.05 at most 5 % on average over
  four seeds. BH's expected FDP is pi0 x 5 % (4 % at 20 % changing, 1.6 % at 60 %). With 1,500
  proteins and 20 % changing about 210 proteins are called, 8-9 of them false when calibrated, so
  one seed's FDP has a standard deviation of about sqrt(8.5) / 210 = 1.4 % and the mean of four
  seeds about 0.7 %: a calibrated method fails the 20 % scenarios by chance with probability of
  about 7 % (margin 1 %), the 60 % scenarios practically never (margin 3.4 %, SD < 0.4 %). The
  seeds are fixed, so the outcome is deterministic.

Scenarios that fail with the current defaults for a known reason are ``xfail(strict=True)``,
each with the reason and the piece of issue 10 that addresses it: when that piece is merged as
the default they pass, the strict xfail then fails, and the mark must be removed. None is left:
the two that were marked pass since the feature majority rule became the default
(``model.feature_majority``, :mod:`pepmix.model.majority`). *outliers* (3 % of the features
shifted 2-5 log2 in all runs of one condition, a feature x condition interaction that Huber's
M-estimation cannot outvote with 2-3 features: FDP 7.0 % without the rule) has FDP 4.8 % over
the four seeds with it; *skewed_variance*'s null (sample variances Gamma(0.3): KS p 0.0089 at
seed 11 without the rule, the limma prior fits such variances poorly) has KS p 0.016 with it
(benchmarks/README.md, "A feature majority rule"; "Skewed variances, seventh session").
"""

from __future__ import annotations

import functools
import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

REPO = Path(__file__).resolve().parents[2]
ALPHA = 0.05
FDP_SEEDS = (21, 22, 23, 24)
FDP_PROTEINS = 1500
NULL_SEED = 11
NULL_PROTEINS = 2000


@functools.cache
def _bench(name: str) -> ModuleType:
    """Import a module of ``benchmarks/`` (they import each other by bare name)."""
    path = str(REPO / "benchmarks")
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module(name)


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return _bench("stage_runner").StageRunner(tmp_path_factory.mktemp("stages"))


def _run(runner: Any, name: str, n_proteins: int, seed: int, **overrides: Any) -> pd.DataFrame:
    """Differential table with the build's default config, truth column ``true_lfc``."""
    sim = _bench("scenarios").simulate_scenario(name, n_proteins, seed, **overrides)
    tag = "-".join(f"{k}{v}" for k, v in overrides.items())
    data, samples = _bench("scenarios").write_inputs(
        sim, runner.workdir / "data" / f"{name}-{n_proteins}-{seed}-{tag}"
    )
    table, _ = runner.run(_bench("stage_runner").scenario_config(data, samples))
    truth = sim.truth.set_index("protein")["log2fc"]
    return table.assign(true_lfc=truth.reindex(table["protein"].astype(str)).to_numpy())


@pytest.mark.parametrize(
    "name",
    [
        "no_change",
        "technical",
        "outliers",
        "skewed_variance",
        "mnar",
    ],
)
def test_null_pvalues_uniform(runner: Any, name: str) -> None:
    table = _run(runner, name, NULL_PROTEINS, NULL_SEED, frac_changing=0.0)
    p = table["pvalue"].dropna().to_numpy()
    # at least 60% of the proteins tested (the rest: filters, one feature, missing conditions)
    assert p.size >= 0.6 * NULL_PROTEINS
    assert stats.kstest(p, "uniform").pvalue > 0.01


def _fdp_and_power(runner: Any, name: str) -> tuple[list[float], list[float], list[list[str]]]:
    """Per seed: FDP and share of changed proteins called at adjusted p < 0.05, alert codes."""
    fdp, power, alerts = [], [], []
    for seed in FDP_SEEDS:
        table = _run(runner, name, FDP_PROTEINS, seed)
        called = table["adj_pvalue"] < ALPHA
        changed = table["true_lfc"] != 0
        fdp.append(int((called & ~changed).sum()) / max(int(called.sum()), 1))
        power.append(int((called & changed).sum()) / int(changed.sum()))
        alerts.append(runner.alerts())
    return fdp, power, alerts


@pytest.mark.parametrize(
    "name",
    [
        "both20",
        "both60",
        "technical",
        "outliers",
        "skewed_variance",
        "mnar",
    ],
)
def test_false_discovery_proportion(runner: Any, name: str) -> None:
    fdp, power, _ = _fdp_and_power(runner, name)
    assert np.mean(fdp) <= ALPHA
    # something is found: at least a third of the changed proteins (all change by >= 0.5 log2)
    assert np.mean(power) >= 1 / 3


@pytest.mark.parametrize(
    "name",
    ["up20", "up60"],
)
def test_one_way_changes_are_calibrated_or_flagged(runner: Any, name: str) -> None:
    """When most changes go one way no data-driven normalisation can be trusted; the contract
    is then: FDP <= 5% on average, or every seed with FDP > 5% raises normalization_doubtful."""
    fdp, _, alerts = _fdp_and_power(runner, name)
    flagged = all(
        "normalization_doubtful" in a for f, a in zip(fdp, alerts, strict=True) if f > ALPHA
    )
    assert np.mean(fdp) <= ALPHA or flagged


def test_stage_runner_runs_the_rules_of_the_workflow(tmp_path: Path) -> None:
    """The harness finds the rules the differential table needs from the rule files (as
    Snakemake does) and runs their scripts: one row per protein with data, a column per
    contract column, and nothing cached on the second run."""
    runner = _bench("stage_runner").StageRunner(tmp_path / "cache")
    table = _run(runner, "both20", 200, 1)
    assert {"ingest", "merge", "normalize", "fit", "test"} <= set(runner.ran)
    assert not {"shard", "gather_model"} & set(runner.ran)
    assert table["protein"].is_unique
    assert 150 <= table["pvalue"].notna().sum() <= 200
    ran = len(runner.ran)
    _run(runner, "both20", 200, 1)
    assert len(runner.ran) == ran
