"""Data behind the profile plots: one protein's features, abundances, fixed effects and BLUPs.

:func:`build_profiles` cuts the stage tables into :class:`ProteinProfile` objects;
:func:`prepare` turns one into the arrays a profile page draws (feature matrix, raw and shrunken
feature effects, expected values of the missing cells, condition means with intervals).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from pepmix.plots.aggregate import codes_of, position_codes
from pepmix.plots.style import Runs

log = logging.getLogger(__name__)

Z95 = 1.959963984540054
"""Two-sided 95 % normal quantile (intervals are mean ± Z95 × SE)."""

FloatArray = NDArray[np.float64]


@dataclass
class ProteinProfile:
    """Everything one profile plot shows.

    Attributes
    ----------
    protein : str
    features : pandas.DataFrame
        ``feature``, ``run``, ``y`` of the protein (observed cells).
    abundance : pandas.DataFrame
        ``run``, ``abundance``, ``se`` (may be empty).
    fixed : pandas.DataFrame
        ``term``, ``estimate``, ``se`` of the protein (may be empty).
    blups : pandas.DataFrame
        ``factor``, ``level``, ``blup`` of the protein (may be empty).
    title : str
        Headline (contrast result).
    info : str
        Model summary line (status, variance components).
    marked : tuple of str
        Features whose names the effect panel marks (``►``, red), e.g. the most deviating
        peptides of the peptide-usage test; default: none.
    """

    protein: str
    features: pd.DataFrame
    abundance: pd.DataFrame
    fixed: pd.DataFrame
    blups: pd.DataFrame
    title: str = ""
    info: str = ""
    marked: tuple[str, ...] = ()


def fitted_run_values(profile: ProteinProfile, runs: Runs, order: Sequence[str]) -> pd.Series:
    """Model value of each run at the average feature: fixed effects plus run-level BLUPs.

    Condition means (``condition[<c>]``), fixed batch terms (``batch[<b>]``) and centred
    numeric covariates, plus the BLUPs of ``sample`` (biological replicate), ``run``,
    ``batch`` and ``batch:condition``. NaN where the protein has no estimate for the run's
    condition.
    """
    est = dict(zip(profile.fixed["term"].astype(str), profile.fixed["estimate"], strict=True))
    blup = {
        (str(f), str(lv)): float(b)
        for f, lv, b in zip(
            profile.blups["factor"], profile.blups["level"], profile.blups["blup"], strict=True
        )
    }
    values = {}
    for run in order:
        value = est.get(f"condition[{runs.condition[run]}]", np.nan)
        value += est.get(f"batch[{runs.batch[run]}]", 0.0)
        for name, per_run in runs.covariates.items():
            if name in est:
                centre = float(np.mean([per_run[r] for r in order]))
                value += est[name] * (per_run[run] - centre)
        value += blup.get(("sample", runs.sample.get(run, run)), 0.0)
        value += blup.get(("run", run), 0.0)
        value += blup.get(("batch", runs.batch[run]), 0.0)
        value += blup.get(("batch:condition", f"{runs.batch[run]}:{runs.condition[run]}"), 0.0)
        values[run] = value
    return pd.Series(values, dtype=float)


def feature_effects(profile: ProteinProfile, fitted: pd.Series) -> pd.DataFrame:
    """Raw and shrunken (BLUP) effect of each feature, sorted by BLUP (largest first).

    The raw effect is the feature's mean deviation from the fitted run values over its
    observed runs.

    Returns
    -------
    pandas.DataFrame
        Index ``feature``; columns ``raw``, ``blup`` (NaN without a BLUP), ``n_obs``; ties in
        the effect keep the features' alphabetical order.
    """
    effects, _ = _effects_and_rows(profile, fitted)
    return effects


def _effects_and_rows(
    profile: ProteinProfile, fitted: pd.Series
) -> tuple[pd.DataFrame, NDArray[np.intp]]:
    """:func:`feature_effects`, and the effect row of each row of ``profile.features``.

    Works on the codes of the identifier columns (one string per distinct feature, not per row).
    """
    feats = profile.features
    codes, values = codes_of(feats["feature"])
    labels = np.array([str(v) for v in values], dtype=object)
    used = np.bincount(codes[codes >= 0], minlength=len(labels)) > 0
    names, sorted_of_used = np.unique(labels[used], return_inverse=True)
    sorted_of_code = np.full(len(labels) + 1, -1, dtype=np.intp)
    sorted_of_code[np.flatnonzero(used)] = sorted_of_used
    rows_sorted = sorted_of_code[codes]  # code -1 (missing feature) stays -1
    run_values = np.append(fitted.to_numpy(dtype=float), np.nan)
    at_run = run_values[position_codes(feats["run"], [str(r) for r in fitted.index])]
    dev = feats["y"].to_numpy(dtype=float, na_value=np.nan) - at_run
    ok = np.isfinite(dev) & (rows_sorted >= 0)
    count = np.bincount(rows_sorted[ok], minlength=len(names))
    sums = np.bincount(rows_sorted[ok], weights=dev[ok], minlength=len(names))
    raw = np.full(len(names), np.nan)
    np.divide(sums, count, out=raw, where=count > 0)
    fb = profile.blups.loc[profile.blups["factor"].astype(str) == "feature"]
    by_level = dict(zip(fb["level"].astype(str), fb["blup"].to_numpy(dtype=float), strict=True))
    blup = np.array([by_level.get(str(n), np.nan) for n in names], dtype=float)
    key = np.where(np.isfinite(blup), blup, raw)
    rank = np.argsort(-key, kind="stable")  # NaN keys last, as a stable sort puts them
    row_of_sorted = np.empty(len(names) + 1, dtype=np.intp)
    row_of_sorted[rank] = np.arange(len(names))
    row_of_sorted[-1] = -1
    effects = pd.DataFrame(
        {"raw": raw[rank], "blup": blup[rank], "n_obs": count[rank]},
        index=pd.Index([str(n) for n in names[rank]], name="feature"),
    )
    return effects, row_of_sorted[rows_sorted]


def comparison_intervals(fixed: pd.DataFrame, conditions: Sequence[str]) -> pd.DataFrame:
    """Condition means with standard errors for comparing conditions.

    The standard error of a condition mean includes the uncertainty of the protein's overall
    level (mostly from the random feature effects), which all conditions share and which cancels
    in any difference. It is removed here: ``se_cmp**2 = var(c) - mean_{c' != c} cov(c, c')``,
    so that ``var(A - B) = se_cmp(A)**2 + se_cmp(B)**2``. Without covariance columns
    (``cov[condition[<c>]]``) the plain standard error is used.

    Returns
    -------
    pandas.DataFrame
        Index condition; columns ``estimate``, ``se_cmp``.
    """
    rows = {}
    by_term = {str(t): i for i, t in enumerate(fixed["term"])}
    for c in conditions:
        i = by_term.get(f"condition[{c}]")
        if i is None:
            continue
        row = fixed.iloc[i]
        est, se = float(row["estimate"]), float(row["se"])
        covs = [
            float(row[f"cov[condition[{o}]]"])
            for o in conditions
            if o != c and f"cov[condition[{o}]]" in fixed.columns and f"condition[{o}]" in by_term
        ]
        shared = float(np.mean(covs)) if covs else 0.0
        rows[c] = (est, float(np.sqrt(max(se * se - shared, 0.0))) if covs else se)
    return pd.DataFrame.from_dict(rows, orient="index", columns=["estimate", "se_cmp"])


@dataclass
class PreparedProfile:
    """Arrays of one profile page (features ordered by effect, largest first).

    Attributes
    ----------
    names : list of str
        Features.
    values : ndarray, shape (n_features, n_runs)
        log2 intensities, NaN where missing.
    expected : ndarray, shape (n_features, n_runs)
        Model value of every cell (fitted run value + feature effect), NaN where unknown.
    raw, blup : ndarray
        Raw and shrunken feature effects.
    means : pandas.DataFrame
        Condition means (``estimate``, ``se_cmp``; index condition).
    abundance, abundance_se : ndarray
        Protein abundance per run and its standard error (NaN where unknown).
    weight : ndarray
        Robust fit only: smallest observation weight of each feature (``weight_min`` of the
        BLUP table); NaN without one.
    """

    names: list[str]
    values: FloatArray
    expected: FloatArray
    raw: FloatArray
    blup: FloatArray
    means: pd.DataFrame
    abundance: FloatArray
    abundance_se: FloatArray
    weight: FloatArray = field(default_factory=lambda: np.zeros(0))


def prepare(profile: ProteinProfile, runs: Runs) -> PreparedProfile:
    """The arrays :class:`~pepmix.plots.profiles.ProfileCanvas` draws for ``profile``."""
    order = list(runs.order)
    fitted = fitted_run_values(profile, runs, order)
    effects, rows = _effects_and_rows(profile, fitted)
    names = [str(n) for n in effects.index]
    feats = profile.features
    cols = position_codes(feats["run"], order)
    keep = (cols >= 0) & (rows >= 0)
    wide = np.full((len(names), len(order)), np.nan)
    y = feats["y"].to_numpy(dtype=float, na_value=np.nan)
    # a repeated cell keeps its first value: write in reverse
    wide[rows[keep][::-1], cols[keep][::-1]] = y[keep][::-1]
    raw = effects["raw"].to_numpy(dtype=float)
    blup = effects["blup"].to_numpy(dtype=float)
    effect = np.where(np.isfinite(blup), blup, raw)
    expected = fitted.reindex(order).to_numpy(dtype=float)[None, :] + effect[:, None]
    n = len(order)
    abundance = np.full(n, np.nan)
    abundance_se = np.full(n, np.nan)
    if len(profile.abundance):
        ab = profile.abundance
        at = position_codes(ab["run"], order)
        found = at >= 0
        slots = at[found][::-1]  # a repeated run keeps its first row: write in reverse
        abundance[slots] = ab["abundance"].to_numpy(dtype=float, na_value=np.nan)[found][::-1]
        if "se" in ab.columns:
            abundance_se[slots] = ab["se"].to_numpy(dtype=float, na_value=np.nan)[found][::-1]
    weight = np.full(len(names), np.nan)
    if "weight_min" in profile.blups.columns:
        fb = profile.blups.loc[profile.blups["factor"].astype(str) == "feature"]
        by_level = dict(zip(fb["level"].astype(str), fb["weight_min"].astype(float), strict=True))
        weight = np.array([by_level.get(n, np.nan) for n in names], dtype=float)
    return PreparedProfile(
        weight=weight,
        names=names,
        values=wide,
        expected=expected,
        raw=raw,
        blup=blup,
        means=comparison_intervals(profile.fixed, runs.conditions),
        abundance=abundance,
        abundance_se=abundance_se,
    )


def _format_p(p: float) -> str:
    if not np.isfinite(p):
        return "NA"
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


MAX_HEADLINE_CONTRASTS = 4
"""Contrast results listed in a profile's headline (the most significant ones)."""


def contrast_lines(rows: pd.DataFrame, limit: int = MAX_HEADLINE_CONTRASTS) -> str:
    """Headline lines of one protein's results: ``contrast: log2 FC [CI], p, adj. p``.

    The ``limit`` contrasts with the smallest p-values are listed (in table order).
    """
    if rows.empty:
        return "not tested"
    ranked = rows.assign(_p=rows["pvalue"].astype(float).fillna(2.0))
    keep = ranked.nsmallest(limit, "_p", keep="first").index
    lines = []
    for _, row in ranked.loc[ranked.index.isin(keep)].iterrows():
        if not np.isfinite(float(row["log2fc"])):
            lines.append(f"{row['contrast']}: not tested ({row['status']})")
            continue
        lo, hi = float(row.get("ci_low", np.nan)), float(row.get("ci_high", np.nan))
        lines.append(
            f"{row['contrast']}: log2 FC {float(row['log2fc']):.2f} [{lo:.2f}, {hi:.2f}], "
            f"p {_format_p(float(row['pvalue']))}, adj. p {_format_p(float(row['adj_pvalue']))}"
        )
    if len(rows) > limit:
        lines.append(f"(+{len(rows) - limit} more contrasts)")
    return "\n".join(lines)


def build_profiles(
    proteins: Sequence[str],
    features: pd.DataFrame,
    abundance: pd.DataFrame,
    fixed: pd.DataFrame,
    blups: pd.DataFrame,
    model: pd.DataFrame,
    table: pd.DataFrame,
) -> dict[str, ProteinProfile]:
    """:class:`ProteinProfile` objects of ``proteins`` (all tables may hold other proteins).

    Parameters
    ----------
    proteins : sequence of str
        Proteins to build.
    features, abundance, fixed, blups, model : pandas.DataFrame
        Normalised features, protein abundances, fixed effects (``condition[...]`` terms),
        BLUPs and the model's protein table.
    table : pandas.DataFrame
        Differential abundance table (all contrasts): the headline lists the protein's results,
        so a page is the same in every contrast's PDF.

    Returns
    -------
    dict
        Protein to profile, in the order of ``proteins``.
    """
    wanted = set(proteins)

    def split(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
        keyed = frame.loc[frame["protein"].astype(str).isin(wanted)]
        return {str(k): g for k, g in keyed.groupby(keyed["protein"].astype(str), sort=False)}

    by_feat, by_ab, by_fx, by_bl = split(features), split(abundance), split(fixed), split(blups)
    by_da = split(table)
    var_cols = [c for c in model.columns if c.startswith("var_")]
    mod = {str(r["protein"]): r for r in model.to_dict("records") if str(r["protein"]) in wanted}
    out = {}
    for protein in proteins:
        info = ""
        if protein in mod:
            m = mod[protein]
            sds = ", ".join(
                f"{c.removeprefix('var_')} {np.sqrt(max(float(m[c]), 0.0)):.2f}"
                for c in var_cols
                if np.isfinite(float(m[c]))
            )
            info = (
                f"model: {m['status']}, {int(m['n_features'])} features, "
                f"{int(m['n_observations'])} values; SD (log2): {sds}"
            )
        out[protein] = ProteinProfile(
            protein=protein,
            features=by_feat.get(protein, features.iloc[:0]),
            abundance=by_ab.get(protein, abundance.iloc[:0]),
            fixed=by_fx.get(protein, fixed.iloc[:0]),
            blups=by_bl.get(protein, blups.iloc[:0]),
            title=contrast_lines(by_da.get(protein, table.iloc[:0])),
            info=info,
        )
    return out
