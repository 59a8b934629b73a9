"""The cheaper bookkeeping of the Huber IRLS's rounds gives the same numbers, bit for bit.

- :func:`pepmix.model._kernel._select_median` (the medians of the MAD scale and the median
  polish) returns the value of numba's ``np.median`` (which the kernels called before; with
  a NaN it differs from NumPy's, and it is called then);
- :class:`pepmix.model.robust._Predictions` keeps the rows of the latest fits the array
  rebuilt at every refit held, row for row;
- :class:`pepmix.model.subset_problem.SubsetBuilder` with the compiled level weight sums and
  the per-protein assembly rows builds the problem it builds without them (and
  ``tests/unit/test_subset_problem.py`` checks both against ``build_problem``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numba import njit

from pepmix.model import robust, subset_problem
from pepmix.model._kernel import MEDIAN_BINS, _select_median
from pepmix.model.design import ModelSpec, build_run_design
from pepmix.model.fit import encode, fit_proteins

from .engine_data import make_design, make_table
from .simulate_da import simulate
from .test_engine import DESIGNS
from .test_subset_problem import _assert_same


@njit(cache=False)
def _numba_median(x: np.ndarray) -> float:
    return float(np.median(x))


def _cases(rng: np.random.Generator) -> list[np.ndarray]:
    """Arrays that stress a histogram selection: ties, one value, a huge range, outliers,
    values that all fall into one bin, subnormals, NaN and infinities."""
    cases = []
    for n in (25, 26, 27, 64, 199, 200, 201, 1000, 2401):
        x = rng.standard_normal(n)
        cases.append(x)
        cases.append(np.round(x, 1))  # many ties
        t = np.round(x)
        t[: n // 2] = 0.0  # the middle values tie
        cases.append(t)
        cases.append(np.abs(np.round(x, 2)))  # |r - med|: half at the bottom bin
        cases.append(np.full(n, 1.25))
        o = x.copy()
        o[:3] = [1e300, -1e300, 1e12]  # the range overflows / one bin holds all
        cases.append(o)
        s = x.copy()
        s[::2] = 5e-324 * np.arange(s[::2].size)  # subnormals
        cases.append(s)
        two = np.where(x > 0, 1.0, -1.0)  # two values: the middle ranks in different bins
        cases.append(two)
        # the two middle ranks in different bins, the upper one first in its bin (even n)
        cases.append(np.where(np.arange(n) < (n + 1) // 2, -1.0, 3.0)[rng.permutation(n)])
        cases.append(np.sort(x))
        cases.append(np.sort(x)[::-1].copy())
        nan = x.copy()
        nan[n // 3] = np.nan
        cases.append(nan)
        inf = x.copy()
        inf[n // 4] = np.inf
        cases.append(inf)
    return cases


def test_select_median_is_numpys_median() -> None:
    rng = np.random.default_rng(12)
    hist = np.zeros(MEDIAN_BINS + 1, dtype=np.int64)
    for x in _cases(rng):
        before = x.copy()
        work = np.empty(x.size)
        got = _select_median(x, x.size, work, hist)
        want = _numba_median(x.copy())
        assert np.array_equal(x, before, equal_nan=True)  # the source is not changed
        # the same float, bit for bit (a zero of either sign would compare equal)
        assert got == want or (np.isnan(got) and np.isnan(want)), (x.size, got, want)
        if np.isfinite(x).all():
            assert got == float(np.median(x))


@pytest.mark.parametrize("name", ["feature+sample", "nested", "batch_random", "feature_only"])
def test_builder_shortcuts_build_the_same_problem(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With and without the compiled level sums and the per-protein assembly rows: every
    field of the problem, bit for bit. The level sums take the compiled pass where every
    eliminated level is one cell or feature (``feature+sample``: a sample is one run;
    ``feature_only``: features) and the array version where a level holds several runs
    (``nested``: samples of two runs; ``batch_random``)."""
    sheet, design = make_design(**DESIGNS[name])
    enc = encode(make_table(design, sheet, 60, 3), design)
    n_prot = len(enc.proteins)
    rng = np.random.default_rng(8)
    weights = np.where(rng.random(enc.y.size) < 0.4, rng.uniform(0.05, 1.0, enc.y.size), 1.0)
    subsets = [np.arange(n_prot), np.sort(rng.choice(n_prot, 25, replace=False)), np.array([3])]
    built = []
    for on in (False, True):
        monkeypatch.setattr(subset_problem, "COMPILED_LEVELS", on)
        monkeypatch.setattr(subset_problem, "CACHED_ASSEMBLY", on)
        builder = subset_problem.SubsetBuilder(enc.prot, enc.feat, enc.run, enc.y, design, n_prot)
        assert (builder.cell_sources is not None) == (name in ("feature+sample", "feature_only"))
        built.append([builder.build(s, weights) for s in subsets])
        assert (builder.static is not None) == on
    for old, new in zip(built[0], built[1], strict=True):
        _assert_same(old, new)


def _eager(current: np.ndarray, subset: np.ndarray, part: np.ndarray, n_prot: int) -> np.ndarray:
    """The array the IRLS rebuilt at every refit: the other proteins' rows, then ``part``."""
    replaced = np.zeros(n_prot, dtype=bool)
    replaced[subset] = True
    return np.concatenate([current[~replaced[current[:, 0].astype(np.intp)]], part])


def _rows(proteins: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Coded prediction rows of ``proteins``: 0-5 rows each (0: a fit without predictions)."""
    counts = rng.integers(0, 6, proteins.size)
    prot = np.repeat(proteins, counts).astype(np.float64)
    return np.column_stack([prot, rng.integers(0, 3, (prot.size, 2)), rng.normal(size=prot.size)])


def test_prediction_blocks_are_the_rebuilt_array() -> None:
    """:class:`pepmix.model.robust._Predictions` against the array rebuilt at every refit:
    the rows of any set of proteins and the whole array, row for row, over random refits
    (subsets of all sizes, proteins without rows, blocks dropped and merged)."""
    rng = np.random.default_rng(4)
    n_prot = 40
    first = _rows(np.arange(n_prot), rng)
    eager = first.copy()
    blocks = robust._Predictions(first, n_prot)
    for step in range(60):
        size = [1, 3, 20, n_prot][step % 4]
        subset = np.sort(rng.choice(n_prot, size, replace=False))
        part = _rows(subset, rng)
        eager = _eager(eager, subset, part, n_prot)
        blocks.replace(subset, part)
        mask = rng.random(n_prot) < 0.3
        want = eager[mask[eager[:, 0].astype(np.intp)]]
        assert np.array_equal(blocks.rows_of(mask), want)
        if step % 7 == 0:
            assert np.array_equal(blocks.current(), eager)
        assert len(blocks.blocks) <= 8  # dropped or merged
    assert np.array_equal(blocks.current(), eager)


def test_huber_fit_with_prediction_blocks_is_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Huber fit (200 proteins x 12 runs) with the prediction blocks and with the array
    rebuilt at every refit: every per-protein array, the weights, notes and BLUPs, bit for bit."""
    table, sheet, _ = simulate(n_prot=200, n_per=3, seed=21, frac_de=0.2)
    design = build_run_design(sheet, ModelSpec(random=("feature", "sample")))
    fits = []
    for on in (False, True):
        monkeypatch.setattr(robust, "BLOCK_PREDICTIONS", on)
        fits.append(fit_proteins(table, design, [("B - A", "B", "A")], robust="huber"))
    old, new = fits
    for name in robust._PROTEIN_ARRAYS:
        assert np.array_equal(getattr(old, name), getattr(new, name), equal_nan=True), name
    assert old.weights is not None and new.weights is not None
    assert np.array_equal(old.weights, new.weights)
    assert old.detail == new.detail
    pd.testing.assert_frame_equal(old.blups, new.blups, check_exact=True)


def test_predictions_when_no_rows_are_left() -> None:
    """A refit whose proteins have no prediction rows (e.g. no random level kept) can leave no
    rows in use at all: the array is then empty, not an error (a DIA-NN e2e data set did)."""
    from pepmix.model.robust import _Predictions

    first = np.array([[0.0, 0.0, 1.0, 0.5], [1.0, 0.0, 2.0, -0.5]])
    pred = _Predictions(first, 2)
    pred.replace(np.array([0, 1]), np.zeros((0, 4)))
    assert pred.current().shape == (0, 4)
    pred.replace(np.array([1]), np.array([[1.0, 0.0, 2.0, 0.25]]))
    np.testing.assert_array_equal(pred.current(), [[1.0, 0.0, 2.0, 0.25]])
