"""The feature majority rule (``model.feature_majority: true``) against the defaults.

Through the workflow's rules (``stage_runner.py``), as the calibration tests
(``tests/unit/test_calibration_scenarios.py``) and ``robust_scale_eval.py`` (whose scoring this
reuses); the variants are config overrides, so one stage cache serves both:

- FDP at adjusted p < 0.05, TP and TP@FDP5 (ranking power) per seed and their means over seeds
  21-24, 1,500 proteins (``--scenarios``, default outliers both20 technical mnar);
- null p-values (seed 11, 2,000 proteins, no protein changing; ``--nulls``, default no_change
  technical outliers mnar skewed_variance): KS p and share below 0.05;
- the demo: UPS called / background false positives / TP@FDP5 per contrast.

Every row is appended to ``--workdir``/majority_<part>.csv as it is computed. Variants:
``huber`` (the defaults) and ``majority`` (``model.feature_majority: true``).

    cd benchmarks && PYTHONPATH=../src:. ../.venv/bin/python majority_eval.py \\
        --workdir /tmp/majority [--parts scenarios null demo] [--variants huber majority]

Results: ``benchmarks/README.md``, "A feature majority rule" (2026-12-07).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ground_truth import demo_rows, score
from scenarios import simulate_scenario, write_inputs
from scipy import stats
from stage_runner import StageRunner, demo_config, merge_overrides, scenario_config

log = logging.getLogger("majority_eval")

#: variant: config overrides on the build's defaults
VARIANTS: dict[str, dict[str, Any]] = {
    "huber": {"model": {"feature_majority": False}},
    "majority": {"model": {"feature_majority": True}},
}


class Eval:
    """One stage runner (cache; the variants differ in the fit's params) and the CSVs."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.runner = StageRunner(work / "cache")

    def run(self, variant: str, config: dict[str, Any]) -> pd.DataFrame:
        """The differential table of ``config`` with the overrides of ``variant``."""
        table, _ = self.runner.run(merge_overrides(config, VARIANTS[variant]))
        return table

    def record(self, row: dict[str, Any]) -> None:
        """Print ``row`` and append it to the CSV of its part."""
        print(row, flush=True)
        csv = self.work / f"majority_{row['part']}.csv"
        pd.DataFrame([row]).to_csv(csv, mode="a", header=not csv.exists(), index=False)

    def table(
        self, name: str, n: int, seed: int, variant: str, null: bool
    ) -> tuple[pd.DataFrame, pd.Series]:
        """Simulate, write and run one scenario."""
        sim = simulate_scenario(name, n, seed, **({"frac_changing": 0.0} if null else {}))
        tag = "-null" if null else ""
        data, samples = write_inputs(sim, self.work / "data" / f"{name}-{n}-{seed}{tag}")
        table = self.run(variant, scenario_config(data, samples))
        return table, sim.truth.set_index("protein")["log2fc"]


def excluded_share(table: pd.DataFrame) -> float:
    """Share of the tested proteins whose ``detail`` names an excluded feature."""
    if "detail" not in table.columns:
        return float("nan")
    detail = table["detail"].astype(str)
    return float(np.mean(detail.str.contains("excluded feature")))


def scenarios(ev: Eval, names: list[str], variants: list[str], seeds: list[int]) -> pd.DataFrame:
    """FDP / TP / TP@FDP5 per scenario, variant and seed (1,500 proteins)."""
    rows = []
    for name in names:
        for seed in seeds:
            for label in variants:
                table, truth = ev.table(name, 1500, seed, label, False)
                row = {"part": "scenario", "scenario": name, "variant": label, "seed": seed}
                row |= score(table, truth) | {"excluded": excluded_share(table)}
                ev.record(row)
                rows.append(row)
    return pd.DataFrame(rows)


def nulls(ev: Eval, names: list[str], variants: list[str]) -> pd.DataFrame:
    """KS p and share of p < 0.05 on null data (seed 11, 2,000 proteins)."""
    rows = []
    for name in names:
        for label in variants:
            table, _ = ev.table(name, 2000, 11, label, True)
            p = table["pvalue"].dropna().to_numpy()
            row = {
                "part": "null",
                "scenario": name,
                "variant": label,
                "seed": 11,
                "KS p": stats.kstest(p, "uniform").pvalue,
                "p<0.05": np.mean(p < 0.05),
                "excluded": excluded_share(table),
            }
            ev.record(row)
            rows.append(row)
    return pd.DataFrame(rows)


def demo(ev: Eval, variants: list[str]) -> pd.DataFrame:
    """UPS called, background FP and TP@FDP5 per contrast."""
    rows = []
    for label in variants:
        table = ev.run(label, demo_config())
        for row in demo_rows(table, label):
            ev.record({"part": "demo", "excluded": excluded_share(table)} | row)
            rows.append(row)
    return pd.DataFrame(rows)[["contrast", "variant", "TP", "FP", "TP@FDP5", "|err|"]]


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--parts", nargs="+", default=["scenarios", "null", "demo"])
    parser.add_argument("--variants", nargs="+", default=["huber", "majority"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[21, 22, 23, 24])
    parser.add_argument(
        "--scenarios", nargs="+", default=["outliers", "both20", "technical", "mnar"]
    )
    parser.add_argument(
        "--nulls",
        nargs="+",
        default=["no_change", "technical", "outliers", "mnar", "skewed_variance"],
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    args.workdir.mkdir(parents=True, exist_ok=True)
    ev = Eval(args.workdir)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    if "demo" in args.parts:
        print(demo(ev, args.variants).round(3), flush=True)
    if "scenarios" in args.parts:
        rows = scenarios(ev, args.scenarios, args.variants, args.seeds)
        cols = ["TP", "FP", "FDP", "TP@FDP5"]
        print(rows.groupby(["scenario", "variant"], sort=False)[cols].mean().round(4), flush=True)
    if "null" in args.parts:
        print(nulls(ev, args.nulls, args.variants).round(4), flush=True)


if __name__ == "__main__":
    main()
