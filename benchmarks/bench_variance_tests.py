"""Cost of the variance-component tests (:mod:`pepmix.model.variance_tests`) against the model
stage, measured in the same run.

Data: :mod:`simulate` (``--proteins`` x ``--runs``, default 1,000 x 12, ~30% missing). Steps,
each timed by wall clock:

1. **model stage**: ``fit_proteins`` as the fit rule calls it (``model.robust: huber``);
2. **LRTs**: :func:`pepmix.model.variance_tests.fit_tests` without bootstrap (every protein,
   every random term), plus (``peptide_usage: true``, the default) the peptide-usage refit and
   its LRT (:func:`pepmix.model.usage.usage_shard_table`, as the fit job calls it); goal: both
   together <= 2x the model stage;
3. **bootstrap**: ``B = --boot`` (default 200) replicates of every protein and term, on
   ``--workers`` processes (default 2) each doing half of the proteins, as two shards of the
   workflow would (the fit and the LRTs of each half are done before the timer starts);
   goal <= 60 s for 1,000 proteins x 12 runs on 2 cores.

Threads of BLAS are pinned to 1 per process. Prints wall and CPU times (CPU time is what the
wall time would be on otherwise idle cores; the shared benchmark machine is often loaded), the
ratios and one JSON line.

    .venv/bin/python benchmarks/bench_variance_tests.py [--proteins 1000 --runs 12 --boot 200]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import multiprocessing as mp  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from simulate import simulate  # noqa: E402

from pepmix.model.design import build_run_design, model_spec_from_config  # noqa: E402
from pepmix.model.fit import ModelFit, fit_proteins  # noqa: E402
from pepmix.model.usage import usage_shard_table  # noqa: E402
from pepmix.model.variance_tests import VarianceTestOptions, fit_tests  # noqa: E402

log = logging.getLogger("bench_variance_tests")


def _fit(table: pd.DataFrame, sheet: pd.DataFrame) -> ModelFit:
    design = build_run_design(sheet, model_spec_from_config({}, sheet))
    return fit_proteins(table, design, robust="huber")


def _boot_half(
    table: pd.DataFrame, sheet: pd.DataFrame, n_boot: int, barrier: Any, out: Any
) -> None:
    """Fit one half (untimed), wait for the others, then time its bootstrap alone."""
    fit = _fit(table, sheet)
    fit_tests(fit, VarianceTestOptions())  # warm-up of the compiled kernels, untimed
    barrier.wait()
    start, cpu = time.perf_counter(), time.process_time()
    fit_tests(fit, VarianceTestOptions(bootstrap=n_boot))
    out.put((time.perf_counter() - start, time.process_time() - cpu))


def _bootstrap(
    table: pd.DataFrame, sheet: pd.DataFrame, n_boot: int, workers: int
) -> tuple[float, float]:
    """Wall time of the bootstrap of all proteins split over ``workers`` processes, and the
    largest CPU time of one worker (what the wall time would be on idle cores)."""
    proteins = np.asarray(sorted(table["protein"].unique()))
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(workers + 1)
    out = ctx.Queue()
    procs = [
        ctx.Process(
            target=_boot_half, args=(table[table["protein"].isin(h)], sheet, n_boot, barrier, out)
        )
        for h in np.array_split(proteins, workers)
    ]
    for proc in procs:
        proc.start()
    barrier.wait()
    start = time.perf_counter()
    per_worker = [out.get() for _ in procs]
    wall = time.perf_counter() - start
    for proc in procs:
        proc.join()
    text = ", ".join(f"{w:.1f} wall / {c:.1f} CPU" for w, c in per_worker)
    print(f"  per worker: {text} s")
    return wall, max(c for _, c in per_worker)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print times, ratios and a JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--proteins", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--boot", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    table, sheet = simulate(n_proteins=args.proteins, n_runs=args.runs, seed=args.seed)
    small = table[table["protein"].isin(table["protein"].unique()[:20])]
    warm = _fit(small, sheet)  # warm-up of the compiled kernels, untimed
    usage_shard_table(warm, warm.variance_components(), small, sheet, robust="huber")
    start, cpu = time.perf_counter(), time.process_time()
    fit = _fit(table, sheet)
    t_model, c_model = time.perf_counter() - start, time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    tests = fit_tests(fit, VarianceTestOptions())
    t_lrt, c_lrt = time.perf_counter() - start, time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    usage = usage_shard_table(fit, fit.variance_components(), table, sheet, robust="huber")
    t_use, c_use = time.perf_counter() - start, time.process_time() - cpu
    lrt_cols = [c for c in tests.columns if c.startswith("lrt_")]
    n_positive = int(sum((tests[c] > 0).sum() for c in lrt_cols))
    print(f"model stage (huber)        {t_model:8.2f} s wall, {c_model:.2f} s CPU")
    print(
        f"LRTs, all terms            {t_lrt:8.2f} s wall, {c_lrt:.2f} s CPU; "
        f"ratio {t_lrt / t_model:5.2f} wall, {c_lrt / c_model:5.2f} CPU"
    )
    print(
        f"peptide usage refit + LRT  {t_use:8.2f} s wall, {c_use:.2f} s CPU; "
        f"ratio {t_use / t_model:5.2f} wall, {c_use / c_model:5.2f} CPU; "
        f"{int((usage['lrt'] > 0).sum())} positive LRTs"
    )
    print(
        f"all LRTs with usage        ratio {(t_lrt + t_use) / t_model:5.2f} wall, "
        f"{(c_lrt + c_use) / c_model:5.2f} CPU (goal <= 2)"
    )
    t_boot = cpu_boot = float("nan")
    if args.boot > 0:
        t_boot, cpu_boot = _bootstrap(table, sheet, args.boot, args.workers)
        print(
            f"bootstrap B={args.boot}, {args.workers} workers {t_boot:8.2f} s wall "
            "(goal <= 60 s at 1,000 x 12, B=200); "
            f"ratio to model stage {t_boot / t_model:5.1f}"
        )
    print(
        json.dumps(
            {
                "proteins": args.proteins,
                "runs": args.runs,
                "boot": args.boot,
                "workers": args.workers,
                "model_s": round(t_model, 3),
                "lrt_s": round(t_lrt, 3),
                "lrt_ratio": round(t_lrt / t_model, 3),
                "model_cpu_s": round(c_model, 3),
                "lrt_cpu_s": round(c_lrt, 3),
                "usage_s": round(t_use, 3),
                "usage_cpu_s": round(c_use, 3),
                "lrt_usage_cpu_ratio": round((c_lrt + c_use) / c_model, 3),
                "boot_s": round(t_boot, 3),
                "boot_cpu_max_worker_s": round(cpu_boot, 3),
                "positive_lrts": n_positive,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
