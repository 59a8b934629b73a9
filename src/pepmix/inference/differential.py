r"""Differential abundance: one row per protein and contrast, calibrated across proteins.

Input: the contrast table of the model stage (:meth:`pepmix.model.fit.ModelFit.contrast_table`):
per protein :math:`g` and contrast :math:`j` the estimate :math:`\hat\delta_{gj}` (log2 fold
change), its standard error :math:`\mathrm{se}_{gj}` and Satterthwaite df :math:`\nu_{gj}`.

Steps, per contrast:

1. **Between-sample df cap** (``df_cap``, default on). A condition effect is replicated by
   biological samples, not by peptide observations. When the sample variance is estimated at or
   near zero, Satterthwaite's df approach the number of observations (they treat the variance as
   known), and small but precisely measured shifts become "significant". The df are capped at the
   containment df, :math:`\nu_{gj} \le n_{\text{samples},g} - p_g` (observed biological samples
   minus estimable fixed effects), as SAS's containment method does for sample-level effects.
   With technical replication the runs are the samples (see *Replication* below).
2. **Empirical-Bayes moderation** (``moderation``, default on;
   :mod:`pepmix.inference.moderation`). The contrast's variance on the scale of one biological
   sample, :math:`s^2_{gj} = \mathrm{se}^2_{gj} / u_{gj}` with :math:`u_{gj} = 1/n_{A,g} +
   1/n_{B,g}`, is moderated with limma's ``squeezeVar`` (robust by default, Phipson et al. 2016;
   :mod:`pepmix.inference.limma`), the prior fitted to the tested proteins with
   :math:`\nu_{gj} \ge 1`; the moderated standard error is :math:`\tilde s_{gj}\sqrt{u_{gj}}`
   with :math:`\nu_{gj} + d_0` df (capped, as in limma, at the pooled df).

   Why not the residual variance (msqrob2's choice): in a mixed model the residual variance is
   the peptide-level noise within a run; with biological replicates the contrast's uncertainty is
   dominated by the sample variance component, which residual moderation leaves unmoderated and
   which is estimated from few samples. Moderating the contrast variance (as dream/eBayesFMT aim
   for) regularises exactly the quantity with few df.
3. **Test**: :math:`t = \hat\delta / \mathrm{se}`, two-sided p-value from the t distribution;
   with ``lfc_threshold`` :math:`\tau > 0` limma's TREAT p-value for
   :math:`H_0: |\delta| \le \tau`.
4. **Benjamini-Hochberg** per contrast over the tested proteins only. Untested rows (status other
   than ``ok``, ``boundary``, ``reduced_model``) keep their row with NaN statistics.
5. **Filtered proteins** (:func:`add_filtered`): every input protein the filters removed before
   the model (row filters, protein filters, no valid intensity) gets a row in every contrast,
   status ``filtered``, the filter and its numbers in ``detail``, NaN statistics, after the other
   rows of the contrast. They are added after step 4, so they do not enter the BH adjustment.

Replication
-----------
Column ``replication`` (from the model stage, :func:`pepmix.model.design.contrast_replication`)
says what replicates each contrast: ``biological``, ``biological_pooled`` (a condition with one
biological sample; the sample variance of the replicated conditions is assumed to hold for it),
``technical`` (the runs; p-values generalise to new runs of the same samples, not to new
biological samples) or ``none``. Alerts (:func:`pepmix.alerts.alert`): ``technical_replication``
once per technical contrast, ``pooled_replication`` once for all pooled contrasts, ``no_tests``
once per contrast without a tested protein (once in all if no contrast has one).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import special

from pepmix.alerts import alert
from pepmix.inference.limma import bh_adjust, treat_pvalues
from pepmix.inference.moderation import ModeratedContrast, moderate_contrast

log = logging.getLogger(__name__)

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
#: status of the proteins the filters removed before the model (:func:`add_filtered`)
FILTERED = "filtered"


@dataclass(frozen=True)
class InferenceOptions:
    """How contrasts are tested.

    Attributes
    ----------
    moderation : bool, default True
        Empirical-Bayes moderation of the contrast variances.
    robust : bool, default True
        limma's robust prior (outlier proteins do not inflate the prior df).
    prior : {"limma", "vash", "vash_censored", "stratum"}, default "limma"
        Prior on the contrast variances (:mod:`pepmix.inference.moderation`): limma's scaled
        inverse chi-square, or the vash mixture (:mod:`pepmix.inference.vash`), with the
        replicate stratum's boundary fits censored in its fit (``vash_censored``); or the
        prior on the replicate stratum's variance above each protein's residual floor
        (``stratum``, :mod:`pepmix.inference.stratum`; needs ``var_floor, var_between``).
    df_cap : bool, default True
        Cap Satterthwaite df at the between-sample (containment) df.
    lfc_threshold : float, default 0.0
        TREAT threshold on the absolute log2 fold change.
    confidence : float, default 0.95
        Level of the ``ci_low``/``ci_high`` interval.
    """

    moderation: bool = True
    robust: bool = True
    prior: str = "limma"
    df_cap: bool = True
    lfc_threshold: float = 0.0
    confidence: float = 0.95

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> InferenceOptions:
        """The options of the workflow's config (``moderation``, ``lfc_threshold``,
        ``testing``). ``moderation`` is off when ``model.shrinkage`` is on: the prior on the
        variance ratios already borrows strength across proteins (:mod:`pepmix.model.shrinkage`),
        and moderating the contrast variances again would count the prior twice."""
        testing = config.get("testing", {}) or {}
        shrinkage = bool((config.get("model", {}) or {}).get("shrinkage", False))
        return cls(
            moderation=bool(config.get("moderation", True)) and not shrinkage,
            robust=bool(testing.get("robust", True)),
            prior=str(testing.get("variance_prior", "limma")),
            df_cap=bool(testing.get("df_cap", True)),
            lfc_threshold=float(config.get("lfc_threshold", 0.0)),
        )


def differential_table(
    contrast_stats: pd.DataFrame,
    contrast_order: Sequence[str],
    options: InferenceOptions | None = None,
) -> pd.DataFrame:
    """Build the differential abundance table (contract columns first).

    Parameters
    ----------
    contrast_stats : pandas.DataFrame
        Columns ``protein, contrast, estimate, se, df, status, detail, n_features,
        n_observations`` and, for the df cap and moderation, ``n_samples_num, n_samples_den,
        df_between``. Optional ``ci_low, ci_high, pvalue``: where all three are finite on a
        tested row (e.g. a credible interval of the detection model,
        :func:`pepmix.model.mnar.contrast_marginals`), they are reported as given (the p-value
        only without ``lfc_threshold``) and the row is not moderated.
    contrast_order : sequence of str
        Contrast names in config order (sort order of the output).
    options : InferenceOptions, optional
        Defaults of :class:`InferenceOptions`.

    Returns
    -------
    pandas.DataFrame
        Contract columns, then ``replication, ci_low, ci_high, df_satterthwaite,
        se_unmoderated, df_prior, var_prior, moderated, detail``; sorted by contrast, then
        p-value, then protein. ``replication`` is taken from ``contrast_stats`` (``biological``
        when it has no such column).

    Notes
    -----
    Raises the alerts of the module docstring (technical replication, pooled replication,
    contrasts without any tested protein), once per contrast or per table.
    """
    opts = options or InferenceOptions()
    frames = [
        _one_contrast(contrast_stats.loc[contrast_stats["contrast"] == name], name, opts)
        for name in contrast_order
    ]
    table = pd.concat(frames, ignore_index=True)
    _alert_replication(contrast_stats, table, contrast_order)
    _alert_untested(table, contrast_order)
    order = {name: i for i, name in enumerate(contrast_order)}
    table["_order"] = table["contrast"].map(order)
    table = table.sort_values(["_order", "pvalue", "protein"], na_position="last", kind="stable")
    return table.drop(columns="_order").reset_index(drop=True)


def _one_contrast(part: pd.DataFrame, name: str, opts: InferenceOptions) -> pd.DataFrame:
    est = part["estimate"].to_numpy(dtype=np.float64)
    se_raw = part["se"].to_numpy(dtype=np.float64)
    df_satt = part["df"].to_numpy(dtype=np.float64)
    status = part["status"].to_numpy(dtype=object).copy()
    detail = part["detail"].fillna("").astype(str).to_numpy(dtype=object).copy()
    tested = np.isin(status, TESTABLE) & np.isfinite(est) & (se_raw > 0) & (df_satt > 0)
    df = df_satt.copy()
    if opts.df_cap and "df_between" in part.columns:
        between = part["df_between"].to_numpy(dtype=np.float64)
        unreplicated = tested & (between < 1)
        status[unreplicated] = "too_few_observations"
        detail[unreplicated] = _append(detail[unreplicated], "no replicate samples")
        tested &= ~unreplicated
        df = np.where(tested, np.minimum(df, between), df)
    given = _given_intervals(part, tested)
    mod = (
        moderate_contrast(
            part,
            name,
            tested & ~given,
            se_raw,
            df,
            robust=opts.robust,
            prior=opts.prior,
            estimate=est,
        )
        if opts.moderation
        else ModeratedContrast.unmoderated(se_raw, df)
    )
    se, df = mod.se, mod.df
    safe_se = np.where(tested, se, 1.0)
    safe_df = np.where(tested, df, 1.0)
    t = np.where(tested, est / safe_se, np.nan)
    if opts.lfc_threshold > 0:
        pvalue = np.where(tested, treat_pvalues(est, safe_se, safe_df, opts.lfc_threshold), np.nan)
    else:
        pvalue = np.where(tested, 2.0 * special.stdtr(safe_df, -np.abs(np.nan_to_num(t))), np.nan)
    if mod.mixture is not None:  # vash, stratum: the posterior's p-values
        pvalue[mod.mixture.rows] = mod.mixture.pvalues(est, opts.lfc_threshold)
    half = special.stdtrit(safe_df, 0.5 + opts.confidence / 2.0) * safe_se
    ci_low, ci_high = est - half, est + half
    if given.any():
        ci_low = np.where(given, part["ci_low"].to_numpy(dtype=np.float64), ci_low)
        ci_high = np.where(given, part["ci_high"].to_numpy(dtype=np.float64), ci_high)
        if opts.lfc_threshold == 0:
            pvalue = np.where(given, part["pvalue"].to_numpy(dtype=np.float64), pvalue)
    replication = (
        part["replication"].to_numpy(dtype=object)
        if "replication" in part.columns
        else np.full(est.size, "biological", dtype=object)
    )
    return pd.DataFrame(
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
            "replication": replication,
            "ci_low": np.where(tested, ci_low, np.nan),
            "ci_high": np.where(tested, ci_high, np.nan),
            "df_satterthwaite": np.where(tested, df_satt, np.nan),
            "se_unmoderated": np.where(tested, se_raw, np.nan),
            "df_prior": mod.df_prior,
            "var_prior": mod.var_prior,
            "moderated": mod.moderated,
            "detail": detail,
        }
    )


def _given_intervals(part: pd.DataFrame, tested: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Tested rows whose ``ci_low, ci_high, pvalue`` come with the statistics (all finite)."""
    if not {"ci_low", "ci_high", "pvalue"} <= set(part.columns):
        return np.zeros(tested.size, dtype=bool)
    cols = part[["ci_low", "ci_high", "pvalue"]].to_numpy(dtype=np.float64)
    out: NDArray[np.bool_] = tested & np.all(np.isfinite(cols), axis=1)
    return out


def _alert_replication(
    contrast_stats: pd.DataFrame, table: pd.DataFrame, contrast_order: Sequence[str]
) -> None:
    """One alert per technical contrast, one for all pooled contrasts (tested contrasts only)."""
    if "replication" not in contrast_stats.columns:
        return
    n_tested = table.groupby("contrast", sort=False)["pvalue"].count()
    pooled = []
    for name in contrast_order:
        if int(n_tested.get(name, 0)) == 0:
            continue  # the untested alert speaks for it
        part = contrast_stats.loc[contrast_stats["contrast"] == name]
        labels = set(part["replication"])
        if "technical" in labels:
            n_num, n_den = part["n_samples_num"].max(), part["n_samples_den"].max()
            runs = f"{n_num:.0f} vs {n_den:.0f}"
            alert(
                log,
                "technical_replication",
                f"contrast {name}: the runs ({runs}), not biological samples, are the "
                "replicates: p-values speak about the measurement, not the biology (they "
                "generalise to new runs of the same samples, not to new biological samples)",
            )
        if "biological_pooled" in labels:
            pooled.append(name)
    if pooled:
        alert(
            log,
            "pooled_replication",
            f"contrast(s) {', '.join(pooled)} involve a condition with a single biological "
            "sample: their variance is the sample variance of the replicated conditions, "
            "assumed equal in every condition (unverifiable for the unreplicated ones)",
        )


def _alert_untested(table: pd.DataFrame, contrast_order: Sequence[str]) -> None:
    """One alert per contrast without any tested protein, or one if no contrast has any."""
    n_tested = table.groupby("contrast", sort=False)["pvalue"].count()
    empty = [name for name in contrast_order if int(n_tested.get(name, 0)) == 0]
    if len(empty) > 1 and len(empty) == len(contrast_order):
        _untested_alert(f"any of the {len(empty)} contrasts", table, "protein x contrast statuses")
    else:
        for name in empty:
            part = table.loc[table["contrast"] == name]
            _untested_alert(f"contrast {name}", part, "statuses")


def _untested_alert(what: str, part: pd.DataFrame, counted: str) -> None:
    """Alert that nothing in ``part`` was tested: status counts and what to do."""
    counts = part["status"].value_counts()
    why = f"{counted}: " + (", ".join(f"{k} {v}" for k, v in counts.items()) or "no proteins")
    if "none" in set(part["replication"]):
        todo = (
            "no condition has two biological samples: add biological replicates, or set "
            "testing.replication to auto or technical to use the runs as replicates"
        )
    else:
        todo = (
            "a protein needs more observed samples (runs, with technical replication) than "
            "estimated fixed effects; check the sample sheet's bioreplicate column, the "
            "contrasts and the filters"
        )
    alert(log, "no_tests", f"no protein could be tested in {what} ({why}): {todo}")


def add_filtered(
    table: pd.DataFrame, removed: pd.DataFrame, contrast_order: Sequence[str]
) -> pd.DataFrame:
    """Add the proteins the filters removed, one row per contrast, after each contrast's rows.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`differential_table` (sorted by contrast in ``contrast_order``).
    removed : pandas.DataFrame
        ``protein, detail, n_features, n_observations`` (:func:`pepmix.stages.files.read_removed`).
    contrast_order : sequence of str
        Contrast names in config order.

    Returns
    -------
    pandas.DataFrame
        Same columns; the added rows have status ``filtered``, NaN statistics, ``moderated``
        False, no replication, sorted by protein within their contrast. ``n_features`` and
        ``n_observations`` become nullable integers (missing where the filter did not count).
    """
    if removed.empty:
        return table
    names = removed["protein"].astype(str).to_numpy(dtype=object)
    order = np.argsort(names, kind="stable")
    parts = []
    for name in contrast_order:
        extra = pd.DataFrame(index=pd.RangeIndex(len(names)), columns=table.columns)
        for col in table.columns:
            if pd.api.types.is_float_dtype(table[col].dtype):
                extra[col] = np.nan
        extra["protein"] = names[order]
        extra["contrast"] = name
        extra["n_features"] = removed["n_features"].to_numpy()[order]
        extra["n_observations"] = removed["n_observations"].to_numpy()[order]
        extra["status"] = FILTERED
        extra["moderated"] = False
        extra["detail"] = removed["detail"].astype(str).to_numpy(dtype=object)[order]
        parts.append((name, extra))
    frames = []
    for name, extra in parts:
        frames.append(table.loc[table["contrast"] == name])
        frames.append(extra)
    frames.append(table.loc[~table["contrast"].isin(list(contrast_order))])
    out = pd.concat(frames, ignore_index=True)
    for col in table.columns:
        if col in ("n_features", "n_observations"):
            out[col] = out[col].astype("Int64")
        elif col not in ("protein", "contrast", "status", "replication", "detail"):
            out[col] = out[col].astype(table[col].dtype)
    return out


def _append(texts: NDArray[np.object_], note: str) -> NDArray[np.object_]:
    return np.array([f"{t}; {note}" if t else note for t in texts], dtype=object)


def one_condition_missing(contrast_stats: pd.DataFrame) -> pd.DataFrame:
    """Proteins observed in only one of the two conditions of a contrast.

    Returns
    -------
    pandas.DataFrame
        ``protein, contrast, observed_in, n_samples_observed, n_features, n_observations``:
        candidates for presence/absence, reported separately because no fold change can be
        estimated from intensities alone.
    """
    part = contrast_stats.loc[contrast_stats["status"] == "one_condition_missing"].copy()
    names = part["contrast"].str.split(" - ", n=1, regex=False)
    num_seen = part["n_samples_num"].to_numpy() > 0
    part["observed_in"] = np.where(num_seen, names.str[0], names.str[1])
    part["n_samples_observed"] = np.where(num_seen, part["n_samples_num"], part["n_samples_den"])
    cols = ["protein", "contrast", "observed_in", "n_samples_observed", "n_features",
            "n_observations"]  # fmt: skip
    return part.loc[:, cols].sort_values(["contrast", "protein"]).reset_index(drop=True)
