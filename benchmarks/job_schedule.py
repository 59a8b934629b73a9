"""Critical path of one workflow run on an idle 2-core machine, estimated from CPU seconds.

    JOB_CPU_LOG=/tmp/cpu.tsv PYTHONPATH=benchmarks/job_cpu_hook:src \\
        .venv/bin/snakemake --cores 2 --configfile config/config.yaml \\
        --report results/report.html --report-after-run
    python benchmarks/job_schedule.py /tmp/cpu.tsv --directory . --configfile config/config.yaml

On a shared machine wall times follow the other load, but each job's CPU seconds (from
``benchmarks/job_cpu_hook``, exact) change far less. This replays the run's DAG (``snakemake
--dag`` of the same checkout and config) as a list schedule on ``--cores`` cores: every job takes
its CPU seconds, a free core takes the ready job of highest rule priority (as in the rules), ties
in the order the run started them. It prints the length of that schedule, when the last fit job
and rule test end (the differential table), and adds the main snakemake process's CPU seconds
(start-up, DAG, report; serial). An estimate of the idle wall time in CPU units of the loaded
machine: compare variants measured in one sitting, not with idle wall times.
"""

from __future__ import annotations

import argparse
import heapq
import os
import re
import subprocess
import sys
from pathlib import Path

from job_cpu import read

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def rule_priorities(repo: Path) -> dict[str, int]:
    """``priority:`` of each rule in ``rules/*.smk`` (the first value of a conditional one)."""
    out: dict[str, int] = {}
    for path in sorted((repo / "rules").glob("*.smk")):
        rule = None
        for line in path.read_text(encoding="utf-8").splitlines():
            head = re.match(r"\s*rule (\w+):", line)
            if head:
                rule = head.group(1)
            value = re.match(r"\s*priority: (\d+)", line)
            if value and rule is not None:
                out[rule] = int(value.group(1))
    return out


def dag(repo: Path, workdir: Path, config: Path, extra: list[str]) -> tuple[dict[str, str], list]:
    """Nodes (id -> rule) and edges of ``snakemake --dag --forceall`` for this checkout."""
    cmd = [
        SNAKEMAKE, "-s", str(repo / "Snakefile"), "--directory", str(workdir), "--configfile",
        str(config), "-n", "--forceall", "--dag", *extra,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(repo / "src")}
    env.pop("JOB_CPU_LOG", None)
    text = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    nodes = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)', text, re.M))
    return nodes, re.findall(r"^\s*(\d+) -> (\d+)", text, re.M)


def schedule(log: Path, repo: Path, workdir: Path, config: Path, cores: int, extra: list[str]):
    """(schedule length, end of the last fit job, end of rule test, snakemake CPU s)."""
    rows = sorted(read(log), key=lambda r: r[3])
    nodes, edges = dag(repo, workdir, config, extra)
    prio = rule_priorities(repo)
    runs: dict[str, list] = {}
    for row in rows:
        runs.setdefault(row[0], []).append(row)
    cpu, order, seen = {}, {}, {}
    for node, rule in sorted(nodes.items(), key=lambda item: int(item[0])):
        k = seen.get(rule, 0)
        seen[rule] = k + 1
        row = runs[rule][k] if rule != "all" else (rule, 0.0, 0.0, float("inf"))
        cpu[node], order[node] = row[1], row[3]
    deps: dict[str, set[str]] = {n: set() for n in nodes}
    for a, b in edges:
        deps[b].add(a)
    done: dict[str, float] = {}
    pending, running, free, now = set(nodes), [], cores, 0.0
    while pending or running:
        ready = sorted(
            (n for n in pending if deps[n] <= done.keys()),
            key=lambda n: (-prio.get(nodes[n], 0), order[n]),
        )
        for node in ready[:free]:
            pending.discard(node)
            free -= 1
            heapq.heappush(running, (now + cpu[node], node))
        now, node = heapq.heappop(running)
        done[node] = now
        free += 1
    fit = max(t for n, t in done.items() if nodes[n] == "fit")
    test = max(t for n, t in done.items() if nodes[n] == "test")
    main = sum(r[1] for r in rows if r[0] == "snakemake")
    return now, fit, test, main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path, help="JOB_CPU_LOG of one run")
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout that ran")
    parser.add_argument("--directory", type=Path, required=True, help="its working directory")
    parser.add_argument("--configfile", type=Path, required=True)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--config", nargs="*", default=[], help="as given to that run")
    args = parser.parse_args()
    extra = ["--config", *args.config] if args.config else []
    total = sum(r[1] for r in read(args.log) if r[0] != "snakemake")
    length, fit, test, main_cpu = schedule(
        args.log, args.repo, args.directory, args.configfile, args.cores, extra
    )
    print(
        f"{args.log}: jobs {total:.2f} CPU s; {args.cores}-core schedule {length:.2f} "
        f"(fit done {fit:.2f}, differential table {test:.2f}) + snakemake {main_cpu:.2f} "
        f"= {length + main_cpu:.2f}"
    )


if __name__ == "__main__":
    main()
