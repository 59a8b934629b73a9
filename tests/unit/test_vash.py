"""Tests of the vash prior of the moderation (pepmix.inference.vash, testing.variance_prior: vash).

Data are simulated from the hierarchical model of the module docstring: true variances
:math:`\\sigma^2_g` from a known distribution, :math:`s^2_g = \\sigma^2_g\\chi^2_{\\nu_g}/\\nu_g`
with small df (2-4, as the capped Satterthwaite df of three to four samples per condition) and,
for p-values, null estimates :math:`\\hat\\delta_g \\sim N(0, \\sigma^2_g u)`.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from pepmix.inference.differential import InferenceOptions, differential_table
from pepmix.inference.limma import squeeze_var, total_df
from pepmix.inference.moderation import (
    MIN_PROTEINS_FOR_PRIOR,
    moderate_contrast,
    replicate_boundary,
)
from pepmix.inference.vash import (
    alpha_grid,
    censored_loglik,
    fit_prior,
    implied_df,
    mixture_pvalues,
    posterior,
)

U = 0.5  # 1/n_A + 1/n_B for four samples per condition


def _simulate(
    sigma2: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nu = rng.choice([2.0, 3.0, 4.0], sigma2.size)
    s2 = sigma2 * rng.chisquare(nu) / nu
    est = rng.normal(0.0, np.sqrt(sigma2 * U))
    return s2, nu, est


def _limma_p(est: np.ndarray, s2: np.ndarray, nu: np.ndarray, robust: bool) -> np.ndarray:
    sq = squeeze_var(s2, nu, robust=robust)
    t = np.abs(est) / np.sqrt(sq.var_post * U)
    return np.asarray(2.0 * stats.t.sf(t, total_df(nu, sq.df_prior)))


def test_one_scaled_inverse_chi_square_prior_agrees_with_limma() -> None:
    """With data from limma's own model (d0 = 5, s0^2 = 0.1, 2,000 proteins on 2-4 df) both
    methods estimate the same prior, each with its own error: limma's two-parameter moment
    estimate, vash's maximum-likelihood mixture of ten shapes sharing a mode. In the bulk both
    are within a few % of the posterior under the true prior (measured over three seeds: median
    |log ratio| to the oracle 0.01-0.05 for limma, 0.02-0.04 for vash; 95 % quantile <= 0.11 and
    <= 0.17). The mixture's tails are estimated from the few extreme variances, so for the
    extreme 1-5 % of proteins the two differ more (up to 0.4 on the log scale at the largest
    or smallest s^2, measured). Tolerances: median |log ratio| vash/limma < 0.06, 95 % quantile
    < 0.15, and the p-values (which depend on the variance through a t tail) within 0.03 for 99
    % of the proteins and 0.1 for all (measured: <= 0.024 and <= 0.09)."""
    rng = np.random.default_rng(20240611)
    d0, s02 = 5.0, 0.1
    sigma2 = d0 * s02 / rng.chisquare(d0, 2000)
    s2, nu, est = _simulate(sigma2, rng)
    post = posterior(fit_prior(s2, nu), s2, nu)
    limma = squeeze_var(s2, nu, robust=False)
    ratio = np.abs(np.log(post.var_post / limma.var_post))
    assert np.median(ratio) < 0.06
    assert np.quantile(ratio, 0.95) < 0.15
    p = mixture_pvalues(est, np.full(s2.size, U), post)
    diff = np.abs(p - _limma_p(est, s2, nu, robust=False))
    assert np.quantile(diff, 0.99) < 0.03
    assert diff.max() < 0.1


def test_skewed_variances_null_uniform_where_limma_is_not() -> None:
    """Gamma(0.3)-distributed true variances (a fifth below 0.002, a long tail) plus a floor:
    one scaled-inverse-chi-square prior does not fit, limma's robust p-values are not uniform
    (KS p < 0.01); the vash mixture's are (KS p > 0.01, the calibration tests' threshold)."""
    rng = np.random.default_rng(1)
    sigma2 = rng.gamma(0.3, 1.0, 2000) + 1e-3
    s2, nu, est = _simulate(sigma2, rng)
    post = posterior(fit_prior(s2, nu), s2, nu)
    p = mixture_pvalues(est, np.full(s2.size, U), post)
    assert stats.kstest(_limma_p(est, s2, nu, robust=True), "uniform").pvalue < 0.01
    assert stats.kstest(p, "uniform").pvalue > 0.01


def _contrast(n: int, rng: np.random.Generator, zero_df: int = 0) -> pd.DataFrame:
    sigma2 = rng.gamma(0.5, 0.2, n) + 1e-3
    s2, nu, est = _simulate(sigma2, rng)
    nu[:zero_df] = 0.5  # below MIN_PRIOR_DF: moderated, not in the prior's fit
    return pd.DataFrame(
        {
            "protein": [f"P{i}" for i in range(n)],
            "contrast": "B - A",
            "estimate": est,
            "se": np.sqrt(s2 * U),
            "df": nu,
            "status": "ok",
            "detail": "",
            "n_features": 3,
            "n_observations": 24,
            "n_samples_num": 4,
            "n_samples_den": 4,
        }
    )


def test_differential_table_with_vash_is_consistent_and_deterministic() -> None:
    """t, df, p-value and interval agree (p from t on the reported df; the interval excludes 0
    exactly when p < 0.05); the proteins with df < 1 are moderated too; two runs are equal."""
    stats_ = _contrast(400, np.random.default_rng(5), zero_df=5)
    opts = InferenceOptions(prior="vash")
    table = differential_table(stats_, ["B - A"], opts)
    again = differential_table(stats_, ["B - A"], opts)
    pd.testing.assert_frame_equal(table, again)
    assert table["moderated"].all()
    finite = np.isfinite(table["df"])
    p_from_t = 2.0 * special.stdtr(table["df"][finite], -np.abs(table["t"][finite]))
    np.testing.assert_allclose(p_from_t, table["pvalue"][finite], rtol=1e-8, atol=1e-14)
    excludes = (table["ci_low"] > 0) | (table["ci_high"] < 0)
    clear = np.abs(table["pvalue"] - 0.05) > 1e-9
    assert ((excludes == (table["pvalue"] < 0.05)) | ~clear).all()
    low = table["protein"].isin([f"P{i}" for i in range(5)])
    assert (table.loc[low, "df_prior"] > 0).all()
    limma = differential_table(stats_, ["B - A"], InferenceOptions())
    assert not np.allclose(limma["pvalue"], table.set_index("protein").loc[limma["protein"]]
                           ["pvalue"].to_numpy())  # fmt: skip


def test_treat_with_vash_is_the_mixture_of_treat_pvalues() -> None:
    """With lfc_threshold the p-value is the posterior mixture of TREAT p-values: above the
    two-sided p-value, equal to it at threshold 0."""
    stats_ = _contrast(200, np.random.default_rng(6))
    plain = differential_table(stats_, ["B - A"], InferenceOptions(prior="vash"))
    treat = differential_table(stats_, ["B - A"], InferenceOptions(prior="vash", lfc_threshold=0.5))
    merged = plain.merge(treat, on="protein", suffixes=("", "_treat"))
    assert (merged["pvalue_treat"] >= merged["pvalue"] - 1e-12).all()
    assert (merged["pvalue_treat"] > merged["pvalue"]).mean() > 0.9


def test_few_proteins_are_not_moderated() -> None:
    """Below MIN_PROTEINS_FOR_PRIOR proteins on df >= 1 no prior is fitted (as with limma)."""
    part = _contrast(MIN_PROTEINS_FOR_PRIOR - 1, np.random.default_rng(7))
    se = part["se"].to_numpy()
    df = part["df"].to_numpy()
    tested = np.ones(se.size, dtype=bool)
    out = moderate_contrast(
        part, "B - A", tested, se, df, prior="vash", estimate=part["estimate"].to_numpy()
    )
    assert not out.moderated.any() and out.mixture is None
    np.testing.assert_array_equal(out.se, se)


def test_infinite_df_keep_their_variance() -> None:
    """A variance on infinite df is known: the posterior is that variance on infinite df and
    the p-value the normal one, whatever the prior; with every df infinite no prior is fitted."""
    rng = np.random.default_rng(8)
    s2, nu, est = _simulate(rng.gamma(0.5, 0.2, 300) + 1e-3, rng)
    post = posterior(fit_prior(s2, nu), s2, np.full(s2.size, np.inf))
    np.testing.assert_allclose(post.var_post, s2, rtol=1e-12)
    p = mixture_pvalues(est, np.full(s2.size, U), post)
    np.testing.assert_allclose(p, 2.0 * special.ndtr(-np.abs(est) / np.sqrt(s2 * U)), rtol=1e-10)
    part = _contrast(300, rng)
    out = moderate_contrast(
        part,
        "B - A",
        np.ones(300, dtype=bool),
        part["se"].to_numpy(),
        np.full(300, np.inf),
        prior="vash",
        estimate=part["estimate"].to_numpy(),
    )
    assert not out.moderated.any()


def test_zero_variances() -> None:
    """Variances of exactly 0 have a finite likelihood (s^2 = 0 on nu df); their posterior
    variance is positive (the prior's) and their p-values valid. No positive variance: error."""
    rng = np.random.default_rng(9)
    s2, nu, est = _simulate(rng.gamma(0.5, 0.2, 500) + 1e-3, rng)
    s2[:50] = 0.0
    prior = fit_prior(s2, nu)
    post = posterior(prior, s2, nu)
    assert np.all(post.var_post[:50] > 0) and np.all(np.isfinite(post.var_post))
    p = mixture_pvalues(est, np.full(s2.size, U), post)
    assert np.all((p > 0) & (p <= 1))
    with pytest.raises(ValueError, match="positive variance"):
        fit_prior(np.zeros(20), np.full(20, 3.0))


def test_implied_df_reproduces_p() -> None:
    """The reported df gives back the target p-value from t (bisection to double precision);
    a p-value below the normal one gives infinite df; t = 0 gives the fallback."""
    t = np.array([0.0, 0.5, 2.0, 4.0, 3.0])
    df_true = np.array([5.0, 3.0, 7.5, 12.0, 4.0])
    p = 2.0 * special.stdtr(df_true, -t)
    p[-1] = 0.5 * 2.0 * special.ndtr(-3.0)
    out = implied_df(t, p, np.full(t.size, 9.0))
    assert out[0] == 9.0
    np.testing.assert_allclose(out[1:4], df_true[1:4], rtol=1e-6)
    assert np.isinf(out[-1])


def test_alpha_grid() -> None:
    """vashr's grid: ten shapes around a > 1 (a itself included), 14 doublings below 1."""
    grid = alpha_grid(3.0)
    assert grid.size == 10 and np.any(np.isclose(grid, 3.0))
    assert np.all(np.diff(grid) > 0)
    np.testing.assert_allclose(alpha_grid(0.5), 0.5 * 2.0 ** np.arange(14))


def test_unknown_prior_and_options_from_config() -> None:
    part = _contrast(50, np.random.default_rng(10))
    with pytest.raises(ValueError, match="unknown prior"):
        moderate_contrast(
            part,
            "B - A",
            np.ones(50, dtype=bool),
            part["se"].to_numpy(),
            part["df"].to_numpy(),
            prior="normal",
        )
    assert InferenceOptions.from_config({"testing": {"variance_prior": "vash"}}).prior == "vash"
    assert InferenceOptions.from_config({}).prior == "limma"


def test_methods_text_names_the_vash_prior() -> None:
    """The report's methods paragraph says which prior moderated the variances and cites it."""
    from pepmix.report.methods import REFERENCES, _Citations, _moderation

    cite = _Citations()
    text = _moderation({"testing": {"variance_prior": "vash"}}, cast(Any, None), cite)
    assert "variance adaptive shrinkage" in text and "lu2016" in cite.keys
    assert "Lu M, Stephens M (2016)" in REFERENCES["lu2016"]


def test_censored_loglik_is_the_f_distribution_function() -> None:
    """Component k of a censored variance contributes log P(s^2 <= s^2_g), s^2 / c_k being
    F(nu_g, d_k)-distributed: equal to scipy's F distribution function (to rounding), and
    floored at LOG_TINY where that probability underflows (s^2_g = 0)."""
    s2 = np.array([0.01, 0.1, 0.5, 2.0, 0.0])
    nu = np.array([2.0, 3.5, 6.0, 1.0, 4.0])
    scale = np.array([0.05, 0.2, 1.0])
    df = np.array([3.0, 10.0, 60.0])
    expected = stats.f.cdf(s2[:4, None] / scale[None, :], nu[:4, None], df[None, :])
    got = censored_loglik(s2, nu, scale, df)
    np.testing.assert_allclose(np.exp(got[:4]), expected, rtol=1e-10)
    assert np.all(got[4] == got[4].min()) and np.all(np.isfinite(got[4]))


def _floored(seed: int) -> tuple[np.ndarray, ...]:
    """True variances from limma's model (d0 = 6, s0^2 = 0.1), s^2 on 6 df, estimates stopped at
    a floor 0.05 (about a fifth of them): the observed value, the censoring flag, the s^2 the
    floor hid."""
    rng = np.random.default_rng(seed)
    sigma2 = 6.0 * 0.1 / rng.chisquare(6.0, 2000)
    nu = np.full(sigma2.size, 6.0)
    hidden = sigma2 * rng.chisquare(nu) / nu
    return np.maximum(hidden, 0.05), nu, hidden < 0.05, hidden


def test_censored_boundary_fits_recover_the_prior() -> None:
    """Variances stopped at a floor (a boundary fit's estimate) are not draws from
    sigma^2 chi^2/nu: taken as exact they bias the prior upwards; as censored observations the
    prior is what the hidden values give. Oracle: the prior fitted to the hidden values.
    Measured over seeds 1-3, posterior variances of the uncensored proteins against the
    oracle's: censored median |log ratio| 0.007-0.032 (95 % quantile 0.010-0.078), exact
    0.076-0.087 (0.20-0.21); prior inverse mean precision 0.0997-0.106 (truth 0.1) against
    0.112-0.121. Tolerances between the two."""
    s2, nu, cens, hidden = _floored(1)
    oracle = posterior(fit_prior(hidden, nu), s2, nu).var_post[~cens]
    censored = fit_prior(s2, nu, censored=cens)
    exact = fit_prior(s2, nu)
    ratio_c = np.abs(np.log(posterior(censored, s2, nu).var_post[~cens] / oracle))
    ratio_e = np.abs(np.log(posterior(exact, s2, nu).var_post[~cens] / oracle))
    assert np.median(ratio_c) < 0.05 < np.median(ratio_e)
    assert np.quantile(ratio_c, 0.95) < 0.12 < np.quantile(ratio_e, 0.95)
    assert abs(np.log(censored.var_harmonic / 0.1)) < 0.08 < abs(np.log(exact.var_harmonic / 0.1))


def test_censored_input_checks() -> None:
    s2, nu, cens, _ = _floored(2)
    with pytest.raises(ValueError, match="length"):
        fit_prior(s2, nu, censored=cens[:-1])
    nu = nu.copy()
    nu[np.flatnonzero(cens)[0]] = 0.0
    with pytest.raises(ValueError, match="df > 0"):
        fit_prior(s2, nu, censored=cens)


def test_replicate_boundary_reads_the_replicate_factor_at_zero() -> None:
    """The replicate stratum is the sample (the run with technical replication); a boundary
    fit with only the feature variance at zero is not censored."""
    part = pd.DataFrame(
        {
            "status": ["boundary", "boundary", "boundary", "ok", "boundary", "boundary"],
            "detail": [
                "variance at zero: sample",
                "variance at zero: feature, sample; down-weighted: 2 observations",
                "variance at zero: feature",
                "",
                "variance at zero: run",
                "variance at zero: run",
            ],
            "replication": ["biological"] * 5 + ["technical"],
        }
    )
    np.testing.assert_array_equal(replicate_boundary(part), [True, True, False, False, False, True])
    assert replicate_boundary(part.drop(columns="replication"))[:5].tolist() == [
        True, True, False, False, False,
    ]  # fmt: skip


def test_vash_censored_in_the_differential_table() -> None:
    """Without boundary fits vash_censored is vash; with some, their rows are censored in the
    prior's fit only: every row is still moderated, and the config key selects it."""
    stats_ = _contrast(300, np.random.default_rng(9))
    plain = differential_table(stats_, ["B - A"], InferenceOptions(prior="vash"))
    same = differential_table(stats_, ["B - A"], InferenceOptions(prior="vash_censored"))
    pd.testing.assert_frame_equal(plain, same)
    low = stats_["se"] < stats_["se"].quantile(0.2)
    stats_.loc[low, "status"] = "boundary"
    stats_.loc[low, "detail"] = "variance at zero: sample"
    cens = differential_table(stats_, ["B - A"], InferenceOptions(prior="vash_censored"))
    assert cens["moderated"].all()
    merged = cens.merge(plain, on="protein", suffixes=("", "_plain"))
    assert not np.allclose(merged["se"], merged["se_plain"])
    config = {"testing": {"variance_prior": "vash_censored"}}
    assert InferenceOptions.from_config(config).prior == "vash_censored"


def test_methods_text_names_the_censored_fit() -> None:
    from pepmix.report.methods import _Citations, _moderation

    text = _moderation(
        {"testing": {"variance_prior": "vash_censored"}}, cast(Any, None), _Citations()
    )
    assert "censored" in text and "variance adaptive shrinkage" in text
