"""Evaluation of the contrast-variance prior (``testing.variance_prior``, issue 10).

Compares the limma prior (robust scaled-inverse-chi-square, the default) with variance
adaptive shrinkage (``vash``, :mod:`pepmix.inference.vash`), with vash whose prior fit takes
the boundary fits of the replicate stratum as censored observations (``vash_censored``) and with
the prior on the replicate stratum's variance above each protein's residual floor (``stratum``,
:mod:`pepmix.inference.stratum`) on the
calibration scenarios of ``tests/unit/test_calibration_scenarios.py`` and on the demo,
everything else at the build's defaults. The variants differ only in the test stage, so they
share one fit per data set (``stage_runner`` caches per rule); ``--variants`` picks some.

- null calibration: Kolmogorov-Smirnov p of the tested p-values against U(0, 1) and the shares
  below 0.05 and 0.01, 2,000 proteins, no protein changing, seeds 11-16 (each, and pooled);
- changes: FDP and TP at adjusted p < 0.05 and TP@FDP5 (ranking power), 1,500 proteins, seeds
  21-24 (means over seeds);
- demo: UPS proteins called / background proteins called per contrast.

    PYTHONPATH=src .venv/bin/python benchmarks/vash_eval.py --workdir /tmp/vash --csv out.csv
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ground_truth import demo_truth, ranking_power, score
from scenarios import simulate_scenario, write_inputs
from scipy import stats
from stage_runner import StageRunner, availability, demo_config, merge_overrides, scenario_config

log = logging.getLogger("vash_eval")

ALPHA = 0.05
VARIANTS: dict[str, dict[str, Any]] = {
    "limma_robust": {"testing": {"variance_prior": "limma"}},
    "vash": {"testing": {"variance_prior": "vash"}},
    "vash_censored": {"testing": {"variance_prior": "vash_censored"}},
    "stratum": {"testing": {"variance_prior": "stratum"}},
    # diagnostics: least squares (no Huber weights), each prior
    "limma_ls": {"model": {"robust": "none"}},
    "stratum_ls": {"model": {"robust": "none"}, "testing": {"variance_prior": "stratum"}},
}
NULL_SCENARIOS = ("no_change", "technical", "outliers", "skewed_variance", "mnar")
NULL_SEEDS = (11, 12, 13, 14, 15, 16)
FDP_SCENARIOS = ("both20", "both60", "technical", "skewed_variance", "mnar", "up20", "outliers")
FDP_SEEDS = (21, 22, 23, 24)


def _tables(runner: StageRunner, config: dict[str, Any]) -> dict[str, pd.DataFrame]:
    out = {}
    for label, overrides in VARIANTS.items():
        if availability(overrides, config, runner.schema):
            out[label] = runner.run(config)[0] if label == "limma_robust" else None
            continue
        out[label] = runner.run(merge_overrides(config, overrides))[0]
    return {k: v for k, v in out.items() if v is not None}


def _sim_config(runner: StageRunner, name: str, n: int, seed: int, **kw: Any) -> tuple[Any, Any]:
    sim = simulate_scenario(name, n, seed, **kw)
    tag = "-".join(f"{k}{v}" for k, v in kw.items())
    data, samples = write_inputs(sim, runner.workdir / "data" / f"{name}-{n}-{seed}-{tag}")
    return scenario_config(data, samples), sim.truth.set_index("protein")["log2fc"]


def null_rows(
    runner: StageRunner, scenarios: tuple[str, ...], seeds: tuple[int, ...]
) -> list[dict[str, Any]]:
    rows = []
    pooled: dict[tuple[str, str], list[np.ndarray]] = {}
    for name in scenarios:
        for seed in seeds:
            config, _ = _sim_config(runner, name, 2000, seed, frac_changing=0.0)
            for label, table in _tables(runner, config).items():
                p = table["pvalue"].dropna().to_numpy()
                pooled.setdefault((name, label), []).append(p)
                rows.append(
                    {
                        "scenario": name,
                        "seed": seed,
                        "variant": label,
                        "tested": p.size,
                        "ks_p": float(stats.kstest(p, "uniform").pvalue),
                        "p<0.05": float(np.mean(p < 0.05)),
                        "p<0.01": float(np.mean(p < 0.01)),
                    }
                )
                log.info("%s", rows[-1])
    for (name, label), parts in pooled.items():
        p = np.concatenate(parts)
        rows.append(
            {
                "scenario": name,
                "seed": "pooled",
                "variant": label,
                "tested": p.size,
                "ks_p": float(stats.kstest(p, "uniform").pvalue),
                "p<0.05": float(np.mean(p < 0.05)),
                "p<0.01": float(np.mean(p < 0.01)),
            }
        )
    return rows


def fdp_rows(
    runner: StageRunner, scenarios: tuple[str, ...], seeds: tuple[int, ...]
) -> list[dict[str, Any]]:
    rows = []
    for name in scenarios:
        for seed in seeds:
            config, truth = _sim_config(runner, name, 1500, seed)
            for label, table in _tables(runner, config).items():
                got = score(table, truth)
                keys = ("TP", "FP", "FDP", "TP@FDP5")
                rows.append({"scenario": name, "seed": seed, "variant": label}
                            | {k: got[k] for k in keys})  # fmt: skip
                log.info("%s", rows[-1])
    return rows


def demo_rows(runner: StageRunner) -> list[dict[str, Any]]:
    rows = []
    for label, table in _tables(runner, demo_config()).items():
        for contrast in table["contrast"].unique():
            part = table.loc[(table["contrast"] == contrast) & table["pvalue"].notna()]
            truth = demo_truth(contrast, part["protein"]).to_numpy() != 0
            called = part["adj_pvalue"].to_numpy() < ALPHA
            rows.append(
                {
                    "scenario": f"demo {contrast}",
                    "variant": label,
                    "TP": int((called & truth).sum()),
                    "FP": int((called & ~truth).sum()),
                    "TP@FDP5": ranking_power(part["pvalue"].to_numpy(), truth),
                }
            )
            log.info("%s", rows[-1])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--csv", type=Path, required=True, help="prefix of the output CSVs")
    parser.add_argument("--parts", nargs="+", default=["null", "fdp", "demo"])
    parser.add_argument("--null-seeds", type=int, nargs="+", default=list(NULL_SEEDS))
    parser.add_argument("--fdp-seeds", type=int, nargs="+", default=list(FDP_SEEDS))
    parser.add_argument("--scenarios", nargs="+")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for name in ("pepmix", "stage_runner"):
        logging.getLogger(name).setLevel(logging.ERROR)
    runner = StageRunner(args.workdir)
    if args.variants:
        for label in [k for k in VARIANTS if k not in args.variants]:
            del VARIANTS[label]
    if "null" in args.parts:
        names = tuple(args.scenarios or NULL_SCENARIOS)
        null = pd.DataFrame(null_rows(runner, names, tuple(args.null_seeds)))
        null.to_csv(f"{args.csv}-null.csv", index=False)
    if "fdp" in args.parts:
        names = tuple(args.scenarios or FDP_SCENARIOS)
        pd.DataFrame(fdp_rows(runner, names, tuple(args.fdp_seeds))).to_csv(
            f"{args.csv}-fdp.csv", index=False
        )
    if "demo" in args.parts:
        pd.DataFrame(demo_rows(runner)).to_csv(f"{args.csv}-demo.csv", index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
