"""Where the *outliers* false positives come from, and the no-majority rules of
``peptide_usage_contrasts`` (``no_majority``, ``no_majority_pretest``).

Same data, fits and scores as ``usage_pretest.py`` (one fit per data set; each setting's stored
fit made from it by :func:`pepmix.model.pretest.usage_contrasts`, then the test stage). Also
printed: the false positives of ``never`` (the default before this study) by the protein's
features in the fitted data (1, 2, 3, 4-5, 6+), by its features observed in both conditions
("shared", the count the no-majority rule uses) and by whether the simulator shifted one of its
features (``outlier_features > 0`` of the truth: the shifted feature may have gone missing); for
the demo, the UPS proteins by features and shared features, and how many each setting switched.

    .venv/bin/python benchmarks/usage_majority.py              # seeds 21-24, nulls, demo
    .venv/bin/python benchmarks/usage_majority.py --quick      # 500 proteins, one seed
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import usage_pretest as up
from scenarios import simulate_scenario, write_inputs
from stage_runner import StageRunner, demo_config, merge_overrides, scenario_config

from pepmix.config import validate_config
from pepmix.model.pretest import usage_contrasts
from pepmix.stages import fit as fit_stage
from pepmix.stages import test as test_stage

log = logging.getLogger("usage_majority")

#: (label, mode, alpha_pre, majority: fewer shared features than this switch)
SETTINGS = (
    ("never", "never", 0.25, 3),
    ("pretest 0.05", "pretest", 0.05, 3),
    ("shared<3 pretest 0.05", "no_majority_pretest", 0.05, 3),
    ("shared<3 pretest 0.25", "no_majority_pretest", 0.25, 3),
    ("shared<3 always", "no_majority", 0.25, 3),
    ("shared<4 pretest 0.05", "no_majority_pretest", 0.05, 4),
    ("shared<4 pretest 0.25", "no_majority_pretest", 0.25, 4),
    ("shared<4 always", "no_majority", 0.25, 4),
)
BINS = [0, 1, 2, 3, 5, 10_000]
LABELS = ["1", "2", "3", "4-5", "6+"]


def feature_counts(features: Path, samples: Path) -> pd.DataFrame:
    """Per protein of the fitted data: features, and features observed in >= 2 conditions."""
    table = pd.read_parquet(features, columns=["protein", "feature", "run"])
    sheet = pd.read_csv(samples, sep="\t", dtype=str)
    condition = dict(zip(sheet["run"], sheet["condition"], strict=True))
    table["condition"] = table["run"].astype(str).map(condition)
    per_feat = table.groupby(["protein", "feature"], observed=True)["condition"].nunique()
    out = pd.DataFrame(
        {
            "n_feat": per_feat.groupby(level=0, observed=True).size(),
            "shared": (per_feat >= 2).groupby(level=0, observed=True).sum(),
        }
    )
    out.index = out.index.astype(str)
    return out


def tables(
    runner: StageRunner, config: dict[str, Any], work: Path
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Differential table per setting, and the per-protein feature counts."""
    base = merge_overrides(config, {"peptide_usage_contrasts": "never"})
    runner.run(base)
    made = runner.made
    cfg = validate_config(base, runner.schema)
    features = made["results/model/shards/1-of-1/features.parquet"]
    samples = made["results/ingest/samples.tsv"]
    result = fit_stage.run(
        features=features,
        samples=samples,
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
    for label, mode, alpha, majority in SETTINGS:
        stored, _ = usage_contrasts(result.fit.stored, result.usage_test, mode, alpha, majority)
        path = work / f"fit-{mode}-{alpha}-{majority}.parquet"
        stored.write(path)
        out[label] = test_stage.run(
            fit=path,
            samples=samples,
            config=test_config,
            removed=made["results/ingest/removed_proteins.tsv"],
        ).table
    return out, feature_counts(features, samples)


def breakdown(
    table: pd.DataFrame, truth: pd.Series, counts: pd.DataFrame, outl: pd.Series | None
) -> pd.DataFrame:
    """Per tested protein of one contrast: called, changed, n_feat bin, shared bin, outlier."""
    tested = table.loc[table["pvalue"].notna()].copy()
    prot = tested["protein"].astype(str)
    frame = pd.DataFrame(
        {
            "protein": prot.to_numpy(),
            "called": (tested["adj_pvalue"] < up.ALPHA).to_numpy(),
            "changed": truth.reindex(prot).fillna(0.0).to_numpy() != 0,
            "switched": tested["detail"].astype(str).str.contains(up.NOTE).to_numpy(),
        }
    )
    c = counts.reindex(frame["protein"])
    frame["features"] = pd.cut(c["n_feat"].to_numpy(), BINS, labels=LABELS)
    frame["shared"] = pd.cut(c["shared"].to_numpy(), [-1, *BINS], labels=["0", *LABELS])
    if outl is not None:
        frame["outlier"] = outl.reindex(frame["protein"]).fillna(0).to_numpy() > 0
    return frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[21, 22, 23, 24])
    parser.add_argument("--proteins", type=int, default=1500)
    parser.add_argument("--null-proteins", type=int, default=2000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-demo", action="store_true")
    parser.add_argument("--demo-only", action="store_true")
    parser.add_argument("--only", nargs="*", help="scenario labels to run")
    parser.add_argument("--out", type=Path, default=Path("usage_majority"))
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.proteins, args.null_proteins, args.no_demo = [21], 500, 500, True
    logging.basicConfig(level=logging.WARNING)
    log.setLevel(logging.INFO)
    args.out.mkdir(parents=True, exist_ok=True)
    rows, parts = [], []
    with tempfile.TemporaryDirectory(prefix="pepmix-majority-") as tmp:
        work = Path(tmp)
        runner = StageRunner(work / "cache")
        todo: list[tuple[str, Any, dict[str, Any], dict[str, pd.Series], Any]] = []
        if not args.demo_only:
            for name, n_prot, seeds, frac in (
                ("outliers", args.proteins, args.seeds, None),
                ("both20", args.proteins, args.seeds, None),
                ("technical", args.proteins, args.seeds, None),
                ("no_change", args.null_proteins, [11], 0.0),
                ("outliers", args.null_proteins, [11], 0.0),
            ):
                label = name if frac is None else f"{name} null"
                if args.only and label not in args.only:
                    continue
                for seed in seeds:
                    over = {} if frac is None else {"frac_changing": frac}
                    sim = simulate_scenario(name, n_prot, seed, **over)
                    data, samples = write_inputs(sim, work / "data" / f"{label}-{seed}")
                    truth = sim.truth.set_index("protein")
                    todo.append(
                        (
                            label,
                            seed,
                            scenario_config(data, samples),
                            {"B - A": truth["log2fc"]},
                            truth["outlier_features"],
                        )
                    )
        if not args.no_demo and not args.only:
            todo.append(("demo", "-", demo_config(), {}, None))
            todo.append(("demo slice", "-", up.demo_slice(work / "slice"), {}, None))
        for label, seed, config, truths, outl in todo:
            t0 = time.perf_counter()
            by_setting, counts = tables(runner, config, work)
            for setting, table in by_setting.items():
                for contrast, part in table.groupby("contrast", sort=False):
                    truth = truths.get(str(contrast))
                    if truth is None:
                        truth = up.demo_truth(str(contrast), part["protein"].drop_duplicates())
                    name = f"{label} {contrast}" if label.startswith("demo") else label
                    scores = up.score(part, truth)
                    rows.append({"scenario": name, "setting": setting, "seed": seed, **scores})
                    parts.append(
                        breakdown(part, truth, counts, outl).assign(
                            scenario=name, setting=setting, seed=seed
                        )
                    )
            log.info("%s seed %s: %.0f s", label, seed, time.perf_counter() - t0)
    frame = pd.DataFrame(rows)
    frame.to_csv(args.out / "scores.csv", index=False)
    detail = pd.concat(parts, ignore_index=True).astype({"seed": str})
    detail.to_parquet(args.out / "proteins.parquet")
    summary = frame.drop(columns="seed").groupby(["scenario", "setting"], sort=False).mean()
    with pd.option_context("display.width", 220, "display.max_columns", 20):
        print(summary.round(4).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
