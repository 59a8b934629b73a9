"""Tests of pepmix.inference.limma against stored limma 3.54 output, plus property tests.

Reference values come from tests/reference/ebayes/generate_and_fit.R (no R needed here).
Agreement reached when these tests were written (maximum relative error over all proteins):
non-robust prior df / prior variance / posterior variances <= 1e-15 (trend: <= 3e-14); robust
prior df, prior variance, per-protein shrunk df and posterior variances <= 3e-14; robust tail
p-values <= 1.1e-13 (relative) and outlier probabilities <= 1e-13 (absolute); TREAT / eBayes
p-values and BH-adjusted p-values <= 1e-13.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pepmix.inference.limma import (
    bh_adjust,
    fit_f_dist,
    fit_f_dist_robust,
    squeeze_var,
    total_df,
    treat_pvalues,
)
from pepmix.inference.limma._distributions import log_pf

REF = Path(__file__).resolve().parents[1] / "reference" / "ebayes"

# Tolerances (relative unless noted). The reached agreement is ~1e-14; these leave head room for
# other scipy / libm builds.
RTOL_NONROBUST = 1e-12
RTOL_TREND = 1e-11
RTOL_ROBUST = 1e-10
RTOL_TAIL_P = 1e-10
ATOL_PROB_OUTLIER = 1e-11
RTOL_PVALUES = 1e-11


def _assert_close(actual: object, expected: object, rtol: float, atol: float = 0.0) -> None:
    a = np.atleast_1d(np.asarray(actual, dtype=np.float64))
    e = np.atleast_1d(np.asarray(expected, dtype=np.float64))
    a, e = np.broadcast_arrays(a, e)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(e))
    np.testing.assert_array_equal(np.isposinf(a), np.isposinf(e))
    fin = np.isfinite(e)
    np.testing.assert_allclose(a[fin], e[fin], rtol=rtol, atol=atol)


@pytest.fixture(scope="module")
def cases() -> pd.DataFrame:
    return pd.read_csv(REF / "cases.csv.gz")


@pytest.fixture(scope="module")
def scalars() -> dict[tuple[str, str], float]:
    tab = pd.read_csv(REF / "scalars.csv")
    return {(str(r.case), str(r.key)): float(r.value) for r in tab.itertuples()}


def _case(cases: pd.DataFrame, name: str) -> pd.DataFrame:
    sub = cases[cases["case"] == name].sort_values("gene")
    assert len(sub) > 0, name
    return sub


def _inputs(
    sub: pd.DataFrame, scalars: dict[tuple[str, str], float], name: str
) -> tuple[np.ndarray, float | np.ndarray, np.ndarray | None]:
    s2 = sub["s2"].to_numpy(dtype=float)
    df_col = sub["df"].to_numpy(dtype=float)
    df: float | np.ndarray = float(df_col[0]) if scalars[(name, "df_is_scalar")] == 1 else df_col
    cov = sub["covariate"].to_numpy(dtype=float)
    return s2, df, (None if np.all(np.isnan(cov)) else cov)


PLAIN_CASES = [
    "int_df",
    "satterthwaite",
    "outliers",
    "outliers_equal_df",
    "inf_prior",
    "small_n20",
]
TREND_CASES = ["trend", "trend_small"]


# ------------------------------------------------------------------------------------------------
# Against limma
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PLAIN_CASES)
def test_fit_f_dist_matches_limma(
    cases: pd.DataFrame, scalars: dict[tuple[str, str], float], name: str
) -> None:
    s2, df, _ = _inputs(_case(cases, name), scalars, name)
    fit = fit_f_dist(s2, df)
    _assert_close(fit.df2, scalars[(name, "fit_df2")], RTOL_NONROBUST)
    _assert_close(fit.scale, scalars[(name, "fit_scale")], RTOL_NONROBUST)


@pytest.mark.parametrize("name", PLAIN_CASES)
def test_squeeze_var_matches_limma(
    cases: pd.DataFrame, scalars: dict[tuple[str, str], float], name: str
) -> None:
    sub = _case(cases, name)
    s2, df, _ = _inputs(sub, scalars, name)
    res = squeeze_var(s2, df)
    _assert_close(res.df_prior, scalars[(name, "squeeze_df_prior")], RTOL_NONROBUST)
    _assert_close(res.var_prior, scalars[(name, "squeeze_var_prior")], RTOL_NONROBUST)
    _assert_close(res.var_post, sub["var_post"], RTOL_NONROBUST)


@pytest.mark.parametrize("name", PLAIN_CASES)
def test_fit_f_dist_robust_matches_limma(
    cases: pd.DataFrame, scalars: dict[tuple[str, str], float], name: str
) -> None:
    sub = _case(cases, name)
    s2, df, _ = _inputs(sub, scalars, name)
    fit = fit_f_dist_robust(s2, df)
    _assert_close(fit.df2, scalars[(name, "robust_df2")], RTOL_ROBUST)
    _assert_close(fit.scale, scalars[(name, "robust_scale")], RTOL_ROBUST)
    _assert_close(fit.df2_shrunk, sub["robust_df2_shrunk"], RTOL_ROBUST)
    ref_outlier_df = scalars[(name, "robust_df2_outlier")]
    if not math.isnan(ref_outlier_df):
        _assert_close(fit.df2_outlier, ref_outlier_df, RTOL_ROBUST)
    ref_tail = sub["robust_tail_p"].to_numpy(dtype=float)
    if not np.all(np.isnan(ref_tail)):
        _assert_close(fit.tail_p_value, ref_tail, RTOL_TAIL_P)
    ref_prob = sub["robust_prob_outlier"].to_numpy(dtype=float)
    if not np.all(np.isnan(ref_prob)):
        _assert_close(fit.prob_outlier, ref_prob, 0.0, atol=ATOL_PROB_OUTLIER)


@pytest.mark.parametrize("name", PLAIN_CASES)
def test_squeeze_var_robust_matches_limma(
    cases: pd.DataFrame, scalars: dict[tuple[str, str], float], name: str
) -> None:
    sub = _case(cases, name)
    s2, df, _ = _inputs(sub, scalars, name)
    res = squeeze_var(s2, df, robust=True)
    _assert_close(res.var_prior, scalars[(name, "squeeze_robust_var_prior")], RTOL_ROBUST)
    _assert_close(res.df_prior, sub["df_prior_robust"], RTOL_ROBUST)
    _assert_close(res.var_post, sub["var_post_robust"], RTOL_ROBUST)


@pytest.mark.parametrize("name", TREND_CASES)
def test_trend_matches_limma(
    cases: pd.DataFrame, scalars: dict[tuple[str, str], float], name: str
) -> None:
    sub = _case(cases, name)
    s2, df, cov = _inputs(sub, scalars, name)
    assert cov is not None
    fit = fit_f_dist(s2, df, covariate=cov)
    _assert_close(fit.df2, scalars[(name, "fit_df2")], RTOL_TREND)
    _assert_close(fit.scale, sub["fit_scale"], RTOL_TREND)
    res = squeeze_var(s2, df, covariate=cov)
    _assert_close(res.df_prior, scalars[(name, "squeeze_df_prior")], RTOL_TREND)
    _assert_close(res.var_prior, sub["var_prior"], RTOL_TREND)
    _assert_close(res.var_post, sub["var_post"], RTOL_TREND)


def test_reference_covers_the_branches(
    cases: pd.DataFrame, scalars: dict[tuple[str, str], float]
) -> None:
    # infinite prior df, robust root-finding, robust df2 == non-robust df2, per-protein df
    assert math.isinf(scalars[("inf_prior", "fit_df2")])
    assert math.isinf(scalars[("inf_prior", "robust_df2")])
    assert scalars[("outliers", "robust_df2")] > scalars[("outliers", "fit_df2")]
    assert scalars[("small_n20", "robust_df2")] == scalars[("small_n20", "fit_df2")]
    sat = _case(cases, "satterthwaite")
    assert np.any(np.isnan(sat["s2"])) and np.any(sat["s2"] == 0)
    assert np.any(sat["df"] == 0) and np.any(np.isnan(sat["df"]))
    assert not np.allclose(sat["df"].dropna(), np.round(sat["df"].dropna()))


@pytest.fixture(scope="module")
def treat_tab() -> pd.DataFrame:
    return pd.read_csv(REF / "treat.csv.gz")


@pytest.mark.parametrize("robust", [False, True])
def test_treat_end_to_end_matches_limma(treat_tab: pd.DataFrame, robust: bool) -> None:
    suffix = "_robust" if robust else ""
    df_res = treat_tab["df_residual"].to_numpy(dtype=float)
    sq = squeeze_var(treat_tab["sigma2"].to_numpy(dtype=float), df_res, robust=robust)
    _assert_close(sq.var_post, treat_tab["s2_post" + suffix], RTOL_ROBUST)
    dft = total_df(df_res, sq.df_prior)
    _assert_close(dft, treat_tab["df_total" + suffix], RTOL_ROBUST)
    se = treat_tab["stdev_unscaled"].to_numpy(dtype=float) * np.sqrt(sq.var_post)
    p = treat_pvalues(treat_tab["coef"].to_numpy(dtype=float), se, dft, lfc=0.5)
    _assert_close(p, treat_tab["p_treat" + suffix], RTOL_PVALUES)
    if not robust:
        p0 = treat_pvalues(treat_tab["coef"].to_numpy(dtype=float), se, dft, lfc=0.0)
        _assert_close(p0, treat_tab["p_ebayes"], RTOL_PVALUES)


def test_treat_formula_on_stored_inputs(treat_tab: pd.DataFrame) -> None:
    # isolates treat_pvalues from the variance moderation
    se = treat_tab["stdev_unscaled"].to_numpy(dtype=float) * np.sqrt(treat_tab["s2_post"])
    p = treat_pvalues(treat_tab["coef"], se, treat_tab["df_total"], lfc=-0.5)  # |lfc| is used
    _assert_close(p, treat_tab["p_treat"], RTOL_PVALUES)


def test_bh_matches_p_adjust() -> None:
    tab = pd.read_csv(REF / "bh.csv")
    p = tab["p"].to_numpy(dtype=float)
    assert np.isnan(p).sum() == 30
    _assert_close(bh_adjust(p), tab["bh"], RTOL_PVALUES)


# ------------------------------------------------------------------------------------------------
# Properties
# ------------------------------------------------------------------------------------------------


def _simulate(
    n: int, seed: int, d0: float = 6.0, s02: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    df = rng.uniform(2.0, 40.0, n)
    sigma2 = s02 * d0 / rng.chisquare(d0, n)
    return sigma2 * rng.chisquare(df) / df, df


@pytest.mark.parametrize("robust", [False, True])
def test_posterior_lies_between_sample_and_prior(robust: bool) -> None:
    s2, df = _simulate(500, 1)
    s2[:10] *= 40.0
    res = squeeze_var(s2, df, robust=robust)
    prior = np.broadcast_to(np.asarray(res.var_prior), s2.shape)
    lo = np.minimum(s2, prior) * (1 - 1e-12)
    hi = np.maximum(s2, prior) * (1 + 1e-12)
    assert np.all((res.var_post >= lo) & (res.var_post <= hi))
    # more prior weight (smaller own df) means closer to the prior
    assert np.all(np.abs(res.var_post - prior) <= np.abs(s2 - prior) * (1 + 1e-12))


def test_posterior_equals_weighted_average() -> None:
    s2, df = _simulate(300, 2)
    res = squeeze_var(s2, df)
    d0, s0 = float(res.df_prior), float(res.var_prior)
    np.testing.assert_allclose(res.var_post, (d0 * s0 + df * s2) / (d0 + df), rtol=1e-14)


def test_infinite_prior_df_gives_prior_variance() -> None:
    s2 = 0.2 * np.exp(np.random.default_rng(3).normal(0, 0.01, 100))  # underdispersed
    res = squeeze_var(s2, 4.0)
    assert math.isinf(float(res.df_prior))
    np.testing.assert_array_equal(res.var_post, np.full(100, res.var_prior))
    assert float(res.var_prior) == pytest.approx(float(np.mean(s2)), rel=1e-14)


def test_zero_df_missing_values_and_nan_df() -> None:
    s2, df = _simulate(200, 4)
    s2[0] = np.nan  # missing variance, df > 0: NaN posterior
    df[1] = 0.0  # no information: prior variance
    s2[2], df[2] = np.nan, 0.0  # missing with df 0: prior variance
    df[3] = np.nan  # NaN df: NaN posterior (as limma)
    for robust in (False, True):
        res = squeeze_var(s2, df, robust=robust)
        prior = np.broadcast_to(np.asarray(res.var_prior), s2.shape)
        assert np.isnan(res.var_post[0])
        assert res.var_post[1] == pytest.approx(prior[1], rel=1e-15)
        assert res.var_post[2] == pytest.approx(prior[2], rel=1e-15)
        assert np.isnan(res.var_post[3])
        assert np.all(np.isfinite(res.var_post[4:]))
    # excluded proteins do not influence the estimate
    keep = np.ones(200, dtype=bool)
    keep[:4] = False
    a = fit_f_dist(s2, df)
    b = fit_f_dist(s2[keep], df[keep])
    assert a.df2 == pytest.approx(b.df2, rel=1e-14)
    assert float(a.scale) == pytest.approx(float(b.scale), rel=1e-14)


def test_zero_variances_are_offset(caplog: pytest.LogCaptureFixture) -> None:
    s2, df = _simulate(100, 5)
    s2[:3] = 0.0
    with caplog.at_level(logging.WARNING, logger="pepmix.inference.limma"):
        res = squeeze_var(s2, df)
    assert "Zero sample variances" in caplog.text
    assert np.all(res.var_post[:3] > 0)


def test_scale_equivariance() -> None:
    s2, df = _simulate(400, 6)
    s2[:5] *= 30
    for robust in (False, True):
        a = squeeze_var(s2, df, robust=robust)
        b = squeeze_var(1000.0 * s2, df, robust=robust)
        np.testing.assert_allclose(b.var_post, 1000.0 * a.var_post, rtol=1e-9)
        np.testing.assert_allclose(b.df_prior, a.df_prior, rtol=1e-9)


def test_robust_flags_hypervariable_proteins() -> None:
    s2, df = _simulate(1000, 7, d0=10.0)
    s2[:20] *= 200.0
    fit = fit_f_dist_robust(s2, df)
    assert fit.df2_shrunk is not None and fit.prob_outlier is not None
    assert np.median(fit.df2_shrunk[:20]) < 0.5 * fit.df2
    assert np.median(fit.prob_outlier[:20]) > 0.9
    assert fit.df2 > fit_f_dist(s2, df).df2


def test_single_protein_and_small_inputs() -> None:
    one = squeeze_var([0.3], 4.0)
    assert one.df_prior == 0.0 and one.var_prior == 0.3
    np.testing.assert_array_equal(one.var_post, [0.3])
    two = fit_f_dist_robust([0.1, 0.3], 3.0)
    assert two.df2_shrunk is not None and np.all(two.df2_shrunk == two.df2)
    with pytest.raises(ValueError, match="Could not estimate prior df"):
        squeeze_var([0.1, 0.2, 0.3], 0.0)


def test_input_validation() -> None:
    with pytest.raises(ValueError):
        squeeze_var([], 3.0)
    with pytest.raises(ValueError):
        squeeze_var([0.1, -0.2, 0.3], 3.0)
    with pytest.raises(ValueError):
        squeeze_var([0.1, np.inf, 0.3], 3.0)
    with pytest.raises(ValueError):
        squeeze_var([0.1, 0.2, 0.3], [3.0, 4.0])
    with pytest.raises(ValueError):
        squeeze_var([0.1, 0.2, 0.3], [3.0, -4.0, 2.0])
    with pytest.raises(ValueError):
        squeeze_var([[0.1, 0.2]], 3.0)
    with pytest.raises(ValueError):
        fit_f_dist_robust([0.1, 0.2, 0.3, 0.4], 3.0, winsor_tail_p=(0.05, 0.7))
    with pytest.raises(ValueError):
        fit_f_dist([0.1, 0.2, 0.3], 3.0, covariate=[1.0, np.nan, 2.0])
    with pytest.raises(NotImplementedError):
        squeeze_var([0.1, 0.2, 0.3], 3.0, robust=True, covariate=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError):
        treat_pvalues([1.0], [-0.1], [3.0], 0.5)
    with pytest.raises(ValueError):
        treat_pvalues([1.0], [0.1], [0.0], 0.5)
    with pytest.raises(ValueError):
        bh_adjust([0.5, 1.2])


def test_bh_properties() -> None:
    rng = np.random.default_rng(8)
    p = rng.uniform(size=300) ** 2
    q = bh_adjust(p)
    order = np.argsort(p)
    assert np.all(np.diff(q[order]) >= 0)
    assert np.all(q >= p) and np.all(q <= 1)
    # NaNs stay NaN and are not counted as tests
    p_nan = np.concatenate([p, [np.nan] * 50])
    q_nan = bh_adjust(p_nan)
    assert np.all(np.isnan(q_nan[300:]))
    np.testing.assert_array_equal(q_nan[:300], q)
    # shape is preserved; all-NaN and empty inputs
    assert bh_adjust(p.reshape(30, 10)).shape == (30, 10)
    assert np.all(np.isnan(bh_adjust([np.nan, np.nan])))
    assert bh_adjust([]).shape == (0,)
    # known small example: p.adjust(c(0.01, 0.02, 0.03, 0.5), "BH")
    np.testing.assert_allclose(bh_adjust([0.01, 0.02, 0.03, 0.5]), [0.04, 0.04, 0.04, 0.5])


def test_treat_properties() -> None:
    from scipy import stats

    est = np.array([-2.0, -0.3, 0.0, 0.4, 1.0, 3.0])
    se = np.full(6, 0.4)
    df = 7.5
    p0 = treat_pvalues(est, se, df, 0.0)
    np.testing.assert_allclose(p0, 2 * stats.t.sf(np.abs(est / se), df), rtol=1e-13)
    p = treat_pvalues(est, se, df, 0.5)
    assert np.all(p >= p0)
    assert np.all(np.diff(treat_pvalues(np.linspace(0, 3, 20), 0.4, df, 0.5)) <= 0)
    # infinite df: normal distribution; NaN propagates; broadcasting over contrasts
    pinf = treat_pvalues(est, se, np.inf, 0.5)
    expect = stats.norm.sf((np.abs(est) - 0.5) / 0.4) + stats.norm.sf((np.abs(est) + 0.5) / 0.4)
    np.testing.assert_allclose(pinf, expect, rtol=1e-13)
    assert np.isnan(treat_pvalues([np.nan], [0.1], [3.0], 0.5)[0])
    assert treat_pvalues(
        np.ones((4, 3)), np.full((4, 1), 0.2), np.full((4, 1), 5.0), 1.0
    ).shape == (
        4,
        3,
    )


def test_total_df_caps_at_pooled() -> None:
    d = np.array([2.0, 3.0, np.nan, 4.0])
    np.testing.assert_allclose(total_df(d, 4.0)[[0, 1, 3]], [6.0, 7.0, 8.0])
    np.testing.assert_allclose(total_df(d, np.inf)[[0, 1, 3]], [9.0, 9.0, 9.0])


def test_extreme_tails_do_not_underflow() -> None:
    # log upper tail of F(40, 1e6) at 100; numerical integration gives -1890.99930007714
    # (R 4.2's pf(log.p = TRUE) underflows here and returns -1811.68)
    val = log_pf(np.array([100.0]), 40.0, 1e6, lower=False)[0]
    assert val == pytest.approx(-1890.9993000771433, rel=1e-12)
    # a very extreme variance keeps a finite tail probability on the log scale
    s2, df = _simulate(300, 9)
    s2[0] = 1e12
    fit = fit_f_dist_robust(s2, df)
    assert fit.df2_shrunk is not None and np.all(np.isfinite(fit.df2_shrunk))
    assert fit.prob_outlier is not None and fit.prob_outlier[0] == pytest.approx(1.0)
