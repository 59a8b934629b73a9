"""Input checks shared by the limma port: variances, degrees of freedom, Winsorization tails.

Inputs that limma silently drops but that are errors in a pipeline (negative or infinite
variances, negative or infinite df) raise :class:`ValueError` here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from pepmix.inference.limma._numeric import FloatArray

__all__ = ["as_1d", "as_df", "as_tail_p", "check_s2"]


def as_1d(values: ArrayLike, name: str) -> FloatArray:
    """``values`` as a one-dimensional float array; ``name`` is used in the error message.

    Raises
    ------
    ValueError
        If ``values`` is not one-dimensional.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def check_s2(s2: FloatArray) -> None:
    """Raise :class:`ValueError` on negative or infinite variances (NaN is allowed)."""
    if np.any(s2 < 0):
        raise ValueError("s2 contains negative variances")
    if np.any(np.isinf(s2)):
        raise ValueError("s2 contains infinite variances")


def as_df(df: ArrayLike, n: int) -> FloatArray | float:
    """Degrees of freedom as a float (one for all) or an array of length ``n``.

    Parameters
    ----------
    df : float or array_like
        Degrees of freedom, finite and >= 0, or NaN. A length-one array counts as a scalar.
    n : int
        Number of variances.

    Returns
    -------
    float or ndarray, shape (n,)

    Raises
    ------
    ValueError
        On negative or infinite df, or a length other than 1 or ``n``.
    """
    arr = np.asarray(df, dtype=np.float64)
    if arr.ndim == 0:
        value = float(arr)
        if value < 0 or math.isinf(value):
            raise ValueError(f"df must be finite and >= 0 (or NaN), got {value}")
        return value
    if arr.ndim != 1:
        raise ValueError(f"df must be a scalar or one-dimensional, got shape {arr.shape}")
    if arr.size == 1:
        return as_df(arr[0], n)
    if arr.size != n:
        raise ValueError(f"df has length {arr.size} but s2 has length {n}")
    if np.any(arr < 0) or np.any(np.isinf(arr)):
        raise ValueError("df must be finite and >= 0 (or NaN)")
    return arr


def as_tail_p(winsor_tail_p: float | Sequence[float]) -> tuple[float, float]:
    """Left and right Winsorization tail proportions (one value is used for both).

    Raises
    ------
    ValueError
        Unless one or two values, each in (0, 0.5), are given.
    """
    arr = np.atleast_1d(np.asarray(winsor_tail_p, dtype=np.float64))
    if arr.ndim != 1 or arr.size not in (1, 2):
        raise ValueError("winsor_tail_p must have one or two elements")
    arr = np.resize(arr, 2)
    if not np.all((arr > 0) & (arr < 0.5)):
        raise ValueError(f"winsor_tail_p must lie in (0, 0.5), got {arr.tolist()}")
    return float(arr[0]), float(arr[1])
