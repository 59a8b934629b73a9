"""How the default Huber fit handles one feature shifted in all runs of one condition.

Per setting (features per protein J = 2, 3, 4, 6; shift s = 2, 3.5, 5 log2) 200 unchanged
proteins, 4 vs 4 samples, no missing values (the *outliers* scenario's model of
``scenarios.py``: feature effects N(0, 1), sample SD U(0.2, 0.5), residual SD U(0.2, 0.3));
feature F0 is shifted by s in condition B. Printed per fit (``model.robust`` none, huber and
bisquare, each robust one also with the pure-error scale,
``fit_proteins(robust_scale="pure_error")``; Huber with the feature majority rule,
``model.feature_majority``; and the usage model of :mod:`pepmix.model.pretest`
on the Huber fit, not with ``--no-usage``): mean log2FC (the truth is 0) as a fraction of s,
median SE, and the share of unmoderated Satterthwaite p < 0.05.

Expected from the additive two-way fit of the 2 x J table of cell means: the shifted cell's
residual is s (J - 1) / (2J), every other feature's s / (2J); the MAD scale of the Huber fit is
about 1.4826 s / (2J), so the shifted feature lies (J - 1) / 1.4826 scale units out: 0.67 for
J = 2 (all residuals equal: not identifiable), 1.35 for J = 3 (Huber's k = 1.345: weight about
1, no down-weighting, the least-squares bias s / 3), 2.0 for J = 4 (weight 0.67), 3.4 for
J = 6 (weight 0.4).

    .venv/bin/python benchmarks/huber_shifted_feature.py     # ~1 min
    .venv/bin/python benchmarks/huber_shifted_feature.py --no-usage
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd
from scipy import stats

from pepmix.model.design import ModelSpec, build_run_design
from pepmix.model.fit import fit_proteins
from pepmix.model.pretest import usage_contrasts
from pepmix.model.stored import StoredFit
from pepmix.model.usage import usage_shard

CONTRAST = [("B - A", "B", "A")]
#: (label, model.robust, model.robust_scale, model.feature_majority) of the fits compared
FITS = (
    ("none", "none", "additive", False),
    ("huber", "huber", "additive", False),
    ("huber pure_error", "huber", "pure_error", False),
    ("huber majority", "huber", "additive", True),
    ("bisquare", "bisquare", "additive", False),
    ("bisquare pure_error", "bisquare", "pure_error", False),
)
N_PROTEINS = 200


def _table(
    rng: np.random.Generator, runs: list[str], is_b: np.ndarray, n_feat: int, shift: float
) -> pd.DataFrame:
    rows = []
    for p in range(N_PROTEINS):
        feat = rng.normal(0, 1, n_feat)
        sample = rng.normal(0, rng.uniform(0.2, 0.5), len(runs))
        sd_resid = rng.uniform(0.2, 0.3)
        for r, run in enumerate(runs):
            for f in range(n_feat):
                y = 22 + feat[f] + sample[r] + rng.normal(0, sd_resid)
                rows.append((f"P{p:04d}", f"F{f}", run, y + shift * (f == 0 and is_b[r])))
    return pd.DataFrame(rows, columns=["protein", "feature", "run", "y"])


def _score(stored: StoredFit, shift: float) -> dict[str, float]:
    table = stored.contrast_table(CONTRAST)
    p = 2 * stats.t.sf(np.abs(table["estimate"] / table["se"]), table["df"])
    return {
        "lfc / shift": float(table["estimate"].mean() / shift),
        "median SE": float(table["se"].median()),
        "p < 0.05": float(np.mean(p < 0.05)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-usage", action="store_true", help="skip the usage model fits")
    args = parser.parse_args()
    sheet = pd.DataFrame(
        [(f"{c}{s}", c, f"{c}{s}", "b1") for c in "AB" for s in range(1, 5)],
        columns=["run", "condition", "bioreplicate", "batch"],
    )
    design = build_run_design(sheet, ModelSpec(random=("feature", "sample")))
    is_b = (sheet["condition"] == "B").to_numpy()
    rng = np.random.default_rng(7)
    rows = []
    for n_feat in (2, 3, 4, 6):
        for shift in (2.0, 3.5, 5.0):
            table = _table(rng, list(design.runs), is_b, n_feat, shift)
            for label, robust, scale, majority in FITS:
                fit = fit_proteins(
                    table, design, robust=robust, robust_scale=scale, feature_majority=majority
                )
                stored = StoredFit.from_model_fit(fit)
                rows.append({"J": n_feat, "shift": shift, "fit": label, **_score(stored, shift)})
            if args.no_usage:
                continue
            fit = fit_proteins(table, design, robust="huber")
            shard = usage_shard(fit, fit.variance_components(), table, sheet, "huber")
            usage, _ = usage_contrasts(stored, shard, "always")
            rows.append({"J": n_feat, "shift": shift, "fit": "usage", **_score(usage, shift)})
    frame = pd.DataFrame(rows).set_index(["J", "shift", "fit"]).unstack("fit")
    with pd.option_context("display.width", 200):
        print(frame.round(3).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
