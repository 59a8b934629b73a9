"""Boundary likelihood-ratio tests of the random terms and their parametric bootstrap.

Reference chain: ``tests/reference/lrt/generate.py`` (60 seeded proteins, 2 x 3 to 2 x 10
samples) -> ``fit_lme4.R`` (lme4 1.1-31, lmerTest 3.1-3, RLRsim 3.1-8) -> ``lrt_reference.csv``
(committed). No R needed here.

Tolerances: the REML criteria of both fits are within 2e-6 of lme4's best of two optimisers or
better (the engine's guarantee, see ``test_lme4_reference.py``), so an LRT differs from lme4's
by at most about 4e-6; 1e-5 is allowed (measured: 2e-12), and 1e-4 against lmerTest's
``ranova``, which uses lme4's default optimiser only (measured: 3e-6). Rejection rates are
checked within 3 binomial standard errors; bootstrap p-values against RLRsim within 4 Monte Carlo
standard errors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pepmix.errors import ConfigError
from pepmix.model.design import ModelSpec, RunDesign, build_run_design
from pepmix.model.fit import ModelFit, fit_proteins
from pepmix.model.variance_tests import (
    VarianceTestOptions,
    fit_tests,
    mixture_pvalue,
    variance_test_table,
)

REF = Path(__file__).resolve().parents[1] / "reference" / "lrt"


def _sheet(n_per: int) -> pd.DataFrame:
    runs = [f"S{i:02d}" for i in range(2 * n_per)]
    return pd.DataFrame(
        {
            "run": runs,
            "condition": np.repeat(["A", "B"], n_per),
            "bioreplicate": runs,
            "batch": "b1",
        }
    )


def _design(n_per: int) -> RunDesign:
    return build_run_design(_sheet(n_per), ModelSpec(random=("feature", "sample")))


def _simulate(
    n_prot: int, n_per: int, n_feat: int, sd_sample: float, seed: int, sd_feat: float = 0.5
) -> pd.DataFrame:
    """Proteins with feature and sample effects, residual SD 0.25, 15% missing cells."""
    rng = np.random.default_rng(seed)
    n_s = 2 * n_per
    f_idx, s_idx = np.meshgrid(np.arange(n_feat), np.arange(n_s), indexing="ij")
    frames = []
    for p in range(n_prot):
        y = (
            rng.normal(0, sd_feat, n_feat)[f_idx.ravel()]
            + rng.normal(0, sd_sample, n_s)[s_idx.ravel()]
            + rng.normal(0, 0.25, f_idx.size)
        )
        keep = rng.random(y.size) > 0.15
        frames.append(
            pd.DataFrame(
                {
                    "protein": f"P{p:04d}",
                    "feature": [f"P{p}_F{i}" for i in f_idx.ravel()[keep]],
                    "run": [f"S{i:02d}" for i in s_idx.ravel()[keep]],
                    "y": y[keep],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _raw(fit: ModelFit, **options: object) -> pd.DataFrame:
    """The model stage's protein table with the test columns (as ``fit_stage`` writes it)."""
    table = fit.variance_components()
    cols = fit_tests(fit, VarianceTestOptions(**options))  # type: ignore[arg-type]
    for c in cols.columns[1:]:
        table[c] = cols[c].to_numpy()
    return table


def _tests(fit: ModelFit, **options: object) -> pd.DataFrame:
    """... and the columns ``variance_components.tsv`` adds."""
    return variance_test_table(_raw(fit, **options))


@pytest.fixture(scope="module")
def reference() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Our tests (plain REML) next to lme4's, one row per reference data set."""
    data = pd.read_csv(REF / "datasets.csv.gz")
    ref = pd.read_csv(REF / "lrt_reference.csv")
    ours = []
    data["n_per"] = np.asarray((3, 4, 6, 10))[data["dataset"] % 4]  # as generate.py
    for n_per, part in data.groupby("n_per"):
        table = pd.DataFrame(
            {
                "protein": [f"D{k:03d}" for k in part["dataset"]],
                "feature": part["feature"].astype(str) + "_" + part["dataset"].astype(str),
                "run": part["sample"],
                "y": part["y"],
            }
        )
        fit = fit_proteins(table, _design(int(n_per)), robust="none")
        ours.append(_raw(fit))
    out = variance_test_table(pd.concat(ours, ignore_index=True))
    out["dataset"] = out["protein"].str[1:].astype(int)
    return out.set_index("dataset").sort_index(), ref.set_index("dataset").sort_index()


def test_lrt_matches_lme4(reference: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    ours, ref = reference
    assert len(ours) == len(ref) == 60
    for term in ("feature", "sample"):
        # each REML criterion within 2e-6 of lme4's best: LRTs within 4e-6 (measured: 2e-12)
        diff = ours[f"lrt_{term}"] - ref[f"lrt_{term}"]
        assert diff.abs().max() <= 1e-5, diff.abs().max()
        # lmerTest::ranova refits with lme4's default optimiser only (measured: 3e-6)
        ranova = ref[f"ranova_lrt_{term}"]
        assert (ours[f"lrt_{term}"] - ranova).abs().max() <= 1e-4
    assert (ours["lrt_sample"] == 0).sum() >= 5  # boundary cases are in the reference


def test_pvalues_are_the_mixture(reference: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    ours, _ = reference
    lrt = ours["lrt_sample"].to_numpy()
    p = ours["p_sample"].to_numpy()
    np.testing.assert_array_equal(p[lrt == 0], 1.0)
    pos = lrt > 0
    np.testing.assert_allclose(p[pos], 0.5 * stats.chi2.sf(lrt[pos], 1), rtol=1e-12)
    assert mixture_pvalue(np.array([2.705543])) == pytest.approx(0.05, abs=1e-6)
    assert np.isnan(mixture_pvalue(np.array([np.nan]))[0])


def test_icc_and_bh(reference: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    ours, _ = reference
    share = (
        ours["icc_feature"]
        + ours["icc_sample"]
        + ours["var_residual"] / (ours["var_feature"] + ours["var_sample"] + ours["var_residual"])
    )
    np.testing.assert_allclose(share, 1.0, rtol=1e-12)
    from pepmix.inference.limma import bh_adjust

    np.testing.assert_allclose(ours["adj_p_sample"], bh_adjust(ours["p_sample"].to_numpy()))


def test_bootstrap_matches_rlrsim(reference: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """RLRsim's exactRLRT (10,000 simulations) vs our bootstrap (B = 400) on small designs."""
    _, ref = reference
    data = pd.read_csv(REF / "datasets.csv.gz")
    pick = ref[(ref["exact_p_sample"] > 0.02) & (ref["exact_p_sample"] < 0.6)]
    pick = pick[pick.index % 4 <= 1].head(4)  # 2 x 3 and 2 x 4 samples
    assert len(pick) >= 3
    for k, row in pick.iterrows():
        part = data[data["dataset"] == k]
        table = pd.DataFrame(
            {"protein": "X", "feature": part["feature"], "run": part["sample"], "y": part["y"]}
        )
        fit = fit_proteins(table, _design((3, 4, 6, 10)[int(k) % 4]), robust="none")
        out = _tests(fit, bootstrap=400, seed=3)
        p_boot = float(out["p_boot_sample"].iloc[0])
        p_exact = float(row["exact_p_sample"])
        se = np.sqrt(p_exact * (1 - p_exact) / 400 + p_exact * (1 - p_exact) / 10_000)
        assert abs(p_boot - p_exact) <= 4 * se + 1 / 401, (k, p_boot, p_exact)


def test_null_calibration_many_samples() -> None:
    """No sample variance, 2 x 10 samples: about half the LRTs are 0 and the mixture rejects
    about 5% (asymptotics hold)."""
    n = 600
    table = _simulate(n, 10, 6, sd_sample=0.0, seed=11)
    out = _tests(fit_proteins(table, _design(10), robust="none"))
    p = out["p_sample"].to_numpy()
    assert np.isfinite(p).all()
    # a variance reported as zero (status boundary) has LRT 0, p-value 1, and only then
    np.testing.assert_array_equal(out["lrt_sample"] == 0, out["var_sample"] == 0)
    at_zero = np.mean(out["lrt_sample"] == 0)
    assert 0.45 <= at_zero <= 0.70  # finite samples put a little more mass at 0 (Crainiceanu)
    se = np.sqrt(0.05 * 0.95 / n)
    assert 0.05 - 3 * se - 0.01 <= np.mean(p < 0.05) <= 0.05 + 3 * se
    # among the positive LRTs, 2p is uniform-ish: its median near 1/2
    # among the positive LRTs 2p is uniform if the mixture holds (fixed seed: KS p was 0.85)
    pos = p < 1
    assert stats.kstest(2 * p[pos], "uniform").pvalue > 0.01


def test_power_with_sample_variance() -> None:
    """Sample SD equal to the residual SD, 2 x 6 samples, 6 features: most proteins reject."""
    table = _simulate(200, 6, 6, sd_sample=0.25, seed=12)
    out = _tests(fit_proteins(table, _design(6), robust="none"))
    assert np.mean(out["p_sample"] < 0.05) >= 0.8
    assert np.mean(out["p_feature"] < 0.05) >= 0.95


def test_bootstrap_small_design_null() -> None:
    """2 x 3 samples without sample variance: the mixture is conservative, the bootstrap
    p-values are uniform (rejection rate at 5% within binomial bounds, above the mixture's)."""
    n = 200
    table = _simulate(n, 3, 4, sd_sample=0.0, seed=13)
    # B = 39: P(p <= 0.05) = 2/40 = 0.05 exactly under the null
    out = _tests(fit_proteins(table, _design(3), robust="none"), bootstrap=39, seed=5)
    p_mix = out["p_sample"].to_numpy()
    p_boot = out["p_boot_sample"].to_numpy()
    ok = np.isfinite(p_boot)
    assert ok.mean() > 0.95
    se = np.sqrt(0.05 * 0.95 / ok.sum())
    rate_boot = np.mean(p_boot[ok] <= 0.05)
    rate_mix = np.mean(p_mix[ok] <= 0.05)
    assert 0.05 - 3 * se <= rate_boot <= 0.05 + 3 * se
    assert rate_mix < rate_boot


def test_bootstrap_agrees_with_mixture_many_samples() -> None:
    """Sample SD half the residual SD, 2 x 10 samples, 5 features: where the asymptotics hold,
    bootstrap (B = 199) and mixture p-values agree within Monte Carlo error plus the mixture's
    own small-sample error (conservative, at most ~0.03 at these sizes)."""
    table = _simulate(24, 10, 5, sd_sample=0.08, seed=17)
    out = _tests(fit_proteins(table, _design(10), robust="none"), bootstrap=199, seed=9)
    p_mix = out["p_sample"].to_numpy()
    p_boot = out["p_boot_sample"].to_numpy()
    mid = (p_mix > 0.01) & (p_mix < 1)
    assert mid.sum() >= 6
    se = np.sqrt(p_mix[mid] * (1 - p_mix[mid]) / 199)
    assert np.all(np.abs(p_boot[mid] - p_mix[mid]) <= 4 * se + 0.03), np.c_[p_mix, p_boot][mid]
    np.testing.assert_array_equal(p_boot[p_mix == 1], 1.0)


def test_bootstrap_reproducible_and_subset_invariant() -> None:
    table = _simulate(12, 4, 4, sd_sample=0.15, seed=14)
    fit = fit_proteins(table, _design(4), robust="huber")
    everyone = _tests(fit, bootstrap=50, seed=7).set_index("protein")
    chosen = ("P0003", "P0007")
    some = _tests(fit, bootstrap=50, seed=7, proteins=chosen).set_index("protein")
    other = _tests(fit, bootstrap=50, seed=8, proteins=chosen).set_index("protein")
    for col in ("p_boot_sample", "p_boot_feature"):
        np.testing.assert_array_equal(everyone.loc[list(chosen), col], some.loc[list(chosen), col])
        assert some[col].drop(list(chosen)).isna().all()
    positive = some.loc[list(chosen), "lrt_sample"] > 0
    if positive.any():
        assert not np.array_equal(
            some.loc[list(chosen), "p_boot_sample"], other.loc[list(chosen), "p_boot_sample"]
        )
    assert (some.loc[list(chosen), "n_boot_sample"] <= 50).all()


def test_robust_fit_tests_at_its_weights() -> None:
    """With Huber weights the LRT is that of weighted REML at the final weights: the same
    statistic as a plain weighted fit given those weights."""
    table = _simulate(20, 4, 5, sd_sample=0.2, seed=15)
    fit = fit_proteins(table, _design(4), robust="huber")
    out = _tests(fit)
    assert fit.weights is not None and (fit.weights < 1).any()
    from pepmix.model.suffstats import build_problem
    from pepmix.model.variance_tests import term_lrts

    enc = fit.encoded
    assert enc is not None
    problem = build_problem(
        enc.prot, enc.feat, enc.run, enc.y, fit.design, len(enc.proteins), weights=fit.weights
    )
    cold = term_lrts(problem)  # grid start, not the fit's theta
    np.testing.assert_allclose(out["lrt_sample"], cold.lrt[:, 1], atol=1e-6)
    for t in ("feature", "sample"):
        np.testing.assert_array_equal(out[f"lrt_{t}"] == 0, out[f"var_{t}"] == 0)


def test_three_terms_with_random_batch() -> None:
    """``(1|feature) + (1|sample) + (1|batch)``, 4 batches, no batch variance: every term is
    tested (Huber fit); the sample variance (SD 0.2) is found, the batch variance mostly not."""
    runs = [f"S{i:02d}" for i in range(16)]
    sheet = pd.DataFrame(
        {
            "run": runs,
            "condition": np.repeat(["A", "B"], 8),
            "bioreplicate": runs,
            "batch": np.tile(["b1", "b2", "b3", "b4"], 4),
        }
    )
    design = build_run_design(sheet, ModelSpec(random=("feature", "sample", "batch")))
    out = _tests(fit_proteins(_simulate(50, 8, 5, sd_sample=0.2, seed=3), design, robust="huber"))
    for t in ("feature", "sample", "batch"):
        assert out[f"p_{t}"].notna().all()
    assert np.mean(out["p_sample"] < 0.05) >= 0.8
    assert np.mean(out["p_batch"] < 0.05) <= 0.2
    total = out[["icc_feature", "icc_sample", "icc_batch"]].sum(axis=1)
    assert ((total > 0) & (total < 1)).all()


def test_lrt_off_and_options() -> None:
    table = _simulate(5, 3, 3, sd_sample=0.2, seed=16)
    fit = fit_proteins(table, _design(3), robust="none")
    assert list(fit_tests(fit, VarianceTestOptions(lrt=False)).columns) == ["protein"]
    opts = VarianceTestOptions.from_config(
        {"bootstrap": 10, "bootstrap_proteins": ["a"], "seed": 2}
    )
    assert opts == VarianceTestOptions(lrt=True, bootstrap=10, proteins=("a",), seed=2)
    assert VarianceTestOptions.from_config(None) == VarianceTestOptions()
    with pytest.raises(ConfigError):
        VarianceTestOptions.from_config({"bootstrap": -1})
    with pytest.raises(ConfigError):
        VarianceTestOptions.from_config({"bootstrap_proteins": 5})


def test_warm_started_lrts_equal_the_cold_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """``fit_tests`` of a Huber fit with the full fits started at the weighted optimum
    (``theta * theta_scale``) and the reduced fits at the better of it and the grid
    (``variance_tests.WARM_STARTS``) gives the LRTs of the cold starts to the optimiser's
    tolerance (criterion change < 1e-11 relative, projected gradient < 1e-6: 1e-6 on LRTs
    of criteria ~10-1000), the same zero / positive pattern, and the full fits converge in
    fewer Newton iterations."""
    from pepmix.model import optimize, variance_tests

    from .simulate_da import simulate

    table, sheet, _ = simulate(n_prot=150, n_per=4, seed=17, frac_de=0.2)
    design = build_run_design(sheet, ModelSpec(random=("feature", "sample")))
    fit = fit_proteins(table, design, robust="huber")
    assert fit.theta_scale is not None and (fit.theta_scale > 1.0).any()
    options = VarianceTestOptions.from_config(None)
    iterations: list[int] = []
    inner = optimize.minimize

    def counted(bucket, theta0=None, max_iter=optimize.MAX_ITER):  # type: ignore[no-untyped-def]
        res = inner(bucket, theta0, max_iter)
        if bucket.free.sum(axis=1).max() == 2:  # the full model (both terms free)
            iterations.append(int(res.iterations.sum()))
        return res

    monkeypatch.setattr(variance_tests, "minimize", counted)
    warm = fit_tests(fit, options)
    warm_iter = sum(iterations)
    iterations.clear()
    monkeypatch.setattr(variance_tests, "WARM_STARTS", False)
    cold = fit_tests(fit, options)
    for name in ("lrt_feature", "lrt_sample"):
        a, b = warm[name].to_numpy(), cold[name].to_numpy()
        assert np.array_equal(np.isnan(a), np.isnan(b)), name
        ok = ~np.isnan(a)
        np.testing.assert_allclose(a[ok], b[ok], rtol=0, atol=1e-6, err_msg=name)
        assert np.array_equal(a[ok] > 0, b[ok] > 0), name
        assert (a[ok] > 0).sum() > 20
    assert warm_iter < 0.6 * sum(iterations)


def test_lrt_problem_from_the_robust_builder_is_the_built_one() -> None:
    """``refit_problem`` of a Huber fit reuses its iteration's builder
    (``ModelFit.builder``): every bucket array equals ``build_problem`` at the final
    weights, bit for bit, and so do the LRTs."""
    from pepmix.model.suffstats import build_problem
    from pepmix.model.variance_tests import refit_problem

    from .simulate_da import simulate

    table, sheet, _ = simulate(n_prot=80, n_per=4, seed=19, frac_de=0.2)
    design = build_run_design(sheet, ModelSpec(random=("feature", "sample")))
    fit = fit_proteins(table, design, robust="huber")
    assert fit.builder is not None and fit.builder.cached and fit.encoded is not None
    assert fit.weights is not None and (fit.weights < 1).any()
    reused, _ = refit_problem(fit)
    enc = fit.encoded
    built = build_problem(
        enc.prot, enc.feat, enc.run, enc.y, design, len(enc.proteins), weights=fit.weights
    )
    assert len(reused.buckets) == len(built.buckets)
    for (i, a), (j, b) in zip(reused.buckets, built.buckets, strict=True):
        assert np.array_equal(i, j)
        for name in ("G", "W", "cls_n", "cls_m", "dimfactor", "efactor", "free", "nu"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
    options = VarianceTestOptions.from_config(None)
    with_builder = fit_tests(fit, options)
    fit.builder = None
    pd.testing.assert_frame_equal(with_builder, fit_tests(fit, options), check_exact=True)
