"""Seeded multi-batch data sets with heterogeneity of the condition effect across batches.

``y = mu_c + u_feature + u_sample + u_batch + u_batch:condition + e``; 2 conditions (A, B),
3-4 batches, 2-3 samples per batch and condition (one run each), 4-6 features, about 5% of the
cells missing at random. Writes ``datasets.csv`` (columns ``dataset, feature, run, sample,
batch, condition, y``); ``fit_lme4.R`` fits them with lme4/lmerTest.

Run: ``python tests/reference/hetero/generate.py`` (from the repository root).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
#: (seed, batches, samples per cell, features, SD of the batch:condition effect)
CASES = [
    (1, 3, 3, 5, 0.5),
    (2, 4, 2, 4, 0.4),
    (3, 4, 3, 6, 0.6),
    (4, 3, 2, 5, 0.3),
    (5, 4, 3, 5, 0.8),
    (6, 3, 3, 4, 0.0),
]


def one(seed: int, n_batch: int, n_rep: int, n_feat: int, sd_bc: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    feat_eff = rng.normal(0, 0.8, n_feat)
    for b in range(n_batch):
        u_b = rng.normal(0, 0.5)
        for c, mu in (("A", 20.0), ("B", 20.7)):
            u_bc = rng.normal(0, sd_bc)
            for s in range(n_rep):
                sample = f"b{b + 1}_{c}{s + 1}"
                u_s = rng.normal(0, 0.25)
                for f in range(n_feat):
                    if rng.random() < 0.05:
                        continue
                    y = mu + feat_eff[f] + u_b + u_bc + u_s + rng.normal(0, 0.2)
                    rows.append(
                        {
                            "dataset": f"h{seed}",
                            "feature": f"f{f + 1}",
                            "run": sample,
                            "sample": sample,
                            "batch": f"b{b + 1}",
                            "condition": c,
                            "y": round(float(y), 6),
                        }
                    )
    return pd.DataFrame(rows)


def main() -> None:
    frame = pd.concat([one(*case) for case in CASES], ignore_index=True)
    frame.to_csv(HERE / "datasets.csv", index=False)


if __name__ == "__main__":
    main()
