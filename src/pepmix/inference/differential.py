"""Differential abundance table: one row per protein and contrast.

Input: the contrast table of the model stage (:meth:`pepmix.model.fit.ModelFit.contrast_table`:
estimate, standard error and Satterthwaite df per protein and contrast, with a status). Output:
log2 fold change, standard error, df, t statistic, two-sided p-value and the Benjamini-Hochberg
adjusted p-value per contrast over the proteins that were tested. Untested rows (status other than
``ok``, ``boundary``, ``reduced_model``) keep their row with NaN statistics and never enter the
multiple-testing correction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from pepmix.inference.ebayes import bh_adjust

CONTRACT_COLUMNS = (
    "protein",
    "contrast",
    "log2fc",
    "se",
    "df",
    "t",
    "pvalue",
    "adj_pvalue",
    "n_features",
    "n_observations",
    "status",
)

TESTABLE = ("ok", "boundary", "reduced_model")


def differential_table(
    contrast_stats: pd.DataFrame, contrast_order: Sequence[str], confidence: float = 0.95
) -> pd.DataFrame:
    """Build the differential abundance table (contract columns first).

    Parameters
    ----------
    contrast_stats : pandas.DataFrame
        Columns ``protein, contrast, estimate, se, df, status, detail, n_features,
        n_observations``.
    contrast_order : sequence of str
        Contrast names in config order (sort order of the output).
    confidence : float, default 0.95
        Level of the ``ci_low``/``ci_high`` interval of the log2 fold change.

    Returns
    -------
    pandas.DataFrame
        Contract columns followed by ``ci_low, ci_high, detail``; sorted by contrast, then
        p-value, then protein.
    """
    frames = []
    for name in contrast_order:
        part = contrast_stats.loc[contrast_stats["contrast"] == name]
        est = part["estimate"].to_numpy(dtype=np.float64)
        se = part["se"].to_numpy(dtype=np.float64)
        df = part["df"].to_numpy(dtype=np.float64)
        status = part["status"].to_numpy(dtype=object)
        tested = np.isin(status, TESTABLE) & np.isfinite(est) & (se > 0) & (df > 0)
        safe_se = np.where(tested, se, 1.0)
        safe_df = np.where(tested, df, 1.0)
        t = np.where(tested, est / safe_se, np.nan)
        pvalue = np.where(tested, 2.0 * stats.t.sf(np.abs(t), safe_df), np.nan)
        half = stats.t.ppf(0.5 + confidence / 2.0, safe_df) * safe_se
        frames.append(
            pd.DataFrame(
                {
                    "protein": part["protein"].to_numpy(),
                    "contrast": name,
                    "log2fc": np.where(tested, est, np.nan),
                    "se": np.where(tested, se, np.nan),
                    "df": np.where(tested, df, np.nan),
                    "t": t,
                    "pvalue": pvalue,
                    "adj_pvalue": bh_adjust(pvalue),
                    "n_features": part["n_features"].to_numpy(),
                    "n_observations": part["n_observations"].to_numpy(),
                    "status": status,
                    "ci_low": np.where(tested, est - half, np.nan),
                    "ci_high": np.where(tested, est + half, np.nan),
                    "detail": part["detail"].to_numpy(),
                }
            )
        )
    table = pd.concat(frames, ignore_index=True)
    order = {name: i for i, name in enumerate(contrast_order)}
    table["_order"] = table["contrast"].map(order)
    table = table.sort_values(["_order", "pvalue", "protein"], na_position="last", kind="stable")
    return table.drop(columns="_order").reset_index(drop=True)
