"""Calibration of the average condition effect with heterogeneity across batches.

Null data: no average effect (``B - A`` = 0), but the effect varies between batches
(``batch:condition`` SD ``sd_bc``). Fits ``(1|feature) + (1|sample) + (1|batch)`` with and
without ``(1|batch:condition)`` and reports the fraction of proteins with p < 0.05 (the test of
the average effect should reject 5 %): ``default`` (df cap + moderation), ``nomod`` (df cap
only), ``satt`` (lmerTest's Satterthwaite test, neither).

Run: ``PYTHONPATH=src python benchmarks/hetero_calibration.py [--proteins 300] [--seeds 3]``.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import pandas as pd

from pepmix.inference.differential import InferenceOptions, differential_table
from pepmix.model.design import ModelSpec, build_run_design
from pepmix.model.fit import fit_proteins

log = logging.getLogger("hetero_calibration")


def simulate(
    n_prot: int, n_batch: int, n_rep: int, n_feat: int, sd_bc: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Null proteins: feature SD 0.8, sample 0.2, batch 0.4, batch:condition ``sd_bc``,
    residual 0.2; 10 % of cells missing at random."""
    rng = np.random.default_rng(seed)
    runs = [
        (f"b{b}_{c}{s}", f"b{b}", c)
        for b in range(n_batch)
        for c in ("A", "B")
        for s in range(n_rep)
    ]
    sheet = pd.DataFrame(runs, columns=["run", "batch", "condition"])
    sheet["bioreplicate"] = sheet["run"]
    sheet = sheet.sort_values(["condition", "run"], kind="stable").reset_index(drop=True)
    n_run = len(sheet)
    b_code = pd.factorize(sheet["batch"])[0]
    bc_code = pd.factorize(sheet["batch"] + sheet["condition"])[0]
    frames = []
    for p in range(n_prot):
        run_eff = (
            rng.normal(0, 0.4, n_batch)[b_code]
            + rng.normal(0, sd_bc, 2 * n_batch)[bc_code]
            + rng.normal(0, 0.2, n_run)
        )
        y = 20 + rng.normal(0, 0.8, n_feat)[:, None] + run_eff[None, :]
        y = y + rng.normal(0, 0.2, y.shape)
        keep = rng.random(y.shape) > 0.1
        f_idx, r_idx = np.nonzero(keep)
        frames.append(
            pd.DataFrame(
                {
                    "protein": f"P{p:04d}",
                    "feature": [f"P{p:04d}_f{f}" for f in f_idx],
                    "run": sheet["run"].to_numpy()[r_idx],
                    "y": y[keep],
                }
            )
        )
    return pd.concat(frames, ignore_index=True), sheet


def rejection(table: pd.DataFrame, sheet: pd.DataFrame, random: tuple[str, ...]) -> list[float]:
    """Fraction of tested proteins with p < 0.05: default inference, without moderation, and
    without moderation and df cap (lmerTest's Satterthwaite test)."""
    design = build_run_design(sheet, ModelSpec(random=random))
    fit = fit_proteins(table, design, [("B - A", "B", "A")])
    stats = fit.contrast_table(["B"], ["A"])
    out = []
    for opts in (
        InferenceOptions(),
        InferenceOptions(moderation=False),
        InferenceOptions(moderation=False, df_cap=False),
    ):
        p = differential_table(stats, ["B - A"], opts)["pvalue"].dropna()
        out.append(float(np.mean(p < 0.05)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--proteins", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--replicates", type=int, default=3)
    parser.add_argument("--sd-bc", type=float, default=0.3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    without = ("feature", "sample", "batch")
    with_term = (*without, "batch:condition")
    rows = []
    for seed in range(1, args.seeds + 1):
        table, sheet = simulate(args.proteins, args.batches, args.replicates, 5, args.sd_bc, seed)
        rows.append([seed, *rejection(table, sheet, without), *rejection(table, sheet, with_term)])
    frame = pd.DataFrame(
        rows,
        columns=[
            "seed",
            *(f"{m}_{o}" for m in ("without", "with") for o in ("default", "nomod", "satt")),
        ],
    )
    frame = frame.astype(float)
    frame.loc["mean"] = frame.mean()
    print(frame.to_string())


if __name__ == "__main__":
    main()
