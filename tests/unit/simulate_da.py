"""Seeded simulation of a label-free experiment for calibration tests.

Two conditions with ``n_per`` biological samples each (optionally ``tech`` technical runs per
sample). Per protein: 2-30 features (geometric), feature effects N(0, 1), sample effects with a
protein-specific SD (gamma-distributed variance around 0.15^2), residual SD around 0.2, and
missing values either at random (25 %) or intensity-dependent (up to 50 % at low intensity).
A fraction ``frac_de`` of proteins changes by +-0.7 to 1.5 log2 units.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def simulate(
    n_prot: int = 2000,
    n_per: int = 4,
    seed: int = 0,
    frac_de: float = 0.0,
    mnar: bool = True,
    tech: int = 1,
    sample_sd: float = 0.15,
    run_sd: float = 0.05,
    sample_var: tuple[float, float] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """Return the long table (protein, feature, run, y), the sample sheet and the truth.

    ``sample_sd`` is the typical SD of the biological sample effects (0: the samples of a protein
    are identical, the null of a test with technical replicates), ``run_sd`` the SD of the run
    effects with technical replicates (``tech > 1``). ``sample_var``, if given, is the
    (shape, scale) of the gamma distribution of the sample variances instead (default: shape 2,
    scale ``sample_sd**2 / 2``); a shape below 1 gives a skewed distribution with many variances
    near zero.
    """
    rng = np.random.default_rng(seed)
    sheet = pd.DataFrame(
        [
            (f"{c}{s}_{t}", c, f"{c}{s}")
            for c in ("A", "B")
            for s in range(n_per)
            for t in range(tech)
        ],
        columns=["run", "condition", "bioreplicate"],
    )
    sheet["batch"] = pd.NA
    runs = sheet["run"].to_numpy()
    samples = sheet["bioreplicate"].to_numpy()
    in_b = (sheet["condition"] == "B").to_numpy()
    unique_samples, sample_index = np.unique(samples, return_inverse=True)
    changes = rng.random(n_prot) < frac_de
    lfc = np.where(changes, rng.choice([-1.0, 1.0], n_prot) * rng.uniform(0.7, 1.5, n_prot), 0.0)
    parts = []
    for p in range(n_prot):
        m = min(max(2, int(rng.geometric(0.25))), 30)
        base = rng.normal(23.0, 2.0)
        shape_scale = sample_var if sample_var is not None else (2.0, sample_sd**2 / 2.0)
        sd_sample = np.sqrt(rng.gamma(*shape_scale))
        sd_resid = np.sqrt(rng.gamma(4.0, 0.2**2 / 4.0))
        sample_eff = rng.normal(0.0, sd_sample, unique_samples.size)[sample_index]
        run_eff = rng.normal(0.0, run_sd, runs.size) if tech > 1 else np.zeros(runs.size)
        y = (
            base
            + rng.normal(0.0, 1.0, m)[:, None]
            + (sample_eff + run_eff + lfc[p] * in_b)[None, :]
            + rng.normal(0.0, sd_resid, (m, runs.size))
        )
        p_miss = 0.5 / (1.0 + np.exp(2.0 * (y - base + 0.5))) if mnar else np.full(y.shape, 0.25)
        fi, ri = np.nonzero(rng.random(y.shape) >= p_miss)
        parts.append(
            pd.DataFrame(
                {"protein": f"P{p:05d}", "feature": fi.astype(str), "run": runs[ri], "y": y[fi, ri]}
            )
        )
    truth = pd.Series(changes, index=[f"P{p:05d}" for p in range(n_prot)])
    return pd.concat(parts, ignore_index=True), sheet, truth
