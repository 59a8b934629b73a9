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
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
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
                "cpu_s": float(frame["cpu_time"].iloc[0]),
            }
        )
    return pd.DataFrame(rows)


# --- suite: the issue-12 goals in one run, with references measured in the same run ---------

#: (name, goal for the whole workflow incl. report in s)
SUITE_GOALS = {"demo": 12.0, "sim3000x12": 12.0, "cohort_diann": 30.0, "cohort_long": 30.0}


def reference_seconds(repeats: int = 3) -> dict[str, float]:
    """Fixed costs measured now: a bare ``snakemake --version`` and a bare Python start."""
    out = {}
    for name, cmd in (
        ("snakemake --version", [SNAKEMAKE, "--version"]),
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("import pepmix.stages.fit", [sys.executable, "-c", "import pepmix.stages.fit"]),
    ):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        out[name] = float(np.median(times))
    return out


def demo_workdir(root: Path) -> Path:
    """A working directory for the shipped demo: ``config/`` and ``data/`` linked in."""
    work = root / "demo"
    work.mkdir(parents=True, exist_ok=True)
    for name in ("config", "data"):
        link = work / name
        if not link.exists():
            link.symlink_to(REPO / name)
    return work


def run_timed(
    workdir: Path,
    config: Path,
    cores: int,
    extra: list[str],
    repo: Path = REPO,
    two_calls: bool = False,
) -> dict[str, float]:
    """Fresh run of the workflow with the report as ``make demo`` makes it (one call,
    ``--report-after-run``), then the report alone again: wall seconds of each call.

    ``repo`` (default: this checkout) is the pepmix checkout whose Snakefile and ``src/`` run,
    for before/after comparisons in one benchmark run; ``two_calls`` (default False) runs the
    workflow and then ``--report`` as two calls (the ``make demo`` of before 2026-12-06).
    """
    for sub in ("results", "logs", ".snakemake"):
        shutil.rmtree(workdir / sub, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(repo / "src")}
    base = [
        SNAKEMAKE, "-s", str(repo / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(config), "--cores", str(cores), "--quiet", *extra,
        "--report", str(workdir / "results/report.html"),
    ]  # fmt: skip
    cpu0 = _children_cpu()
    start = time.perf_counter()
    if two_calls:
        subprocess.run(base[:-2], check=True, env=env)
        subprocess.run(base, check=True, env=env)
    else:
        subprocess.run([*base, "--report-after-run"], check=True, env=env)
    mid = time.perf_counter()
    cpu1 = _children_cpu()
    subprocess.run(base, check=True, env=env, capture_output=True)
    end = time.perf_counter()
    return {"wall_s": mid - start, "report_alone_s": end - mid, "cpu_s": cpu1 - cpu0}


def _children_cpu() -> float:
    """User + system CPU seconds of all finished child processes (snakemake and every job it
    ran: a measure of the work that does not depend on other load on the machine)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def suite_cases(args: argparse.Namespace) -> list[tuple[str, Path, Path, list[str]]]:
    """(name, workdir, config, extra snakemake args) of the data sets to run."""
    root = args.out
    cases = []
    if "demo" in args.suite:
        work = demo_workdir(root / "suite")
        cases.append(("demo", work, work / "config/config.yaml", []))
    if "sim3000x12" in args.suite:
        out = root / "p3000_f18000_r12"
        generate(out, 3000, 18000, 12, args.seed)
        cases.append(("sim3000x12", out, out / "config.yaml", []))
    cohorts = (("cohort_diann", "config.yaml"), ("cohort_long", "config_generic_long.yaml"))
    for fmt, config in cohorts:
        if fmt in args.suite:
            out = root / "p10000_f60000_r200"
            generate(out, 10_000, 60_000, 200, args.seed)
            cases.append((fmt, out, out / config, ["--config", f"shards={args.shards}"]))
    return cases


def run_suite(args: argparse.Namespace) -> None:
    """Run the data sets of ``--suite``; print wall times, ratios and a per-stage table."""
    sinfo = shutil.which("sinfo")
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401

        plugin = "installed"
    except ImportError:
        plugin = "not installed"
    print(f"SLURM client tools: {'yes (' + sinfo + ')' if sinfo else 'no'}; "
          f"snakemake-executor-plugin-slurm: {plugin}; load average {os.getloadavg()}")  # fmt: skip
    refs = reference_seconds()
    print("references: " + ", ".join(f"{k} {v:.2f} s" for k, v in refs.items()))
    version = refs["snakemake --version"]
    stages = {}
    rows = []
    print(f"checkout: {args.repo}; report {'in a second call' if args.two_calls else 'after run'}")
    for name, work, config, extra in suite_cases(args):
        times = run_timed(work, config, args.cores, extra, args.repo, args.two_calls)
        table = benchmark_table(work)
        jobs = float(table["wall_s"].sum())
        stages[name] = table.groupby("stage")["wall_s"].sum()
        stages[f"{name} CPU"] = table.groupby("stage")["cpu_s"].sum()
        goal = SUITE_GOALS[name]
        rows.append(
            {
                "data set": name,
                "jobs": len(table),
                "wall s": times["wall_s"],
                "report alone s": times["report_alone_s"],
                "CPU s (all processes)": times["cpu_s"],
                "goal s": goal,
                "met": "yes" if times["wall_s"] <= goal else "no",
                "sum of job s": jobs,
                "wall / job sum": times["wall_s"] / jobs,
                "wall / snakemake --version": times["wall_s"] / version,
                "peak RSS MB": float(table["max_rss_mb"].max()),
            }
        )
        print(f"{name}: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                      for k, v in rows[-1].items()))  # fmt: skip
    print(f"load average {os.getloadavg()}\n")
    print(pd.DataFrame(rows).round(2).to_markdown(index=False))
    print("\njob wall and CPU seconds per stage (summed over a stage's jobs)\n")
    print(pd.DataFrame(stages).round(2).fillna("-").to_markdown())


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
    parser.add_argument(
        "--repo",
        type=Path,
        default=REPO,
        help="pepmix checkout whose Snakefile and src/ the suite runs (default: this one)",
    )
    parser.add_argument(
        "--two-calls",
        action="store_true",
        help="workflow, then --report, as two snakemake calls (the old `make demo`)",
    )
    parser.add_argument(
        "--suite",
        nargs="*",
        choices=sorted(SUITE_GOALS),
        help="the issue-12 goals: demo, a 3,000 x 12 cohort and/or the 10,000 x 200 cohort "
        "(both input formats), with references measured in the same run",
    )
    args = parser.parse_args()
    if args.suite is not None:
        run_suite(args)
        return
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
