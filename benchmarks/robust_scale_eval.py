"""The Huber scale from pure error (``fit_proteins(robust_scale="pure_error")``) against the
defaults.

Through the workflow's rules (``stage_runner.py``), as the calibration tests
(``tests/unit/test_calibration_scenarios.py``); the variant is not a config key, so
:func:`pepmix.model.fit.fit_proteins` is wrapped with ``robust_scale="pure_error"`` while that
variant runs, each variant in its own stage cache (``--workdir``/cache-<variant>):

- FDP at adjusted p < 0.05, TP and TP@FDP5 (ranking power) per seed and their means over seeds
  21-24, 1,500 proteins (``--scenarios``, default outliers both20 technical mnar);
- null p-values (seed 11, 2,000 proteins, no protein changing; ``--nulls``, default no_change
  technical outliers mnar): KS p and share below 0.05;
- the demo: UPS called / background false positives / TP@FDP5 per contrast.

    cd benchmarks && PYTHONPATH=../src:. ../.venv/bin/python robust_scale_eval.py \\
        --workdir /tmp/mscale [--parts scenarios null demo] [--variants pure_error]

Results: ``benchmarks/README.md``, "A Huber scale from pure error" (2026-12-07).
"""

from __future__ import annotations

import argparse
import functools
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ground_truth import demo_rows, score
from scenarios import simulate_scenario, write_inputs
from scipy import stats
from stage_runner import StageRunner, demo_config, merge_overrides, scenario_config

from pepmix.model import fit as fit_module

log = logging.getLogger("robust_scale_eval")

#: variant: the ``robust_scale`` of :func:`pepmix.model.fit.fit_proteins` and config overrides
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "additive": ("additive", {}),
    "pure_error": ("pure_error", {}),
    "bisquare": ("additive", {"model": {"robust": "bisquare"}}),
    "bisquare pure_error": ("pure_error", {"model": {"robust": "bisquare"}}),
}
_ORIGINAL = fit_module.fit_proteins


def _use(variant: str) -> None:
    """Make the workflow's fits use the scale of ``variant`` (the stages import
    ``fit_proteins`` when they run, from :mod:`pepmix.model.fit`)."""
    scale = VARIANTS[variant][0]
    fit_module.fit_proteins = functools.partial(_ORIGINAL, robust_scale=scale)  # type: ignore[assignment]


class Runners:
    """One stage runner (cache) per variant."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.runners: dict[str, StageRunner] = {}

    def run(self, variant: str, config: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The differential table of ``config`` with the fits of ``variant``."""
        scale = VARIANTS[variant][0]
        if scale not in self.runners:
            self.runners[scale] = StageRunner(self.work / f"cache-{scale}")
        _use(variant)
        return self.runners[scale].run(merge_overrides(config, VARIANTS[variant][1]))


def _table(
    runner: Runners, name: str, n: int, seed: int, variant: str, null: bool
) -> tuple[pd.DataFrame, pd.Series]:
    sim = simulate_scenario(name, n, seed, **({"frac_changing": 0.0} if null else {}))
    tag = "-null" if null else ""
    data, samples = write_inputs(sim, runner.work / "data" / f"{name}-{n}-{seed}{tag}")
    table, _ = runner.run(variant, scenario_config(data, samples))
    return table, sim.truth.set_index("protein")["log2fc"]


def scenarios(
    runner: Runners, names: list[str], variants: list[str], seeds: list[int]
) -> pd.DataFrame:
    """FDP / TP / TP@FDP5 per scenario, variant and seed (1,500 proteins)."""
    rows = []
    for name in names:
        for label in variants:
            for seed in seeds:
                table, truth = _table(runner, name, 1500, seed, label, False)
                row = {"scenario": name, "variant": label, "seed": seed} | score(table, truth)
                print(row, flush=True)
                rows.append(row)
    return pd.DataFrame(rows)


def nulls(runner: Runners, names: list[str], variants: list[str]) -> pd.DataFrame:
    """KS p and share of p < 0.05 on null data (seed 11, 2,000 proteins)."""
    rows = []
    for name in names:
        for label in variants:
            table, _ = _table(runner, name, 2000, 11, label, True)
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


def demo(runner: Runners, variants: list[str]) -> pd.DataFrame:
    """UPS called, background FP and TP@FDP5 per contrast."""
    rows = []
    for label in variants:
        table, _ = runner.run(label, demo_config())
        rows.extend(demo_rows(table, label))
    return pd.DataFrame(rows)[["contrast", "variant", "TP", "FP", "TP@FDP5", "|err|"]]


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--parts", nargs="+", default=["scenarios", "null", "demo"])
    parser.add_argument("--variants", nargs="+", default=["additive", "pure_error"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[21, 22, 23, 24])
    parser.add_argument(
        "--scenarios", nargs="+", default=["outliers", "both20", "technical", "mnar"]
    )
    parser.add_argument(
        "--nulls", nargs="+", default=["no_change", "technical", "outliers", "mnar"]
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    runner = Runners(args.workdir)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    if "scenarios" in args.parts:
        rows = scenarios(runner, args.scenarios, args.variants, args.seeds)
        cols = ["TP", "FP", "FDP", "TP@FDP5"]
        print(rows.groupby(["scenario", "variant"], sort=False)[cols].mean().round(4), flush=True)
    if "null" in args.parts:
        print(nulls(runner, args.nulls, args.variants).round(4), flush=True)
    if "demo" in args.parts:
        print(demo(runner, args.variants).round(3), flush=True)


if __name__ == "__main__":
    main()
