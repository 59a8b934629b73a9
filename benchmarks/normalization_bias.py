"""Bias of run normalisation when many proteins change in one direction (issue 10, item 2).

Seeded simulation, log2 scale, per protein ``p``, feature ``f``, run ``r``:
``y = mu_p + u_f + s_r + delta_p [r in B] + v_pr + e_fr`` with ``mu_p ~ N(22, 2)``, feature
offsets ``u_f ~ N(0, 1)``, true run shifts ``s_r ~ N(0, 0.3)``, protein-by-run noise
``v_pr ~ N(0, 0.1)`` (technical replicates), residual ``e_fr ~ N(0, 0.2)``, 20 % of cells missing
at random, runs alternating between conditions A and B. A share ``c`` of the proteins changes in
one direction, ``delta_p ~ U(0.5, 2)``; features per protein ``1 + Poisson(4)`` for unchanged
proteins and ``1 + Poisson(4 * k)`` for changing ones (``k = 1``: as many peptides; ``k = 2``:
changing proteins are the abundant ones with twice as many, as spike-ins and pull-down targets
are).

Bias = median over unchanged proteins of the estimated log2 fold change B - A (per protein the
median over features of mean_B - mean_A of the normalised values; the truth is 0).

    .venv/bin/python benchmarks/normalization_bias.py [--proteins 2000 --runs 12 --seeds 1 2 3]
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import pandas as pd

from pepmix.normalization import normalize


def simulate(
    n_proteins: int, n_runs: int, changing: float, peptide_ratio: float, seed: int
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Long table (``protein, feature, peptide, run, intensity, batch``), changed flags, shifts."""
    rng = np.random.default_rng(seed)
    changed = rng.random(n_proteins) < changing
    n_feat = 1 + rng.poisson(np.where(changed, 4.0 * peptide_ratio, 4.0))
    delta = np.where(changed, rng.uniform(0.5, 2.0, n_proteins), 0.0)
    run_shift = rng.normal(0, 0.3, n_runs)
    in_b = np.arange(n_runs) % 2 == 1
    prot = np.repeat(np.arange(n_proteins), n_feat)
    n_rows = prot.size
    level = rng.normal(22, 2, n_proteins)[prot] + rng.normal(0, 1, n_rows)
    y = (
        level[:, None]
        + run_shift[None, :]
        + delta[prot][:, None] * in_b[None, :]
        + rng.normal(0, 0.1, (n_proteins, n_runs))[prot]
        + rng.normal(0, 0.2, (n_rows, n_runs))
    )
    observed = rng.random(y.shape) >= 0.2
    rows, cols = np.nonzero(observed)
    table = pd.DataFrame(
        {
            "protein": pd.Categorical([f"P{p:05d}" for p in prot[rows]]),
            "feature": pd.Categorical([f"F{r:06d}" for r in rows]),
            "run": pd.Categorical([f"R{c:03d}" for c in cols]),
            "intensity": 2.0 ** y[rows, cols],
            "batch": "",
        }
    )
    table["peptide"] = table["feature"]
    return table, changed, run_shift


def unchanged_bias(features: pd.DataFrame, changed: np.ndarray, n_runs: int) -> float:
    """Median estimated log2 FC (B - A) of the unchanged proteins."""
    run_idx = features["run"].astype(str).str[1:].astype(int).to_numpy()
    cond = np.where(run_idx % 2 == 1, "B", "A")
    means = features.assign(cond=cond).groupby(["protein", "feature", "cond"], observed=True)["y"]
    wide = means.mean().unstack("cond").dropna()
    fc = (wide["B"] - wide["A"]).groupby(level="protein", observed=True).median()
    keep = ~changed[fc.index.str[1:].astype(int)]
    return float(fc[keep].median())


VARIANTS = (
    ("median_ratio", {"method": "median_ratio"}),
    ("protein_median (median)", {"method": "protein_median"}),
    ("protein_median (mode)", {"method": "protein_median", "location": "mode"}),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proteins", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    rows = []
    for ratio in (1.0, 2.0):
        for share in (0.0, 0.2, 0.4, 0.6):
            for seed in args.seeds:
                table, changed, _ = simulate(args.proteins, args.runs, share, ratio, seed)
                for label, options in VARIANTS:
                    start = time.perf_counter()
                    features, runs = normalize(table, **options)
                    rows.append(
                        {
                            "peptides changing/unchanged": ratio,
                            "changing %": round(100 * share),
                            "method": label,
                            "seed": seed,
                            "bias": unchanged_bias(features, changed, args.runs),
                            "doubtful runs": int(runs["doubtful"].sum()),
                            "seconds": time.perf_counter() - start,
                        }
                    )
    result = pd.DataFrame(rows)
    summary = result.groupby(
        ["peptides changing/unchanged", "changing %", "method"], sort=False
    ).agg(
        bias=("bias", "mean"),
        bias_sd=("bias", "std"),
        doubtful=("doubtful runs", "mean"),
        seconds=("seconds", "mean"),
    )
    with pd.option_context("display.width", 200, "display.precision", 3):
        print(summary.to_string())


if __name__ == "__main__":
    main()
