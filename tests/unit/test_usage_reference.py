"""Peptide usage, ``(1|feature:condition)``, against lme4 1.1-31 / lmerTest 3.1-3.

Reference chain: ``tests/reference/usage/generate.py`` (40 seeded proteins, 2-4 conditions, 2-6
features, 3-4 samples per condition, about 12 % missing cells, true usage SD 0, 0.4 or 1) ->
``fit_lme4.R`` -> ``usage_reference.csv`` (committed). No R needed here.

Model: ``lmer(y ~ condition + (1|feature) + (1|feature:condition) + (1|sample), REML = TRUE)``.

Tolerances:

- Dense reference (:func:`pepmix.model.dense.fit_dense`, L-BFGS-B from a grid of starts): criterion
  never worse than the best of two lme4 optimisers by more than 1e-6 (L-BFGS-B's convergence in the
  criterion), better allowed; at lme4's theta the dense criterion agrees to 1e-8 relative (same
  formula, no optimiser).
- Batched engine (``model.random: [feature, feature:condition, sample]``), the tolerances of
  ``test_lme4_reference.py`` (the optimiser's guarantee, not one run's numbers): criterion never
  worse than lme4's best by more than 2e-6; at lme4's theta the engine's criterion within 1e-9
  relative; on non-singular fits where lme4's default fit reached the optimum (criterion within
  1e-8 of the best) variance components within 1e-4 relative, fixed effects within 1e-5, their
  covariance within 1e-4 relative, Satterthwaite df within 1e-3 relative and p within 1e-4.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pepmix.model.dense import fit_dense, indicator, interaction_codes, reml_criterion
from pepmix.model.design import USAGE_FACTOR, ModelSpec, RunDesign, build_run_design
from pepmix.model.fit import ModelFit, encode, fit_proteins
from pepmix.model.reml import evaluate
from pepmix.model.suffstats import build_problem
from pepmix.model.variance_tests import term_lrts

REF = Path(__file__).resolve().parents[1] / "reference" / "usage"


@pytest.fixture(scope="module")
def reference() -> tuple[pd.DataFrame, pd.DataFrame]:
    data = pd.read_csv(REF / "datasets.csv.gz")
    ref = pd.read_csv(REF / "usage_reference.csv").set_index("dataset")
    return data, ref


def _dense_parts(d: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """y, treatment-coded X and the Z of (usage, feature, sample), lme4's theta order."""
    cond = pd.Categorical(d["condition"]).codes.astype(np.intp)
    feat = pd.Categorical(d["feature"]).codes.astype(np.intp)
    samp = pd.Categorical(d["sample"]).codes.astype(np.intp)
    n_cond = int(cond.max()) + 1
    x = np.zeros((len(d), n_cond))
    x[:, 0] = 1.0
    for c in range(1, n_cond):
        x[:, c] = cond == c
    zs = [indicator(interaction_codes(feat, cond)), indicator(feat), indicator(samp)]
    return d["y"].to_numpy(dtype=np.float64), x, zs


def test_dense_criterion_at_lme4_theta(reference: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    data, ref = reference
    for k, d in data.groupby("dataset"):
        y, x, zs = _dense_parts(d)
        row = ref.loc[k]
        theta = [row.theta_usage, row.theta_feature, row.theta_sample]
        assert reml_criterion(y, x, zs, theta) == pytest.approx(row.crit, rel=1e-8)


@pytest.mark.parametrize("k", [0, 1, 2, 13])
def test_dense_fit_matches_lme4(reference: tuple[pd.DataFrame, pd.DataFrame], k: int) -> None:
    data, ref = reference
    y, x, zs = _dense_parts(data[data["dataset"] == k])
    theta, crit = fit_dense(y, x, zs, starts=[(0.3, 1.0, 0.3), (1.0, 3.0, 1.0)])
    row = ref.loc[k]
    assert crit <= row.crit + 1e-6
    assert crit == pytest.approx(row.crit, abs=1e-3)
    del theta


FACTORS = ("feature", USAGE_FACTOR, "sample")
R_THETA = {"feature": "theta_feature", USAGE_FACTOR: "theta_usage", "sample": "theta_sample"}


def _design(d: pd.DataFrame) -> RunDesign:
    sheet = (
        d.groupby("run", sort=True)
        .agg(condition=("condition", "first"), bioreplicate=("sample", "first"))
        .reset_index()
        .assign(batch=np.nan)
        .sort_values(["condition", "run"], kind="stable")
    )
    return build_run_design(sheet, ModelSpec(random=FACTORS))


def _engine(d: pd.DataFrame) -> tuple[RunDesign, ModelFit]:
    design = _design(d)
    table = d.assign(protein="p")[["protein", "feature", "run", "y"]]
    contrast = ("c1 - c0", "c1", "c0")
    return design, fit_proteins(table, design, [contrast])


@pytest.fixture(scope="module")
def engine_fits(
    reference: tuple[pd.DataFrame, pd.DataFrame],
) -> list[tuple[int, RunDesign, ModelFit]]:
    data, _ = reference
    return [(int(k), *_engine(d)) for k, d in data.groupby("dataset")]


def _at_optimum(row: pd.Series) -> bool:
    """Non-singular in lme4 and lme4's default fit at the best optimum."""
    thetas = [row.theta_usage, row.theta_feature, row.theta_sample]
    return bool(min(thetas) > 1e-3 and row.crit_default - row.crit < 1e-8)


def test_engine_criterion_never_worse_than_lme4(
    reference: tuple[pd.DataFrame, pd.DataFrame], engine_fits: list[tuple[int, RunDesign, ModelFit]]
) -> None:
    _, ref = reference
    for k, _, fit in engine_fits:
        assert fit.status[0] in ("ok", "boundary"), (k, fit.detail[0])
        assert fit.reml_crit[0] <= ref.loc[k].crit + 2e-6, k


def test_engine_criterion_at_lme4_theta(reference: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    data, ref = reference
    for k, d in data.groupby("dataset"):
        design = _design(d)
        enc = encode(d.assign(protein="p")[["protein", "feature", "run", "y"]], design)
        problem = build_problem(enc.prot, enc.feat, enc.run, enc.y, design, 1)
        ((_, bucket),) = problem.buckets
        row = ref.loc[k]
        theta = np.array([[row[R_THETA[f]] for f in FACTORS]])
        assert evaluate(bucket, theta).dev[0] == pytest.approx(row.crit, rel=1e-9), k


def test_engine_estimates_match_lme4(
    reference: tuple[pd.DataFrame, pd.DataFrame], engine_fits: list[tuple[int, RunDesign, ModelFit]]
) -> None:
    _, ref = reference
    checked = 0
    for k, design, fit in engine_fits:
        row = ref.loc[k]
        if not _at_optimum(row):
            continue
        for f, name in enumerate(FACTORS):
            ours = (fit.theta[0, f] * fit.sigma[0]) ** 2
            assert ours == pytest.approx((row[R_THETA[name]] * row.sigma) ** 2, rel=1e-4)
        tmat = design.treatment_matrix()
        beta = tmat @ fit.beta[0]
        np.testing.assert_allclose(beta, np.array(row.fixef.split(";"), float), atol=1e-5)
        vcov = tmat @ fit.cov_beta[0] @ tmat.T
        p = beta.size
        ref_vcov = np.array(row.vcov.split(";"), float).reshape(p, p)
        np.testing.assert_allclose(vcov, ref_vcov, rtol=1e-4, atol=1e-9)
        assert fit.estimate[0, 0] == pytest.approx(row.estimate, abs=1e-5)
        assert fit.se[0, 0] == pytest.approx(row.se, rel=1e-4)
        assert fit.df[0, 0] == pytest.approx(row.df, rel=1e-3)
        t = fit.estimate[0, 0] / fit.se[0, 0]
        assert 2.0 * stats.t.sf(abs(t), fit.df[0, 0]) == pytest.approx(row.p, abs=1e-4)
        checked += 1
    assert checked >= 10


def test_usage_blups_are_labelled(engine_fits: list[tuple[int, RunDesign, ModelFit]]) -> None:
    _, design, fit = engine_fits[0]
    usage = fit.blups.loc[fit.blups["factor"] == USAGE_FACTOR]
    labels = set(usage["level"].astype(str))
    assert len(labels) == len(usage) > 0
    assert all(lab.split(":")[1] in design.conditions for lab in labels)


def test_usage_lrt_matches_lme4(reference: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """REML LRT of the usage term (``term_lrts``) against lme4's ``REMLcrit`` difference of the
    best fits with and without the term; both engine criteria are never worse than lme4's
    (2e-6 each), so the LRT agrees to 1e-5 wherever lme4 reached both optima."""
    data, ref = reference
    u = FACTORS.index(USAGE_FACTOR)
    checked = 0
    for k, d in data.groupby("dataset"):
        design = _design(d)
        enc = encode(d.assign(protein="p")[["protein", "feature", "run", "y"]], design)
        problem = build_problem(enc.prot, enc.feat, enc.run, enc.y, design, 1)
        tests = term_lrts(problem)
        row = ref.loc[k]
        assert tests.lrt[0, u] >= -1e-9
        if row.crit_default - row.crit < 1e-8:
            assert tests.lrt[0, u] == pytest.approx(max(row.lrt_usage, 0.0), abs=1e-5), k
            checked += 1
    assert checked >= 20
