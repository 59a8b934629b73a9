"""Seeded data with observation weights for the lme4 ``weights=`` reference (``fit_lme4.R``).

Run from the repository root: ``PYTHONPATH=src:. python tests/reference/robust/generate.py``.
Writes ``weighted_data.csv`` (protein, feature, run, condition, sample, y, w).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.unit.engine_data import make_design, make_table


def main() -> None:
    sheet, design = make_design(3, 3)
    table = make_table(design, sheet, 15, seed=21, max_features=6, missing=0.2)
    rng = np.random.default_rng(22)
    w = rng.uniform(0.1, 1.0, len(table))
    w[rng.random(len(table)) < 0.3] = 1.0
    info = sheet.set_index("run")
    out = table.assign(
        condition=table["run"].map(info["condition"]),
        sample=table["run"].map(info["bioreplicate"]),
        w=w,
    )
    out = out.loc[out.groupby("protein")["feature"].transform("nunique") >= 2]
    path = Path(__file__).with_name("weighted_data.csv")
    out[["protein", "feature", "run", "condition", "sample", "y", "w"]].to_csv(
        path, index=False, float_format="%.17g"
    )


if __name__ == "__main__":
    main()
