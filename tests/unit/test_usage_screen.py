"""The boundary screen of the usage refit (:mod:`pepmix.model.usage_screen`): its derivatives are
the engine's, and a screened protein gets exactly the row the refit gives it.

Data: ``test_usage_refit.py``'s simulation (two conditions x 6 samples, 1-6 features per
protein, 15 % missing cells), with a usage SD of 0.3 (a mix of proteins with and without a
positive usage variance) and a model with and without the sample term (with ``feature`` only
the usage term has the most levels and is the eliminated factor of the engine; with ``sample``
the sample term is, and the usage term is kept: both formulas of
:func:`pepmix.model.usage_screen.lambda_slope` are used).

Tolerances: the slope and the gradient are the engine's first and second derivatives
(:func:`pepmix.model.reml.derivatives`) in another order of operations, so they agree to
rounding on a criterion of ~10-100 (1e-8 relative allowed; measured 1e-10). Screened rows are
compared exactly (the screen writes the refit's constants); refitted rows with the screen on
and off come from the same optimiser on the same data, but in buckets of other proteins, whose
padding may change the last bits (1e-6 allowed, the optimiser's tolerance, as
``test_usage_refit.py`` allows warm against cold fits).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from pepmix.model import usage
from pepmix.model.design import USAGE_FACTOR, ModelSpec, build_run_design
from pepmix.model.fit import fit_proteins
from pepmix.model.optimize import partial_start
from pepmix.model.reml import derivatives, evaluate
from pepmix.model.suffstats import Problem, build_problem
from pepmix.model.usage import UsageStart, usage_estimable, usage_shard_from_start, with_usage
from pepmix.model.usage_screen import (
    face_gradient,
    grid_start,
    inverses,
    lambda_slope,
)

from .test_usage_refit import N_PER, _categorical, _sheet, _simulate

SPECS = {"feature": ("feature",), "feature_sample": ("feature", "sample")}


def _spec(name: str) -> ModelSpec:
    return ModelSpec(random=SPECS[name])


def _usage_problem(table: pd.DataFrame, spec: ModelSpec, robust: str) -> tuple[Problem, np.ndarray]:
    """The usage model's problem of the proteins that keep the term, at the default fit's
    weights, and the refit's start with the usage term at 0."""
    fit = fit_proteins(table, build_run_design(_sheet(), spec), robust=robust)
    design = build_run_design(_sheet(), with_usage(spec))
    assert fit.encoded is not None
    idx = np.flatnonzero(usage_estimable(fit.encoded, design))
    enc, rows, _ = usage._subset_encoded(fit.encoded, idx)
    weights = None if fit.weights is None else fit.weights[rows]
    problem = build_problem(enc.prot, enc.feat, enc.run, enc.y, design, idx.size, weights=weights)
    start = np.nan_to_num(usage._usage_start(fit, design, idx, robust))
    return problem, start


@pytest.mark.parametrize("robust", ["none", "huber"])
@pytest.mark.parametrize("spec", sorted(SPECS))
def test_slope_and_gradient_are_the_engine_derivatives(spec: str, robust: str) -> None:
    """:func:`lambda_slope` is half the engine's second derivative in theta at 0, for the
    usage term and for any other factor at 0, eliminated or kept; :func:`face_gradient` is
    the engine's gradient, at the start and away from it."""
    problem, start = _usage_problem(_simulate(60, 0.3, seed=41), _spec(spec), robust)
    u = problem.factors.index(USAGE_FACTOR)
    kinds = set()
    for bidx, bucket in problem.buckets:
        theta = np.where(bucket.free, start[bidx], 0.0)
        theta[:, u] = 0.0
        theta[::3, 0] = 0.0  # another factor at 0 in some proteins
        ev = evaluate(bucket, theta)
        _, hess = derivatives(bucket, theta, ev).profiled(bucket.nu)
        linv = np.linalg.inv(ev.chol)
        for f in range(theta.shape[1]):
            zero = bucket.free[:, f] & (theta[:, f] == 0.0) & ev.ok
            slope = lambda_slope(bucket, theta, ev, f, linv)
            want = hess[zero, f, f] / 2.0
            assert np.all(np.abs(slope[zero] - want) <= 1e-8 * (1.0 + np.abs(want)))
            assert np.isnan(slope[~(bucket.free[:, f] & (theta[:, f] == 0.0))]).all()
            kinds |= {("elim" if e == f else "kept") for e in bucket.efactor[zero]}
        for th in (theta, np.where(bucket.free, theta + 0.3, 0.0)):
            ev = evaluate(bucket, th)
            got = face_gradient(bucket, th, ev, *inverses(np.linalg.inv(ev.chol)))
            want, _ = derivatives(bucket, th, ev).profiled(bucket.nu)
            ok = ev.ok
            np.testing.assert_allclose(got[ok], want[ok], rtol=1e-8, atol=1e-8)
    assert kinds == {"elim", "kept"}


@pytest.mark.parametrize("spec", sorted(SPECS))
def test_grid_guard_is_the_refits_grid_choice(spec: str) -> None:
    """:func:`grid_start` chooses the start the refit's own grid chooses
    (:func:`pepmix.model.optimize.partial_start`, other components held at the start), and
    accepts (grid above 0) exactly the proteins whose refit starts at theta_U = 0."""
    problem, start = _usage_problem(_simulate(80, 0.3, seed=42), _spec(spec), "none")
    u = problem.factors.index(USAGE_FACTOR)
    n_zero = n_moved = 0
    for bidx, bucket in problem.buckets:
        theta = np.where(bucket.free, start[bidx], 0.0)
        theta[:, u] = 0.0
        has = bucket.free[:, u]
        ev = evaluate(bucket, theta)
        value_u, above = grid_start(bucket, theta, ev.dev, u)
        partial = theta.copy()
        partial[:, u] = np.where(has, np.nan, 0.0)
        grid, _ = partial_start(bucket, partial)
        np.testing.assert_array_equal(value_u[has], grid[has, u])
        np.testing.assert_array_equal(above[has], grid[has, u] == 0.0)
        n_zero += int((above & has).sum())
        n_moved += int((~above & has).sum())
    assert n_zero > 5 and n_moved > 5


def _rows(robust: str, spec: ModelSpec, table: pd.DataFrame, screen: bool) -> usage.UsageShard:
    fit = fit_proteins(table, build_run_design(_sheet(), spec), robust=robust)
    usage.SCREEN = screen
    try:
        return usage_shard_from_start(UsageStart.from_fit(fit), table, _sheet(), spec, robust)
    finally:
        usage.SCREEN = True


@pytest.mark.parametrize("robust", ["none", "huber"])
@pytest.mark.parametrize("spec", sorted(SPECS))
def test_screened_rows_are_the_refits(spec: str, robust: str) -> None:
    """With the screen, the proteins it finds are not refitted and their rows are the refit's
    exactly (usage variance 0, LRT 0, p-value 1, status ``boundary``, no cells); every
    protein whose refit has a positive usage variance is refitted; the other rows agree."""
    table = _categorical(_simulate(150, 0.3, seed=43))
    with_screen = _rows(robust, _spec(spec), table, True)
    without = _rows(robust, _spec(spec), table, False)
    assert with_screen.fit is not None and without.fit is not None
    screened = np.setdiff1d(without.idx, with_screen.idx)
    assert np.isin(with_screen.idx, without.idx).all()
    assert 10 < screened.size < without.idx.size - 10
    names = [without.fit.proteins[i] for i in np.flatnonzero(np.isin(without.idx, screened))]
    on = usage.gather_usage_table([with_screen.table]).set_index("protein")
    off = usage.gather_usage_table([without.table]).set_index("protein").loc[on.index]
    pd.testing.assert_frame_equal(on.loc[names], off.loc[names], check_exact=True)
    assert (on.loc[names, "var_usage"] == 0).all() and (on.loc[names, "status"] == "boundary").all()
    assert (off["var_usage"] > 0).sum() > 20
    refitted = off.index.difference(names)
    assert (on.loc[refitted, "status"] == off.loc[refitted, "status"]).all()
    assert (on.loc[refitted, "top_cells"] == off.loc[refitted, "top_cells"]).all()
    for col in ("var_usage", "lrt", "pvalue", "adj_pvalue"):
        np.testing.assert_allclose(
            on.loc[refitted, col], off.loc[refitted, col], rtol=1e-6, atol=1e-6, err_msg=col
        )


def test_clear_usage_effect_is_refitted() -> None:
    """A protein whose peptides disagree (one feature up by 1.5 log2 in condition B) is
    refitted and tested; its twin without the shift is screened (usage variance 0 at its
    default fit's optimum: its cells' residual sums are small against their size)."""
    rng = np.random.default_rng(44)
    n_s = 2 * N_PER
    frames = []
    for name, shift in (("SHIFT", 1.5), ("FLAT", 0.0)):
        f_idx, s_idx = (a.ravel() for a in np.meshgrid(np.arange(4), np.arange(n_s)))
        y = 20.0 + rng.normal(0, 0.5, 4)[f_idx] + rng.normal(0, 0.3, n_s)[s_idx]
        y += np.where((f_idx == 0) & (s_idx >= N_PER), shift, 0.0)
        y += rng.normal(0, 0.1, f_idx.size)
        frames.append(
            pd.DataFrame(
                {
                    "protein": name,
                    "feature": [f"{name}_F{i}" for i in f_idx],
                    "run": [f"S{i:02d}" for i in s_idx],
                    "y": y,
                }
            )
        )
    table = _categorical(pd.concat(frames, ignore_index=True))
    spec = _spec("feature_sample")
    shard = _rows("huber", spec, table, True)
    assert shard.fit is not None
    assert shard.fit.proteins == ["SHIFT"]
    rows = shard.table.set_index("protein")
    assert rows.loc["SHIFT", "var_usage"] > 0.1 and rows.loc["SHIFT", "lrt"] > 10
    assert rows.loc["FLAT", "var_usage"] == 0 and rows.loc["FLAT", "lrt"] == 0
    assert rows.loc["FLAT", "status"] == "boundary"


def test_screen_needs_the_default_optimum() -> None:
    """A start that is not the default model's optimum at the refit's weights (here the Huber
    fit's relative SDs for a plain REML refit) is not screened where it matters: the rows are
    those of the refit."""
    table = _categorical(_simulate(150, 0.0, seed=45))
    spec = _spec("feature_sample")
    fit = fit_proteins(table, build_run_design(_sheet(), spec), robust="huber")
    start = UsageStart.from_fit(fit)
    shards = {}
    for screen in (True, False):
        usage.SCREEN = screen
        try:
            shards[screen] = usage_shard_from_start(start, table, _sheet(), spec, "none")
        finally:
            usage.SCREEN = True
    on = usage.gather_usage_table([shards[True].table]).set_index("protein")
    off = usage.gather_usage_table([shards[False].table]).set_index("protein").loc[on.index]
    assert (on["status"] == off["status"]).all()
    np.testing.assert_allclose(on["lrt"], off["lrt"], rtol=1e-6, atol=1e-6)


def test_unsettled_weights_are_not_screened(monkeypatch: pytest.MonkeyPatch) -> None:
    """Huber: a start whose weights are not the Huber weights of its own residuals (here a
    least-squares fit, all weights 1, as the robust fit's least-squares fallback stores them)
    is refitted, since the robust iteration moves the weights: the rows are the refit's. The
    check matters: screened without it, a row would not be the refit's (heavy-tailed errors,
    0.5 t(2), inflate the least-squares residual SD and hide a usage effect that the Huber
    weights reveal)."""
    from pepmix.model import usage_screen

    table = _simulate(150, 0.3, seed=46)
    table["y"] += 0.5 * np.random.default_rng(46).standard_t(2, len(table))
    table = _categorical(table)
    spec = _spec("feature_sample")
    fit = fit_proteins(table, build_run_design(_sheet(), spec))
    assert fit.encoded is not None
    start = dataclasses.replace(UsageStart.from_fit(fit), weights=np.ones(fit.encoded.y.size))

    def rows(screen: bool) -> pd.DataFrame:
        monkeypatch.setattr(usage, "SCREEN", screen)
        shard = usage_shard_from_start(start, table, _sheet(), spec, "huber")
        return usage.gather_usage_table([shard.table]).set_index("protein").sort_index()

    on, off = rows(True), rows(False)
    assert (on["status"] == off["status"]).all()
    np.testing.assert_allclose(on["lrt"], off["lrt"], rtol=1e-6, atol=1e-6)
    monkeypatch.setattr(usage_screen, "_settled", lambda *args: True)
    unchecked = rows(True)
    assert (unchecked["lrt"] - off["lrt"]).abs().max() > 0.05


@pytest.mark.parametrize("mode", ["pretest", "no_majority_pretest"])
def test_pretest_contrasts_are_the_same_with_the_screen(mode: str) -> None:
    """The fit job screens in the pretest modes (``pepmix.stages.fit``): a screened protein
    has LRT 0 (p-value 1), so it never takes the usage model's contrast, and the stored fit
    with the screen is the one without it."""
    from pepmix.model.pretest import usage_contrasts
    from pepmix.model.stored import StoredFit

    from .test_usage_pretest import CONTRAST, ROBUST, _data

    table, sheet, design = _data()
    fit = fit_proteins(table, design, robust=ROBUST)  # type: ignore[arg-type]
    default = StoredFit.from_model_fit(fit)
    tables = []
    for screen in (True, False):
        shard = usage.usage_shard(
            fit, fit.variance_components(), table, sheet, ROBUST, screen=screen
        )
        assert shard.fit is not None
        tables.append((len(shard.idx), usage_contrasts(default, shard, mode, 0.25)))
    (n_on, (on, k_on)), (n_off, (off, k_off)) = tables
    assert n_on < n_off and k_on == k_off
    assert k_on > 0 or mode != "pretest"
    pd.testing.assert_frame_equal(on.contrast_table(CONTRAST), off.contrast_table(CONTRAST))
