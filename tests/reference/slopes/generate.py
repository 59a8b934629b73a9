"""Seeded multi-batch data sets for the ``(condition|batch)`` random-slope model.

``y = mu_c + u_feature + u_sample + a_batch + s_batch,c + e``: per batch a random deviation of
the reference mean (``a``) and of each condition effect (``s``) with an unstructured covariance
(correlated, with unequal variances); some data sets have no heterogeneity (singular fits), one
misses a whole batch-by-condition cell, about 5 % of the observations are missing at random.
2 or 3 conditions, 3-5 batches, 2-3 samples (one run each) per batch and condition, 4-6
features. Writes ``datasets.csv`` (``dataset, feature, run, sample, batch, condition, y``);
``make_reference.R`` fits them with lme4/lmerTest.

Run: ``python tests/reference/slopes/generate.py`` (from the repository root).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
#: (seed, conditions, batches, samples per cell, features, SD of the effects, drop a cell)
CASES = [
    (11, 2, 4, 3, 5, 0.5, False),
    (12, 2, 3, 2, 4, 0.4, False),
    (13, 2, 5, 2, 5, 0.6, True),
    (14, 2, 4, 2, 5, 0.0, False),
    (15, 3, 4, 2, 5, 0.5, False),
    (16, 3, 5, 2, 4, 0.7, True),
    (17, 3, 3, 3, 5, 0.0, False),
    (18, 3, 4, 2, 6, 0.4, False),
]
MEANS = (20.0, 20.6, 19.5)


def one(seed: int, n_cond: int, n_batch: int, n_rep: int, n_feat: int, sd: float, drop: bool):
    rng = np.random.default_rng(seed)
    conds = "ABC"[:n_cond]
    feat_eff = rng.normal(0, 0.8, n_feat)
    # unstructured covariance of (a_b, s_b2, ..., s_bK): intercept SD 0.5, effect SDs growing
    sds = np.array([0.5] + [sd * (1.0 + 0.5 * j) for j in range(n_cond - 1)])
    cor = np.full((n_cond, n_cond), -0.4) + 1.4 * np.eye(n_cond)
    cov = np.outer(sds, sds) * cor
    rows = []
    for b in range(n_batch):
        dev = rng.multivariate_normal(np.zeros(n_cond), cov, method="eigh")
        for c, cond in enumerate(conds):
            if drop and b == n_batch - 1 and c == n_cond - 1:
                continue
            shift = dev[0] + (dev[c] if c else 0.0)
            for s in range(n_rep):
                sample = f"b{b + 1}_{cond}{s + 1}"
                u_s = rng.normal(0, 0.25)
                for f in range(n_feat):
                    if rng.random() < 0.05:
                        continue
                    y = MEANS[c] + feat_eff[f] + shift + u_s + rng.normal(0, 0.2)
                    rows.append(
                        {
                            "dataset": f"s{seed}",
                            "feature": f"f{f + 1}",
                            "run": sample,
                            "sample": sample,
                            "batch": f"b{b + 1}",
                            "condition": cond,
                            "y": round(float(y), 6),
                        }
                    )
    return pd.DataFrame(rows)


def main() -> None:
    frame = pd.concat([one(*case) for case in CASES], ignore_index=True)
    frame.to_csv(HERE / "datasets.csv", index=False)


if __name__ == "__main__":
    main()
