r"""Benjamini-Hochberg adjusted p-values, as R's ``p.adjust(p, method = "BH")``, with NumPy only.

For :math:`m` p-values with order statistics :math:`p_{(1)} \le \dots \le p_{(m)}` the adjusted
value of :math:`p_{(i)}` is :math:`\min\bigl(1, \min_{j \ge i} m\,p_{(j)}/j\bigr)`; rejecting the
hypotheses with adjusted p-value :math:`\le q` controls the false discovery rate at :math:`q` for
independent (or positively dependent) tests. The arithmetic is that of
``scipy.stats.false_discovery_control(p, method="bh")`` (SciPy 1.17; the same operations as R's
``p.adjust``), operation for operation, so the values are the same bits
(``tests/unit/test_fdr.py``); this module adds R's handling of missing values (NaN stays NaN and
is not counted in :math:`m`) and any array shape. It imports no SciPy: the jobs that only adjust
p-values (the usage and variance-components tables) do not load ``scipy.stats`` (~0.8 CPU s).
:func:`pepmix.inference.limma.bh_adjust` is this function.

References
----------
Benjamini Y, Hochberg Y (1995). Controlling the false discovery rate: a practical and powerful
approach to multiple testing. J R Stat Soc B 57, 289-300.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["bh_adjust"]


def _bh_sorted(pv: NDArray[np.float64]) -> NDArray[np.float64]:
    """BH of finite p-values (1-d, at least one): ``scipy.stats.false_discovery_control``'s
    steps for ``method="bh"``."""
    m = pv.shape[-1]
    order = np.argsort(pv, axis=-1)
    ps = np.take_along_axis(pv, order, axis=-1)
    i = np.arange(1, m + 1, dtype=ps.dtype)
    ps = ps * (m / i)
    np.minimum.accumulate(ps[..., ::-1], out=ps[..., ::-1], axis=-1)
    out = np.empty_like(ps)
    np.put_along_axis(out, order, ps, axis=-1)
    result: NDArray[np.float64] = np.clip(out, 0.0, 1.0)
    return result


def bh_adjust(p: ArrayLike) -> NDArray[np.float64]:
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
        out[keep] = _bh_sorted(pv)
    result: NDArray[np.float64] = out.reshape(arr.shape)
    return result
