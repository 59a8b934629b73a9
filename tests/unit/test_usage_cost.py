"""The cheaper usage refit (rule ``usage_refit``): a fit without inference gives the same point
estimates bit for bit, and the LRT's null fits started at the default fit's optimum reach the
optima the grid start reaches.

Tolerances: a null fit from another start is another run of the same optimiser to its
convergence criterion (criterion change < 1e-11 relative, projected gradient < 1e-6), so where
the null criterion has one optimum the two LRTs agree to the optimiser's tolerance on a
criterion of ~10-100 (1e-6 allowed, as ``test_usage_refit.py`` allows warm against cold fits).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pepmix.model import fit as fit_module
from pepmix.model import optimize, usage, variance_tests
from pepmix.model.design import USAGE_FACTOR, usage_code
from pepmix.model.fit import fit_proteins
from pepmix.model.robust import _PROTEIN_ARRAYS
from pepmix.model.usage import (
    UsageStart,
    _null_start,
    _theta_scale,
    refit_with_usage,
    usage_lrt,
    usage_shard,
    usage_shard_from_start,
)

from .test_usage_refit import _categorical, _design, _sheet, _simulate

#: arrays of a fit that only inference fills (NaN in a point-only fit)
INFERENCE = ("cov_beta", "dcov_beta", "vcov_varpar", "estimate", "se", "df", "contrast_ok")


@pytest.mark.parametrize("robust", ["huber", "none"])
def test_point_only_fit_equals_the_full_fit(robust: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``fit_proteins(inference=False)``: every point estimate, weight, status, detail and BLUP
    is bit for bit that of the full fit; covariances and contrasts are never computed (NaN,
    and no light fit is completed)."""
    table = _simulate(150, 0.3, seed=31)
    design = _design(usage=True)
    contrasts = [("B - A", "B", "A")]
    full = fit_proteins(table, design, contrasts, robust=robust)
    finished = []
    monkeypatch.setattr(fit_module, "finish_light", lambda *a: finished.append(a))
    light = fit_proteins(table, design, contrasts, robust=robust, inference=False)
    assert finished == []
    for name in _PROTEIN_ARRAYS:
        got, want = getattr(light, name), getattr(full, name)
        if name == "contrast_ok":
            assert not got.any() and want.any()
        elif name in INFERENCE:
            assert np.isnan(got).all(), name
            assert np.isfinite(want).any(), name
        else:
            assert np.array_equal(got, want, equal_nan=True), name
    if robust == "huber":
        assert light.weights is not None and full.weights is not None
        assert np.array_equal(light.weights, full.weights)
        assert (light.weights < 1).any()
    assert light.status == full.status and light.detail == full.detail
    pd.testing.assert_frame_equal(light.blups, full.blups, check_exact=True)


def test_usage_job_fits_point_estimates_only() -> None:
    """The usage job's fit (:func:`usage_shard_from_start`) has no covariances, and its
    variances, BLUPs, weights and LRTs equal those of the fit job's in-memory refit, bit for
    bit (the rows, too: ``test_usage_refit.py``). The job screens (``usage.SCREEN``), so the
    in-memory refit screens too: the same proteins are refitted."""
    table = _categorical(_simulate(80, 0.3, seed=32))
    fit = fit_proteins(table, _design(), robust="huber")
    components = fit.variance_components()
    memory = usage_shard(fit, components, table, _sheet(), robust="huber", screen=True)
    job = usage_shard_from_start(UsageStart.from_fit(fit), table, _sheet(), _design().spec, "huber")
    assert memory.fit is not None and job.fit is not None
    assert np.isnan(job.fit.cov_beta).all() and np.isfinite(memory.fit.cov_beta).any()
    for name in ("theta", "sigma", "reml_crit", "beta"):
        assert np.array_equal(getattr(job.fit, name), getattr(memory.fit, name), equal_nan=True)
    assert job.fit.weights is not None and memory.fit.weights is not None
    assert np.array_equal(job.fit.weights, memory.fit.weights)
    assert np.array_equal(job.lrt, memory.lrt, equal_nan=True)
    pd.testing.assert_frame_equal(job.table, memory.table, check_exact=True)


def test_fit_job_usage_rows_without_inference_are_the_same() -> None:
    """The fit job's in-memory usage refit without inference (``usage_shard(inference=False)``,
    what ``stages.fit.run`` does when no contrast is taken from the usage model): the usage
    rows and LRTs are those of the refit with inference, bit for bit; its fit has no
    covariances."""
    table = _categorical(_simulate(80, 0.3, seed=33))
    fit = fit_proteins(table, _design(), robust="huber")
    components = fit.variance_components()
    full = usage_shard(fit, components, table, _sheet(), robust="huber", screen=True)
    light = usage_shard(
        fit, components, table, _sheet(), robust="huber", screen=True, inference=False
    )
    assert full.fit is not None and light.fit is not None
    assert np.isnan(light.fit.cov_beta).all() and np.isfinite(full.fit.cov_beta).any()
    pd.testing.assert_frame_equal(light.table, full.table, check_exact=True)
    assert np.array_equal(light.lrt, full.lrt, equal_nan=True)
    assert (full.lrt > 0).sum() > 5  # positive usage variances were refitted and tested


@pytest.mark.parametrize("robust", ["huber", "none"])
def test_null_fits_from_the_default_fit_reach_the_grid_optima(
    robust: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The LRT's null model is the default model at the usage fit's weights; started at the
    default fit's optimum it reaches the optimum the grid start reaches (LRTs within the
    optimiser's tolerance), in fewer Newton iterations."""
    table = _simulate(200, 0.4, seed=33)
    fit = fit_proteins(table, _design(), robust=robust)
    design = _design(usage=True)
    full, idx = refit_with_usage(fit, design, robust, inference=False)
    active = np.ones(idx.size, dtype=bool)
    scale = _theta_scale(robust)
    iterations: list[int] = []
    minimize = optimize.minimize

    def counted(bucket, theta0=None, max_iter=optimize.MAX_ITER):  # type: ignore[no-untyped-def]
        out = minimize(bucket, theta0, max_iter)
        if not bucket.free[:, full.factors.index(USAGE_FACTOR)].any():  # a null fit
            iterations.append(int(out.iterations.sum()))
        return out

    monkeypatch.setattr(variance_tests, "minimize", counted)
    grid = usage_lrt(full, active, scale)
    n_grid = sum(iterations)
    iterations.clear()
    null = _null_start(fit, design, idx, robust, full.factors)
    assert np.array_equal(null[:, full.factors.index(USAGE_FACTOR)], np.zeros(idx.size))
    warm = usage_lrt(full, active, scale, null)
    n_warm = sum(iterations)
    assert (grid > 0).sum() > 40
    np.testing.assert_allclose(warm, grid, rtol=1e-6, atol=1e-6)
    assert np.array_equal(np.isnan(warm), np.isnan(grid)) and np.array_equal(warm > 0, grid > 0)
    assert n_warm < n_grid


def test_the_shard_uses_the_warm_null_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """:func:`usage_shard` passes the default fit's optimum to the null fits when
    :data:`pepmix.model.usage.WARM_NULL` is set, the grid otherwise; the rows agree."""
    table = _simulate(60, 0.4, seed=34)
    fit = fit_proteins(table, _design(), robust="huber")
    starts = []
    lrt = usage.usage_lrt

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        starts.append(args[3] if len(args) > 3 else kwargs.get("null_start"))
        return lrt(*args, **kwargs)

    monkeypatch.setattr(usage, "usage_lrt", spy)
    warm = usage_shard(fit, fit.variance_components(), table, _sheet(), robust="huber")
    monkeypatch.setattr(usage, "WARM_NULL", False)
    grid = usage_shard(fit, fit.variance_components(), table, _sheet(), robust="huber")
    assert starts[0] is not None and starts[1] is None
    np.testing.assert_allclose(warm.lrt, grid.lrt, rtol=1e-6, atol=1e-6)


def test_usage_cells_by_counting_equal_the_sorted_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """The usage cells found by one counting pass (feature codes numbered by protein, as the
    encoding numbers them) are the sorted ones, array for array; codes out of protein order
    fall back to the sort (and still give its arrays)."""
    from pepmix.model import suffstats
    from pepmix.model.fit import encode

    design = _design(usage=True)
    enc = encode(_simulate(60, 0.3, seed=34), design)
    n_prot = len(enc.proteins)
    # features renumbered against the protein order: the counting pass must decline
    shuffled = enc.feat.max() - enc.feat
    for feat in (enc.feat, shuffled):
        counted = suffstats.usage_cells(enc.prot, feat, enc.run, design, n_prot)
        declined = suffstats._cells_by_code(
            enc.prot, usage_code(feat, enc.run, design).astype(np.int64), int(1e6)
        )
        assert (declined is None) == (feat is shuffled)
        monkeypatch.setattr(suffstats, "USAGE_CELLS_COUNTED", False)
        sorted_ = suffstats.usage_cells(enc.prot, feat, enc.run, design, n_prot)
        monkeypatch.setattr(suffstats, "USAGE_CELLS_COUNTED", True)
        for name in ("first", "code", "count", "index", "local"):
            got, want = getattr(counted, name), getattr(sorted_, name)
            assert got.dtype == want.dtype and np.array_equal(got, want), name


@pytest.mark.parametrize("screen", [True, False])
def test_usage_problems_from_the_cached_structure_give_the_same_rows(
    screen: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The usage refit's robust rounds and its LRT build their problems from one cached
    structure (``subset_problem.USAGE_CACHED``, ``usage.LRT_FROM_BUILDER``): the usage rows
    (every column, full precision), the LRTs, the usage fit's per-protein arrays and weights
    are those of the fresh builds, bit for bit; and the cached path is the one taken."""
    from pepmix.model import subset_problem

    table = _categorical(_simulate(120, 0.3, seed=21))
    fit = fit_proteins(table, _design(), robust="huber")
    components = fit.variance_components()

    def shard() -> usage.UsageShard:
        return usage_shard(
            fit, components, table, _sheet(), robust="huber", screen=screen, inference=False
        )

    cached_builds: list[int] = []
    build = subset_problem.SubsetBuilder.build

    def counted(self, subset, weights):  # type: ignore[no-untyped-def]
        cached_builds.append(int(self.cached and USAGE_FACTOR in self.design.spec.random))
        return build(self, subset, weights)

    def no_fresh_problem(part):  # type: ignore[no-untyped-def]
        raise AssertionError("the usage LRT rebuilt its problem")

    with monkeypatch.context() as m:
        m.setattr(subset_problem.SubsetBuilder, "build", counted)
        m.setattr(variance_tests, "refit_problem", no_fresh_problem)
        cached = shard()
    monkeypatch.setattr(subset_problem, "USAGE_CACHED", False)
    monkeypatch.setattr(usage, "LRT_FROM_BUILDER", False)
    fresh = shard()
    assert sum(cached_builds) >= 3  # the robust rounds and the LRT, from the cache
    pd.testing.assert_frame_equal(cached.table, fresh.table, check_exact=True)
    assert np.array_equal(cached.lrt, fresh.lrt, equal_nan=True)
    assert (cached.lrt > 0).sum() > 5  # refitted and tested proteins with a usage variance
    assert cached.fit is not None and fresh.fit is not None
    for name in _PROTEIN_ARRAYS:
        a, b = getattr(cached.fit, name), getattr(fresh.fit, name)
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), name
    assert cached.fit.weights is not None and fresh.fit.weights is not None
    assert np.array_equal(cached.fit.weights, fresh.fit.weights)
