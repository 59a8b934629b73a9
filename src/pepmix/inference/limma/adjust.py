r"""Benjamini-Hochberg adjusted p-values, as R's ``p.adjust(p, method = "BH")``.

For :math:`m` p-values with order statistics :math:`p_{(1)} \le \dots \le p_{(m)}` the adjusted
value of :math:`p_{(i)}` is :math:`\min\bigl(1, \min_{j \ge i} m\,p_{(j)}/j\bigr)`; rejecting the
hypotheses with adjusted p-value :math:`\le q` controls the false discovery rate at :math:`q` for
independent (or positively dependent) tests. The arithmetic is
``scipy.stats.false_discovery_control`` (the same operations as R's ``p.adjust``); this module
adds R's handling of missing values (NaN stays NaN and is not counted in :math:`m`) and any
array shape.

References
----------
Benjamini Y, Hochberg Y (1995). Controlling the false discovery rate: a practical and powerful
approach to multiple testing. J R Stat Soc B 57, 289-300.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from pepmix.inference.limma._numeric import FloatArray

__all__ = ["bh_adjust"]


def bh_adjust(p: ArrayLike) -> FloatArray:
    """Benjamini-Hochberg adjusted p-values, as R's ``p.adjust(p, method = "BH")``.

    Parameters
    ----------
    p : array_like
        p-values in [0, 1]; NaN entries stay NaN and are not counted in the number of tests.

    Returns
    -------
    ndarray
        Adjusted p-values with the shape of ``p``.

    Raises
    ------
    ValueError
        If a p-value lies outside [0, 1].
    """
    arr = np.asarray(p, dtype=np.float64)
    flat = arr.ravel()
    out = np.full(flat.shape, math.nan)
    keep = ~np.isnan(flat)
    pv = flat[keep]
    if np.any((pv < 0) | (pv > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    if pv.size:
        out[keep] = stats.false_discovery_control(pv, method="bh")
    result: FloatArray = out.reshape(arr.shape)
    return result
