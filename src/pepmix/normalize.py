r"""log2 transform and normalisation of runs.

With :math:`y_{fr} = \log_2 I_{fr}` for feature :math:`f` in run :math:`r`:

``median_ratio`` (default)
    :math:`y_{fr} - m_r`, where :math:`m_r` is the median over the features observed in run
    :math:`r` of :math:`y_{fr} - \bar y_f` (:math:`\bar y_f` the feature's mean over the runs it
    was seen in), iterated three times and centred so that :math:`\sum_r m_r = 0`. The median of
    *ratios* to a feature-wise reference is robust to a minority of changing proteins (spike-ins,
    real biology): their large ratios sit in the tails, while the median of raw intensities shifts
    whenever changing proteins cross it. This is the median-of-ratios idea of DESeq applied to log
    intensities.
``median``
    :math:`y_{fr} - m_r + \bar m`, where :math:`m_r` is the median of run :math:`r` over all its
    observed features and :math:`\bar m` the median of the :math:`m_r` (so the overall level is
    kept). MSstats' ``equalizeMedians``.
``reference``
    as ``median``, but :math:`m_r` is the median over the features of the reference proteins only
    (e.g. spike-in standards or a stable background), so that proteins that change do not move the
    normalisation.
``quantile``
    every run gets the same distribution: the observed values of run :math:`r` (``n_r`` of them)
    are replaced, rank for rank, by the mean quantile function of all runs evaluated at
    :math:`(i - 1)/(n_r - 1)` (limma's ``normalizeQuantiles`` treatment of missing values).
``none``
    log2 only.

With ``within_batch: true`` the target level (:math:`\bar m`, or the mean quantile function) is
computed per batch, so differences between batches are left to the model's batch term.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from pepmix.canonical import row_key
from pepmix.errors import ConfigError

log = logging.getLogger(__name__)

METHODS = ("median_ratio", "median", "quantile", "reference", "none")


def reference_mask(proteins: pd.Series, references: Sequence[str]) -> pd.Series:
    """Which rows belong to a reference protein.

    Each entry of ``references`` is a protein identifier, or ``regex:<pattern>`` matched with
    :func:`re.search`.
    """
    mask = pd.Series(False, index=proteins.index)
    exact = [r for r in references if not r.startswith("regex:")]
    if exact:
        mask |= proteins.isin(exact)
    for ref in references:
        if ref.startswith("regex:"):
            try:
                pattern = re.compile(ref[len("regex:") :])
            except re.error as exc:
                raise ConfigError(
                    f"config: normalization.reference_proteins: bad regex {ref!r} ({exc})"
                ) from None
            mask |= proteins.astype(str).str.contains(pattern)
    return mask


def normalize(
    table: pd.DataFrame,
    method: str = "median_ratio",
    reference_proteins: Sequence[str] = (),
    within_batch: bool = False,
    run_batch: Mapping[str, str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """log2-transform and normalise a canonical table.

    Parameters
    ----------
    table : pandas.DataFrame
        Canonical table (``protein, feature, run, intensity`` at least).
    method : {"median_ratio", "median", "quantile", "reference", "none"}, default "median_ratio"
    reference_proteins : sequence of str, default ()
        For ``method="reference"`` (see :func:`reference_mask`).
    within_batch : bool, default False
        Equalise runs within each batch only.
    run_batch : mapping of str to str, optional
        Batch of each run (default: the table's ``batch`` column).

    Returns
    -------
    features : pandas.DataFrame
        ``protein, feature, peptide, run, log2_raw, y`` (``y`` normalised).
    runs : pandas.DataFrame
        One row per run: ``run, batch, shift`` (for median-type methods the value subtracted),
        ``median_before, median_after``.
    """
    if method not in METHODS:
        raise ConfigError(f"config: normalization.method: unknown method {method!r}")
    out = table.loc[:, ["protein", "feature", "peptide", "run"]].copy()
    out["log2_raw"] = np.log2(table["intensity"].to_numpy(dtype=np.float64))
    if run_batch is None:
        batch_of_run = table.groupby("run", observed=True)["batch"].first().astype(str)
    else:
        batch_of_run = pd.Series(dict(run_batch), dtype=str)
    runs = pd.DataFrame({"run": sorted(out["run"].unique())})
    runs["batch"] = runs["run"].map(batch_of_run).fillna("")
    group = runs.set_index("run")["batch"] if within_batch else pd.Series("", index=runs["run"])
    runs["median_before"] = runs["run"].map(run_medians(out["run"], out["log2_raw"]))
    if method in ("median", "reference"):
        if method == "reference":
            mask = reference_mask(out["protein"], list(reference_proteins))
            if not mask.any():
                raise ConfigError(
                    "config: normalization.reference_proteins: none of the reference proteins "
                    "is in the data"
                )
            basis = out.loc[mask]
            missing = sorted(set(runs["run"]) - set(basis["run"]))
            if missing:
                raise ConfigError(
                    "config: normalization.reference_proteins: no reference protein observed "
                    f"in run(s) {', '.join(missing)}"
                )
        else:
            basis = out
        med = basis.groupby("run", observed=True)["log2_raw"].median()
        target = med.groupby(group.reindex(med.index)).transform("median")
        shift = med - target
        runs["shift"] = runs["run"].map(shift)
        out["y"] = out["log2_raw"] - out["run"].map(shift).to_numpy(dtype=np.float64)
    elif method == "median_ratio":
        shift = _median_ratio_shifts(out, group)
        runs["shift"] = runs["run"].map(shift)
        out["y"] = out["log2_raw"] - out["run"].map(shift).to_numpy(dtype=np.float64)
    elif method == "quantile":
        out["y"] = _quantile(out, group)
        runs["shift"] = np.nan
    else:
        out["y"] = out["log2_raw"]
        runs["shift"] = 0.0
    runs["median_after"] = runs["run"].map(run_medians(out["run"], out["y"]))
    log.info(
        "normalisation %s%s: run medians spread %.3f before, %.3f after",
        method,
        " within batch" if within_batch else "",
        float(np.ptp(runs["median_before"])),
        float(np.ptp(runs["median_after"])),
    )
    return out, runs


def _segment_medians(values: NDArray[np.float64], bounds: NDArray[np.int64]) -> NDArray[np.float64]:
    """Median of each segment ``values[bounds[i]:bounds[i + 1]]`` (NaN for empty segments)."""
    out = np.full(bounds.size - 1, np.nan)
    for i in range(bounds.size - 1):
        if bounds[i + 1] > bounds[i]:
            out[i] = np.median(values[bounds[i] : bounds[i + 1]])
    return out


def run_medians(runs: pd.Series, values: pd.Series) -> pd.Series:
    """Median of ``values`` per run, sorting once (faster than a grouped median on millions)."""
    codes, names = pd.factorize(runs)
    order = np.argsort(codes, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(names)))])
    medians = _segment_medians(values.to_numpy(dtype=np.float64)[order], bounds)
    return pd.Series(medians, index=pd.Index(names).astype(str))


def _median_ratio_shifts(out: pd.DataFrame, group: pd.Series, iterations: int = 3) -> pd.Series:
    """Per-run shifts of ``median_ratio`` (centred within each normalisation group)."""
    run_codes, run_names = pd.factorize(out["run"])
    feat_codes, _ = pd.factorize(row_key(out, ["protein", "feature"]))
    y = out["log2_raw"].to_numpy(dtype=np.float64)
    n_feat = int(feat_codes.max()) + 1 if feat_codes.size else 0
    counts = np.bincount(feat_codes, minlength=n_feat)
    usable = counts[feat_codes] >= 2
    shift = np.zeros(len(run_names))
    groups = group.reindex(run_names).fillna("").to_numpy()
    order = np.argsort(run_codes[usable], kind="stable")
    bounds = np.concatenate(
        [[0], np.cumsum(np.bincount(run_codes[usable], minlength=len(run_names)))]
    )
    for _ in range(iterations):
        adjusted = y - shift[run_codes]
        ref = np.bincount(feat_codes, weights=adjusted, minlength=n_feat) / np.maximum(counts, 1)
        ratio = (adjusted - ref[feat_codes])[usable]
        step = _segment_medians(ratio[order], bounds)
        shift = shift + np.nan_to_num(step)
        for g in np.unique(groups):
            members = groups == g
            shift[members] -= shift[members].mean()
    return pd.Series(shift, index=run_names)


def _quantile(out: pd.DataFrame, group: pd.Series) -> pd.Series:
    result = pd.Series(np.nan, index=out.index)
    run_groups = group.groupby(group).groups
    for _, members in run_groups.items():
        runs = list(members)
        values = {r: np.sort(out.loc[out["run"] == r, "log2_raw"].to_numpy()) for r in runs}
        n_max = max(v.size for v in values.values())
        grid = np.linspace(0.0, 1.0, n_max)
        curves = []
        for v in values.values():
            probs = np.linspace(0.0, 1.0, v.size) if v.size > 1 else np.array([0.5])
            curves.append(np.interp(grid, probs, v))
        target = np.mean(curves, axis=0)
        for r in runs:
            rows = out.index[out["run"] == r]
            vals = out.loc[rows, "log2_raw"].to_numpy()
            n = vals.size
            ranks = np.argsort(np.argsort(vals, kind="stable"), kind="stable")
            probs = ranks / (n - 1) if n > 1 else np.full(n, 0.5)
            result.loc[rows] = np.interp(probs, grid, target)
    return result


def normalization_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of :func:`normalize` from the ``normalization:`` config section."""
    return {
        "method": config.get("method", "median_ratio"),
        "reference_proteins": list(config.get("reference_proteins", [])),
        "within_batch": bool(config.get("within_batch", False)),
    }
