"""CPU seconds of one Huber fit (``fit_proteins(..., robust="huber")``), for before/after pairs.

Data: ``tests/unit/simulate_da.py`` (two conditions of ``--per`` samples, 15 % changing, seed
21; as ``robust_cost.py``), or ``--long FILE`` (a generic long Parquet table: ``protein,
peptide, charge, run, intensity``, e.g. the cohort of ``simulate.py cohort``) with ``--sheet``
(its ``samples.tsv``): log2 intensities, median-normalised per run, features = precursors,
the proteins of shard ``--shard K`` of ``--shards N`` (proteins in sorted order, every N-th).
A warm-up fit of a small simulation compiles the numba kernels first. Reports
``time.process_time`` of each of ``--reps`` fits (CPU seconds: the machine may be shared) and
the fit's log line (protein refits, rounds). Run it once per checkout with
``PYTHONPATH=<checkout>/src:.`` and ``OMP_NUM_THREADS=1``, alternating checkouts.

Usage::

    PYTHONPATH=src:. OMP_NUM_THREADS=1 python benchmarks/robust_cpu.py --proteins 2000 --per 100
    PYTHONPATH=src:. OMP_NUM_THREADS=1 python benchmarks/robust_cpu.py \\
        --long /tmp/cohort/full/long.parquet --sheet /tmp/cohort/full/samples.tsv --shards 2
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import pandas as pd

from pepmix.model.design import ModelSpec, build_run_design
from pepmix.model.fit import fit_proteins
from tests.unit.simulate_da import simulate

log = logging.getLogger("robust_cpu")


def _long_table(path: str, shard: int, shards: int) -> pd.DataFrame:
    """The precursors of every ``shards``-th protein (from ``shard``), log2, median-normalised."""
    raw = pd.read_parquet(path, columns=["protein", "peptide", "charge", "run", "intensity"])
    raw = raw[np.isfinite(raw["intensity"]) & (raw["intensity"] > 0)]
    proteins = np.sort(raw["protein"].unique())
    keep = set(proteins[shard::shards].tolist())
    y = np.log2(raw["intensity"].to_numpy())
    y = y - raw.assign(y=y).groupby("run")["y"].transform("median").to_numpy() + np.median(y)
    table = pd.DataFrame(
        {
            "protein": raw["protein"].to_numpy(),
            "feature": raw["peptide"].astype(str) + "_" + raw["charge"].astype(str),
            "run": raw["run"].to_numpy(),
            "y": y,
        }
    )
    return table[table["protein"].isin(keep)].reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proteins", type=int, default=2000)
    parser.add_argument("--per", type=int, default=6, help="samples per condition")
    parser.add_argument("--long", help="generic long Parquet table instead of the simulation")
    parser.add_argument("--sheet", help="sample sheet of --long (run, condition, bioreplicate)")
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--shard", type=int, default=0)
    parser.add_argument("--reps", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("pepmix.model.fit").setLevel(logging.WARNING)
    contrasts = [("B - A", "B", "A")]
    warm, warm_sheet, _ = simulate(n_prot=40, n_per=3, seed=1)
    warm_design = build_run_design(warm_sheet, ModelSpec(random=("feature", "sample")))
    fit_proteins(warm, warm_design, contrasts, robust="huber")
    if args.long:
        table = _long_table(args.long, args.shard, args.shards)
        sheet = pd.read_csv(args.sheet, sep="\t")
        if "batch" not in sheet:
            sheet["batch"] = pd.NA
        label = f"{table['protein'].nunique()} proteins x {sheet.shape[0]} runs ({args.long})"
    else:
        table, sheet, _ = simulate(n_prot=args.proteins, n_per=args.per, seed=21, frac_de=0.15)
        label = f"{args.proteins} proteins x {2 * args.per} runs (simulate_da, seed 21)"
    design = build_run_design(sheet, ModelSpec(random=("feature", "sample")))
    times = []
    for _ in range(args.reps):
        t0 = time.process_time()
        fit_proteins(table, design, contrasts, robust="huber")
        times.append(time.process_time() - t0)
    log.info("%s: CPU s %s", label, " ".join(f"{t:.2f}" for t in times))


if __name__ == "__main__":
    main()
