"""Peak memory of the fit stage for one large protein, against the ``mem_mb`` the fit rule declares.

One synthetic protein with ``n`` features observed in all 12 runs (two conditions, six biological
samples each; the worst case: no missing cell) is fitted as the fit rule does it (mixed model,
one contrast, contrast table, protein abundance model) in a fresh child process, single-threaded.
Peak memory is the child's peak RSS (``VmHWM`` of ``/proc/self/status``, which includes the
interpreter, the imports and the table; ``ru_maxrss`` is printed as well). The declared memory is
:func:`pepmix.resources.fit_mem_mb` for that protein (what the fit rule declares at its first
attempt, the file-size term aside).

    .venv/bin/python benchmarks/bench_memory.py               # 300, 1,000 and 3,000 features
    .venv/bin/python benchmarks/bench_memory.py --features 3000

Exit status 1 if a peak exceeds the declared memory.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

N_RUNS = 12

CHILD = r"""
import json, resource, sys, time
import numpy as np, pandas as pd
from pepmix.model.abundance import protein_abundance
from pepmix.model.design import build_run_design, model_spec_from_config
from pepmix.model.fit import fit_proteins

n_features, n_runs, robust = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(1)
runs = [f"r{i:02d}" for i in range(n_runs)]
sheet = pd.DataFrame({
    "run": runs,
    "condition": ["A" if i % 2 == 0 else "B" for i in range(n_runs)],
    "bioreplicate": [f"s{i:02d}" for i in range(n_runs)],
    "batch": "b1",
})
f = np.repeat(np.arange(n_features), n_runs)
r = np.tile(np.arange(n_runs), n_features)
y = 22 + rng.normal(0, 1, n_features)[f] + rng.normal(0, 0.3, n_runs)[r]
y = y + 0.5 * (r % 2) + rng.normal(0, 0.25, f.size)
table = pd.DataFrame({
    "protein": pd.Categorical(["P1"] * f.size),
    "feature": pd.Categorical([f"F{i:05d}" for i in f]),
    "run": pd.Categorical(np.asarray(runs)[r], categories=runs),
    "y": y,
})
start = time.perf_counter()
spec = model_spec_from_config({}, sheet)
design = build_run_design(sheet, spec)
fit = fit_proteins(table, design, [("B - A", "B", "A")], robust=robust)
fit.variance_components()
fit.contrast_table(["B"], ["A"])
fit.fixed_effects()
protein_abundance(table, runs, encoded=fit.encoded)
seconds = time.perf_counter() - start
hwm = 0
with open("/proc/self/status") as fh:
    for line in fh:
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
print(json.dumps({
    "n_features": n_features,
    "n_observations": int(f.size),
    "peak_mb": hwm / 1024,
    "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "seconds": seconds,
}))
"""


def measure(n_features: int, robust: str = "huber") -> dict[str, float]:
    """Run one fit (``model.robust``: ``robust``) in a child process; return its peak memory
    and time."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(n_features), str(N_RUNS), robust],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    """Measure, compare with the declared memory, print a table."""
    from pepmix.resources import fit_mem_mb

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, nargs="+", default=[300, 1000, 3000])
    parser.add_argument(
        "--robust", choices=["huber", "none"], default="huber", help="model.robust (default huber)"
    )
    args = parser.parse_args()
    start = time.perf_counter()
    failed = False
    header = "features  observations  peak MB  ru_maxrss MB  declared MB  fit s"
    sys.stdout.write(header + "\n")
    for n in args.features:
        res = measure(n, args.robust)
        declared = fit_mem_mb(int(res["n_features"]), int(res["n_observations"]))
        failed |= res["peak_mb"] > declared
        sys.stdout.write(
            f"{n:8d}  {int(res['n_observations']):12d}  {res['peak_mb']:7.0f}  "
            f"{res['ru_maxrss_mb']:12.0f}  {declared:11d}  {res['seconds']:5.1f}"
            f"{'  PEAK > DECLARED' if res['peak_mb'] > declared else ''}\n"
        )
    sys.stdout.write(f"total {time.perf_counter() - start:.0f} s\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
