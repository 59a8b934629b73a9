"""Numerical self-checks of the batched REML engine.

- the compressed criterion equals the dense n x n formula (lme4's REMLcrit) at random theta,
- the analytic gradient and Hessian equal central finite differences,
- count-class compression gives the same fits as one class per level,
- estimates (beta, sigma, BLUPs) equal dense GLS / BLUP formulas at the optimum.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pepmix.model import dense
from pepmix.model.fit import encode, fit_proteins
from pepmix.model.reml import derivatives, evaluate
from pepmix.model.suffstats import build_problem

from .engine_data import make_design, make_table

DESIGNS = {
    "feature+sample": {"random": ("feature", "sample")},
    "nested": {"random": ("feature", "sample", "run"), "runs_per_sample": 2},
    "batch_random": {"random": ("feature", "sample", "batch"), "n_batch": 3},
    "batch_fixed": {"random": ("feature", "sample"), "n_batch": 2, "fixed_batch": True},
    "feature_only": {"random": ("feature",)},
    "two_conditions": {"random": ("feature", "sample"), "n_cond": 2, "samples_per_cond": 4},
}


def _problem(name: str, seed: int = 0, n: int = 40):
    sheet, design = make_design(**DESIGNS[name])
    table = make_table(design, sheet, n, seed)
    enc = encode(table, design)
    problem = build_problem(enc.prot, enc.feat, enc.run, enc.y, design, len(enc.proteins))
    return sheet, design, table, enc, problem


def _dense_inputs(design, table, enc, p, active, xkeep):
    """y, X (kept columns), Z list and factor indices of protein p (active factors only)."""
    sub = table.loc[table["protein"] == enc.proteins[p]]
    runs = pd.Index(design.runs).get_indexer(sub["run"])
    x = design.x[runs][:, xkeep]
    zs, fidx = [], []
    for f, name in enumerate(design.spec.random):
        if not active[f]:
            continue
        codes = (
            pd.factorize(sub["feature"])[0]
            if name == "feature"
            else design.factor_codes[name][runs]
        )
        zs.append(dense.indicator(np.asarray(codes)))
        fidx.append(f)
    return sub["y"].to_numpy(), x, zs, fidx


@pytest.mark.parametrize("name", list(DESIGNS))
def test_criterion_matches_dense_formula(name: str) -> None:
    _, design, table, enc, problem = _problem(name)
    rng = np.random.default_rng(1)
    checked = 0
    for idx, bucket in problem.buckets:
        theta = rng.uniform(0.0, 2.0, size=bucket.free.shape) * bucket.free
        theta[rng.random(theta.shape) < 0.2] = 0.0
        dev = evaluate(bucket, theta).dev
        for i, p in enumerate(idx):
            y, x, zs, fidx = _dense_inputs(
                design, table, enc, p, problem.active[p], problem.xkeep[p]
            )
            ref = dense.reml_criterion(y, x, zs, theta[i, fidx])
            assert dev[i] == pytest.approx(ref, rel=1e-10, abs=1e-8)
            checked += 1
    assert checked >= 30


@pytest.mark.parametrize("name", ["feature+sample", "nested", "batch_random", "feature_only"])
def test_gradient_and_hessian_match_finite_differences(name: str) -> None:
    _, _, _, _, problem = _problem(name, seed=2, n=25)
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
            fd_grad = (plus.dev - minus.dev) / (2 * h)
            ok = free[:, f]
            np.testing.assert_allclose(grad[ok, f], fd_grad[ok], rtol=1e-6, atol=1e-6)
            gp, _ = derivatives(bucket, theta + step, plus).profiled(bucket.nu)
            gm, _ = derivatives(bucket, theta - step, minus).profiled(bucket.nu)
            fd_hess = (gp - gm) / (2 * h)
            np.testing.assert_allclose(hess[ok, :, f], fd_hess[ok], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["feature+sample", "nested", "batch_fixed"])
def test_compressed_equals_uncompressed(name: str) -> None:
    sheet, design = make_design(**DESIGNS[name])
    table = make_table(design, sheet, 40, seed=4)
    contrasts = [("B - A", "B", "A")]
    a = fit_proteins(table, design, contrasts, compress=True)
    b = fit_proteins(table, design, contrasts, compress=False)
    assert a.status == b.status
    np.testing.assert_allclose(a.reml_crit, b.reml_crit, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(a.beta, b.beta, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(a.df, b.df, rtol=1e-5, atol=1e-6)
    pd.testing.assert_frame_equal(a.blups, b.blups, atol=1e-6)


@pytest.mark.parametrize("name", ["feature+sample", "nested", "batch_fixed"])
def test_estimates_match_dense_gls(name: str) -> None:
    sheet, design = make_design(**DESIGNS[name])
    table = make_table(design, sheet, 30, seed=5)
    fit = fit_proteins(table, design)
    enc = encode(table, design)
    compared = 0
    for p, protein in enumerate(fit.proteins):
        if fit.status[p] not in ("ok", "boundary", "reduced_model"):
            continue
        active = fit.theta[p] > 0
        xkeep = ~np.isnan(fit.beta[p])
        y, x, zs, fidx = _dense_inputs(design, table, enc, p, active, xkeep)
        theta = fit.theta[p, fidx]
        assert dense.reml_criterion(y, x, zs, theta) == pytest.approx(fit.reml_crit[p], abs=1e-8)
        beta, cov, sigma = dense.gls(y, x, zs, theta)
        np.testing.assert_allclose(fit.beta[p, xkeep], beta, rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(fit.cov_beta[p][np.ix_(xkeep, xkeep)], cov, atol=1e-10)
        assert fit.sigma[p] == pytest.approx(sigma, rel=1e-8)
        # BLUPs: b_k = theta_k^2 Z_k' H^-1 (y - X beta)
        h = np.eye(y.size) + sum(t**2 * z @ z.T for z, t in zip(zs, theta, strict=True))
        resid = np.linalg.solve(h, y - x @ beta)
        blups = fit.blups.loc[fit.blups["protein"] == protein]
        sub = table.loc[table["protein"] == protein]
        runs = pd.Index(design.runs).get_indexer(sub["run"])
        for z, t, f in zip(zs, theta, fidx, strict=True):
            name = design.spec.random[f]
            if name == "feature":
                labels = list(pd.unique(sub["feature"]))
            else:
                codes = np.unique(design.factor_codes[name][runs])
                labels = [design.factor_levels[name][c] for c in codes]
            expected = dict(zip(labels, t**2 * z.T @ resid, strict=True))
            got = blups.loc[blups["factor"] == name].set_index("level")["blup"]
            assert set(got.index) == set(expected)
            for level, value in expected.items():
                assert got[level] == pytest.approx(value, abs=1e-7)
        compared += 1
    assert compared >= 20
