"""The one compiled median (:func:`pepmix.model._kernel.median_of`, used by the robust fit's and
the feature majority rule's kernels): ``np.median``'s value bit for bit, by exact order
statistics (insertion sort up to 24 values, histogram selection above)."""

from __future__ import annotations

import itertools

import numpy as np

from pepmix.model._kernel import MEDIAN_BINS, MEDIAN_SMALL, median_of, segment_medians, select_kth


def test_median_is_numpys_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    small = np.empty(MEDIAN_SMALL)
    work = np.empty(4000)
    hist = np.empty(MEDIAN_BINS + 1, dtype=np.int64)
    for n in [*range(1, 80), 101, 200, 1001, 4000]:
        for kind in ("normal", "ties", "sorted", "reversed"):
            x = rng.normal(size=n)
            if kind == "ties":  # many equal values: the pivot's ties
                x = np.round(x * 2.0) / 2.0
            elif kind == "sorted":
                x.sort()
            elif kind == "reversed":
                x = np.sort(x)[::-1].copy()
            buf = x.copy()
            got = median_of(buf, n, small, work, hist)
            assert got == np.median(x), (n, kind)
            np.testing.assert_array_equal(buf, x)  # not changed


def test_select_is_the_order_statistic() -> None:
    rng = np.random.default_rng(4)
    for n in (1, 2, 7, 50, 333):
        x = np.round(rng.normal(size=n), 1)
        for k in {0, n // 3, n // 2, n - 1}:
            buf = x.copy()
            assert select_kth(buf, n, k) == np.sort(x)[k]
            assert np.all(buf[:k] <= buf[k]) and np.all(buf[k + 1 :] >= buf[k])


def test_segment_medians_leave_the_values_and_give_nan_for_empty() -> None:
    rng = np.random.default_rng(5)
    values = rng.normal(size=300)
    starts = np.array([0, 0, 5, 30, 31, 300], dtype=np.int64)
    out = np.empty(starts.size - 1)
    kept = values.copy()
    segment_medians(values, starts, out)
    np.testing.assert_array_equal(values, kept)
    assert np.isnan(out[0])
    expected = [np.median(values[a:b]) for a, b in itertools.pairwise(starts[1:])]
    np.testing.assert_array_equal(out[1:], expected)
