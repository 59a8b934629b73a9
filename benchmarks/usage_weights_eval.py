"""The peptide-usage test at the default fit's weights (``peptide_usage_weights: default_fit``)
against the refit with re-iterated Huber weights (``usage_fit``): calibration, power, CPU.

Data (the simulator of ``tests/unit/test_usage_refit.py``, extended): two conditions x
``--per`` samples, 1-6 features per protein, feature SD 0.5, sample SD 0.3, residual SD 0.25,
15 % missing cells; a feature x condition (usage) effect of SD ``sd`` for the share ``--share``
of proteins (the others null). ``outliers``: in 30 % of proteins one feature has two
observations shifted by 2-4 log2 up or down (no usage: Huber weights matter). Both schemes
start from the same default fit (Huber, feature majority rule on, as the workflow); printed per
scenario and scheme: tested proteins, share of p < 0.05 and < 0.01 among null proteins, the KS p
of their p-values below 1 against the uniform (:func:`ks_null`), calls at BH 5 %, true calls,
observed FDP, power, true calls at an observed FDP of 5 % in the p-value ranking
(:func:`tp_at_fdp`) and the CPU seconds of the usage part (``time.process_time``).

    PYTHONPATH=src .venv/bin/python benchmarks/usage_weights_eval.py --proteins 2000
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

import numpy as np
import pandas as pd
from scipy import stats

from pepmix.inference.fdr import bh_adjust
from pepmix.model import robust
from pepmix.model.design import ModelSpec, build_run_design
from pepmix.model.fit import fit_proteins
from pepmix.model.usage import gather_usage_table, usage_shard_table

log = logging.getLogger("usage_weights_eval")

SCENARIOS = {
    "null": (0.0, False),
    "null+outliers": (0.0, True),
    "sd0.15": (0.15, False),
    "sd0.3": (0.3, False),
    "sd0.3+outliers": (0.3, True),
}


def sheet(per: int) -> pd.DataFrame:
    """Two conditions x ``per`` samples."""
    runs = [f"S{i:02d}" for i in range(2 * per)]
    return pd.DataFrame(
        {"run": runs, "condition": np.repeat(["A", "B"], per), "bioreplicate": runs, "batch": "b"}
    )


def simulate(
    n_prot: int, per: int, sd: float, share: float, outliers: bool, seed: int
) -> tuple[pd.DataFrame, pd.Series]:
    """Long table and per-protein truth (True: usage effect present)."""
    rng = np.random.default_rng(seed)
    n_s = 2 * per
    cond = np.repeat([0, 1], per)
    frames, truth = [], {}
    for p in range(n_prot):
        n_feat = int(rng.integers(1, 7))
        f_idx, s_idx = (a.ravel() for a in np.meshgrid(np.arange(n_feat), np.arange(n_s)))
        has = sd > 0 and rng.random() < share
        usage = rng.normal(0, sd, (n_feat, 2)) if has else np.zeros((n_feat, 2))
        y = (
            rng.normal(0, 0.5, n_feat)[f_idx]
            + rng.normal(0, 0.3, n_s)[s_idx]
            + usage[f_idx, cond[s_idx]]
            + rng.normal(0, 0.25, f_idx.size)
        )
        if outliers and n_feat >= 2 and rng.random() < 0.3:
            rows = np.flatnonzero(f_idx == 0)
            hit = rng.choice(rows, size=2, replace=False)
            y[hit] += rng.choice([-1.0, 1.0], 2) * rng.uniform(2.0, 4.0, 2)
        keep = rng.random(y.size) > 0.15
        name = f"P{p:05d}"
        truth[name] = has
        frames.append(
            pd.DataFrame(
                {
                    "protein": name,
                    "feature": [f"P{p}_F{i}" for i in f_idx[keep]],
                    "run": [f"S{i:02d}" for i in s_idx[keep]],
                    "y": 20.0 + y[keep],
                }
            )
        )
    return pd.concat(frames, ignore_index=True), pd.Series(truth)


def ks_null(p: np.ndarray) -> float:
    """KS p of null p-values against their distribution under the 50:50 mixture: P(p = 1) =
    1/2 and uniform on (0, 1) with density 1 below; so the p-values below 1 are compared with
    the uniform on (0, 1) (only their shape; their share is the atom's complement)."""
    below = p[p < 1.0]
    if below.size < 10:
        return float("nan")
    return float(stats.kstest(below, "uniform").pvalue)


def score(rows: pd.DataFrame, truth: pd.Series) -> dict[str, float]:
    """Calibration on the null proteins and calls at BH 5 %."""
    tested = rows.dropna(subset=["pvalue"]).set_index("protein")
    true = truth.reindex(tested.index).astype(bool).to_numpy()
    p = tested["pvalue"].to_numpy()
    adj = bh_adjust(p)
    calls = adj < 0.05
    null_p = p[~true]
    out = {
        "tested": float(p.size),
        "null_n": float(null_p.size),
        "p<0.05": float(np.mean(null_p < 0.05)) if null_p.size else np.nan,
        "p<0.01": float(np.mean(null_p < 0.01)) if null_p.size else np.nan,
        "ks_p": ks_null(null_p),
        "calls": float(calls.sum()),
        "true_calls": float((calls & true).sum()),
        "fdp": float((calls & ~true).sum() / max(calls.sum(), 1)),
        "power": float((calls & true).sum() / max(true.sum(), 1)) if true.any() else np.nan,
        "tp@fdp5": tp_at_fdp(p, true),
    }
    return out


def tp_at_fdp(p: np.ndarray, true: np.ndarray, level: float = 0.05) -> float:
    """True proteins among the longest head of the p-value ranking whose observed FDP is at
    most ``level`` (ranking power, independent of the p-values' calibration)."""
    order = np.argsort(p, kind="stable")
    hits = np.cumsum(true[order])
    fdp = 1.0 - hits / np.arange(1, p.size + 1)
    ok = np.flatnonzero(fdp <= level)
    return float(hits[ok[-1]]) if ok.size else 0.0


def run(args: argparse.Namespace) -> pd.DataFrame:
    """Every scenario x seed x scheme."""
    spec = ModelSpec(random=("feature", "sample"))
    out = []
    for name, (sd, outl) in SCENARIOS.items():
        if args.only and name not in args.only:
            continue
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            table, truth = simulate(args.proteins, args.per, sd, args.share, outl, seed)
            design = build_run_design(sheet(args.per), spec)
            fit = fit_proteins(table, design, robust="huber", feature_majority=True)
            comp = fit.variance_components()
            tabs = {}
            for scheme in args.schemes:
                t0 = time.process_time()
                rounds = robust.MAX_ITER
                if scheme.startswith("usage_fit_"):  # usage_fit with fewer robust rounds
                    robust.MAX_ITER = int(scheme.rsplit("_", 1)[1])
                try:
                    rows = usage_shard_table(
                        fit, comp, table, sheet(args.per), robust="huber",
                        weights="default_fit" if scheme == "default_fit" else "usage_fit",
                    )  # fmt: skip
                finally:
                    robust.MAX_ITER = rounds
                cpu = time.process_time() - t0
                rows = gather_usage_table([rows])
                tabs[scheme] = rows
                res = score(rows, truth)
                res.update(scenario=name, seed=seed, scheme=scheme, cpu=cpu)
                out.append(res)
            a = tabs["usage_fit"].set_index("protein")
            b = tabs["default_fit"].set_index("protein").reindex(a.index)
            ca, cb = a["adj_pvalue"] < 0.05, b["adj_pvalue"] < 0.05
            log.info(
                "%s seed %d: calls usage_fit %d, default_fit %d, both %d; LRT corr %.4f",
                name, seed, ca.sum(), cb.sum(), (ca & cb).sum(),
                a["lrt"].corr(b["lrt"]),
            )  # fmt: skip
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    """Print the table (means over seeds)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proteins", type=int, default=2000)
    parser.add_argument("--per", type=int, default=6)
    parser.add_argument("--share", type=float, default=0.3)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument(
        "--schemes",
        nargs="+",
        default=["usage_fit", "default_fit"],
        help="usage_fit, default_fit, or usage_fit_<k>: usage_fit with at most k robust rounds",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("pepmix").setLevel(logging.WARNING)
    frame = run(args)
    cols = ["tested", "null_n", "p<0.05", "p<0.01", "ks_p", "calls", "true_calls", "fdp", "power",
            "tp@fdp5"]  # fmt: skip
    summary = frame.groupby(["scenario", "scheme"], sort=False)[[*cols, "cpu"]].mean()
    with pd.option_context("display.width", 200, "display.precision", 4):
        log.info("\n%s", summary.to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
