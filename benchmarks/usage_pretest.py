"""Contrasts from the usage model after a preliminary test (``peptide_usage_contrasts``), scored
on the issue-10 scenarios and the demo.

For each scenario and seed the data go through the workflow's stage functions
(``stage_runner.py``, the build's defaults with ``peptide_usage_contrasts: never``: the table of
the calibration tests). Then the fit stage (:func:`pepmix.stages.fit.run`, usage test on) runs
once more in-process, and each setting of :data:`SETTINGS` makes its stored fit from that one
fit (:func:`pepmix.model.pretest.usage_contrasts`: no model is refitted) and runs the test stage
(:func:`pepmix.stages.test.run`) on it. The ``never`` table made that way must equal the
runner's (checked). Printed per scenario and setting (means over seeds): TP, FP and FDP at
adjusted p < 0.05, TP@FDP5 (``ground_truth.ranking_power``), the proteins switched to the usage
model; on null data (no protein changes) the Kolmogorov-Smirnov p of the p-values against the
uniform and their share below 0.05; on the demo per contrast the UPS proteins and the background
proteins called.

    .venv/bin/python benchmarks/usage_pretest.py                  # the tables of benchmarks/README
    .venv/bin/python benchmarks/usage_pretest.py --quick          # 500 proteins, one seed
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ground_truth import demo_truth, ranking_power
from scenarios import simulate_scenario, write_inputs
from scipy import stats
from stage_runner import StageRunner, demo_config, merge_overrides, scenario_config

from pepmix.config import validate_config
from pepmix.model.pretest import usage_contrasts
from pepmix.stages import fit as fit_stage
from pepmix.stages import test as test_stage

log = logging.getLogger("usage_pretest")

ALPHA = 0.05
#: (label, mode, alpha_pre)
SETTINGS = (
    ("never", "never", 0.25),
    ("pretest 0.01", "pretest", 0.01),
    ("pretest 0.05", "pretest", 0.05),
    ("pretest 0.25", "pretest", 0.25),
    ("always", "always", 0.25),
)
NOTE = "contrast from the usage model"


def tables(runner: StageRunner, config: dict[str, Any], work: Path) -> dict[str, pd.DataFrame]:
    """Differential table per setting of :data:`SETTINGS` (one fit, see module docstring)."""
    base = merge_overrides(config, {"peptide_usage_contrasts": "never"})
    reference, _ = runner.run(base)
    made = runner.made
    cfg = validate_config(base, runner.schema)
    result = fit_stage.run(
        features=made["results/model/shards/1-of-1/features.parquet"],
        samples=made["results/ingest/samples.tsv"],
        model=cfg.get("model", {}),
        replication=cfg.get("testing", {}).get("replication", "auto"),
        variance_tests=cfg.get("variance_tests", {}),
        abundance=False,
        usage=True,
        usage_inference=True,
    )
    assert result.usage_test is not None
    test_config = {k: cfg[k] for k in ("contrasts", "moderation", "lfc_threshold", "testing")}
    test_config["model"] = cfg.get("model", {})
    out = {}
    for label, mode, alpha in SETTINGS:
        stored, _ = usage_contrasts(result.fit.stored, result.usage_test, mode, alpha)
        path = work / f"fit-{mode}-{alpha}.parquet"
        stored.write(path)
        out[label] = test_stage.run(
            fit=path,
            samples=made["results/ingest/samples.tsv"],
            config=test_config,
            removed=made["results/ingest/removed_proteins.tsv"],
        ).table
    # the same values (the runner's table was read back from Parquet: string dtypes)
    pd.testing.assert_frame_equal(
        reference.reset_index(drop=True),
        out["never"].reset_index(drop=True),
        check_dtype=False,
        check_exact=True,
    )
    return out


def score(table: pd.DataFrame, truth: pd.Series) -> dict[str, float]:
    """FDP, TP, TP@FDP5, switched proteins, null p-value uniformity of one contrast."""
    tested = table.loc[table["pvalue"].notna()]
    true = truth.reindex(tested["protein"].astype(str)).fillna(0.0).to_numpy()
    changed = true != 0
    called = tested["adj_pvalue"].to_numpy() < ALPHA
    tp, fp = int((called & changed).sum()), int((called & ~changed).sum())
    null_p = tested["pvalue"].to_numpy()[~changed]
    null_ks = float(stats.kstest(null_p, "uniform").pvalue) if not changed.any() else np.nan
    return {
        "tested": len(tested),
        "switched": int(tested["detail"].astype(str).str.contains(NOTE).sum()),
        "TP": tp,
        "FP": fp,
        "FDP": fp / max(tp + fp, 1),
        "TP@FDP5": ranking_power(tested["pvalue"].to_numpy(), changed),
        "KS p (null)": null_ks,
        "p<0.05 (null)": float(np.mean(null_p < 0.05)),
    }


Case = tuple[str, Any, dict[str, Any], dict[str, pd.Series]]


def cases(args: argparse.Namespace, work: Path) -> list[Case]:
    """(scenario label, seed, config, truth per contrast)."""
    out = []
    for name, n_prot, seeds, frac in (
        ("outliers", args.proteins, args.seeds, None),
        ("both20", args.proteins, args.seeds, None),
        ("technical", args.proteins, args.seeds, None),
        ("no_change", args.null_proteins, [args.null_seed], 0.0),
        ("outliers", args.null_proteins, [args.null_seed], 0.0),
    ):
        for seed in seeds:
            over = {} if frac is None else {"frac_changing": frac}
            sim = simulate_scenario(name, n_prot, seed, **over)
            label = name if frac is None else f"{name} null"
            data, samples = write_inputs(sim, work / "data" / f"{label}-{n_prot}-{seed}")
            truth = sim.truth.set_index("protein")["log2fc"]
            out.append((label, seed, scenario_config(data, samples), {"B - A": truth}))
    return out


def demo_slice(work: Path) -> dict[str, Any]:
    """Config of the end-to-end test's demo slice (``tests/e2e/test_workflow.py``: every fourth
    UPS1 protein, the first 300 background proteins; contrasts all pairwise)."""
    root = Path(__file__).resolve().parents[1]
    demo = pd.read_csv(root / "data/demo/berg2019_ups_progenesis_peptides.csv.gz")
    protein = demo["identifier"].str.rsplit("--", n=1).str[0]
    ups = sorted(set(protein[protein.str.contains("UPS")]))[::4]
    background = sorted(set(protein[~protein.str.contains("UPS")]))[:300]
    work.mkdir(parents=True, exist_ok=True)
    demo.loc[protein.isin(ups + background)].to_csv(work / "slice.csv.gz", index=False)
    entry = {
        "name": "demo",
        "format": "generic_wide",
        "path": str(work / "slice.csv.gz"),
        "id_column": "identifier",
        "id_separator": "--",
    }
    return {
        "samples": str(root / "config/samples.tsv"),
        "inputs": [entry],
        "feature_level": "peptide",
        "contrasts": "all_pairwise",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[21, 22, 23, 24])
    parser.add_argument("--proteins", type=int, default=1500)
    parser.add_argument("--null-seed", type=int, default=11)
    parser.add_argument("--null-proteins", type=int, default=2000)
    parser.add_argument("--no-demo", action="store_true")
    parser.add_argument("--demo-only", action="store_true", help="the demo and its e2e slice")
    parser.add_argument("--quick", action="store_true", help="500 proteins, one seed, no demo")
    parser.add_argument("--csv", type=Path, help="write the per-seed rows here")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.proteins, args.null_proteins, args.no_demo = [21], 500, 500, True
    logging.basicConfig(level=logging.WARNING)
    log.setLevel(logging.INFO)
    rows = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pepmix-pretest-") as tmp:
        work = Path(tmp)
        runner = StageRunner(work / "cache")
        todo = [] if args.demo_only else cases(args, work)
        if not args.no_demo:
            todo.append(("demo", "-", demo_config(), {}))
            todo.append(("demo slice", "-", demo_slice(work / "slice"), {}))
        for label, seed, config, truths in todo:
            t0 = time.perf_counter()
            by_setting = tables(runner, config, work)
            for setting, table in by_setting.items():
                for contrast, part in table.groupby("contrast", sort=False):
                    truth = truths.get(str(contrast))
                    if truth is None:  # the demo: UPS spike-ins changed
                        truth = demo_truth(str(contrast), part["protein"].drop_duplicates())
                    name = f"{label} {contrast}" if label.startswith("demo") else label
                    rows.append(
                        {"scenario": name, "setting": setting, "seed": seed, **score(part, truth)}
                    )
            log.info("%s seed %s: %.0f s", label, seed, time.perf_counter() - t0)
    frame = pd.DataFrame(rows)
    if args.csv:
        frame.to_csv(args.csv, index=False)
    summary = frame.drop(columns="seed").groupby(["scenario", "setting"], sort=False).mean()
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summary.round(4).to_string())
    print(f"\n{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
