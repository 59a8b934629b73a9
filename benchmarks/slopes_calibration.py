"""Calibration of the average condition effects with heterogeneous effects across batches:
no heterogeneity term vs compound symmetry vs the unstructured random slope ``condition|batch``.

Null data: all condition means equal, but each batch shifts every condition mean by a batch
effect (SD 0.4) plus a condition-specific deviation with its own SD per condition
(``--sd``, default ``0, 0.1, 0.6`` for A, B, C: B responds like A in every batch, C differs by
batch); features SD 0.8, samples 0.2, residual 0.2, 10 % of cells missing at random. Fits
``(1|feature) + (1|sample)`` plus ``(1|batch)`` (none), ``(1|batch) + (1|batch:condition)``
(compound symmetry, cs) or ``(condition|batch)`` (us) and reports, per pairwise contrast, the
fraction of proteins with p < 0.05: ``default`` (df cap + moderation), ``nomod`` (df cap only),
``satt`` (lmerTest's Satterthwaite test, neither); with two conditions also the share of
``heterogeneity_p`` < 0.05 (the LRT of ``(condition|batch)`` against ``(1|batch)``).

Run: ``PYTHONPATH=src python benchmarks/slopes_calibration.py [--proteins 200] [--seeds 2]``.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import pandas as pd

from pepmix.inference.differential import InferenceOptions, differential_table
from pepmix.model.design import ModelSpec, build_run_design
from pepmix.model.fit import fit_proteins

log = logging.getLogger("slopes_calibration")
MODELS = {
    "none": ("feature", "sample", "batch"),
    "cs": ("feature", "sample", "batch", "batch:condition"),
    "us": ("feature", "sample", "condition|batch"),
}


def simulate(
    n_prot: int, n_batch: int, n_rep: int, sds: list[float], seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Null proteins (module docstring); 5 features each."""
    rng = np.random.default_rng(seed)
    conds = "ABCDE"[: len(sds)]
    runs = [
        (f"b{b}_{c}{s}", f"b{b}", c) for b in range(n_batch) for c in conds for s in range(n_rep)
    ]
    sheet = pd.DataFrame(runs, columns=["run", "batch", "condition"])
    sheet["bioreplicate"] = sheet["run"]
    sheet = sheet.sort_values(["condition", "run"], kind="stable").reset_index(drop=True)
    b_code = pd.factorize(sheet["batch"])[0]
    c_code = np.array([conds.index(c) for c in sheet["condition"]])
    frames = []
    for p in range(n_prot):
        dev = rng.normal(0, 1, (n_batch, len(sds))) * np.asarray(sds)[None, :]
        run_eff = rng.normal(0, 0.4, n_batch)[b_code] + dev[b_code, c_code]
        run_eff = run_eff + rng.normal(0, 0.2, len(sheet))
        y = 20 + rng.normal(0, 0.8, 5)[:, None] + run_eff[None, :]
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


def rejection(table: pd.DataFrame, sheet: pd.DataFrame, model: str) -> pd.DataFrame:
    """Share of p < 0.05 per contrast and inference (module docstring)."""
    design = build_run_design(sheet, ModelSpec(random=MODELS[model]))
    conds = design.conditions
    pairs = [(f"{b} - {a}", b, a) for i, a in enumerate(conds) for b in conds[i + 1 :]]
    fit = fit_proteins(table, design, pairs)
    stats = fit.contrast_table([p[1] for p in pairs], [p[2] for p in pairs])
    rows = []
    for label, opts in (
        ("default", InferenceOptions()),
        ("nomod", InferenceOptions(moderation=False)),
        ("satt", InferenceOptions(moderation=False, df_cap=False)),
    ):
        res = differential_table(stats, [p[0] for p in pairs], opts)
        for name, part in res.groupby("contrast", sort=False):
            p = part["pvalue"].dropna()
            rows.append(
                {
                    "model": model,
                    "inference": label,
                    "contrast": name,
                    "reject": float(np.mean(p < 0.05)),
                    "n": int(p.size),
                }
            )
    if model == "us":  # the LRT of heterogeneity (two conditions only: Stram & Lee mixture)
        p = fit.variance_components()["heterogeneity_p"].dropna()
        if p.size:
            rows.append(
                {
                    "model": model,
                    "inference": "lrt",
                    "contrast": "heterogeneity",
                    "reject": float(np.mean(p < 0.05)),
                    "n": int(p.size),
                }
            )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--proteins", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--replicates", type=int, default=2)
    parser.add_argument("--sd", type=float, nargs="+", default=[0.0, 0.1, 0.6])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    frames = []
    for seed in range(1, args.seeds + 1):
        table, sheet = simulate(args.proteins, args.batches, args.replicates, args.sd, seed)
        for model in MODELS:
            frames.append(rejection(table, sheet, model).assign(seed=seed))
    frame = pd.concat(frames, ignore_index=True)
    summary = frame.groupby(["model", "inference", "contrast"], sort=False)["reject"].mean()
    print(summary.unstack("contrast").to_string(float_format=lambda v: f"{100 * v:.1f} %"))


if __name__ == "__main__":
    main()
