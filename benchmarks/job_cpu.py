"""CPU seconds per job of one workflow run, from the log of ``benchmarks/job_cpu_hook``.

    JOB_CPU_LOG=/tmp/cpu.tsv PYTHONPATH=benchmarks/job_cpu_hook:src \\
        .venv/bin/snakemake --cores 2 --configfile config/config.yaml \\
        --report results/report.html --report-after-run
    python benchmarks/job_cpu.py /tmp/cpu.tsv

Prints one line per process in start order (the rule of a script job, ``snakemake`` for the
main process): CPU seconds, wall seconds, start and end relative to the first process, peak RSS;
then the total. CPU seconds are the work done: other load on a shared machine inflates them far
less than wall times (compare runs interleaved in one sitting all the same).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

SCRIPT = re.compile(r"\.snakemake/scripts/tmp\w+\.(\w+)\.py")


def read(path: Path) -> list[tuple[str, float, float, float, float, float]]:
    """(name, cpu s, wall s, start, end, peak RSS MB) per logged process."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        _pid, cpu, wall, start, end, rss, argv = line.split("\t", 6)
        match = SCRIPT.search(argv)
        name = match.group(1) if match else ("snakemake" if "snakemake" in argv else argv[:40])
        rows.append((name, float(cpu), float(wall), float(start), float(end), int(rss) / 1024))
    return rows


def main() -> None:
    """Print the table of :func:`read` for the log named on the command line."""
    rows = sorted(read(Path(sys.argv[1])), key=lambda r: r[3])
    t0 = min((r[3] for r in rows), default=0.0)
    print(f"{'process':<24} {'CPU s':>7} {'wall s':>7} {'start':>7} {'end':>7} {'RSS MB':>7}")
    for name, cpu, wall, start, end, rss in rows:
        print(f"{name:<24} {cpu:7.2f} {wall:7.2f} {start - t0:7.2f} {end - t0:7.2f} {rss:7.0f}")
    print(f"{'total':<24} {sum(r[1] for r in rows):7.2f}")


if __name__ == "__main__":
    main()
