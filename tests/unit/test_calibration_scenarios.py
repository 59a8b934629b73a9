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
the default they pass, the strict xfail then fails, and the mark must be removed. The evidence
for each reason (numbers measured on this build) is in the reason text and in
benchmarks/README.md ("Ground truth on hard scenarios").
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

NORMALISATION = (
    "median-type normalisation is pulled when most changes go one way (the median protein is "
    "not unchanged): FDP 12% (20% up) and 52% (60% up) today, 4.9% at 20% up with oracle "
    "normalisation on the unchanged proteins. protein_median (piece 1) with location: median is "
    "documented not to fix this; its location: mode should, if that becomes the default"
)
TECHNICAL = (
    "one biological sample per condition: nothing is tested today (df_between = 0); fixed by "
    "testing.replication auto, runs as replicates (piece 2)"
)
OUTLIERS = (
    "features shifted 2-5 log2 in all runs of one condition enter the estimate and make "
    "unchanged proteins significant (FDP 18% today; the same data without the outlier features "
    "is the both20 scenario, FDP 4.6%); expected fixed by model.robust huber (piece 4)"
)
PRIOR_DF = (
    "a few proteins with df < 1 drive limma's prior to d0 = inf (equal variances), so "
    "high-variance proteins are under-estimated: mnar KS p 0.001 with d0 = inf, 0.52 with the "
    "prior fitted on df >= 1 (piece 5); FDP 6.5% -> 5.1% (mnar) and 5.2% -> 2.9% (skewed); "
    "the rest of mnar's excess comes from boundary / reduced-model fits (sample variance 0: "
    "FDP 4.0% without them), which sample-variance shrinkage (piece 3) targets"
)
SKEWED_NULL = (
    "limma's scaled inverse chi-square prior does not fit Gamma(0.3) sample variances: null "
    "p < 0.05 for 1.7% of the quarter with the smallest sample SD and 9.7% of the largest "
    "(KS p 0.007, 0.006 with the prior on df >= 1). Targeted by sample-variance shrinkage "
    "(piece 3); not verifiable in this build"
)


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


def _xfail(reason: str) -> Any:
    return pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason)


@pytest.mark.parametrize(
    "name",
    [
        "null",
        pytest.param("technical", marks=_xfail(TECHNICAL)),
        pytest.param("outliers", marks=_xfail(OUTLIERS)),
        pytest.param("skewed_variance", marks=_xfail(SKEWED_NULL)),
        pytest.param("mnar", marks=_xfail(PRIOR_DF)),
    ],
)
def test_null_pvalues_uniform(runner: Any, name: str) -> None:
    table = _run(runner, name, NULL_PROTEINS, NULL_SEED, frac_changing=0.0)
    p = table["pvalue"].dropna().to_numpy()
    # at least 60% of the proteins tested (the rest: filters, one feature, missing conditions)
    assert p.size >= 0.6 * NULL_PROTEINS
    assert stats.kstest(p, "uniform").pvalue > 0.01


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("up20", marks=_xfail(NORMALISATION)),
        pytest.param("up60", marks=_xfail(NORMALISATION)),
        "both20",
        "both60",
        pytest.param("technical", marks=_xfail(TECHNICAL)),
        pytest.param("outliers", marks=_xfail(OUTLIERS)),
        pytest.param("skewed_variance", marks=_xfail(PRIOR_DF)),
        pytest.param("mnar", marks=_xfail(PRIOR_DF)),
    ],
)
def test_false_discovery_proportion(runner: Any, name: str) -> None:
    fdp, power = [], []
    for seed in FDP_SEEDS:
        table = _run(runner, name, FDP_PROTEINS, seed)
        called = table["adj_pvalue"] < ALPHA
        false = int((called & (table["true_lfc"] == 0)).sum())
        fdp.append(false / max(int(called.sum()), 1))
        power.append(
            int((called & (table["true_lfc"] != 0)).sum()) / (table["true_lfc"] != 0).sum()
        )
    assert np.mean(fdp) <= ALPHA
    # something is found: at least a third of the changed proteins (all change by >= 0.5 log2)
    assert np.mean(power) >= 1 / 3


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
