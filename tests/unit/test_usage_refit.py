"""The fast peptide-usage refit (``peptide_usage: true``, the default): same tests as a fit of
every protein from the optimiser's grid, and a calibrated, powerful LRT under Huber weights.

Data: two conditions x 6 samples, 1-6 features per protein (some proteins with one feature or
with every feature in one condition only: the term is dropped there), feature SD 0.5, sample SD
0.3, residual SD 0.25, 15 % missing cells, and a feature x condition (usage) effect of SD
``sd_usage`` (0: the null).

Tolerances: with ``robust: none`` the warm-started refit and the cold fit reach the same REML
optima, so their LRTs agree to the optimiser's criterion tolerance (~1e-11 relative of a
criterion of ~10-100; 1e-6 allowed). Rejection rates are checked against 3 binomial standard
errors above the nominal 5 %.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pepmix.model.design import USAGE_FACTOR, ModelSpec, RunDesign, build_run_design
from pepmix.model.fit import fit_proteins
from pepmix.model.optimize import GRID_VALUES, minimize, partial_start, start_values
from pepmix.model.suffstats import build_problem
from pepmix.model.usage import (
    UsageStart,
    gather_usage_table,
    refit_with_usage,
    usage_estimable,
    usage_lrt,
    usage_shard_from_start,
    usage_shard_table,
    with_usage,
)

N_PER = 6


def _sheet() -> pd.DataFrame:
    runs = [f"S{i:02d}" for i in range(2 * N_PER)]
    return pd.DataFrame(
        {"run": runs, "condition": np.repeat(["A", "B"], N_PER), "bioreplicate": runs, "batch": "b"}
    )


def _design(usage: bool = False) -> RunDesign:
    spec = ModelSpec(random=("feature", "sample"))
    return build_run_design(_sheet(), with_usage(spec) if usage else spec)


def _simulate(n_prot: int, sd_usage: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_s = 2 * N_PER
    cond = np.repeat([0, 1], N_PER)
    frames = []
    for p in range(n_prot):
        n_feat = int(rng.integers(1, 7))
        f_idx, s_idx = (a.ravel() for a in np.meshgrid(np.arange(n_feat), np.arange(n_s)))
        usage = rng.normal(0, sd_usage, (n_feat, 2))
        y = (
            rng.normal(0, 0.5, n_feat)[f_idx]
            + rng.normal(0, 0.3, n_s)[s_idx]
            + usage[f_idx, cond[s_idx]]
            + rng.normal(0, 0.25, f_idx.size)
        )
        keep = rng.random(y.size) > 0.15
        if p % 10 == 0:  # every feature seen in one condition only: the term is dropped
            keep &= cond[s_idx] == f_idx % 2
        frames.append(
            pd.DataFrame(
                {
                    "protein": f"P{p:04d}",
                    "feature": [f"P{p}_F{i}" for i in f_idx[keep]],
                    "run": [f"S{i:02d}" for i in s_idx[keep]],
                    "y": 20.0 + y[keep],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_usage_estimable_matches_the_engine_checks() -> None:
    """The refit's selection is exactly the set of proteins whose model keeps the term."""
    table = _simulate(120, 0.3, seed=5)
    design = _design(usage=True)
    fit = fit_proteins(table, design)
    assert fit.encoded is not None
    enc = fit.encoded
    problem = build_problem(enc.prot, enc.feat, enc.run, enc.y, design, len(enc.proteins))
    kept = problem.active[:, problem.factors.index(USAGE_FACTOR)]
    assert 0 < (~kept).sum() < kept.sum()  # both kinds present
    np.testing.assert_array_equal(usage_estimable(enc, design), kept)


def test_partial_start_fills_only_the_missing_entries() -> None:
    """NaN entries of a start are chosen from the grid with the others held; an all-NaN row is
    the full grid start; the optimum from a partial start is the optimum."""
    table = _simulate(30, 0.4, seed=6)
    design = _design(usage=True)
    fit = fit_proteins(table, design)
    assert fit.encoded is not None
    enc = fit.encoded
    problem = build_problem(enc.prot, enc.feat, enc.run, enc.y, design, len(enc.proteins))
    u = problem.factors.index(USAGE_FACTOR)
    idx, bucket = max(problem.buckets, key=lambda b: b[1].size)
    theta0 = np.where(bucket.free, np.nan_to_num(fit.theta[idx]), 0.0)
    theta0[:, u] = np.nan
    theta0[0] = np.nan
    start, dev = partial_start(bucket, theta0)
    held = np.ones(theta0.shape, dtype=bool)
    held[:, u] = False
    held[0] = False
    np.testing.assert_array_equal(start[held], np.where(bucket.free, theta0, 0.0)[held])
    free_u = bucket.free[1:, u]
    assert np.isin(start[1:, u][free_u], GRID_VALUES[1]).all()
    full0, _ = start_values(bucket.take(np.array([0])))
    np.testing.assert_array_equal(start[0], full0[0])
    opt = minimize(bucket, theta0)
    assert np.all(opt.dev <= dev + 1e-9)
    np.testing.assert_allclose(opt.dev, minimize(bucket).dev, rtol=1e-9, atol=1e-9)


def test_warm_refit_gives_the_cold_fit_tests() -> None:
    """``robust: none``: the refit of the selected proteins from the default fit gives the LRTs
    of a fit of every protein with the term from the grid; the others are ``reduced_model``
    without a test, as in the cold fit."""
    table = _simulate(150, 0.3, seed=7)
    fit = fit_proteins(table, _design())
    design_u = _design(usage=True)
    full, idx = refit_with_usage(fit, design_u)
    cold = fit_proteins(table, design_u)
    cold_lrt = usage_lrt(cold)
    warm_lrt = np.full(len(fit.proteins), np.nan)
    warm_lrt[idx] = usage_lrt(full, np.ones(idx.size, dtype=bool))
    np.testing.assert_allclose(warm_lrt, cold_lrt, rtol=1e-6, atol=1e-6)
    assert np.isfinite(warm_lrt).sum() > 100 and (warm_lrt > 0).sum() > 20
    rows = usage_shard_table(fit, fit.variance_components(), table, _sheet()).set_index("protein")
    skipped = np.setdiff1d(np.arange(len(fit.proteins)), idx)
    assert skipped.size >= 15
    names = [fit.proteins[i] for i in skipped]
    assert (rows.loc[names, "status"] == "reduced_model").all()
    assert rows.loc[names, "lrt"].isna().all()
    assert list(np.asarray(cold.status)[skipped]) == ["reduced_model"] * skipped.size
    # the shard's null fits start at the default fit's optimum (usage.WARM_NULL), these at the
    # grid: the same optima, to the optimiser's tolerance
    np.testing.assert_allclose(rows.loc[fit.proteins, "lrt"], warm_lrt, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("sd_usage", "low", "high"), [(0.0, 0.0, None), (0.5, 0.6, 1.0)])
def test_usage_lrt_calibration_and_power_huber(
    sd_usage: float, low: float, high: float | None
) -> None:
    """The default wiring (Huber weights, warm refit): under the null the share of p < 0.05
    is at most 5 % plus 3 binomial standard errors (the 50:50 mixture is conservative with few
    samples, Crainiceanu & Ruppert 2004); with a usage SD of 0.5 (twice the residual SD) most
    testable proteins are called at p < 0.05."""
    table = _simulate(400, sd_usage, seed=11 if sd_usage == 0 else 12)
    fit = fit_proteins(table, _design(), robust="huber")
    rows = gather_usage_table(
        [usage_shard_table(fit, fit.variance_components(), table, _sheet(), robust="huber")]
    )
    p = rows["pvalue"].dropna().to_numpy()
    assert p.size > 250
    share = float(np.mean(p < 0.05))
    if high is None:
        assert share <= 0.05 + 3.0 * np.sqrt(0.05 * 0.95 / p.size)
    else:
        assert low < share <= high


def _categorical(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with categorical identifiers, as the workflow's fit job reads the shard."""
    return table.astype({c: "category" for c in ("protein", "feature", "run")})


@pytest.mark.parametrize("robust", ["huber", "none"])
def test_usage_job_from_the_stored_start_equals_the_fit_jobs_rows(
    robust: str, tmp_path: Path
) -> None:
    """Rule usage_refit: the usage rows computed from the stored end of the default fit
    (:class:`UsageStart`, Parquet) in a fresh encoding of the table equal, to the last bit, the
    rows the fit job computed from the fit in memory (the same start values and weights, the
    same arithmetic)."""
    table = _categorical(_simulate(80, 0.3, seed=21))
    fit = fit_proteins(table, _design(), robust=robust)
    want = usage_shard_table(fit, fit.variance_components(), table, _sheet(), robust=robust)
    path = tmp_path / "usage_start.parquet"
    UsageStart.from_fit(fit).write(path)
    start = UsageStart.read(path)
    assert start.proteins == fit.proteins and start.factors == fit.factors
    assert start.status == fit.status
    np.testing.assert_array_equal(start.theta, fit.theta)  # NaN where not fitted, too
    if robust == "none":
        assert start.weights is None
    else:
        assert fit.weights is not None and start.weights is not None
        np.testing.assert_array_equal(start.weights, fit.weights)
    shuffled = table.sample(frac=1.0, random_state=3)  # the encoding sorts the rows again
    got = usage_shard_from_start(start, shuffled, _sheet(), _design().spec, robust).table
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert got["lrt"].notna().sum() > 40


def test_usage_start_checks_the_table() -> None:
    """A usage start read against another table (other proteins, other observations) is an
    error, not a refit from the wrong weights."""
    table = _categorical(_simulate(30, 0.3, seed=22))
    fit = fit_proteins(table, _design(), robust="huber")
    start = UsageStart.from_fit(fit)
    fewer = table.loc[table["protein"] != table["protein"].iloc[0]]
    with pytest.raises(ValueError, match="proteins differ"):
        start.with_table(_categorical(fewer.astype(str)), _design())
    one_less = table.drop(index=table.index[-1])
    with pytest.raises(ValueError, match="weights do not match"):
        start.with_table(one_less, _design())
    with pytest.raises(ValueError, match="already has the usage term"):
        usage_shard_from_start(start, table, _sheet(), _design(usage=True).spec, "huber")
