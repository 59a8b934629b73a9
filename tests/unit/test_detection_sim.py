"""The designs of ``benchmarks/detection_sim.py`` beyond 2 x 4 probit (issue 14's evidence grid).

Pins what the generator's options guarantee (logistic truth at the target missing fraction, the
skewed feature-count law, the 2-4 condition design and its true contrasts) and that the
detection model covers the true fold changes of a seeded 3-condition case.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from pepmix.model import mnar
from pepmix.model.design import ModelSpec, build_run_design
from pepmix.model.detection import DetectionCurve
from pepmix.model.fit import fit_proteins


def _sim() -> Any:
    path = str(Path(__file__).resolve().parents[2] / "benchmarks")
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module("detection_sim")


def test_logistic_truth_hits_the_missing_fraction_and_feature_law() -> None:
    """Logistic truth, zipf features up to 50: the target missing fraction and the skew.

    ``y50`` is solved so that the *expected* missing fraction over the simulated cells equals the
    target; given the intensities the cells are independent Bernoulli draws, so the realised
    fraction is within 4 binomial SDs of 0.3 (probability > 0.9999). Feature counts follow
    ``P(m) ~ m^-1.5`` on 1..50: share of 1-feature proteins 0.429 (within 4 SDs), none above 50,
    and a tail (P(m > 20) = 0.069: at least one of 300 proteins with probability 1 - 1e-9).
    """
    sim = _sim()
    data = sim.simulate_design(300, 8, 1.0, 0.3, 5, link="logit", features="zipf", max_features=50)
    cells = int(data.n_features.sum()) * 8
    realised = 1.0 - len(data.table) / cells
    assert realised == pytest.approx(0.3, abs=4.0 * np.sqrt(0.3 * 0.7 / cells))
    counts = data.n_features.to_numpy()
    assert counts.min() == 1 and counts.max() <= 50
    assert np.mean(counts == 1) == pytest.approx(0.429, abs=4.0 * np.sqrt(0.429 * 0.571 / 300))
    assert np.any(counts > 20)
    # the table's features are the simulated ones that were seen at least once
    seen = data.table.groupby("protein")["feature"].nunique()
    assert np.all(seen <= data.n_features.reindex(seen.index))


def test_logistic_curve_is_the_probit_equivalent_with_heavier_tails() -> None:
    """``slope`` is probit-equivalent: the logistic curve is within 0.0095 of ``Phi(slope d)``
    everywhere (Camilli 1994's bound for the 1.702 scaling), same 50 % point, and its lower
    tail is heavier: 3 probit units below the 50 % point 4.5x as many cells are detected
    (0.0060 vs 0.0013)."""
    sim = _sim()
    d = np.linspace(-8.0, 8.0, 3201)
    for slope in (0.5, 1.0, 1.5):
        probit = sim.detection_probability(d, slope, "probit")
        logit = sim.detection_probability(d, slope, "logit")
        assert np.max(np.abs(logit - probit)) < 0.0095
        assert logit[1600] == pytest.approx(0.5) and probit[1600] == pytest.approx(0.5)
    low = np.array([-3.0])
    ratio = sim.detection_probability(low, 1.0, "logit") / sim.detection_probability(low, 1.0)
    assert float(ratio[0]) == pytest.approx(4.46, abs=0.01)  # 0.00602 / 0.00135
    with pytest.raises(ValueError, match="link"):
        sim.detection_probability(d, 1.0, "cloglog")


def test_three_condition_design_and_true_contrasts() -> None:
    """3 conditions x 3 runs: balanced sheet, all pairwise contrasts, truth = effect differences.

    The mixture puts each change in one non-reference condition, so every protein has at most
    one non-zero effect and the reference's is 0; the contrast between two non-reference
    conditions carries the change with its sign (``C-B`` = ``-B`` for a change in ``B``).
    """
    sim = _sim()
    data = sim.simulate_design(200, 9, 1.0, 0.3, 2, n_conditions=3)
    assert list(data.sheet["condition"].value_counts().sort_index()) == [3, 3, 3]
    assert set(data.table["run"]) <= set(data.sheet["run"])
    contrasts = sim.all_pairs(["A", "B", "C"])
    assert contrasts == [("B-A", "B", "A"), ("C-A", "C", "A"), ("C-B", "C", "B")]
    eff = data.effects
    assert np.all(eff["A"] == 0.0)
    assert np.all((eff != 0).sum(axis=1) <= 1)
    changed_b = eff.index[eff["B"] != 0]
    changed_c = eff.index[eff["C"] != 0]
    assert len(changed_b) > 10 and len(changed_c) > 10  # about 25 % of 200, split in two
    truth = data.truth(contrasts)
    np.testing.assert_array_equal(
        truth.xs("C-B", level="contrast").loc[changed_b], -eff.loc[changed_b, "B"]
    )
    np.testing.assert_array_equal(
        truth.xs("C-B", level="contrast").loc[changed_c], eff.loc[changed_c, "C"]
    )
    with pytest.raises(ValueError, match="split"):
        sim.simulate_design(20, 8, 1.0, 0.3, 1, n_conditions=3)


def test_detection_model_covers_a_three_condition_case() -> None:
    """Seeded 3 x 3 case (150 proteins, zipf features up to 50, probit slope 1, 30 % target):
    the detection model tests all three pairwise contrasts, including rows never observed in
    one condition that MAR leaves untested, and its 95 % intervals cover the true fold changes
    in at least 0.95 - 3 binomial SDs of the tested rows (about 0.92; measured 0.94-0.95 on
    seeds 1-3). Every absent row has a finite interval that contains its estimate and
    0 < p <= 1; the MAR model tests none of them.
    """
    sim = _sim()
    data = sim.simulate_design(
        150, 9, 1.0, 0.3, 2, n_conditions=3, features="zipf", max_features=50
    )
    fit = sim.fit_case(data)
    det = sim.evaluate(fit.detection, fit.truth, "detection")
    mar = sim.evaluate(fit.mar, fit.truth, "mar")
    tested = fit.detection.loc[fit.detection["pvalue"].notna()]
    assert set(tested["contrast"].astype(str)) == {"B-A", "C-A", "C-B"}
    absent = tested.loc[tested["detail"].str.contains("never observed", na=False)]
    assert len(absent) >= 5 and mar["n_absent"] == 0
    assert det["tested"] == mar["tested"] + len(absent)
    assert np.all((absent["ci_low"] <= absent["log2fc"]) & (absent["log2fc"] <= absent["ci_high"]))
    assert np.all((absent["pvalue"] > 0) & (absent["pvalue"] <= 1))
    bound = 0.95 - 3.0 * np.sqrt(0.95 * 0.05 / det["tested"])
    assert det["coverage"] >= bound, det
    assert mar["coverage"] >= bound, mar


def test_marginal_summary_accepts_coinciding_grids() -> None:
    """Where the Laplace SE equals the prior SD of the contrast the two standardised grids of
    :func:`mnar._marginal_grid` coincide (repeated points, which the interpolation refused:
    the crash seen in the designs grid). A normal log density N(0.5, 1) on such a grid gives
    its quantiles 0.5 -+ 1.96 and SD 1 within 1e-3 (interpolation over 45 points in +-6 SDs;
    measured 1e-4) and tail probability 2 Phi(-0.5) = 0.617 (measured 0.619)."""
    offs = np.sort(
        np.concatenate([mnar.MARGINAL_FINE, mnar.MARGINAL_WIDE[mnar.MARGINAL_WIDE != 0]])
    )
    assert np.any(np.diff(offs) == 0)
    grid = 0.5 + offs[None, :]
    logdens = -0.5 * (grid - 0.5) ** 2
    low, high, pvalue, sd, _ = mnar._summarise_marginal(grid, logdens, 0.025)
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose([low[0], high[0]], [0.5 - z, 0.5 + z], atol=1e-3)
    np.testing.assert_allclose(sd, 1.0, atol=1e-3)
    # the tail probability within 1e-3 + 2 % as in test_contrast_marginals_exact_when_gaussian
    np.testing.assert_allclose(pvalue, 2 * stats.norm.sf(0.5), rtol=0.02, atol=1e-3)


def test_detection_fit_runaway_is_diverged_not_a_crash() -> None:
    """A seeded case where the outer minimisation ran away to sigma ~ 2e9 (levels ~ -2.6e9,
    where the Laplace criterion loses its precision) and stopped there as 'converged', with a
    contrast SE of rounding noise that made the marginal grid repeat points and
    ``detection_contrasts`` raise (designs grid: probit slope 1, 40 % target, seed 3, zipf
    features; the 29 proteins with 5-8 features, the fitted pooled curve). Now such a fit is
    diverged (sigma > ``SIGMA_CEILING``) and keeps its MAR row; whatever the path, every
    protein absent from B gets either that MAR row or a finite interval around its estimate."""
    sim = _sim()
    data = sim.simulate_design(400, 8, 1.0, 0.4, 3, features="zipf", max_features=50)
    n_feat = data.table.groupby("protein")["feature"].nunique()
    keep = n_feat.index[(n_feat >= 5) & (n_feat <= 8)]
    assert "P0262" in keep
    table = data.table.loc[data.table["protein"].isin(keep)].reset_index(drop=True)
    design = build_run_design(data.sheet, ModelSpec(random=("feature", "sample")))
    fit = fit_proteins(table, design, contrasts=[("B-A", "B", "A")])
    curve = DetectionCurve.constant(design.runs, -19.499120043688663, 0.9951367519605299)
    out = mnar.detection_contrasts(fit, curve, ["B"], ["A"], prior_sd=1.232428793763256)
    absent = fit.contrast_table(["B"], ["A"])["status"] == "one_condition_missing"
    assert absent.sum() >= 1 and "P0262" in set(
        fit.contrast_table(["B"], ["A"]).loc[absent, "protein"]
    )
    rows = out.loc[absent.to_numpy()]
    kept = rows["detail"].str.contains("no finite optimum", na=False)
    assert np.all(rows.loc[kept, "status"] == "one_condition_missing")
    tested = rows.loc[~kept]
    assert np.all(np.isfinite(tested[["estimate", "ci_low", "ci_high", "pvalue"]].to_numpy()))
    assert np.all(
        (tested["ci_low"] <= tested["estimate"]) & (tested["estimate"] <= tested["ci_high"])
    )
    assert np.all(tested["se"] < np.sqrt(2.0) * 1.232428793763256)  # below the prior SD
