"""The peptide-usage term ``feature:condition`` in the batched engine, against dense formulas.

Both orientations of the engine are exercised: the usage cells eliminated (more cells than
samples) or the samples eliminated and the cells kept in the dense block (few features, many
samples). Tolerances: the criterion is an exact formula on both sides (rounding only, 1e-10
relative); derivatives against central differences with step 1e-5 (truncation error ~1e-10
relative to the third derivative, rounding ~1e-11 / 1e-5: 1e-6 on gradients, 1e-5 on Hessians).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pepmix.errors import ConfigError
from pepmix.model import dense
from pepmix.model.design import USAGE_FACTOR, RunDesign, model_spec_from_config
from pepmix.model.fit import Encoded, encode, fit_proteins
from pepmix.model.reml import derivatives, evaluate
from pepmix.model.suffstats import Problem, build_problem
from pepmix.model.usage import peptide_usage_table
from pepmix.model.variance_tests import Observations, bootstrap_lrt, term_lrts

from .engine_data import make_design, make_table

USAGE = ("feature", USAGE_FACTOR, "sample")
LAYOUTS = {
    "cells_eliminated": {"n_cond": 3, "samples_per_cond": 3},
    "samples_eliminated": {"n_cond": 2, "samples_per_cond": 6},
    "with_runs": {"n_cond": 2, "samples_per_cond": 3, "runs_per_sample": 2},
}


def _usage_table(design: RunDesign, sheet: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """Random proteins plus a feature x condition interaction of SD 0.5."""
    table = make_table(design, sheet, n, seed, max_features=6)
    rng = np.random.default_rng(seed + 100)
    cond = pd.Series(design.condition_code, index=design.runs)[table["run"]].to_numpy()
    key = table["protein"] + "|" + table["feature"] + "|" + cond.astype(str)
    shift = pd.Series(rng.normal(0, 0.5, key.nunique()), index=key.unique())
    return table.assign(y=table["y"] + shift[key].to_numpy())


def _setup(
    layout: str, n: int = 30, seed: int = 0, weights: bool = False, compress: bool = True
) -> tuple[RunDesign, pd.DataFrame, Encoded, Problem, np.ndarray | None]:
    random = USAGE + (("run",) if "runs_per_sample" in LAYOUTS[layout] else ())
    sheet, design = make_design(random=random, **LAYOUTS[layout])  # type: ignore[arg-type]
    table = _usage_table(design, sheet, n, seed)
    enc = encode(table, design)
    w = None
    if weights:
        rng = np.random.default_rng(seed + 1)
        w = np.where(rng.random(enc.y.size) < 0.3, 1.0, rng.uniform(0.1, 1.0, enc.y.size))
    problem = build_problem(
        enc.prot, enc.feat, enc.run, enc.y, design, len(enc.proteins), compress, weights=w
    )
    return design, table, enc, problem, w


def _dense_inputs(
    design: RunDesign, enc: Encoded, p: int, problem: Problem
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], list[int], np.ndarray]:
    """y, X, Z of the active factors, their indices and the rows of protein ``p``."""
    rows = np.flatnonzero(enc.prot == p)
    run = enc.run[rows]
    x = design.x[run][:, problem.xkeep[p]]
    zs, fidx = [], []
    for f, name in enumerate(problem.factors):
        if not problem.active[p, f]:
            continue
        if name == "feature":
            codes = enc.feat[rows]
        elif name == USAGE_FACTOR:
            codes = dense.interaction_codes(enc.feat[rows], design.condition_code[run])
        else:
            codes = design.factor_codes[name][run]
        zs.append(dense.indicator(np.asarray(codes)))
        fidx.append(f)
    return enc.y[rows], x, zs, fidx, rows


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize(("weights", "compress"), [(False, True), (False, False), (True, True)])
def test_criterion_matches_dense_formula(layout: str, weights: bool, compress: bool) -> None:
    design, _, enc, problem, w = _setup(layout, weights=weights, compress=compress)
    e_names = {problem.factors[e] for e in problem.efactor if e >= 0}
    rng = np.random.default_rng(1)
    checked = 0
    for idx, bucket in problem.buckets:
        theta = rng.uniform(0.0, 2.0, size=bucket.free.shape) * bucket.free
        theta[rng.random(theta.shape) < 0.2] = 0.0
        dev = evaluate(bucket, theta).dev + problem.neg_logw[idx]
        for i, p in enumerate(idx):
            y, x, zs, fidx, rows = _dense_inputs(design, enc, p, problem)
            wp = None if w is None else w[rows]
            ref = dense.reml_criterion(y, x, zs, theta[i, fidx], weights=wp)
            assert dev[i] == pytest.approx(ref, rel=1e-10, abs=1e-8)
            checked += 1
    assert checked >= 20
    if layout == "cells_eliminated":
        assert USAGE_FACTOR in e_names
    if layout == "samples_eliminated":
        assert "sample" in e_names


@pytest.mark.parametrize("layout", ["cells_eliminated", "samples_eliminated"])
def test_gradient_and_hessian_match_finite_differences(layout: str) -> None:
    _, _, _, problem, _ = _setup(layout, n=20, seed=2)
    rng = np.random.default_rng(3)
    h = 1e-5
    for _, bucket in problem.buckets:
        free = bucket.free
        theta = rng.uniform(0.2, 1.5, size=free.shape) * free
        ev = evaluate(bucket, theta)
        grad, hess = derivatives(bucket, theta, ev).profiled(bucket.nu)
        for f in range(free.shape[1]):
            step = np.zeros_like(theta)
            step[:, f] = h * free[:, f]
            plus = evaluate(bucket, theta + step)
            minus = evaluate(bucket, theta - step)
            ok = free[:, f]
            fd_grad = (plus.dev - minus.dev) / (2 * h)
            np.testing.assert_allclose(grad[ok, f], fd_grad[ok], rtol=1e-6, atol=1e-6)
            gp, _ = derivatives(bucket, theta + step, plus).profiled(bucket.nu)
            gm, _ = derivatives(bucket, theta - step, minus).profiled(bucket.nu)
            np.testing.assert_allclose(
                hess[ok, :, f], ((gp - gm) / (2 * h))[ok], rtol=1e-5, atol=1e-5
            )


def test_fit_matches_dense_optimum_and_gls() -> None:
    design, table, enc, _, _ = _setup("cells_eliminated", n=8, seed=5)
    fit = fit_proteins(table, design, [("B - A", "B", "A")])
    problem = build_problem(enc.prot, enc.feat, enc.run, enc.y, design, len(enc.proteins))
    checked = 0
    for p in np.flatnonzero(problem.fittable):
        y, x, zs, fidx, _ = _dense_inputs(design, enc, p, problem)
        theta, crit = dense.fit_dense(y, x, zs, starts=[(0.3,) * len(zs), (2.0,) * len(zs)])
        # the engine's Newton optimum is at least as good as L-BFGS-B's (1e-6 in the criterion)
        assert fit.reml_crit[p] <= crit + 1e-6
        beta, cov, sigma = dense.gls(y, x, zs, list(fit.theta[p, fidx]))
        keep = problem.xkeep[p]
        np.testing.assert_allclose(fit.beta[p, keep], beta, rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(fit.cov_beta[p][np.ix_(keep, keep)], cov, rtol=1e-8, atol=1e-14)
        assert fit.sigma[p] == pytest.approx(sigma, rel=1e-8)
        checked += int(problem.active[p, 1])
        del theta
    assert checked >= 3


def test_compressed_equals_uncompressed() -> None:
    design, table, _, _, _ = _setup("cells_eliminated", n=25, seed=4)
    contrasts = [("B - A", "B", "A")]
    a = fit_proteins(table, design, contrasts, compress=True)
    b = fit_proteins(table, design, contrasts, compress=False)
    assert a.status == b.status
    np.testing.assert_allclose(a.reml_crit, b.reml_crit, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(a.df, b.df, rtol=1e-5, atol=1e-6)
    pd.testing.assert_frame_equal(a.blups, b.blups, atol=1e-6)


def test_usage_dropped_where_not_identifiable() -> None:
    sheet, design = make_design(random=USAGE, n_cond=2, samples_per_cond=3)
    runs_a = [r for r, c in zip(design.runs, design.condition_code, strict=True) if c == 0]
    rows = [("P1", "F0", r, 20.0 + 0.1 * i) for i, r in enumerate(design.runs)]  # one feature
    rows += [("P2", "F0", r, 20.0 + 0.1 * i) for i, r in enumerate(runs_a)]  # F0 only in A
    rows += [("P2", "F1", r, 21.0 - 0.1 * i) for i, r in enumerate(design.runs) if r not in runs_a]
    table = pd.DataFrame(rows, columns=["protein", "feature", "run", "y"])
    enc = encode(table, design)
    problem = build_problem(enc.prot, enc.feat, enc.run, enc.y, design, len(enc.proteins))
    u = problem.factors.index(USAGE_FACTOR)
    assert not problem.active[:, u].any()
    assert "one feature" in problem.detail[0]
    assert "same grouping as feature" in problem.detail[1]
    del sheet


def test_config_accepts_usage_term() -> None:
    sheet, _ = make_design()
    spec = model_spec_from_config({"random": ["feature", "feature:condition", "sample"]}, sheet)
    assert spec.random == USAGE
    assert USAGE_FACTOR not in model_spec_from_config({}, sheet).random  # off by default
    with pytest.raises(ConfigError):
        model_spec_from_config({"random": ["feature", "feature:sample"]}, sheet)


def test_huber_fit_and_bootstrap_accept_usage_term() -> None:
    design, table, enc, problem, _ = _setup("cells_eliminated", n=6, seed=8)
    fit = fit_proteins(table, design, [("B - A", "B", "A")], robust="huber")
    usage = fit.blups.loc[fit.blups["factor"] == USAGE_FACTOR]
    assert len(usage) > 0 and usage["weight_mean"].between(0, 1).all()
    assert np.isfinite(fit.theta[:, 1][problem.active[:, 1]]).all()
    tests = term_lrts(problem)
    obs = Observations(enc.prot, enc.feat, enc.run, np.ones(enc.y.size))
    select = np.isfinite(tests.lrt[:, 1]) & (tests.lrt[:, 1] > 0)
    pvalue, n_valid = bootstrap_lrt(obs, design, enc.proteins, tests, select, 19, seed=1)
    u = 1
    assert select.any()
    assert np.all((pvalue[select, u] >= 1 / 20) & (pvalue[select, u] <= 1))
    # refits without a finite optimum happen where n is close to the number of random levels
    roomy = select & (problem.n_obs >= problem.n_levels.sum(axis=1))
    assert roomy.sum() >= 3
    assert np.all(n_valid[roomy, u] >= 17)


def test_peptide_usage_table_flags_the_shifted_peptide() -> None:
    """A protein whose feature F0 is shifted by 3 log2 in condition B only: the usage test
    rejects and F0:B is its most deviating cell; a protein without usage is not flagged."""
    _, design = make_design(random=USAGE, n_cond=2, samples_per_cond=4)
    rng = np.random.default_rng(12)
    rows = []
    for prot, shift in (("P_usage", 3.0), ("P_clean", 0.0)):
        feat_eff = rng.normal(0, 1, 5)
        for r, run in enumerate(design.runs):
            cond = design.condition_code[r]
            sample = rng.normal(0, 0.2)
            for f in range(5):
                y = 20 + feat_eff[f] + 0.5 * cond + sample + rng.normal(0, 0.2)
                y += shift if (f == 0 and cond == 1) else 0.0
                rows.append((prot, f"F{f}", run, y))
    table = pd.DataFrame(rows, columns=["protein", "feature", "run", "y"])
    fit = fit_proteins(table, design, [("B - A", "B", "A")], robust="none")
    enc = fit.encoded
    problem = build_problem(enc.prot, enc.feat, enc.run, enc.y, design, len(enc.proteins))
    tests = term_lrts(problem)
    u = USAGE.index(USAGE_FACTOR)
    comp = pd.DataFrame(
        {
            "protein": enc.proteins,
            "status": fit.status,
            f"var_{USAGE_FACTOR}": (fit.theta[:, u] * fit.sigma) ** 2,
            f"lrt_{USAGE_FACTOR}": tests.lrt[:, u],
        }
    )
    out = peptide_usage_table(comp, fit.blups).set_index("protein")
    assert out.loc["P_usage", "lrt"] > 20  # chi-bar-square p < 1e-5
    assert out.loc["P_usage", "top_cells"].startswith("F0:B (+")
    assert out.loc["P_clean", "lrt"] < 3.84
    with pytest.raises(ValueError, match="feature:condition"):
        peptide_usage_table(comp.drop(columns=f"var_{USAGE_FACTOR}"), fit.blups)
