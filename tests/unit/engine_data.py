"""Small random proteins for engine tests (seeded)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pepmix.model.design import ModelSpec, RunDesign, build_run_design


def make_design(
    n_cond: int = 3,
    samples_per_cond: int = 3,
    runs_per_sample: int = 1,
    n_batch: int = 1,
    random: tuple[str, ...] = ("feature", "sample"),
    fixed_batch: bool = False,
) -> tuple[pd.DataFrame, RunDesign]:
    """Sample sheet and design: conditions A, B, C..., batches alternate over samples."""
    rows = []
    for c in range(n_cond):
        for s in range(samples_per_cond):
            sample = f"S{c}{s}"
            for r in range(runs_per_sample):
                rows.append(
                    {
                        "run": f"R{c}{s}{r}",
                        "condition": "ABCDE"[c],
                        "bioreplicate": sample,
                        "batch": f"b{(s + r) % n_batch + 1}",
                    }
                )
    sheet = pd.DataFrame(rows)
    design = build_run_design(sheet, ModelSpec(random=random, fixed_batch=fixed_batch))
    return sheet, design


def make_table(
    design: RunDesign,
    sheet: pd.DataFrame,
    n_proteins: int,
    seed: int,
    max_features: int = 8,
    missing: float = 0.3,
    sd_sample: float = 0.3,
) -> pd.DataFrame:
    """Random proteins with intensity-dependent missingness (log2 scale)."""
    rng = np.random.default_rng(seed)
    runs = design.runs
    samples = sheet.set_index("run").loc[runs, "bioreplicate"].to_numpy()
    uniq = list(dict.fromkeys(samples))
    cond = design.condition_code
    rows = []
    for p in range(n_proteins):
        m = int(rng.integers(1, max_features + 1))
        feat = rng.normal(0, 1, m)
        sample_eff = dict(
            zip(uniq, rng.normal(0, sd_sample * rng.uniform(0, 1.5), len(uniq)), strict=True)
        )
        cond_eff = rng.normal(0, 0.7, len(design.conditions))
        run_eff = rng.normal(0, 0.1, len(runs))
        base = rng.normal(22, 2)
        for f in range(m):
            for r, run in enumerate(runs):
                y = (
                    base
                    + feat[f]
                    + cond_eff[cond[r]]
                    + sample_eff[samples[r]]
                    + run_eff[r]
                    + rng.normal(0, 0.25)
                )
                p_miss = missing * 2.0 / (1.0 + np.exp(y - base))
                if rng.random() < p_miss:
                    continue
                rows.append((f"P{p:03d}", f"F{f}", run, y))
    return pd.DataFrame(rows, columns=["protein", "feature", "run", "y"])
