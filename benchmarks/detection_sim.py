"""MAR vs the detection model (issue 14) on data simulated with a known probit detection curve.

Model (log2), protein ``p``, feature ``f``, run ``r`` (one sample per run, conditions A and B)::

    y = mu_p + u_f + delta_p [B] + v_r + e,  mu_p ~ N(mean, 1.5), u ~ N(0, 1),
    v ~ N(0, U(0.2, 0.5)), e ~ N(0, U(0.2, 0.3)),  delta_p = +-U(1, 3) for 20% of proteins,
    delta_p = -U(3, 5) with mean + 1 for 5% (many of them never observed in B)
    P(observed | y) = Phi(b1 (y - y50))

Features per protein uniform on 1..20. ``y50`` is set so that the missing fraction is about the
target; proteins whose cells are all missing are dropped (as the ingest would). Both models use
the true curve's slope class only through the data: the curve is estimated by
:func:`pepmix.model.detection.fit_detection_curve` (condition means; pooled vs per run by BIC).

Reported per slope and missing fraction: bias and RMSE of the log2 FC (changing proteins, and
the absent-from-one-condition ones separately), p < 0.05 rate of null proteins and its KS
distance to uniform, 95% CI coverage, for the MAR model (only estimable proteins) and the
detection model (all proteins), after the usual moderation (:mod:`pepmix.inference`).

Usage::

    python benchmarks/detection_sim.py [--proteins 400 --runs 8 --seeds 1]
    # speed: MAR fit vs detection fit in the same run (slope 1, 30 % missing), e.g. 2,000 x 12
    python benchmarks/detection_sim.py --speed --proteins 2000 --runs 12
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import pandas as pd
from scipy import stats

from pepmix.inference.differential import differential_table
from pepmix.model.design import ModelSpec, build_run_design
from pepmix.model.detection import feature_matrix, fit_detection_curve
from pepmix.model.fit import fit_proteins
from pepmix.model.mnar import detection_contrasts

log = logging.getLogger("detection_sim")
T = TypeVar("T")


def simulate(
    n_proteins: int,
    n_runs: int,
    slope: float,
    missing: float,
    seed: int,
    prior_sd: float | None = None,
    max_features: int = 20,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """Long table (observed cells), sample sheet and true log2 FC (B - A) per protein.

    ``prior_sd`` (default None: the mixture of the module docstring) draws every protein's
    log2 FC from the detection model's condition prior instead: condition deviations
    ``N(0, prior_sd^2)``, i.e. ``delta ~ N(0, 2 prior_sd^2)`` (the setting in which credible
    intervals have their nominal coverage). Features per protein are uniform on
    1..``max_features`` (default 20).
    """
    table, sheet, truth, _ = simulate_curve(
        n_proteins, n_runs, slope, missing, seed, prior_sd=prior_sd, max_features=max_features
    )
    return table, sheet, truth


def simulate_curve(
    n_proteins: int,
    n_runs: int,
    slope: float,
    missing: float,
    seed: int,
    shift: float = 0.0,
    prior_sd: float | None = None,
    max_features: int = 20,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, float]:
    """:func:`simulate` plus the true 50 % point (on the table's scale, first-half runs).

    ``shift`` (default 0: one pooled curve) moves the 50 % point of the second half of the runs
    by that many log2 units (a batch effect on detection); the first half's ``y50`` is solved
    for the target missing fraction before the shift.
    """
    rng = np.random.default_rng(seed)
    cond = np.array(["A", "B"] * (n_runs // 2))
    runs = [f"r{i:02d}" for i in range(n_runs)]
    sheet = pd.DataFrame({"run": runs, "condition": cond, "bioreplicate": runs, "batch": "b1"})
    rows = []
    truth = {}
    for p in range(n_proteins):
        m = int(rng.integers(1, max_features + 1))
        kind = rng.random()
        if prior_sd is not None:
            delta, level = float(rng.normal(0.0, np.sqrt(2.0) * prior_sd)), 0.0
        elif kind < 0.05:  # drops out of B: large decrease
            delta, level = -float(rng.uniform(3, 5)), 1.0
        elif kind < 0.25:
            delta, level = float(rng.choice([-1, 1]) * rng.uniform(1, 3)), 0.0
        else:
            delta, level = 0.0, 0.0
        mu = level + rng.normal(0.0, 1.5) + rng.normal(0, 1, m)[:, None]
        y = mu + delta * (cond == "B") + rng.normal(0, rng.uniform(0.2, 0.5), n_runs)
        y = y + rng.normal(0, rng.uniform(0.2, 0.3), (m, n_runs))
        truth[f"P{p:04d}"] = delta
        rows.append((f"P{p:04d}", y))
    all_y = np.concatenate([y.ravel() for _, y in rows])
    y50 = _solve_y50(all_y, slope, missing)
    y50_run = np.where(np.arange(n_runs) < n_runs // 2, y50, y50 + shift)
    out = []
    for name, y in rows:
        seen = rng.random(y.shape) < stats.norm.cdf(slope * (y - y50_run))
        f_idx, r_idx = np.nonzero(seen)
        out.append(
            pd.DataFrame(
                {
                    "protein": name,
                    "feature": [f"{name}_f{i}" for i in f_idx],
                    "run": [runs[r] for r in r_idx],
                    "y": y[f_idx, r_idx] + 20.0,
                }
            )
        )
    return pd.concat(out, ignore_index=True), sheet, pd.Series(truth), y50 + 20.0


def _solve_y50(y: np.ndarray, slope: float, missing: float) -> float:
    lo, hi = float(y.min()) - 10, float(y.max()) + 10
    for _ in range(60):
        mid = (lo + hi) / 2
        frac = 1.0 - float(np.mean(stats.norm.cdf(slope * (y - mid))))
        lo, hi = (mid, hi) if frac < missing else (lo, mid)
    return (lo + hi) / 2


def evaluate(table: pd.DataFrame, truth: pd.Series, label: str) -> dict[str, float]:
    """Bias/RMSE (changing), absent-protein bias/RMSE, null p<0.05 rate, KS, CI coverage."""
    t = table.loc[table["pvalue"].notna()].copy()
    t["truth"] = truth.reindex(t["protein"]).to_numpy()
    err = t["log2fc"] - t["truth"]
    changing = t["truth"] != 0
    null = ~changing
    absent = t["detail"].str.contains("never observed", na=False)
    covered = (t["ci_low"] <= t["truth"]) & (t["truth"] <= t["ci_high"])
    return {
        "model": label,
        "tested": len(t),
        "bias_de": float((np.sign(t["truth"]) * err)[changing & ~absent].mean()),
        "rmse_de": float(np.sqrt((err[changing & ~absent] ** 2).mean())),
        "n_absent": int(absent.sum()),
        "rmse_absent": float(np.sqrt((err[absent] ** 2).mean())) if absent.any() else np.nan,
        "null_p05": float((t.loc[null, "pvalue"] < 0.05).mean()),
        "null_ks": float(stats.kstest(t.loc[null, "pvalue"], "uniform").statistic),
        "coverage": float(covered.mean()),
        "coverage_absent": float(covered[absent].mean()) if absent.any() else np.nan,
        "coverage_present": float(covered[~absent].mean()),
        "null_ks_absent": (
            float(stats.kstest(t.loc[null & absent, "pvalue"], "uniform").statistic)
            if (null & absent).any()
            else np.nan
        ),
        "null_p05_absent": (
            float((t.loc[null & absent, "pvalue"] < 0.05).mean())
            if (null & absent).any()
            else np.nan
        ),
        "n_sig": int((t["adj_pvalue"] < 0.05).sum()),
        "fdp": float(
            ((t["adj_pvalue"] < 0.05) & null).sum() / max((t["adj_pvalue"] < 0.05).sum(), 1)
        ),
    }


def run_case(
    n_proteins: int,
    n_runs: int,
    slope: float,
    missing: float,
    seed: int,
    prior_sd: float | None = None,
) -> list[dict]:
    """Fit both models on one simulated data set; return their rows of metrics.

    ``prior_sd`` (default None: the mixture) as in :func:`simulate`; the detection model then
    uses that prior SD (the generating one) instead of estimating it.
    """
    table, sheet, truth = simulate(n_proteins, n_runs, slope, missing, seed, prior_sd)
    design = build_run_design(sheet, ModelSpec(random=("feature", "sample")))
    start = time.perf_counter()
    mar = fit_proteins(table, design, contrasts=[("B-A", "B", "A")])
    mar_seconds = time.perf_counter() - start
    mar_table = differential_table(mar.contrast_table(["B"], ["A"]), ["B-A"])
    start = time.perf_counter()
    conditions = list(sheet.set_index("run").loc[design.runs, "condition"])
    curve = fit_detection_curve(
        feature_matrix(table, design.runs), design.runs, conditions=conditions
    )
    stats_det = detection_contrasts(mar, curve, ["B"], ["A"], prior_sd=prior_sd)
    det_table = differential_table(stats_det, ["B-A"])
    seconds = time.perf_counter() - start
    frac = 1.0 - len(table) / (table.groupby("protein")["feature"].nunique().sum() * n_runs)
    rows = [evaluate(mar_table, truth, "mar"), evaluate(det_table, truth, "detection")]
    for row in rows:
        row.update(
            slope=slope,
            target_missing=missing,
            missing=round(frac, 3),
            seed=seed,
            slope_hat=float(np.median(curve.b1)),
            grouping=curve.grouping,
        )
    rows[0]["seconds"] = mar_seconds
    rows[1]["seconds"] = seconds
    return rows


def speed(n_proteins: int, n_runs: int, seed: int = 1) -> dict[str, float]:
    """Seconds (wall and CPU) of the MAR fit, the detection curve and the detection fit.

    The detection fit is :func:`pepmix.model.mnar.detection_contrasts` given the curve (the MNAR
    minimisation, started at the MAR fit); ``ratio_fit`` = detection fit / MAR fit and
    ``ratio_stage`` = (MAR fit + curve + detection fit) / MAR fit, the model stage with
    ``missing: detection`` against the MAR model stage.
    """
    table, sheet, _ = simulate(n_proteins, n_runs, 1.0, 0.3, seed)
    design = build_run_design(sheet, ModelSpec(random=("feature", "sample")))
    row: dict[str, float] = {"proteins": n_proteins, "runs": n_runs}
    steps = {}

    def timed(name: str, fun: Callable[[], T]) -> T:
        wall, cpu = time.perf_counter(), time.process_time()
        out = fun()
        row[f"{name}_s"] = time.perf_counter() - wall
        row[f"{name}_cpu_s"] = time.process_time() - cpu
        return out

    mar = timed("mar", lambda: fit_proteins(table, design, contrasts=[("B-A", "B", "A")]))
    steps["curve"] = timed(
        "curve", lambda: fit_detection_curve(feature_matrix(table, design.runs), design.runs)
    )
    timed("detection", lambda: detection_contrasts(mar, steps["curve"], ["B"], ["A"]))
    for kind in ("", "_cpu"):
        mar_s = row[f"mar{kind}_s"]
        row[f"ratio_fit{kind}"] = row[f"detection{kind}_s"] / mar_s
        row[f"ratio_stage{kind}"] = (
            mar_s + row[f"curve{kind}_s"] + row[f"detection{kind}_s"]
        ) / mar_s
    return row


def main() -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proteins", type=int, default=400)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--slopes", default="0.5,1.0,1.5")
    parser.add_argument("--missing", default="0.2,0.4")
    parser.add_argument(
        "--prior-sd",
        type=float,
        default=None,
        help="draw every log2 FC from the condition prior with this SD and use it in the fit",
    )
    parser.add_argument(
        "--speed", action="store_true", help="time MAR vs detection fit only (slope 1, 30 %%)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.speed:
        result = pd.Series(speed(args.proteins, args.runs))
        print(result.round(3).to_string())
        return
    rows = []
    for slope in [float(s) for s in args.slopes.split(",")]:
        for miss in [float(m) for m in args.missing.split(",")]:
            for seed in range(1, args.seeds + 1):
                rows += run_case(args.proteins, args.runs, slope, miss, seed, args.prior_sd)
    out = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(out.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
