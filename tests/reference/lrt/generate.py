"""Seeded protein data sets for the variance-test reference (``fit_lme4.R``).

Each data set is one protein: ``y = mu + condition + u_feature + v_sample + e`` with two
conditions of ``n_per`` samples (one run each), ``n_feat`` features, about 20% of cells missing
at random, feature SD, sample SD and residual SD drawn from small grids (zeros included, so
that some tests are on the boundary). Writes ``datasets.csv.gz`` (``dataset, feature, sample,
condition, y``). Run from the repository root:

    python tests/reference/lrt/generate.py && Rscript tests/reference/lrt/fit_lme4.R
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parent / "datasets.csv.gz"


def main() -> None:
    """Write the data sets."""
    rng = np.random.default_rng(20261206)
    frames = []
    for k in range(60):
        n_per = (3, 4, 6, 10)[k % 4]
        n_feat = int(rng.integers(2, 9))
        sd_feat = float(rng.choice([0.0, 0.3, 1.0]))
        sd_sample = float(rng.choice([0.0, 0.15, 0.4]))
        sd_res = 0.25
        samples = [f"S{i:02d}" for i in range(2 * n_per)]
        cond = np.repeat(["A", "B"], n_per)
        u = rng.normal(0.0, sd_feat, n_feat)
        v = rng.normal(0.0, sd_sample, 2 * n_per)
        delta = rng.choice([0.0, 1.0])
        f_idx, s_idx = np.meshgrid(np.arange(n_feat), np.arange(2 * n_per), indexing="ij")
        f_idx, s_idx = f_idx.ravel(), s_idx.ravel()
        y = 20.0 + delta * (cond[s_idx] == "B") + u[f_idx] + v[s_idx]
        y = y + rng.normal(0.0, sd_res, y.size)
        keep = rng.random(y.size) > 0.2
        frames.append(
            pd.DataFrame(
                {
                    "dataset": k,
                    "feature": [f"F{i}" for i in f_idx[keep]],
                    "sample": np.asarray(samples)[s_idx[keep]],
                    "condition": cond[s_idx[keep]],
                    "y": np.round(y[keep], 10),
                }
            )
        )
    pd.concat(frames, ignore_index=True).to_csv(OUT, index=False)


if __name__ == "__main__":
    main()
