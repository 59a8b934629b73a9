"""Robust (Huber) vs ordinary REML fit on seeded simulations (issue 10, item 4).

Data: ``tests/unit/simulate_da.py`` (two conditions, ``n_per`` samples each). Outliers: a
fraction of features (peptides) is shifted by U(2, 5) log2 units in all runs of one randomly
chosen condition. Reports the log2FC error of the proteins with an outlier feature, the FDP and
power at BH-adjusted p < 0.05, null calibration (KS test of p-values) and the runtime ratio.

Usage: ``PYTHONPATH=src:. python benchmarks/robust_eval.py [n_prot] [n_per]``
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd
from scipy import stats

from pepmix.inference.differential import differential_table
from pepmix.model.design import ModelSpec, build_run_design
from pepmix.model.fit import fit_proteins
from tests.unit.simulate_da import simulate


def add_outliers(
    table: pd.DataFrame, sheet: pd.DataFrame, frac: float, seed: int
) -> tuple[pd.DataFrame, pd.Index]:
    """Shift a fraction ``frac`` of features by U(2, 5) in all runs of one condition."""
    rng = np.random.default_rng(seed)
    keys = table[["protein", "feature"]].drop_duplicates()
    hit = keys[rng.random(len(keys)) < frac].copy()
    hit["shift"] = rng.uniform(2.0, 5.0, len(hit)) * rng.choice([-1.0, 1.0], len(hit))
    hit["cond"] = rng.choice(["A", "B"], len(hit))
    cond = table["run"].map(sheet.set_index("run")["condition"])
    merged = table.assign(cond=cond).merge(hit, on=["protein", "feature"], how="left")
    affected = merged["cond_y"].notna() & (merged["cond_x"] == merged["cond_y"])
    out = table.copy()
    out["y"] = table["y"].to_numpy() + np.where(affected, merged["shift"].fillna(0.0), 0.0)
    return out, pd.Index(hit["protein"].unique())


def run(table, sheet, truth_lfc, robust):
    design = build_run_design(sheet, ModelSpec(random=("feature", "sample")))
    t0 = time.perf_counter()
    fit = fit_proteins(table, design, [("B - A", "B", "A")], robust=robust)
    elapsed = time.perf_counter() - t0
    st = fit.contrast_table(["B"], ["A"])
    res = differential_table(st, ["B - A"]).set_index("protein")
    return res, elapsed


def main() -> None:
    n_prot = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    n_per = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    # warm-up (numba compile)
    t, s, _ = simulate(n_prot=50, n_per=n_per, seed=1)
    run(t, s, None, "huber")
    print(f"{n_prot} proteins x {2 * n_per} runs")
    # null calibration
    for seed in (11, 12):
        table, sheet, _ = simulate(n_prot=n_prot, n_per=n_per, seed=seed, frac_de=0.0)
        for robust in ("none", "huber"):
            res, el = run(table, sheet, None, robust)
            p = res["pvalue"].dropna().to_numpy()
            print(
                f"null seed {seed} {robust:5s}: KS p {stats.kstest(p, 'uniform').pvalue:.3f}, "
                f"P(p<0.05) {np.mean(p < 0.05):.4f}, "
                f"adj<0.05 {np.mean(res['adj_pvalue'] < 0.05):.4f}"
                f", {el:.2f} s"
            )
    # with changes and outliers
    for seed in (21, 22, 23):
        table, sheet, truth = simulate(n_prot=n_prot, n_per=n_per, seed=seed, frac_de=0.15)
        # true lfc is not returned by simulate: use the change indicator for FDP, and for the
        # error compare with the estimate on the clean data
        dirty, hit = add_outliers(table, sheet, 0.03, seed + 100)
        clean_res, _ = run(table, sheet, None, "none")
        times = {}
        for robust in ("none", "huber"):
            res, el = run(dirty, sheet, None, robust)
            times[robust] = el
            called = res.index[res["adj_pvalue"] < 0.05]
            fdp = float((~truth[called]).sum()) / max(len(called), 1)
            power = float(truth[called].sum()) / truth.sum()
            err = (res.loc[hit, "log2fc"] - clean_res.loc[hit, "log2fc"]).abs()
            err_all = (res["log2fc"] - clean_res["log2fc"]).abs()
            nf = res.loc[hit, "n_features"]
            by_nf = ", ".join(
                f"{name} {err[mask].median():.3f} (n={int(mask.sum())})"
                for name, mask in (("2 feat", nf == 2), ("3", nf == 3), (">=4", nf >= 4))
            )
            false_hit = float((~truth[called] & called.isin(hit)).sum())
            print(
                f"seed {seed} {robust:5s}: affected proteins {len(hit)}, |lfc - clean lfc| "
                f"median {err.median():.3f} mean {err.mean():.3f} p90 {err.quantile(0.9):.3f}; "
                f"all proteins mean {err_all.mean():.3f}; FDP {fdp:.4f} power {power:.3f} "
                f"({len(called)} called; false calls with an outlier feature {false_hit:.0f}), "
                f"{el:.2f} s\n    median error by features: {by_nf}"
            )
        print(f"runtime ratio huber/none: {times['huber'] / times['none']:.2f}")
    # runtime: best of three, same data (clean, 15 % changing)
    table, sheet, _ = simulate(n_prot=n_prot, n_per=n_per, seed=21, frac_de=0.15)
    best = {}
    for robust in ("none", "huber"):
        best[robust] = min(run(table, sheet, None, robust)[1] for _ in range(3))
    print(
        f"runtime best of 3: none {best['none']:.2f} s, huber {best['huber']:.2f} s, "
        f"ratio {best['huber'] / best['none']:.2f}"
    )


if __name__ == "__main__":
    main()
