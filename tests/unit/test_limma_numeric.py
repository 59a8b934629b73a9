"""The R arithmetic kept by hand in ``pepmix.inference.limma._numeric``, against R 4.2.

References: ``tests/reference/ebayes/r_arithmetic.R`` (no R needed here).

- :func:`zeroin` must reproduce R's ``uniroot`` bit for bit: the robust prior df of limma is the
  root R's Brent iteration stops at (tol 1e-8 on the link scale), and ``scipy.optimize.brentq``
  stops elsewhere (on ``cubic`` at tol 1e-8 it returns 2.094551481542327, R 2.0945514815361843).
  The functions use only +, -, * so their values are the same in R and Python on any platform.
- :func:`r_mean`, :func:`trimmed_mean` and :func:`quantile7` follow R's formulas; they differ
  from R's values only by rounding (R sums in long double, and indexes the quantile from 1), so
  the tolerances are the rounding bounds stated in each test.
- :func:`trimboth` and :func:`average_ranks` are ``scipy.stats.trimboth`` and ``rankdata`` in
  NumPy alone (the robust moderation of rule ``test`` without importing ``scipy.stats``): equal
  to SciPy's results bit for bit, including the order of the kept values, ties and NaN.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pepmix.inference.limma._numeric import (
    average_ranks,
    quantile7,
    r_mean,
    trimboth,
    trimmed_mean,
    zeroin,
)

REF = Path(__file__).resolve().parents[1] / "reference" / "ebayes"
EPS = float(np.finfo(np.float64).eps)

FUNCTIONS = {
    "cubic": lambda x: x * x * x - 2 * x - 5,
    "shifted": lambda x: (x - 0.3) * (x * x + 1),
    "square": lambda x: x * x - 2,
    "flat": lambda x: (x - 1.5) * (x - 1.5) * (x - 1.5) + 1e-3 * (x - 1.5),
}


def test_zeroin_reproduces_uniroot() -> None:
    ref = pd.read_csv(REF / "uniroot.csv")
    assert len(ref) == 12
    for row in ref.itertuples():
        f = FUNCTIONS[str(row.fun)]
        a, b = float(row.lower), float(row.upper)
        root = zeroin(f, a, b, f(a), f(b), tol=float(row.tol), maxiter=1000)
        assert root == float(row.root), (row.fun, row.tol)


@pytest.fixture(scope="module")
def r_sets() -> list[tuple[np.ndarray, pd.Series]]:
    inputs = pd.read_csv(REF / "r_arithmetic_inputs.csv.gz")
    outputs = pd.read_csv(REF / "r_arithmetic.csv")
    groups = {k: g["x"].to_numpy(dtype=float) for k, g in inputs.groupby("set")}
    return [(groups[int(row["set"])], row) for _, row in outputs.iterrows()]


def test_means_agree_with_r(r_sets: list[tuple[np.ndarray, pd.Series]]) -> None:
    assert len(r_sets) == 60
    for x, row in r_sets:
        # a correctly rounded sum divided by n, and R's long-double two-pass mean, are each
        # within about one unit in the last place of the exact mean
        expected = float(row["mean"])
        assert abs(r_mean(x) - expected) <= 2 * np.spacing(abs(expected))
        trimmed = float(row["trimmed_mean"])
        got = trimmed_mean(x, float(row["trim"]))
        assert abs(got - trimmed) <= 2 * np.spacing(abs(trimmed))


def test_quantile7_agrees_with_r(r_sets: list[tuple[np.ndarray, pd.Series]]) -> None:
    for x, row in r_sets:
        got = quantile7(x, (float(row["trim"]), 0.9))
        # the interpolation weight h is computed from a 0-based index here and a 1-based one in
        # R: they differ by at most n eps, which moves the quantile by n eps (x_hi - x_lo); the
        # interpolation itself rounds within a few eps of max |x|
        bound = (2 * x.size + 4) * EPS * float(np.max(np.abs(x)))
        np.testing.assert_allclose(got, [row["q_trim"], row["q_90"]], rtol=0, atol=bound)


def _scipy_cases() -> list[np.ndarray]:
    """Arrays of 0-2,000 values: continuous, heavy ties, repeated values at the trim points,
    signed zeros, infinities, one NaN."""
    rng = np.random.default_rng(20261207)
    cases = [np.array([]), np.array([1.5]), np.array([2.0, 2.0]), np.array([-0.0, 0.0, 1.0])]
    for n in (3, 7, 10, 31, 200, 2000):
        cases.append(rng.standard_normal(n))
        cases.append(rng.integers(0, 4, n).astype(float))  # many ties
        cases.append(np.exp(rng.standard_normal(n)) * rng.choice([1.0, 1e-300, 1e300], n))
    cases.append(np.array([np.inf, 1.0, -np.inf, 1.0, 3.0]))
    cases.append(np.array([1.0, np.nan, 2.0]))
    return cases


@pytest.mark.parametrize("trim", [0.0, 0.05, 0.1, 0.25, 0.4])
def test_trimboth_is_scipys(trim: float) -> None:
    for x in _scipy_cases():
        if x.size and int(trim * x.size) >= x.size - int(trim * x.size):
            continue
        want = stats.trimboth(x, trim)
        got = trimboth(x, trim)
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), (x.size, trim)


def test_average_ranks_are_scipys() -> None:
    for x in _scipy_cases():
        want = stats.rankdata(x)
        got = average_ranks(x)
        assert got.dtype == np.float64 and got.shape == want.shape
        assert np.array_equal(got, want, equal_nan=True), x.size
