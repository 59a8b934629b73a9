"""The fold-change prior of absent-condition rows (:mod:`pepmix.model.fc_prior`)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pepmix.model.fc_prior import (
    FoldChangePrior,
    fit_fold_change_prior,
    mixture_posterior,
    scale_grid,
)

GRID = np.linspace(-8.0, 8.0, 45)


def test_scale_grid_is_ashrs_default() -> None:
    est = np.array([0.0, 1.0, -3.0])
    se = np.array([0.5, 0.2, 1.0])
    grid = scale_grid(est, se)
    assert grid[0] == 0.0 and grid[1] == pytest.approx(0.02)
    np.testing.assert_allclose(grid[2:] / grid[1:-1], np.sqrt(2.0))
    # the largest scale reaches 2 sqrt(max(est^2 - se^2)) = 2 sqrt(8)
    assert grid[-2] < 2.0 * np.sqrt(8.0) <= grid[-1]


def test_prior_recovers_the_null_share() -> None:
    """80 % of 5,000 fold changes exactly 0, 20 % from N(0, 2^2), SE 0.3: the mass the fit puts
    at or near 0 (scales below 0.1) is 0.8 within 4 binomial SEs of a 5,000-draw share (0.023)."""
    rng = np.random.default_rng(3)
    n = 5000
    truth = np.where(rng.random(n) < 0.8, 0.0, rng.normal(0.0, 2.0, n))
    se = np.full(n, 0.3)
    prior = fit_fold_change_prior(truth + rng.normal(0.0, se), se)
    assert prior.weights.sum() == pytest.approx(1.0)
    near_zero = prior.weights[prior.sds < 0.1].sum()
    assert abs(near_zero - 0.8) < 0.023


def test_too_few_rows_put_everything_at_zero() -> None:
    prior = fit_fold_change_prior(np.array([1.0, np.nan, 2.0]), np.array([0.1, 0.1, 0.0]))
    assert list(prior.sds) == [0.0] and list(prior.weights) == [1.0]


def test_gaussian_prior_and_likelihood_give_the_normal_posterior() -> None:
    """N(0, 1.5^2) prior, likelihood N(delta; -2, 0.8^2): posterior normal with precision
    1/1.5^2 + 1/0.8^2; interval ends and SD within the fine grid's resolution (0.01)."""
    prior = FoldChangePrior(np.array([1.0]), np.array([1.5]))
    loglik = stats.norm.logpdf(-2.0, loc=GRID, scale=0.8)
    post = mixture_posterior(GRID, loglik, prior, 0.025)
    assert post is not None
    var = 1.0 / (1.0 / 1.5**2 + 1.0 / 0.8**2)
    mean = var * (-2.0 / 0.8**2)
    sd = np.sqrt(var)
    assert post.median == pytest.approx(mean, abs=0.01)
    assert post.sd == pytest.approx(sd, abs=0.01)
    assert post.low == pytest.approx(mean - 1.959964 * sd, abs=0.01)
    assert post.high == pytest.approx(mean + 1.959964 * sd, abs=0.01)
    assert post.pvalue == pytest.approx(2.0 * stats.norm.sf(abs(mean) / sd), rel=0.02)


def test_point_mass_prior_gives_p_one() -> None:
    prior = FoldChangePrior(np.array([1.0]), np.array([0.0]))
    post = mixture_posterior(GRID, stats.norm.logpdf(-2.0, loc=GRID, scale=0.8), prior, 0.025)
    assert post is not None
    assert post.pvalue == 1.0 and post.low <= 0.0 <= post.high
    assert post.median == pytest.approx(0.0, abs=0.01)


def test_intervals_cover_under_selection_when_the_prior_is_right() -> None:
    """Absent-protein-like data: a level y = delta + N(0, 1) is seen only as "below the
    detection limit t" (t uniform on (-2, 2)), so the likelihood bounds delta from above only,
    L(delta) = Phi(t - delta); only such censored proteins are kept (selection on the data).
    With fold changes drawn from the prior the intervals cover 95 % (Bayesian intervals are not
    affected by selection on the data): within 4 binomial SEs of 1,500 draws (0.023)."""
    rng = np.random.default_rng(11)
    prior = FoldChangePrior(np.array([0.7, 0.3]), np.array([0.0, 2.0]))
    covered, kept = 0, 0
    while kept < 1500:
        delta = 0.0 if rng.random() < 0.7 else rng.normal(0.0, 2.0)
        limit = rng.uniform(-2.0, 2.0)
        if delta + rng.normal() >= limit:  # observed: not an absent protein
            continue
        post = mixture_posterior(GRID, stats.norm.logcdf(limit - GRID), prior, 0.025)
        assert post is not None
        kept += 1
        covered += int(post.low - 1e-9 <= delta <= post.high + 1e-9)
    assert abs(covered / kept - 0.95) < 0.023


def test_repeated_grid_values_are_accepted() -> None:
    """The marginal grids can repeat a value (the fine and the wide grid coincide): the
    posterior is the same as on the grid without the repeat."""
    prior = FoldChangePrior(np.array([0.5, 0.5]), np.array([0.0, 1.5]))
    grid = np.sort(np.concatenate([GRID, GRID[10:12]]))
    loglik = stats.norm.logcdf(-1.0 - grid)
    once = mixture_posterior(GRID, stats.norm.logcdf(-1.0 - GRID), prior, 0.025)
    twice = mixture_posterior(grid, loglik, prior, 0.025)
    assert once is not None and twice is not None
    assert twice == once
