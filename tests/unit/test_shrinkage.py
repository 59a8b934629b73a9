"""Empirical-Bayes variance-ratio prior (model.shrinkage) and proteins without a finite optimum.

- Penalised criterion: exact gradient and Hessian against central finite differences.
- Hyperparameters: recovered from data simulated with a known prior, within 3 standard errors
  (the standard errors of the marginal-likelihood fit).
- Calibration with shrinkage (as the workflow runs it: no contrast-variance moderation, df cap
  raised by the prior df): null p-values uniform and FDP <= 5 % on average.
- Statuses, prior columns, JSON round trip, shard invariance, and the reduced-model rule for a
  protein whose REML criterion has no finite optimum.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pepmix.inference.differential import InferenceOptions, differential_table
from pepmix.model.design import ModelSpec, build_run_design
from pepmix.model.fit import encode, fit_proteins
from pepmix.model.reml import derivatives, evaluate
from pepmix.model.shrinkage import (
    FactorPrior,
    VariancePrior,
    attach_prior,
    fit_variance_prior,
)
from pepmix.model.suffstats import build_problem

from .engine_data import make_design, make_table
from .simulate_da import simulate

PRIOR = VariancePrior({"sample": FactorPrior(df=3.0, ratio=0.4), "run": FactorPrior(2.0, 0.2)})


@pytest.mark.parametrize(
    "spec",
    [
        {"random": ("feature", "sample")},
        {"random": ("feature", "sample", "run"), "runs_per_sample": 2},
    ],
)
def test_penalised_gradient_and_hessian_match_finite_differences(spec: dict) -> None:
    sheet, design = make_design(**spec)
    table = make_table(design, sheet, 25, 4)
    enc = encode(table, design)
    problem = build_problem(enc.prot, enc.feat, enc.run, enc.y, design, len(enc.proteins))
    rng = np.random.default_rng(5)
    h = 1e-5
    # central differences: truncation O(h^2 f''') ~ 1e-10, rounding ~ eps |d| / h ~ 1e-9
    n_penalised = 0
    for _, plain in problem.buckets:
        bucket = attach_prior(plain, problem.factors, PRIOR)
        assert bucket.prior_df is not None
        n_penalised += int(np.sum(bucket.prior_df > 0))
        free = bucket.free
        theta = rng.uniform(0.2, 1.5, size=free.shape) * free
        ev = evaluate(bucket, theta)
        assert np.all(ev.penalty is not None) and np.all(np.isfinite(ev.dev))
        grad, hess = derivatives(bucket, theta, ev).profiled(bucket.nu)
        for f in range(free.shape[1]):
            step = np.zeros_like(theta)
            step[:, f] = h * free[:, f]
            plus, minus = evaluate(bucket, theta + step), evaluate(bucket, theta - step)
            ok = free[:, f]
            fd_grad = (plus.dev - minus.dev) / (2 * h)
            np.testing.assert_allclose(grad[ok, f], fd_grad[ok], rtol=1e-6, atol=1e-6)
            gp, _ = derivatives(bucket, theta + step, plus).profiled(bucket.nu)
            gm, _ = derivatives(bucket, theta - step, minus).profiled(bucket.nu)
            np.testing.assert_allclose(
                hess[ok, :, f], ((gp - gm) / (2 * h))[ok], rtol=1e-5, atol=1e-5
            )
        # the penalty is the only difference from the plain criterion
        plain_dev = evaluate(plain, theta).dev
        np.testing.assert_allclose(ev.reml_crit, plain_dev, rtol=1e-12)
    assert n_penalised >= 15


def _known_prior_data(n_prot: int, d0: float, r0: float, seed: int):
    """Feature + sample model with sample-variance ratios drawn from scaled-inv-chi2(d0, r0)."""
    rng = np.random.default_rng(seed)
    sheet = pd.DataFrame(
        [(f"{c}{s}", c, f"{c}{s}") for c in "AB" for s in range(4)],
        columns=["run", "condition", "bioreplicate"],
    )
    sheet["batch"] = pd.NA
    runs = sheet["run"].to_numpy()
    lam = d0 * r0 / rng.chisquare(d0, n_prot)
    sigma, m = 0.2, 4
    y = (
        rng.normal(0.0, 1.0, (n_prot, m, 1))
        + rng.normal(0.0, 1.0, (n_prot, 1, runs.size)) * (np.sqrt(lam) * sigma)[:, None, None]
        + rng.normal(0.0, sigma, (n_prot, m, runs.size))
    )
    p, f, r = np.indices(y.shape)
    keep = rng.random(y.shape) > 0.2
    table = pd.DataFrame(
        {
            "protein": [f"P{i:05d}" for i in p[keep]],
            "feature": f[keep].astype(str),
            "run": runs[r[keep]],
            "y": y[keep],
        }
    )
    return table, build_run_design(sheet, ModelSpec(random=("feature", "sample")))


@pytest.mark.parametrize(("d0", "r0"), [(4.0, 0.5), (2.0, 1.0)])
def test_hyperparameters_recover_known_prior(d0: float, r0: float) -> None:
    table, design = _known_prior_data(1000, d0, r0, seed=1)
    fp = fit_variance_prior(table, design).factors["sample"]
    assert fp.n_proteins >= 990
    # within 3 standard errors of the marginal-likelihood estimate (observed information)
    assert 0.0 < fp.se_log_df < 0.5 and 0.0 < fp.se_log_ratio < 0.5
    assert abs(np.log(fp.df) - np.log(d0)) < 3.0 * fp.se_log_df
    assert abs(np.log(fp.ratio) - np.log(r0)) < 3.0 * fp.se_log_ratio


def _shrunk_test(seed: int, frac_de: float, shape: float, n_per: int = 3):
    table, sheet, truth = simulate(
        n_prot=2000, n_per=n_per, seed=seed, frac_de=frac_de, sample_var=(shape, 0.15**2 / shape)
    )
    design = build_run_design(sheet, ModelSpec(random=("feature", "sample")))
    prior = fit_variance_prior(table, design)
    fit = fit_proteins(table, design, [("B - A", "B", "A")], prior=prior)
    result = differential_table(
        fit.contrast_table(["B"], ["A"]), ["B - A"], InferenceOptions(moderation=False)
    )
    return result.set_index("protein"), truth, fit


def test_calibration_with_shrinkage_skewed_sample_variances() -> None:
    """Sample variances gamma(shape 0.5): many near zero; 3 samples per condition, 20 % DE.

    BH's expected FDP is 0.8 x 5 % = 4 %; one seed's FDP has an SD of about 1 %.
    """
    fdp, null_p = [], []
    for seed in (2, 3, 4):
        result, truth, _ = _shrunk_test(seed, frac_de=0.2, shape=0.5)
        called = result.index[result["adj_pvalue"] < 0.05]
        fdp.append(float((~truth[called]).sum()) / max(len(called), 1))
        nulls = result.loc[~truth[result.index].to_numpy(), "pvalue"].dropna()
        assert nulls.size >= 1500
        null_p.append(nulls.to_numpy())
    pooled = np.concatenate(null_p)
    assert stats.kstest(pooled, "uniform").pvalue > 0.01
    assert 0.03 <= np.mean(pooled < 0.05) <= 0.07
    assert np.mean(fdp) <= 0.05


def test_statuses_and_prior_columns() -> None:
    table, sheet, _ = simulate(n_prot=150, n_per=3, seed=7, sample_var=(0.5, 0.045))
    design = build_run_design(sheet, ModelSpec(random=("feature", "sample")))
    plain = fit_proteins(table, design, [("B - A", "B", "A")])
    fit = fit_proteins(table, design, [("B - A", "B", "A")], prior=PRIOR)
    vc = fit.variance_components()
    f = fit.factors.index("sample")
    shrunk = np.asarray(fit.theta_reml[:, f] == 0.0) & np.isin(fit.status, ["ok", "boundary"])
    assert shrunk.sum() >= 10  # REML puts many sample variances on the boundary here
    assert (vc.loc[shrunk, "var_sample"] > 0).all()
    assert (vc.loc[shrunk, "detail"].str.contains("sample variance shrunk: REML estimate 0")).all()
    assert not vc.loc[shrunk, "status"].eq("boundary").any() or (
        vc.loc[shrunk & vc["status"].eq("boundary"), "detail"].str.contains("feature").all()
    )
    # the plain REML estimates are those of the fit without a prior
    both = np.isin(plain.status, ["ok", "boundary"]) & np.isin(fit.status, ["ok", "boundary"])
    np.testing.assert_allclose(
        fit.theta_reml[both, f], np.where(plain.theta[both, f] > 0, plain.theta[both, f], 0.0),
        rtol=1e-3, atol=1e-4,
    )  # fmt: skip
    assert (vc["shrinkage_prior_df_sample"] == 3.0).all()
    assert (vc["shrinkage_prior_ratio_sample"] == 0.4).all()
    assert "shrinkage_prior_df_sample" not in plain.variance_components().columns
    # reml_crit is the plain criterion at the penalised estimate: never below the REML optimum
    ok = both & np.isfinite(plain.reml_crit)
    assert np.all(fit.reml_crit[ok] >= plain.reml_crit[ok] - 1e-6)
    # the df cap counts the prior df of the shrunk sample ratio
    ct, ct0 = fit.contrast_table(["B"], ["A"]), plain.contrast_table(["B"], ["A"])
    moved = np.asarray(fit.theta[:, f] > 0)
    np.testing.assert_allclose(ct["df_between"][moved], ct0["df_between"][moved] + 3.0)


def test_prior_json_round_trip(tmp_path) -> None:
    PRIOR.to_json(tmp_path / "prior.json")
    back = VariancePrior.from_json(tmp_path / "prior.json")
    assert {k: (v.df, v.ratio) for k, v in back.factors.items()} == {
        "sample": (3.0, 0.4),
        "run": (2.0, 0.2),
    }
    assert "sample: d0 = 3" in back.describe()


def test_fit_with_fixed_prior_does_not_depend_on_shards() -> None:
    table, sheet, _ = simulate(n_prot=120, n_per=3, seed=8, sample_var=(0.5, 0.045))
    design = build_run_design(sheet, ModelSpec(random=("feature", "sample")))
    whole = fit_proteins(table, design, [("B - A", "B", "A")], prior=PRIOR)
    names = sorted(table["protein"].unique())
    parts = [
        fit_proteins(
            table[table["protein"].isin(chunk)], design, [("B - A", "B", "A")], prior=PRIOR
        )
        for chunk in (names[:50], names[50:])
    ]
    joined = pd.concat([p.contrast_table(["B"], ["A"]) for p in parts], ignore_index=True)
    ref = whole.contrast_table(["B"], ["A"])
    assert list(joined["protein"]) == list(ref["protein"])
    assert list(joined["status"]) == list(ref["status"])
    # same optimisation per protein; only the padding of the batched arrays differs (the
    # optimiser stops at a projected-gradient norm of 1e-6)
    for col in ("estimate", "se", "df"):
        np.testing.assert_allclose(joined[col], ref[col], rtol=1e-5, atol=1e-8)


# 10 observations, 2 features, 5 samples per condition: the random effects can fit every
# observation and REML drives the residual variance to zero (no finite optimum)
DIVERGENT = [
    ("f0", "A2", 20.664103), ("f1", "B1", 20.092690), ("f1", "A3", 19.253273),
    ("f0", "B0", 20.229733), ("f0", "A0", 19.287900), ("f1", "B4", 19.323220),
    ("f1", "A4", 20.087231), ("f1", "A2", 21.168688), ("f0", "B2", 20.641200),
    ("f1", "B3", 22.949849),
]  # fmt: skip


def _divergent_case():
    sheet = pd.DataFrame(
        [(f"{c}{s}", c, f"{c}{s}") for c in "AB" for s in range(5)],
        columns=["run", "condition", "bioreplicate"],
    )
    sheet["batch"] = pd.NA
    table = pd.DataFrame(DIVERGENT, columns=["feature", "run", "y"]).assign(protein="P")
    return table, sheet


def test_protein_without_finite_optimum_gets_reduced_model() -> None:
    table, sheet = _divergent_case()
    design = build_run_design(sheet, ModelSpec(random=("feature", "sample")))
    fit = fit_proteins(table, design, [("B - A", "B", "A")])
    assert fit.status == ["reduced_model"]
    assert "feature: dropped" in fit.detail[0] and "not separable" in fit.detail[0]
    assert np.isfinite(fit.se[0, 0]) and np.isfinite(fit.df[0, 0]) and fit.sigma[0] > 0
    # it is the fit of the model without the dropped term (chosen by the better REML criterion)
    reduced = fit_proteins(table, build_run_design(sheet, ModelSpec(random=("sample",))),
                           [("B - A", "B", "A")])  # fmt: skip
    np.testing.assert_allclose(fit.reml_crit, reduced.reml_crit, rtol=1e-9)
    np.testing.assert_allclose(fit.estimate, reduced.estimate, rtol=1e-6)
    np.testing.assert_allclose(fit.se, reduced.se, rtol=1e-4)
    other = fit_proteins(table, build_run_design(sheet, ModelSpec(random=("feature",))),
                         [("B - A", "B", "A")])  # fmt: skip
    assert other.reml_crit[0] > fit.reml_crit[0]


def test_prior_keeps_divergent_protein_finite() -> None:
    table, sheet = _divergent_case()
    design = build_run_design(sheet, ModelSpec(random=("feature", "sample")))
    fit = fit_proteins(table, design, [("B - A", "B", "A")], prior=PRIOR)
    assert fit.status[0] in ("ok", "boundary")
    assert "no finite REML optimum without the prior" in fit.detail[0]
    f = fit.factors.index("sample")
    assert 0.0 < fit.theta[0, f] < 10.0 and np.isnan(fit.theta_reml[0, f])
    assert np.isfinite(fit.se[0, 0]) and np.isfinite(fit.df[0, 0]) and fit.sigma[0] > 0
