"""The robust fit's refit problems from cached structure (:mod:`pepmix.model.subset_problem`):
the same :class:`Problem` as a fresh ``build_problem`` on the subset's rows, bit for bit."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from pepmix.model import robust
from pepmix.model.design import USAGE_FACTOR, ModelSpec, build_run_design
from pepmix.model.fit import encode, fit_proteins
from pepmix.model.subset_problem import SubsetBuilder
from pepmix.model.suffstats import build_problem

from .engine_data import make_design, make_table
from .simulate_da import simulate
from .test_engine import DESIGNS


def _assert_same(a: Any, b: Any, path: str = "problem") -> None:
    """Equal field by field, arrays with equal dtype, shape and bits (NaN equal to NaN)."""
    if dataclasses.is_dataclass(a):
        assert type(a) is type(b), path
        for f in dataclasses.fields(a):
            _assert_same(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, type(a)) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, path
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), path
    else:
        assert a == b, (path, a, b)


def _fresh(enc: Any, design: Any, subset: np.ndarray, weights: np.ndarray) -> Any:
    """``build_problem`` on the subset's rows (the refit before the cache)."""
    local = np.full(len(enc.proteins), -1, dtype=np.intp)
    local[subset] = np.arange(subset.size)
    rows = local[enc.prot] >= 0
    return build_problem(
        local[enc.prot[rows]],
        enc.feat[rows],
        enc.run[rows],
        enc.y[rows],
        design,
        n_proteins=subset.size,
        weights=weights[rows],
    )


def _weights(n: int, rng: np.random.Generator) -> np.ndarray:
    w = rng.uniform(0.05, 1.0, n)
    w[rng.random(n) < 0.6] = 1.0
    return w


#: models with the feature x condition (usage) factor: with the sample factor (the cells
#: eliminated where a protein has more cells than samples, else the samples; the cells in the
#: dense block), with the feature only, and with a random batch
USAGE_DESIGNS = {
    "usage": {"random": ("feature", "sample", USAGE_FACTOR)},
    "usage_feature": {"random": ("feature", USAGE_FACTOR)},
    "usage_batch": {"random": ("feature", "sample", "batch", USAGE_FACTOR), "n_batch": 3},
}


@pytest.mark.parametrize("name", ["feature+sample", "nested", "batch_random", "feature_only",
                                  "batch_fixed", *USAGE_DESIGNS])  # fmt: skip
def test_cached_build_equals_fresh_build(name: str) -> None:
    """Random subsets and weights, several designs (eliminated sample levels summed over two
    runs each, a random batch, the feature eliminated, a fixed batch, the usage factor in the
    dense block and eliminated): every field of the problem (the usage cells included), every
    bucket array, bit for bit."""
    sheet, design = make_design(**{**DESIGNS, **USAGE_DESIGNS}[name])
    table = make_table(design, sheet, 60, 3)
    enc = encode(table, design)
    n_prot = len(enc.proteins)
    builder = SubsetBuilder(enc.prot, enc.feat, enc.run, enc.y, design, n_prot)
    assert builder.cached
    if name in USAGE_DESIGNS:  # both layouts of the usage factor occur
        problem = builder.build(np.arange(n_prot), _weights(enc.y.size, np.random.default_rng(1)))
        u = problem.factors.index(USAGE_FACTOR)
        assert np.any(problem.efactor == u) and np.any(problem.efactor != u)
    rng = np.random.default_rng(5)
    for size in (n_prot, n_prot // 2, 7, 1):
        subset = np.sort(rng.choice(n_prot, size=size, replace=False))
        weights = _weights(enc.y.size, rng)
        _assert_same(_fresh(enc, design, subset, weights), builder.build(subset, weights))
    # all weights of the subset 1: the unweighted problem (count classes), as build_problem
    ones = np.ones(enc.y.size)
    subset = np.arange(0, n_prot, 3)
    _assert_same(_fresh(enc, design, subset, ones), builder.build(subset, ones))


@pytest.mark.parametrize("usage", [False, True])
def test_cached_build_many_runs(usage: bool) -> None:
    """200 runs (the cohort's shape: 200 eliminated sample levels, rank-one rows padded to 256)
    with the start weights of the robust fit; with the usage factor in the dense block (the
    usage refit's problems)."""
    table, sheet, _ = simulate(n_prot=80, n_per=100, seed=4, frac_de=0.2)
    random = ("feature", "sample", USAGE_FACTOR) if usage else ("feature", "sample")
    design = build_run_design(sheet, ModelSpec(random=random))
    enc = encode(table, design)
    weights, _ = robust.initial_weights(enc)
    n_prot = len(enc.proteins)
    builder = SubsetBuilder(enc.prot, enc.feat, enc.run, enc.y, design, n_prot)
    for subset in (np.arange(n_prot), np.arange(1, n_prot, 4)):
        _assert_same(_fresh(enc, design, subset, weights), builder.build(subset, weights))


def test_robust_fit_unchanged_by_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Huber fit with the cached builder equals the fit that builds every refit's problem
    from scratch: every per-protein array and the weights, bit for bit."""
    table, sheet, _ = simulate(n_prot=120, n_per=3, seed=9, frac_de=0.2)
    design = build_run_design(sheet, ModelSpec(random=("feature", "sample")))
    cached = fit_proteins(table, design, [("B - A", "B", "A")], robust="huber")

    class _NoCache(SubsetBuilder):
        def build(self, subset: np.ndarray, weights: np.ndarray) -> Any:
            return _fresh(encode(table, design), design, subset, weights)

    monkeypatch.setattr(robust, "SubsetBuilder", _NoCache)
    fresh = fit_proteins(table, design, [("B - A", "B", "A")], robust="huber")
    for name in robust._PROTEIN_ARRAYS:
        assert np.array_equal(getattr(cached, name), getattr(fresh, name), equal_nan=True), name
    assert cached.weights is not None and fresh.weights is not None
    assert np.array_equal(cached.weights, fresh.weights)
    assert cached.detail == fresh.detail
