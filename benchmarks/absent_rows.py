"""Absent-condition rows of ``missing: detection`` on the ground-truth scenarios (issue 14).

Runs the workflow's stages (``stage_runner.py``) on ``scenarios.py``'s ``no_change``, ``mnar`` and
``both20`` (1,000 proteins, seeds 1-3) with ``model.robust: none`` (MAR) and ``missing:
detection``, and prints per scenario, model and absent/present: rows, null rows, share of null
p < 0.05, false and true positives at adjusted p < 0.05 and the 95 % CI coverage; then the
absent rows themselves.

    python benchmarks/absent_rows.py --workdir /tmp/absent    # ~3 min on 2 cores
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd
from scenarios import simulate_scenario, write_inputs
from stage_runner import StageRunner, merge_overrides, scenario_config

log = logging.getLogger("absent_rows")
VARIANTS = {"mar": {"model": {"robust": "none"}}, "detection": {"missing": "detection"}}


def tables(workdir: Path, names: list[str], seeds: list[int], n: int) -> pd.DataFrame:
    """Differential tables of every scenario, seed and variant, with the truth."""
    runner = StageRunner(workdir / "cache")
    rows = []
    for name in names:
        for seed in seeds:
            sim = simulate_scenario(name, n, seed)
            data, samples = write_inputs(sim, workdir / "data" / f"{name}-{n}-{seed}")
            truth = sim.truth.set_index("protein")["log2fc"]
            for label, overrides in VARIANTS.items():
                table, _ = runner.run(merge_overrides(scenario_config(data, samples), overrides))
                t = table.assign(true=truth.reindex(table["protein"].astype(str)).to_numpy())
                t["absent"] = t["detail"].fillna("").str.contains("absent from condition")
                t["scenario"], t["seed"], t["model"] = name, seed, label
                rows.append(t)
    out = pd.concat(rows, ignore_index=True)
    return out[out["pvalue"].notna()]


def summary(d: pd.DataFrame) -> pd.DataFrame:
    """Per scenario, model and absent flag: counts, null p < 0.05, FP, TP, coverage."""
    d = d.assign(
        called=d["adj_pvalue"] < 0.05,
        null=d["true"] == 0,
        cover=(d["ci_low"] <= d["true"]) & (d["true"] <= d["ci_high"]),
    )
    g = d.groupby(["scenario", "model", "absent"])
    return pd.DataFrame(
        {
            "rows": g.size(),
            "null rows": g["null"].sum(),
            "null p<0.05": g.apply(lambda x: (x.loc[x["null"], "pvalue"] < 0.05).mean()),
            "FP": g.apply(lambda x: (x["called"] & x["null"]).sum()),
            "TP": g.apply(lambda x: (x["called"] & ~x["null"]).sum()),
            "CI coverage": g["cover"].mean(),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--scenarios", nargs="+", default=["no_change", "mnar", "both20"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--proteins", type=int, default=1000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    d = tables(args.workdir, args.scenarios, args.seeds, args.proteins)
    print(summary(d).round(3).to_markdown())
    cols = ["scenario", "seed", "protein", "log2fc", "true", "ci_low", "ci_high", "pvalue"]
    print(d.loc[d["absent"], cols].round(3).to_markdown(index=False))


if __name__ == "__main__":
    main()
