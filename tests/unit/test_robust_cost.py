"""The cheaper Huber IRLS: batched line search (bit-identical) and truncated intermediate refits
(the reported fit is still an exact optimum at its weights)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pepmix.model import optimize, robust
from pepmix.model.design import ModelSpec, build_run_design
from pepmix.model.fit import _allocate, contrast_matrix, encode, fit_problem, fit_proteins
from pepmix.model.robust import _PROTEIN_ARRAYS
from pepmix.model.suffstats import build_problem

from .simulate_da import simulate

CONTRASTS = [("B - A", "B", "A")]


def _data(n_prot: int, seed: int) -> tuple[object, object]:
    table, sheet, _ = simulate(n_prot=n_prot, n_per=3, seed=seed, frac_de=0.2)
    return table, build_run_design(sheet, ModelSpec(random=("feature", "sample")))


def test_batched_line_search_equals_one_length_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trying several step lengths per evaluation picks, per protein, the step length the
    one-at-a-time backtracking picks: every array of a Huber fit (many line searches, including
    the deep ones at optima) is the same, bit for bit."""
    table, design = _data(200, 7)
    batched = fit_proteins(table, design, CONTRASTS, robust="huber")
    monkeypatch.setattr(optimize, "_SINGLE_TRIES", optimize._LINE_SEARCH_TRIES)
    single = fit_proteins(table, design, CONTRASTS, robust="huber")
    for name in _PROTEIN_ARRAYS:
        assert np.array_equal(getattr(batched, name), getattr(single, name), equal_nan=True), name
    assert batched.weights is not None and single.weights is not None
    assert np.array_equal(batched.weights, single.weights)
    assert batched.detail == single.detail


def test_truncated_refits_report_the_optimum_at_the_final_weights(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With truncated intermediate refits (``INNER_NEWTON``) every reported fit is a converged
    REML optimum for its final weights: the optimiser started there with those weights stops
    where it started (same criterion and fixed effects, to its convergence tolerance, far below
    1e-6; started cold it might find another local optimum, so the check is warm)."""
    monkeypatch.setattr(robust, "INNER_NEWTON", 1)  # the most truncated: the strongest check
    table, design = _data(150, 11)
    fit = fit_proteins(table, design, CONTRASTS, robust="huber")
    assert fit.weights is not None
    enc = encode(table, design)
    problem = build_problem(
        enc.prot, enc.feat, enc.run, enc.y, design, len(enc.proteins), weights=fit.weights
    )
    ok = np.isin(np.asarray(fit.status, dtype=object), ["ok", "boundary"])
    ok &= np.array(["least squares" not in d for d in fit.detail])
    assert ok.sum() > 100
    # the reported theta carry the variance factor (robust.correct_variance): undo it
    theta0 = np.nan_to_num(fit.theta) * np.sqrt(robust.variance_factor())
    warm = _allocate(problem, design, enc.proteins, ["B - A"], problem.n_levels[:, 0])
    warm.theta_reml = np.full(warm.theta.shape, np.nan)
    fit_problem(problem, contrast_matrix(design, [("B", "A")]), warm, theta0)
    crit = np.abs(fit.reml_crit[ok] - warm.reml_crit[ok])
    assert np.all(crit < 1e-6 * (1.0 + np.abs(warm.reml_crit[ok])))
    se = np.sqrt(fit.cov_beta[ok, 1, 1])
    assert np.all(np.abs(fit.beta[ok] - warm.beta[ok]).max(axis=1) < 1e-6 * se)


def _polish_whole_table(enc: object, n_sweeps: int = robust.POLISH_SWEEPS) -> np.ndarray:
    """The median polish as whole-table sweeps (the implementation before the kernel)."""
    n_prot, n_runs = len(enc.proteins), len(enc.runs)  # type: ignore[attr-defined]
    cell = enc.prot * n_runs + enc.run  # type: ignore[attr-defined]
    feat = enc.feat  # type: ignore[attr-defined]
    resid = enc.y.copy()  # type: ignore[attr-defined]
    order = np.argsort(cell, kind="stable")
    for _ in range(n_sweeps):
        resid -= robust.group_median(resid, feat, int(feat.max()) + 1)[feat]
        resid -= robust.group_median(resid, cell, n_prot * n_runs, order)[cell]
    return resid


@pytest.mark.parametrize("n_per", [3, 40])
def test_compiled_polish_and_scale_equal_the_array_versions(n_per: int) -> None:
    """The protein-by-protein kernels of the median polish (:func:`robust.polish_residuals`)
    and of the MAD scale with Huber weights (:func:`robust.huber_scale_weights`) give the
    numbers of the whole-table array code, bit for bit (segments short and long: 6 and 80
    runs; one protein's rows left out of the scale)."""
    table, sheet, _ = simulate(n_prot=150, n_per=n_per, seed=3, frac_de=0.2)
    design = build_run_design(sheet, ModelSpec(random=("feature", "sample")))
    enc = encode(table, design)
    resid = robust.polish_residuals(enc)
    assert np.array_equal(resid, _polish_whole_table(enc))
    n_prot = len(enc.proteins)
    scale = robust.robust_scale(resid, enc.prot, n_prot)
    groups = np.arange(1, n_prot)
    rows = enc.prot >= 1
    s, w = robust.huber_scale_weights(resid[rows], enc.prot[rows], n_prot, groups)
    assert np.array_equal(s[groups], scale[groups]) and np.isnan(s[0])
    assert np.array_equal(w, robust.huber_weights(resid[rows], scale[enc.prot[rows]]))


@pytest.mark.parametrize("start", ["grid", "warm_truncated"])
def test_reused_evaluation_at_the_optimum_equals_a_fresh_one(start: str) -> None:
    """``fit._optimum`` takes the criterion at the optimum from the optimiser's and the
    boundary snap's own evaluations instead of evaluating it again: every array equals a fresh
    evaluation at the returned theta, bit for bit (weighted problem; cold start from the grid,
    and a warm start stopped after 2 Newton iterations; the divergence rule on and off)."""
    from pepmix.model.fit import _optimum
    from pepmix.model.reml import evaluate

    table, design = _data(200, 13)
    enc = encode(table, design)
    weights, _ = robust.initial_weights(enc)
    problem = build_problem(
        enc.prot, enc.feat, enc.run, enc.y, design, len(enc.proteins), weights=weights
    )
    names = ("dev", "logdet_s", "logdet_s0", "g_e", "pwrss", "chol", "lam", "ghat", "ok")
    for reduce in (True, False):
        out = _allocate(problem, design, enc.proteins, ["B - A"], problem.n_levels[:, 0])
        out.reduce_divergent = reduce
        for idx, bucket in problem.buckets:
            theta0, max_iter = None, optimize.MAX_ITER
            if start == "warm_truncated":
                theta0, max_iter = np.full((idx.size, bucket.n_factors), 0.5), 2
            fitted, theta, ev, _ = _optimum(problem, idx, bucket, out, theta0, max_iter)
            fresh = evaluate(fitted, theta)
            for name in names:
                assert np.array_equal(getattr(ev, name), getattr(fresh, name)), name


@pytest.mark.parametrize(
    "random", [("feature", "sample"), ("feature", "sample", "feature:condition"), ("sample",)]
)
def test_compiled_weight_update_equals_the_array_version(
    monkeypatch: pytest.MonkeyPatch, random: tuple[str, ...]
) -> None:
    """The rounds' Huber weights from one compiled pass over the refitted proteins' rows
    (``robust.COMPILED_UPDATE``) are those of the array version (fitted values, then the MAD
    and the weights of the subset's residuals): every array of the Huber fit equal, bit for
    bit, with the feature, sample and usage (feature x condition) predictions."""
    table, sheet, _ = simulate(n_prot=150, n_per=4, seed=5, frac_de=0.2)
    design = build_run_design(sheet, ModelSpec(random=random))
    calls = []
    inner = robust._huber_update
    monkeypatch.setattr(robust, "_huber_update", lambda *a: calls.append(1) or inner(*a))
    compiled = fit_proteins(table, design, CONTRASTS, robust="huber")
    assert len(calls) > 3  # the rounds went through the compiled pass
    monkeypatch.setattr(robust, "COMPILED_UPDATE", False)
    arrays = fit_proteins(table, design, CONTRASTS, robust="huber")
    assert len(calls) > 3 and compiled.weights is not None and arrays.weights is not None
    for name in _PROTEIN_ARRAYS:
        assert np.array_equal(getattr(compiled, name), getattr(arrays, name), equal_nan=True), name
    assert np.array_equal(compiled.weights, arrays.weights)
    assert compiled.detail == arrays.detail
    assert (compiled.weights < 1).mean() > 0.05  # the weights were iterated, not all 1


def test_light_first_fit_equals_the_complete_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """A robust fit whose first weighted fit is light (``fit.LIGHT_FIRST``; completed only for
    the proteins whose weights settle on it) reports every array of the fit with a complete
    first fit, bit for bit; some proteins did settle on the first fit (so it was completed)."""
    from pepmix.model import fit as fit_module

    table, design = _data(120, 13)
    from_first: list[int] = []
    first_fit: list[object] = []
    inner, inner_light = robust._Pending.finish, fit_module.fit_problem_light

    def light_fit(*a: object) -> object:  # fit.py's own call: the first fit
        coded, buckets = inner_light(*a)  # type: ignore[arg-type]
        first_fit.append(buckets)
        return coded, buckets

    def finish(self: robust._Pending, proteins: np.ndarray, *a: object) -> None:
        if any(self.buckets is b for b in first_fit):
            from_first.append(int(proteins.sum()))
        inner(self, proteins, *a)  # type: ignore[arg-type]

    monkeypatch.setattr(fit_module, "fit_problem_light", light_fit)
    monkeypatch.setattr(robust._Pending, "finish", finish)
    light = fit_proteins(table, design, CONTRASTS, robust="huber")
    assert sum(from_first) > 0  # some proteins settled on the first fit
    monkeypatch.setattr(fit_module, "LIGHT_FIRST", False)
    complete = fit_proteins(table, design, CONTRASTS, robust="huber")
    for name in _PROTEIN_ARRAYS:
        assert np.array_equal(getattr(light, name), getattr(complete, name), equal_nan=True), name
    assert light.weights is not None and complete.weights is not None
    assert np.array_equal(light.weights, complete.weights)
    assert light.detail == complete.detail and light.status == complete.status
    pd.testing.assert_frame_equal(light.blups, complete.blups, check_exact=True)
    assert np.isfinite(light.se).all(axis=1).mean() > 0.9  # inference completed
