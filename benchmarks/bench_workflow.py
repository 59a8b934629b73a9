"""The whole workflow on a DIA-sized cohort: wall time per stage and peak memory per rule.

Generates (once) the cohort of ``simulate.py cohort`` (default 10,000 proteins, 60,000
precursors, 200 runs, ~30 % missing, DIA-NN 2.x ``report.parquet``), runs the workflow locally
(``--cores 2`` by default) from ingest through the report, and prints one line per job from
Snakemake's ``benchmark:`` files (wall seconds, peak RSS) plus totals, next to the goals
(whole workflow <= 60 s on 2 cores, every rule <= 4 GB).

    .venv/bin/python benchmarks/bench_workflow.py [--proteins 10000 --precursors 60000
        --runs 200 --cores 2 --shards 2 --format diann|generic_long]

Use ``--proteins 2000 --precursors 12000 --runs 40`` for a quick look; ``--scaling`` runs three
sizes and prints time per stage against the number of proteins.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
GOAL_WALL_S = 60.0
GOAL_RSS_MB = 4096.0


def generate(out: Path, proteins: int, precursors: int, runs: int, seed: int) -> None:
    """Write the simulated cohort into ``out`` (skipped when it is already there)."""
    if (out / "report.parquet").exists():
        return
    cmd = [
        sys.executable, str(REPO / "benchmarks/simulate.py"), "cohort", "--out", str(out),
        "--proteins", str(proteins), "--precursors", str(precursors), "--runs", str(runs),
        "--seed", str(seed),
    ]  # fmt: skip
    subprocess.run(cmd, check=True)


def run_workflow(workdir: Path, config: str, cores: int, shards: int) -> float:
    """Run the workflow (everything, then the report) and return the wall time in seconds."""
    for sub in ("results", "logs", ".snakemake"):
        shutil.rmtree(workdir / sub, ignore_errors=True)
    base = [
        SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(workdir / config), "--cores", str(cores), "--quiet",
        "--config", f"shards={shards}",
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(base, check=True)
    subprocess.run([*base, "--report", str(workdir / "results/report.html")], check=True)
    return time.perf_counter() - start


def benchmark_table(workdir: Path) -> pd.DataFrame:
    """One row per job from ``logs/benchmarks/**.tsv``: rule, wall seconds, peak RSS (MB)."""
    rows = []
    for path in sorted((workdir / "logs/benchmarks").rglob("*.tsv")):
        frame = pd.read_csv(path, sep="\t")
        rel = path.relative_to(workdir / "logs/benchmarks")
        rows.append(
            {
                "job": str(rel.with_suffix("")),
                "stage": rel.parts[0].removesuffix(".tsv"),
                "wall_s": float(frame["s"].iloc[0]),
                "max_rss_mb": float(frame["max_rss"].iloc[0]),
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proteins", type=int, default=10_000)
    parser.add_argument("--precursors", type=int, default=60_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--format", choices=["diann", "generic_long"], default="diann")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/out/cohort")
    parser.add_argument(
        "--scaling", action="store_true", help="three sizes: 2,500 / 5,000 / 10,000"
    )
    args = parser.parse_args()
    config = "config.yaml" if args.format == "diann" else "config_generic_long.yaml"
    sizes = (
        [(2500, 15000), (5000, 30000), (10_000, 60_000)]
        if args.scaling
        else [(args.proteins, args.precursors)]
    )
    summary = []
    for proteins, precursors in sizes:
        out = args.out / f"p{proteins}_f{precursors}_r{args.runs}"
        generate(out, proteins, precursors, args.runs, args.seed)
        wall = run_workflow(out, config, args.cores, args.shards)
        table = benchmark_table(out)
        per_stage = table.groupby("stage").agg(
            jobs=("job", "size"), wall_s=("wall_s", "sum"), max_rss_mb=("max_rss_mb", "max")
        )
        print(f"\n== {proteins} proteins, {precursors} precursors, {args.runs} runs "
              f"({args.format}, {args.shards} shards, {args.cores} cores)")  # fmt: skip
        print(per_stage.sort_values("wall_s", ascending=False).round(1).to_string())
        peak = float(table["max_rss_mb"].max()) if len(table) else float("nan")
        print(f"whole workflow incl. report: {wall:.1f} s wall (goal <= {GOAL_WALL_S:.0f} s: "
              f"{'met' if wall <= GOAL_WALL_S else 'NOT met'}); largest rule peak RSS "
              f"{peak:.0f} MB (goal <= {GOAL_RSS_MB:.0f} MB: "
              f"{'met' if peak <= GOAL_RSS_MB else 'NOT met'})")  # fmt: skip
        summary.append({"proteins": proteins, "wall_s": wall, **per_stage["wall_s"].to_dict()})
    if len(summary) > 1:
        frame = pd.DataFrame(summary).set_index("proteins")
        print("\n== seconds per stage against proteins (linear scaling: doubling proteins "
              "doubles the time)")  # fmt: skip
        print(frame.round(1).T.to_string())


if __name__ == "__main__":
    main()
