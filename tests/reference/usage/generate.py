"""Seeded data sets for the peptide-usage (feature x condition) reference.

Writes ``datasets.csv.gz``: one row per observation with ``dataset, feature, sample, condition,
run, y``. Each data set has 2-4 conditions, 2-6 features, 3-4 samples per condition (one run per
sample), about 12 % missing cells, and a usage standard deviation of 0, 0.4 or 1 (true variance of
the feature x condition interaction). Run from the repository root:
``python tests/reference/usage/generate.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    rng = np.random.default_rng(20261206)
    rows = []
    for k in range(40):
        n_cond = int(rng.integers(2, 5))
        n_feat = int(rng.integers(2, 7))
        per_cond = int(rng.integers(3, 5))
        sd_usage = [0.0, 0.4, 1.0][k % 3]
        cond_eff = rng.normal(0, 1, n_cond)
        feat_eff = rng.normal(0, 1, n_feat)
        usage = rng.normal(0, sd_usage, (n_feat, n_cond))
        samp_eff = rng.normal(0, 0.3, n_cond * per_cond)
        for c in range(n_cond):
            for s in range(per_cond):
                sample = c * per_cond + s
                for f in range(n_feat):
                    if rng.random() < 0.12:
                        continue
                    y = 20 + cond_eff[c] + feat_eff[f] + usage[f, c] + samp_eff[sample]
                    rows.append(
                        (
                            k,
                            f"f{f}",
                            f"s{sample:02d}",
                            f"c{c}",
                            f"r{sample:02d}",
                            y + rng.normal(0, 0.25),
                        )
                    )
    out = pd.DataFrame(rows, columns=["dataset", "feature", "sample", "condition", "run", "y"])
    out["y"] = out["y"].round(10)
    out.to_csv(Path(__file__).with_name("datasets.csv.gz"), index=False)


if __name__ == "__main__":
    main()
