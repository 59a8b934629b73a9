"""pepmix.io.significant: rounding to significant digits for the TSV tables."""

from __future__ import annotations

import warnings

import numpy as np

from pepmix.io import significant


def test_rounds_to_six_significant_digits() -> None:
    x = np.array([1234567.89, 0.000123456789, -2.5e-7 * 1.23456789, 0.0, np.nan, np.inf])
    got = significant(x)
    assert got[0] == 1234570.0
    assert got[1] == 0.000123457
    assert repr(float(got[2])) == "-3.08642e-07"
    assert got[3] == 0.0
    assert np.isnan(got[4]) and got[5] == np.inf


def test_subnormal_values_are_kept_without_a_warning() -> None:
    """A subnormal value (e.g. a variance at 1e-310) overflows 10**(digits - 1 - magnitude): it
    is returned unchanged, and no RuntimeWarning reaches the rule's log."""
    x = np.array([1e-310, -5e-320, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = significant(x)
    assert got[0] == 1e-310 and got[1] == -5e-320 and got[2] == 1.0
