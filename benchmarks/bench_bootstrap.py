"""Cost of the parametric bootstraps (issue 13's speed goal: B = 200 for 1,000 proteins x 12
runs <= 60 s on 2 cores) against the model stage, measured in the same run.

Data: :mod:`simulate` (``--proteins`` x ``--runs``, default 1,000 x 12, ~30% missing, 10%
changing), model ``(1|feature) + (1|sample)``, Huber fit (the default). Steps:

1. **model stage**: ``fit_proteins`` as the fit rule calls it (one process, all proteins);
2. **terms**: the bootstrap of the variance tests (:func:`pepmix.model.variance_tests.fit_tests`
   with ``bootstrap = B``: every protein and term with LRT > 0), as the fit jobs run it;
3. **contrast**: the bootstrap of the contrast ``B - A``
   (:func:`pepmix.model.bootstrap_contrasts.bootstrap_contrasts`), as rule ``bootstrap`` runs it.

Steps 2-3 run on ``--workers`` processes (default 2), each on half of the proteins (two shards,
or the two processes of rule ``bootstrap``); each worker fits its half untimed, waits for the
others, then times its bootstrap. BLAS threads are pinned to 1. Prints wall and CPU seconds per
worker: on a loaded machine the largest worker's CPU time is what the wall time would be on 2
idle cores. Ratios are CPU over the model stage's CPU. Last line: JSON.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_bootstrap.py \\
        [--proteins 1000 --runs 12 --boot 200 --workers 2]
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

from pepmix.model.bootstrap_contrasts import bootstrap_contrasts  # noqa: E402
from pepmix.model.design import build_run_design, model_spec_from_config  # noqa: E402
from pepmix.model.fit import ModelFit, fit_proteins  # noqa: E402
from pepmix.model.variance_tests import VarianceTestOptions, fit_tests  # noqa: E402

CONTRAST = [("B - A", "B", "A")]


def _fit(table: pd.DataFrame, sheet: pd.DataFrame) -> ModelFit:
    design = build_run_design(sheet, model_spec_from_config({}, sheet))
    return fit_proteins(table, design, robust="huber")


def _worker(table: pd.DataFrame, sheet: pd.DataFrame, n_boot: int, barrier: Any, out: Any) -> None:
    """Fit one half (untimed); then time the term and the contrast bootstraps."""
    fit = _fit(table, sheet)
    bootstrap_contrasts(fit, CONTRAST, 2, proteins=fit.proteins[:5])  # warm-up, untimed
    barrier.wait()
    start, cpu = time.perf_counter(), time.process_time()
    fit_tests(fit, VarianceTestOptions(bootstrap=n_boot))
    terms = (time.perf_counter() - start, time.process_time() - cpu)
    barrier.wait()
    start, cpu = time.perf_counter(), time.process_time()
    boot = bootstrap_contrasts(fit, CONTRAST, n_boot)
    contrast = (time.perf_counter() - start, time.process_time() - cpu)
    out.put((terms, contrast, int(boot["p_boot"].notna().sum())))


def _bootstraps(
    table: pd.DataFrame, sheet: pd.DataFrame, n_boot: int, workers: int
) -> dict[str, float]:
    """Wall time of each bootstrap over ``workers`` processes and the largest worker CPU time."""
    proteins = np.asarray(sorted(table["protein"].unique()))
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(workers + 1)
    out = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker, args=(table[table["protein"].isin(h)], sheet, n_boot, barrier, out)
        )
        for h in np.array_split(proteins, workers)
    ]
    for proc in procs:
        proc.start()
    barrier.wait()
    start = time.perf_counter()
    barrier.wait()
    wall_terms = time.perf_counter() - start
    start = time.perf_counter()
    results = [out.get() for _ in procs]
    wall_contrast = time.perf_counter() - start
    for proc in procs:
        proc.join()
    for name, k in (("terms", 0), ("contrast", 1)):
        text = ", ".join(f"{r[k][0]:.1f} wall / {r[k][1]:.1f} CPU" for r in results)
        print(f"  {name} per worker: {text} s")
    return {
        "terms_wall_s": wall_terms,
        "terms_cpu_max_worker_s": max(r[0][1] for r in results),
        "terms_cpu_total_s": sum(r[0][1] for r in results),
        "contrast_wall_s": wall_contrast,
        "contrast_cpu_max_worker_s": max(r[1][1] for r in results),
        "contrast_cpu_total_s": sum(r[1][1] for r in results),
        "contrast_bootstrapped": sum(r[2] for r in results),
    }


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
    _fit(table[table["protein"].isin(table["protein"].unique()[:20])], sheet)  # warm-up
    start, cpu = time.perf_counter(), time.process_time()
    _fit(table, sheet)
    t_model, c_model = time.perf_counter() - start, time.process_time() - cpu
    print(f"model stage (huber)  {t_model:8.2f} s wall, {c_model:.2f} s CPU")
    res = _bootstraps(table, sheet, args.boot, args.workers)
    for name in ("terms", "contrast"):
        wall, cpu_max = res[f"{name}_wall_s"], res[f"{name}_cpu_max_worker_s"]
        print(
            f"bootstrap {name:8s} B={args.boot}, {args.workers} workers: {wall:8.2f} s wall, "
            f"{cpu_max:.2f} s CPU (largest worker), {res[f'{name}_cpu_total_s']:.2f} s CPU total;"
            f" ratio to model stage (CPU, largest worker) {cpu_max / c_model:5.1f}"
            " (goal: <= 60 s on 2 cores at 1,000 x 12, B=200)"
        )
    record = {
        "proteins": args.proteins,
        "runs": args.runs,
        "boot": args.boot,
        "workers": args.workers,
        "model_s": round(t_model, 3),
        "model_cpu_s": round(c_model, 3),
        **{k: round(v, 3) for k, v in res.items()},
    }
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
