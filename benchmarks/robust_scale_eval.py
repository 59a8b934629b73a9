"""The Huber scale from pure error (``model.robust_scale: pure_error``) against the defaults.

Through the workflow's rules (``stage_runner.py``), as the calibration tests
(``tests/unit/test_calibration_scenarios.py``):

- FDP at adjusted p < 0.05, TP and TP@FDP5 (ranking power) per seed and their means over seeds
  21-24, 1,500 proteins (``--scenarios``, default outliers both20 technical mnar);
- null p-values (seed 11, 2,000 proteins, no protein changing; ``--nulls``, default no_change
  technical outliers mnar): KS p and share below 0.05;
- the demo: UPS called / background false positives / TP@FDP5 per contrast.

    cd benchmarks && PYTHONPATH=../src:. ../.venv/bin/python robust_scale_eval.py \\
        --workdir /tmp/mscale [--parts scenarios null demo] [--variants pure_error]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ground_truth import demo_truth, score
from scenarios import simulate_scenario, write_inputs
from scipy import stats
from stage_runner import StageRunner, demo_config, merge_overrides, scenario_config

log = logging.getLogger("robust_scale_eval")

VARIANTS: dict[str, dict[str, Any]] = {
    "additive": {},
    "pure_error": {"model": {"robust_scale": "pure_error"}},
}


def _table(
    runner: StageRunner, name: str, n: int, seed: int, work: Path, over: Any, null: bool
) -> tuple[pd.DataFrame, pd.Series]:
    sim = simulate_scenario(name, n, seed, **({"frac_changing": 0.0} if null else {}))
    tag = "-null" if null else ""
    data, samples = write_inputs(sim, work / "data" / f"{name}-{n}-{seed}{tag}")
    table, _ = runner.run(merge_overrides(scenario_config(data, samples), over))
    return table, sim.truth.set_index("protein")["log2fc"]


def scenarios(
    runner: StageRunner, work: Path, names: list[str], variants: list[str], seeds: list[int]
) -> pd.DataFrame:
    """FDP / TP / TP@FDP5 per scenario, variant and seed (1,500 proteins)."""
    rows = []
    for name in names:
        for label in variants:
            for seed in seeds:
                table, truth = _table(runner, name, 1500, seed, work, VARIANTS[label], False)
                row = {"scenario": name, "variant": label, "seed": seed} | score(table, truth)
                print(row, flush=True)
                rows.append(row)
    return pd.DataFrame(rows)


def nulls(runner: StageRunner, work: Path, names: list[str], variants: list[str]) -> pd.DataFrame:
    """KS p and share of p < 0.05 on null data (seed 11, 2,000 proteins)."""
    rows = []
    for name in names:
        for label in variants:
            table, _ = _table(runner, name, 2000, 11, work, VARIANTS[label], True)
            p = table["pvalue"].dropna().to_numpy()
            row = {
                "scenario": name,
                "variant": label,
                "KS p": stats.kstest(p, "uniform").pvalue,
                "p<0.05": np.mean(p < 0.05),
            }
            print(row, flush=True)
            rows.append(row)
    return pd.DataFrame(rows)


def demo(runner: StageRunner, variants: list[str]) -> pd.DataFrame:
    """UPS called, background FP and TP@FDP5 per contrast."""
    rows = []
    for label in variants:
        table, _ = runner.run(merge_overrides(demo_config(), VARIANTS[label]))
        for contrast in table["contrast"].unique():
            part = table.loc[table["contrast"] == contrast]
            truth = demo_truth(contrast, part["protein"].drop_duplicates())
            rows.append({"contrast": contrast, "variant": label} | score(part, truth))
    return pd.DataFrame(rows)[["contrast", "variant", "TP", "FP", "TP@FDP5", "|err|"]]


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--parts", nargs="+", default=["scenarios", "null", "demo"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[21, 22, 23, 24])
    parser.add_argument(
        "--scenarios", nargs="+", default=["outliers", "both20", "technical", "mnar"]
    )
    parser.add_argument("--nulls", nargs="+", default=["no_change", "technical", "outliers", "mnar"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    runner = StageRunner(args.workdir / "cache")
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    if "scenarios" in args.parts:
        rows = scenarios(runner, args.workdir, args.scenarios, args.variants, args.seeds)
        cols = ["TP", "FP", "FDP", "TP@FDP5"]
        print(rows.groupby(["scenario", "variant"], sort=False)[cols].mean().round(4), flush=True)
    if "null" in args.parts:
        print(nulls(runner, args.workdir, args.nulls, args.variants).round(4), flush=True)
    if "demo" in args.parts:
        print(demo(runner, args.variants).round(3), flush=True)


if __name__ == "__main__":
    main()
