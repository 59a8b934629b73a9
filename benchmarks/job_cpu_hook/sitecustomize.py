"""Measurement hook (benchmarks only, never on the workflow's path): CPU seconds per process.

With this directory first on ``PYTHONPATH`` and ``JOB_CPU_LOG`` set, every Python process
(the ``snakemake`` main process and each rule's script job, which inherit the environment)
appends one line to ``JOB_CPU_LOG`` at exit: pid, user + system CPU seconds of the process
(``getrusage(RUSAGE_SELF)``, exact, unlike the psutil samples of Snakemake's ``benchmark:``
files), wall seconds, start and end (Unix time), peak RSS (kB) and its command line.
Summarise with ``python benchmarks/job_cpu.py <log>``.
"""

import atexit
import os
import resource
import sys
import time

_LOG = os.environ.get("JOB_CPU_LOG")
_START = time.time()


def _record() -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    end = time.time()
    fields = [
        str(os.getpid()),
        f"{usage.ru_utime + usage.ru_stime:.3f}",
        f"{end - _START:.3f}",
        f"{_START:.3f}",
        f"{end:.3f}",
        str(usage.ru_maxrss),
        " ".join(sys.argv)[:300].replace("\t", " "),
    ]
    with open(str(_LOG), "a", encoding="utf-8") as handle:
        handle.write("\t".join(fields) + "\n")


if _LOG:
    atexit.register(_record)
