"""The Huber scale from pure error (``fit_proteins(robust_scale="pure_error")``,
:func:`pepmix.model.robust.pure_error_scale`): hand-computed small tables, the shifted-feature
case, and the default left as it was."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pepmix.model.design import ModelSpec, RunDesign, build_run_design
from pepmix.model.fit import Encoded, encode, fit_proteins
from pepmix.model.robust import (
    HUBER_K,
    MAD_SCALE,
    pure_error_scale,
    robust_scale,
    saturated_residuals,
)

FEATURE = {"F0": 0.3, "F1": -1.1, "F2": 0.7}
RUN = {"a1": 0.05, "a2": -0.2, "b1": 0.4, "b2": 0.1, "a3": 0.0, "b3": -0.3}


def _design(per_condition: int = 2) -> RunDesign:
    sheet = pd.DataFrame(
        [
            (f"{c}{s}", c.upper(), f"{c}{s}", "b1")
            for c in "ab"
            for s in range(1, per_condition + 1)
        ],
        columns=["run", "condition", "bioreplicate", "batch"],
    )
    return build_run_design(sheet, ModelSpec(random=("feature", "sample")))


def _table(dev: dict[tuple[str, str], float], protein: str = "P1") -> pd.DataFrame:
    """Additive feature + run values plus the deviations ``dev[(feature, run)]`` (the keys are
    the observed cells)."""
    rows = [(protein, f, r, 20.0 + FEATURE[f] + RUN[r] + d) for (f, r), d in dev.items()]
    return pd.DataFrame(rows, columns=["protein", "feature", "run", "y"])


def test_three_features_two_runs_per_condition() -> None:
    # per condition a complete 3 x 2 table: least-squares residuals +-(d_f - mean d) / 2, d_f
    # the a1 - a2 (b1 - b2) difference of feature f, whatever the feature x condition levels
    # (a shift of F0 in condition B changes nothing)
    design = _design()
    d_a = {"F0": 0.0, "F1": 0.4, "F2": 1.0}
    d_b = {"F0": 0.5, "F1": 0.0, "F2": 0.1}  # b1 - b2 differences
    dev = {(f, "a1"): d for f, d in d_a.items()} | {(f, "a2"): 0.0 for f in d_a}
    dev |= {(f, "b1"): 5.0 * (f == "F0") + d for f, d in d_b.items()}
    dev |= {(f, "b2"): 5.0 * (f == "F0") for f in d_b}
    got = pure_error_scale(encode(_table(dev), design), design)
    # A: |r| 0.2333, 0.0333, 0.2667 twice each; B (d 0.5, 0, 0.1): 0.15, 0.1, 0.05 twice each;
    # median 0, MAD 0.125; nu = 12 - (6 cells + 4 runs - 2 conditions) = 4. The median polish
    # start is within k scales (weights 1), so the Huber fit is least squares.
    assert got[0] == pytest.approx(MAD_SCALE * 0.125 * np.sqrt(12 / 4), rel=1e-12)


def test_two_shared_features_have_no_pure_error_scale() -> None:
    # two features: no majority defines the protein's change (NaN: the additive scale)
    design = _design()
    dev = {(f, r): 0.1 * (f == "F0" and r == "a1") for f in ("F0", "F1") for r in list(RUN)[:4]}
    dev |= {("F2", "a1"): 0.0, ("F2", "a2"): 0.3}  # a third feature in one condition only
    assert np.isnan(pure_error_scale(encode(_table(dev), design), design)[0])


def test_missing_cell_and_single_observation_cell() -> None:
    # condition A: F0-F2 x a1, a2 complete; B: F0, F1 x b1, b2 and F2 in b1 only (a cell with
    # one observation: fitted exactly, left out of n and of the rank), and F0 in b3 (the only
    # observation of its run: fitted exactly by the run level, left out too)
    design = _design(3)
    d_a = {"F0": 0.0, "F1": 0.4, "F2": 1.0}  # a1 - a2 differences per feature
    dev = {(f, "a1"): d for f, d in d_a.items()} | {(f, "a2"): 0.0 for f in d_a}
    dev |= {("F0", "b1"): 0.2, ("F0", "b2"): 0.0, ("F1", "b1"): -0.6, ("F1", "b2"): 0.0}
    dev |= {("F2", "b1"): 3.0, ("F0", "b3"): -2.0}
    table = _table(dev).sort_values(["feature", "run"])
    got = pure_error_scale(encode(table, design), design)
    # A (3 x 2): residuals +-(d_f - median d) / 2 = -+0.2, 0, +-0.3; B (2 x 2): +-(0.2 + 0.6) / 4
    # = +-0.2. |r| of the 10: 0, 0, 0.2 x 6, 0.3 x 2: MAD 0.2 (median 0);
    # nu = 10 - (5 cells + 4 runs - 2 components) = 3
    assert got[0] == pytest.approx(MAD_SCALE * 0.2 * np.sqrt(10 / 3), rel=1e-12)


def test_no_pure_error_df_is_nan() -> None:
    # one run per condition: every cell a single observation (nu = 0)
    design = _design(1)
    dev = {
        (f, r): 0.1 * i for i, (f, r) in enumerate((f, r) for f in FEATURE for r in ("a1", "b1"))
    }
    assert np.isnan(pure_error_scale(encode(_table(dev), design), design)[0])


def test_two_feature_proteins_keep_the_additive_fit() -> None:
    # J = 2 with F0 shifted in condition B: the shift is not identifiable from the protein's
    # change, the pure-error scale does not apply, and the fit is the additive one
    design = _design(4)
    table = _shifted(np.random.default_rng(6), design, 6)
    table = table.loc[table["feature"] != "F2"]
    contrast = [("B - A", "B", "A")]
    a = fit_proteins(table, design, contrast, robust="huber")
    b = fit_proteins(table, design, contrast, robust="huber", robust_scale="pure_error")
    np.testing.assert_array_equal(a.estimate, b.estimate)
    np.testing.assert_array_equal(a.se, b.se)


def _shifted(rng: np.random.Generator, design: RunDesign, n_prot: int) -> pd.DataFrame:
    """Unchanged 3-feature proteins (the *outliers* scenario's model), F0 shifted by 5 log2 in
    all runs of condition B."""
    runs = list(design.runs)
    rows = []
    for p in range(n_prot):
        feat = rng.normal(0, 1, 3)
        sample = rng.normal(0, rng.uniform(0.2, 0.5), len(runs))
        sd = rng.uniform(0.2, 0.3)
        for r, run in enumerate(runs):
            for f in range(3):
                shift = 5.0 * (f == 0 and run.startswith("b"))
                rows.append((f"P{p:03d}", f"F{f}", run, 22 + feat[f] + sample[r] + shift
                             + rng.normal(0, sd)))  # fmt: skip
    return pd.DataFrame(rows, columns=["protein", "feature", "run", "y"])


def test_shifted_feature_keeps_the_pure_error_scale_and_loses_weight() -> None:
    design = _design(4)
    table = _shifted(np.random.default_rng(3), design, 40)
    enc = encode(table, design)
    pure = pure_error_scale(enc, design)
    # the shift is a feature x condition level: the pure-error scale does not see it, the same
    # to rounding as without the shift
    clean = table.assign(y=table["y"] - 5.0 * ((table["feature"] == "F0")
                                                & table["run"].str.startswith("b")))  # fmt: skip
    np.testing.assert_allclose(pure, pure_error_scale(encode(clean, design), design), rtol=1e-9)
    # residual SD U(0.2, 0.3): the pure-error scale estimates it; one protein's MAD of 24
    # residuals with 12 df is noisy (37 % efficiency), their median over 40 proteins is not
    # (SD of the median ~0.015; the bounds are 3 SD outside the range of the truth)
    assert 0.2 - 0.05 < float(np.median(pure)) < 0.3 + 0.05
    contrast = [("B - A", "B", "A")]
    lfc = {}
    for scale in ("additive", "pure_error"):
        fit = fit_proteins(table, design, contrast, robust="huber", robust_scale=scale)
        lfc[scale] = float(np.mean(fit.estimate[:, 0]))
    # additive: the shifted feature is ~1.35 MAD units out, about the least-squares bias 5 / 3
    # (measured 0.30 x 5); pure error: many scale units out, down-weighted (measured 0.10 x 5)
    assert lfc["additive"] > 1.2
    assert lfc["pure_error"] < 0.5 * lfc["additive"]
    # the bisquare at that scale (MM-estimation) gives the shifted feature weight ~0 (as the
    # bisquare at its polish scale does at this shift; at shift 2 only this one does:
    # huber_shifted_feature.py): the mean estimate is the truth 0 within 5 of its standard
    # errors (SE ~0.3 / sqrt(40); measured 0.03)
    fit = fit_proteins(table, design, contrast, robust="bisquare", robust_scale="pure_error")
    assert abs(float(np.mean(fit.estimate[:, 0]))) < 0.25


def test_additive_scale_is_the_default() -> None:
    design = _design(4)
    table = _shifted(np.random.default_rng(4), design, 5)
    a = fit_proteins(table, design, [("B - A", "B", "A")], robust="huber")
    b = fit_proteins(table, design, [("B - A", "B", "A")], robust="huber", robust_scale="additive")
    np.testing.assert_array_equal(a.estimate, b.estimate)
    np.testing.assert_array_equal(a.weights, b.weights)
    with pytest.raises(ValueError, match="robust scale"):
        fit_proteins(table, design, robust="huber", robust_scale="mad")
    # without a shift the additive MAD of the polish residuals and the pure-error scale both
    # estimate the residual SD; here only checked to be finite and positive
    enc = encode(table, design)
    assert np.all(robust_scale(np.asarray(enc.y), enc.prot, 5) > 0)


def test_saturated_fit_is_least_squares_without_large_residuals() -> None:
    # 3 features x 2 + 2 runs, one cell missing, residuals well inside k scales: the Huber fit
    # of the saturated model is its least-squares fit (backfitting converges to it)
    design = _design()
    rng = np.random.default_rng(5)
    dev = {(f, r): float(rng.normal(0, 0.1)) for f in FEATURE for r in list(RUN)[:4]}
    del dev[("F1", "b2")]
    table = _table(dev).sort_values(["feature", "run"])
    enc = encode(table, design)
    cond = design.condition_code[enc.run]
    cell = enc.feat * 2 + cond
    x = np.column_stack([cell == c for c in np.unique(cell)] + [enc.run == r for r in range(4)])
    coef, *_ = np.linalg.lstsq(x.astype(float), enc.y, rcond=None)
    ls = enc.y - x @ coef
    sub = Encoded(
        proteins=enc.proteins, features=enc.features,
        prot=enc.prot, feat=np.unique(cell, return_inverse=True)[1], run=enc.run, y=enc.y,
        runs=enc.runs,
    )  # fmt: skip
    resid, scale = saturated_residuals(sub, 6, np.array([1.0]))
    assert np.max(np.abs(ls)) < HUBER_K * scale[0]
    np.testing.assert_allclose(resid, ls, atol=1e-9)
