"""Detection-curve estimation alone (issue 14) on ``detection_sim.py``'s generator.

For each true slope and seed: simulate (pooled probit curve ``Phi(b1 (y - y50))``, condition
changes, protein-level sample effects), fit :func:`pepmix.model.detection.fit_detection_curve`
and record the fitted slope, 50 % point and intercept of the chosen and of the pooled curve, and
the grouping chosen. The batch variant shifts the curve's 50 % point by ``--shift`` log2 units
in the second half of the runs (batch ``b2``), so the per-batch curve is the truth.

Usage::

    python benchmarks/detection_curve_sim.py [--proteins 400 --runs 8 --seeds 4 --shift 0]
"""

from __future__ import annotations

import argparse
import inspect
import logging
import time

import numpy as np
import pandas as pd
from detection_sim import simulate_curve

from pepmix.model.design import ModelSpec, build_run_design
from pepmix.model.detection import feature_matrix, fit_detection_curve

log = logging.getLogger("detection_curve_sim")


def run_case(
    n_proteins: int,
    n_runs: int,
    slope: float,
    missing: float,
    seed: int,
    shift: float = 0.0,
    use_conditions: bool = True,
) -> dict[str, object]:
    """Fit the curve on one simulated data set; return the truth and the estimates."""
    table, sheet, _, y50 = simulate_curve(n_proteins, n_runs, slope, missing, seed, shift=shift)
    half = n_runs // 2
    batches = ["b1"] * half + ["b2"] * (n_runs - half)
    sheet = sheet.assign(batch=batches)
    design = build_run_design(sheet, ModelSpec(random=("feature", "sample")))
    matrix = feature_matrix(table, design.runs)
    kwargs: dict[str, object] = {"batches": batches}
    if use_conditions and "conditions" in inspect.signature(fit_detection_curve).parameters:
        kwargs["conditions"] = list(np.asarray(sheet["condition"]))
    start = time.perf_counter()
    curve = fit_detection_curve(matrix, design.runs, **kwargs)  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    cand = curve.candidates.set_index("grouping")
    b0, b1 = curve.per_run()
    return {
        "slope": slope,
        "shift": shift,
        "seed": seed,
        "missing": round(float(np.isnan(matrix).mean()), 3),
        "grouping": curve.grouping,
        "by_aic": str(cand["aic"].idxmin()),
        "by_bic": str(cand["bic"].idxmin()),
        "slope_hat": float(np.mean(b1)),
        "y50_err": float(np.mean(-b0[:half] / b1[:half]) - y50),
        "y50_shift_hat": float(np.mean(-b0[half:] / b1[half:]) - np.mean(-b0[:half] / b1[:half])),
        "b0_err": float(np.mean(b0[:half]) + slope * y50),
        "lr_run": float(cand.loc["run", "lr_stat"]) if "run" in cand.index else np.nan,
        "seconds": round(seconds, 1),
    }


def main() -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proteins", type=int, default=400)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--slopes", default="0.5,1.0,1.5")
    parser.add_argument("--missing", type=float, default=0.3)
    parser.add_argument("--shift", type=float, default=0.0)
    parser.add_argument("--no-conditions", action="store_true", help="one mean per feature")
    parser.add_argument("--out", default=None, help="CSV of the per-data-set rows")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = [
        run_case(
            args.proteins,
            args.runs,
            float(s),
            args.missing,
            seed,
            args.shift,
            not args.no_conditions,
        )
        for s in args.slopes.split(",")
        for seed in range(1, args.seeds + 1)
    ]
    out = pd.DataFrame(rows)
    if args.out:
        out.to_csv(args.out, index=False)
    pd.set_option("display.width", 200)
    print(out.round(3).to_string(index=False))
    summary = out.groupby("slope").agg(
        slope_hat=("slope_hat", "mean"),
        slope_se=("slope_hat", lambda v: v.std(ddof=1) / np.sqrt(len(v))),
        y50_err=("y50_err", "mean"),
        b0_err=("b0_err", "mean"),
        aic_pooled=("by_aic", lambda g: float(np.mean(g == "pooled"))),
        aic_batch=("by_aic", lambda g: float(np.mean(g == "batch"))),
        aic_run=("by_aic", lambda g: float(np.mean(g == "run"))),
        bic_pooled=("by_bic", lambda g: float(np.mean(g == "pooled"))),
        bic_batch=("by_bic", lambda g: float(np.mean(g == "batch"))),
        bic_run=("by_bic", lambda g: float(np.mean(g == "run"))),
    )
    print(summary.round(3).to_string())


if __name__ == "__main__":
    main()
