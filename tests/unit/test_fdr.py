"""``pepmix.inference.fdr.bh_adjust`` (NumPy only) gives the bits of
``scipy.stats.false_discovery_control(p, method="bh")``, the function it replaces in
:func:`pepmix.inference.limma.bh_adjust`, and imports no SciPy."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from pepmix.inference import fdr
from pepmix.inference.limma import bh_adjust


def _cases() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    cases = [
        np.array([0.5]),
        np.array([0.0, 1.0]),
        np.array([1e-300, 5e-324, 0.0, 1.0, 1.0, 0.5]),
        np.repeat([0.01, 0.2, 1.0], 7),  # ties
    ]
    for n in (2, 3, 10, 999, 20_000):
        u = rng.random(n)
        cases.append(u)
        cases.append(u**8)  # many small p-values
        cases.append(np.round(u, 2))  # many ties
        cases.append(np.where(rng.random(n) < 0.3, 1.0, u))  # p = 1 (LRT 0)
    return cases


@pytest.mark.parametrize("case", range(24))
def test_same_bits_as_scipy(case: int) -> None:
    """Equal bits (``np.array_equal``), not close: the tables must not change."""
    p = _cases()[case]
    want = stats.false_discovery_control(p, method="bh")
    got = fdr.bh_adjust(p)
    assert np.array_equal(got, want)
    assert got.dtype == np.float64 and got.shape == p.shape


def test_missing_values_and_shapes() -> None:
    """NaN stays NaN and does not count; any shape; the limma name is this function."""
    p = np.array([[0.01, np.nan], [0.04, 0.03]])
    got = fdr.bh_adjust(p)
    assert np.isnan(got[0, 1])
    np.testing.assert_array_equal(got[~np.isnan(p)], fdr.bh_adjust([0.01, 0.04, 0.03]))
    # by hand: 3 x 0.01 / 1, min(3 x 0.03 / 2, 0.04), 3 x 0.04 / 3
    np.testing.assert_allclose(fdr.bh_adjust([0.01, 0.04, 0.03]), [0.03, 0.04, 0.04], rtol=1e-15)
    assert fdr.bh_adjust([]).shape == (0,)
    assert np.isnan(fdr.bh_adjust([np.nan])).all()
    assert bh_adjust is fdr.bh_adjust
    with pytest.raises(ValueError, match="must lie in"):
        fdr.bh_adjust([0.5, 1.5])


def test_imports_no_scipy() -> None:
    """The point of the module: a job that only adjusts p-values does not load SciPy."""
    code = "import sys, pepmix.inference.fdr; print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
