"""Fit time of ``model.robust: huber`` against ``none`` (same data, same process).

Data: ``tests/unit/simulate_da.py`` (two conditions of ``n_per`` samples, 15 % changing), seed 21.
The two methods are timed alternately, ``reps`` times each, and the best time of each is reported
with their ratio (the machine may be shared: alternating exposes both to the same load). Peak
memory: run once per method in separate processes (``/usr/bin/time -v``), ``methods`` one of
``none`` or ``huber``.

Usage: ``PYTHONPATH=src:. python benchmarks/robust_cost.py [n_prot] [n_per] [reps] [methods]``
"""

from __future__ import annotations

import sys
import time

from pepmix.model.design import ModelSpec, build_run_design
from pepmix.model.fit import fit_proteins
from tests.unit.simulate_da import simulate


def main() -> None:
    n_prot = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    n_per = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    methods = sys.argv[4].split(",") if len(sys.argv) > 4 else ["none", "huber"]
    contrasts = [("B - A", "B", "A")]
    # warm-up (numba compile)
    table, sheet, _ = simulate(n_prot=50, n_per=n_per, seed=1)
    design = build_run_design(sheet, ModelSpec(random=("feature", "sample")))
    for method in methods:
        fit_proteins(table, design, contrasts, robust=method)
    table, sheet, _ = simulate(n_prot=n_prot, n_per=n_per, seed=21, frac_de=0.15)
    design = build_run_design(sheet, ModelSpec(random=("feature", "sample")))
    best = {m: float("inf") for m in methods}
    for _ in range(reps):
        for method in methods:
            t0 = time.perf_counter()
            fit_proteins(table, design, contrasts, robust=method)
            best[method] = min(best[method], time.perf_counter() - t0)
    line = ", ".join(f"{m} {t:.2f} s" for m, t in best.items())
    ratio = f", ratio {best['huber'] / best['none']:.2f}" if len(best) == 2 else ""
    print(f"{n_prot} proteins x {2 * n_per} runs, best of {reps}: {line}{ratio}")


if __name__ == "__main__":
    main()
