"""What a finished run did, in numbers, for the first page of the report.

:func:`summarize` reads nothing itself: it takes the result tables (differential table, variance
components, removed proteins, run normalisation table, resolved sample sheet, alerts) and the
validated config, and returns a :class:`Summary` whose numbers are counts over those tables:

- *input*: proteins read = rows of ``variance_components.tsv`` (one per input protein, the
  filtered ones included); removed = its rows with status ``filtered`` (= rows of
  ``removed_proteins.tsv``), counted per filter (:func:`filter_reason` of their ``detail``);
  modelled features and observations = sums over the other proteins; with
  ``model.feature_majority`` (the default) the modelled proteins whose ``detail`` names a
  feature the feature majority rule excluded (:data:`MAJORITY_NOTE`,
  :mod:`pepmix.model.majority`);
- *per contrast*: tested = rows with a finite p-value and fold change (those that enter the
  Benjamini-Hochberg adjustment), called up/down = adjusted p < ``fdr`` and, with
  ``lfc_threshold`` > 0, |log2 FC| > threshold (the rule of the volcano plot,
  :func:`pepmix.plots.results.significant`), every status counted, the replication label of the
  tested rows, and the moderation prior (median over proteins of ``df_prior``, ``var_prior``);
- *normalisation*: the method and each run's shift with its flags (``runs.tsv``);
- *variance tests* (:mod:`pepmix.model.variance_tests`): per random term ``<t>``, the proteins
  with a finite ``adj_p_<t>`` in ``variance_components.tsv`` (tested) and those with
  ``adj_p_<t>`` < ``fdr`` (a variance significantly above zero);
- *calibration* (optional, ``results/calibration/calibration.tsv`` of the ``calibration``
  target): permutations, per contrast the permutations with calls and the calls, the pooled
  share of p < 0.05 (``fraction_p05`` weighted by ``tested``) and the contrasts the check flags
  (:func:`pepmix.inference.calibration.excess`, the rule of its ``calibration_excess`` alert).

:func:`summary_rst` renders it as reStructuredText for ``workflow/report/workflow.rst``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pepmix.alerts import Alert

#: status of the proteins the filters removed before the model
FILTERED = "filtered"
#: flag columns of the normalisation runs table, shown next to a run's shift when true
RUN_FLAGS = ("doubtful", "bimodal", "one_sided")
#: runs listed one by one on the first page up to this many (else the range only)
MAX_LISTED_RUNS = 24

_PROTEIN_FILTER = re.compile(r"^\d+ (?:feature|observation)s? < (min_features|min_observations)")
_ROW_FILTER = "no row passes the row filters: "
#: start of the ``detail`` note of a protein with a feature excluded by the feature majority
#: rule (:meth:`pepmix.model.majority.Exclusions.notes`)
MAJORITY_NOTE = "excluded feature(s) "


@dataclass(frozen=True)
class ContrastSummary:
    """Counts of one contrast of the differential table.

    Attributes
    ----------
    name : str
        The contrast, e.g. ``"B - A"``.
    tested : int
        Proteins with a p-value (the Benjamini-Hochberg set).
    up, down : int
        Called proteins with positive / negative log2 fold change.
    statuses : dict of str to int
        Rows per status (all rows of the contrast, filtered ones included).
    replication : dict of str to int
        Tested rows per replication label (``biological``, ``technical``, ...).
    df_prior, var_prior : float or None
        Median over tested proteins of the moderation prior's df :math:`d_0` and variance
        :math:`s_0^2` (None when not moderated).
    """

    name: str
    tested: int
    up: int
    down: int
    statuses: dict[str, int]
    replication: dict[str, int]
    df_prior: float | None = None
    var_prior: float | None = None

    @property
    def not_tested(self) -> int:
        """Modelled proteins of the contrast without a test (filtered proteins not counted)."""
        return sum(self.statuses.values()) - self.tested - self.statuses.get(FILTERED, 0)


@dataclass(frozen=True)
class CalibrationOutcome:
    """The calibration check (permuted condition labels) in numbers.

    Attributes
    ----------
    permutations : int
        Distinct permutations in the table.
    with_calls : dict of str to tuple of (int, int, int)
        Per contrast: permutations with at least one call, permutations, calls in all.
    fraction_p05 : float
        Share of the permuted p-values below 0.05 (all permutations and contrasts pooled).
    flagged : dict of str to str
        Contrasts with excess calls or small p-values, with the reason; empty when none.
    """

    permutations: int
    with_calls: dict[str, tuple[int, int, int]]
    fraction_p05: float
    flagged: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunShift:
    """Normalisation of one run: its shift (log2, subtracted) and the diagnostics' flags."""

    run: str
    condition: str
    shift: float
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Summary:
    """Numbers of a finished run (see module docstring for where each comes from).

    Attributes
    ----------
    batches : tuple of (str, str)
        ``(name, format)`` of every ``inputs:`` entry.
    runs : int
        Runs of the sample sheet.
    conditions : dict of str to tuple of (int, int)
        Per condition, its runs and biological samples.
    proteins_read, proteins_removed, proteins_modelled : int
        Input proteins, those the filters removed, the others.
    removed_by_filter : dict of str to int
        Removed proteins per filter (:func:`filter_reason`), most first.
    features, observations : int
        Features and observations of the modelled proteins.
    model_statuses : dict of str to int
        Model status of the modelled proteins (``variance_components.tsv``).
    contrasts : tuple of ContrastSummary
        In config order.
    fdr, lfc_threshold : float
        The calling rule.
    normalization : str
        Method, with its location where it has one, e.g. ``"protein_median (mode)"``.
    shifts : tuple of RunShift
        Per run, in sheet order.
    alerts : tuple of Alert
        The warnings of the run.
    shrinkage_prior : dict of str to tuple of (float, float)
        ``model.shrinkage``: per variance ratio, the prior's df and ratio; empty otherwise.
    variance_tests : dict of str to tuple of (int, int)
        Per tested random term, proteins with adjusted LRT p < ``fdr`` and proteins tested;
        empty without the tests.
    calibration : CalibrationOutcome or None
        The calibration check, when it ran; default None.
    majority_excluded : int or None
        Modelled proteins with a feature excluded by the feature majority rule; None (the
        default) when ``model.feature_majority`` is off.
    """

    batches: tuple[tuple[str, str], ...]
    runs: int
    conditions: dict[str, tuple[int, int]]
    proteins_read: int
    proteins_removed: int
    proteins_modelled: int
    removed_by_filter: dict[str, int]
    features: int
    observations: int
    model_statuses: dict[str, int]
    contrasts: tuple[ContrastSummary, ...]
    fdr: float
    lfc_threshold: float
    normalization: str
    shifts: tuple[RunShift, ...]
    alerts: tuple[Alert, ...] = ()
    shrinkage_prior: dict[str, tuple[float, float]] = field(default_factory=dict)
    variance_tests: dict[str, tuple[int, int]] = field(default_factory=dict)
    calibration: CalibrationOutcome | None = None
    majority_excluded: int | None = None

    @property
    def called(self) -> int:
        """Calls over all contrasts (a protein called in two contrasts counts twice)."""
        return sum(c.up + c.down for c in self.contrasts)


def filter_reason(detail: str) -> str:
    """The filter named by a removed protein's ``detail`` (one key per filter).

    ``"1 feature < min_features 2"`` -> ``"min_features 2"``; both protein filters ->
    ``"min_features 2 and min_observations 2"``; ``"no row passes the row filters: q_value <=
    0.01"`` -> ``"q_value <= 0.01"``; ``decoy``, ``contaminant``, ``no valid intensity`` as they
    are; a protein removed for different reasons in different batches (``"b1: ...; b2: ..."``)
    -> ``"different filters in different batches"``.
    """
    text = str(detail).strip()
    parts = [p.strip() for p in text.split("; ") if p.strip()]
    if parts and all(_PROTEIN_FILTER.match(p) for p in parts):
        return " and ".join(p.split(" < ", 1)[1] for p in parts)
    if len(parts) > 1:
        return "different filters in different batches"
    if text.startswith(_ROW_FILTER):
        return text[len(_ROW_FILTER) :]
    return text or "unknown"


def called(part: pd.DataFrame, fdr: float, lfc_threshold: float = 0.0) -> tuple[int, int]:
    """Proteins called up and down in one contrast's rows: adjusted p < ``fdr`` and, with
    ``lfc_threshold`` > 0, |log2 FC| > threshold (the volcano plot's rule)."""
    adj = part["adj_pvalue"].to_numpy(dtype=float)
    lfc = part["log2fc"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        sig = adj < fdr
        if lfc_threshold > 0:
            sig &= np.abs(lfc) > lfc_threshold
        return int((sig & (lfc > 0)).sum()), int((sig & (lfc < 0)).sum())


def _counts(values: pd.Series) -> dict[str, int]:
    counts = values.astype(str).value_counts(sort=False)
    ordered = sorted(counts.items(), key=lambda kv: (-int(kv[1]), str(kv[0])))
    return {str(k): int(v) for k, v in ordered}


def _median_or_none(values: pd.Series) -> float | None:
    """Median of the non-missing values (an infinite prior df is a value), None if none."""
    known = values.to_numpy(dtype=float)
    known = known[~np.isnan(known)]
    return float(np.median(known)) if known.size else None


def contrast_summary(part: pd.DataFrame, name: str, fdr: float, lfc: float) -> ContrastSummary:
    """Counts of one contrast's rows of the differential table (see :class:`ContrastSummary`)."""
    pvalue = part["pvalue"].to_numpy(dtype=float)
    tested = np.isfinite(pvalue) & np.isfinite(part["log2fc"].to_numpy(dtype=float))
    up, down = called(part, fdr, lfc)
    rows = part.loc[tested]
    moderated = rows["moderated"].astype(bool) if "moderated" in rows.columns else None
    prior = rows if moderated is None else rows.loc[moderated.to_numpy()]
    return ContrastSummary(
        name=name,
        tested=int(tested.sum()),
        up=up,
        down=down,
        statuses=_counts(part["status"]),
        replication=_counts(rows["replication"]) if "replication" in rows.columns else {},
        df_prior=_median_or_none(prior["df_prior"]) if "df_prior" in prior.columns else None,
        var_prior=_median_or_none(prior["var_prior"]) if "var_prior" in prior.columns else None,
    )


def _run_shifts(runs: pd.DataFrame, sheet: pd.DataFrame) -> tuple[RunShift, ...]:
    condition = dict(zip(sheet["run"].astype(str), sheet["condition"].astype(str), strict=True))
    records = {str(r["run"]): r for r in runs.drop_duplicates("run").to_dict("records")}
    out = []
    for run in sheet["run"].astype(str):
        row = records.get(run)
        if row is None:
            continue
        flags = tuple(f for f in RUN_FLAGS if _true(row.get(f)))
        out.append(RunShift(run, condition.get(run, ""), float(row["shift"]), flags))
    return tuple(out)


def _true(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes")


def _shrinkage_prior(variance: pd.DataFrame) -> dict[str, tuple[float, float]]:
    out = {}
    for col in variance.columns:
        if not col.startswith("shrinkage_prior_df_"):
            continue
        term = col.removeprefix("shrinkage_prior_df_")
        ratio_col = f"shrinkage_prior_ratio_{term}"
        df = _median_or_none(variance[col])
        ratio = _median_or_none(variance[ratio_col]) if ratio_col in variance.columns else None
        if df is not None and ratio is not None:
            out[term] = (df, ratio)
    return out


#: random terms in display order (others follow, alphabetically)
TERM_ORDER = ("feature", "sample", "run", "batch", "batch:condition")


def variance_test_counts(variance: pd.DataFrame, fdr: float) -> dict[str, tuple[int, int]]:
    """Per random term with an ``adj_p_<t>`` column: (proteins with ``adj_p_<t>`` < ``fdr``,
    proteins with a finite ``adj_p_<t>``), terms in :data:`TERM_ORDER`."""
    terms = [c.removeprefix("adj_p_") for c in variance.columns if c.startswith("adj_p_")]
    terms = [t for t in terms if not t.startswith("boot_")]
    terms.sort(key=lambda t: (TERM_ORDER.index(t) if t in TERM_ORDER else len(TERM_ORDER), t))
    out = {}
    for t in terms:
        adj = pd.to_numeric(variance[f"adj_p_{t}"], errors="coerce").to_numpy(dtype=float)
        tested = np.isfinite(adj)
        out[t] = (int((adj[tested] < fdr).sum()), int(tested.sum()))
    return out


def calibration_outcome(table: pd.DataFrame, fdr: float) -> CalibrationOutcome:
    """The calibration table (``results/calibration/calibration.tsv``) in numbers."""
    from pepmix.inference.calibration import excess

    with_calls = {}
    for contrast, part in table.groupby("contrast", sort=False):
        calls = part["calls"].to_numpy(dtype=np.int64)
        with_calls[str(contrast)] = (int((calls > 0).sum()), len(part), int(calls.sum()))
    tested = table["tested"].to_numpy(dtype=float)
    below = float((table["fraction_p05"].to_numpy(dtype=float) * tested).sum())
    return CalibrationOutcome(
        permutations=int(table["permutation"].nunique()),
        with_calls=with_calls,
        fraction_p05=below / tested.sum() if tested.sum() > 0 else float("nan"),
        flagged=excess(table, fdr) if len(table) else {},
    )


def normalization_label(norm: Mapping[str, Any]) -> str:
    """``normalization:`` as a short label: ``"protein_median (location mode)"``."""
    method = str(norm.get("method", "protein_median"))
    extra = []
    if method == "protein_median":
        extra.append(f"location {norm.get('location', 'mode')}")
    if norm.get("within_batch"):
        extra.append("within batch")
    return f"{method} ({', '.join(extra)})" if extra else method


def summarize(
    differential: pd.DataFrame,
    variance: pd.DataFrame,
    runs: pd.DataFrame,
    sheet: pd.DataFrame,
    config: Mapping[str, Any],
    alerts: Sequence[Alert] = (),
    contrast_order: Sequence[str] | None = None,
    calibration: pd.DataFrame | None = None,
) -> Summary:
    """Numbers of a finished run (see module docstring).

    Parameters
    ----------
    differential : pandas.DataFrame
        The differential table (``contrast, protein, log2fc, pvalue, adj_pvalue, status`` and,
        when present, ``replication, moderated, df_prior, var_prior``).
    variance : pandas.DataFrame
        ``variance_components.tsv``: one row per input protein, ``status``, ``detail``,
        ``n_features``, ``n_observations``.
    runs : pandas.DataFrame
        ``results/normalize/runs.tsv`` (``run``, ``shift``, flag columns).
    sheet : pandas.DataFrame
        The resolved sample sheet (``run``, ``condition``, ``bioreplicate``).
    config : mapping
        The validated config (``inputs``, ``fdr``, ``lfc_threshold``, ``normalization``).
    alerts : sequence of Alert, default ()
        The run's warnings (``results/alerts.tsv``).
    contrast_order : sequence of str, optional
        Contrasts in config order; default: order of first appearance in ``differential``.
    calibration : pandas.DataFrame, optional
        ``results/calibration/calibration.tsv`` when the calibration check ran; default None.

    Returns
    -------
    Summary
    """
    fdr = float(config.get("fdr", 0.05))
    lfc = float(config.get("lfc_threshold", 0.0) or 0.0)
    names = list(contrast_order or dict.fromkeys(differential["contrast"].astype(str)))
    contrast_col = differential["contrast"].astype(str)
    contrasts = tuple(
        contrast_summary(differential.loc[contrast_col == n], n, fdr, lfc) for n in names
    )
    status = variance["status"].astype(str)
    removed = variance.loc[status == FILTERED]
    kept = variance.loc[status != FILTERED]
    reasons = removed["detail"].fillna("").astype(str).map(filter_reason)
    per_condition = sheet.groupby("condition", sort=False).agg(
        runs=("run", "nunique"), samples=("bioreplicate", "nunique")
    )
    return Summary(
        batches=tuple((str(e["name"]), str(e["format"])) for e in config.get("inputs", [])),
        runs=int(sheet["run"].nunique()),
        conditions={str(c): (int(r.runs), int(r.samples)) for c, r in per_condition.iterrows()},
        proteins_read=len(variance),
        proteins_removed=len(removed),
        proteins_modelled=len(kept),
        removed_by_filter=_counts(reasons),
        features=int(pd.to_numeric(kept["n_features"], errors="coerce").fillna(0).sum()),
        observations=int(pd.to_numeric(kept["n_observations"], errors="coerce").fillna(0).sum()),
        model_statuses=_counts(kept["status"]),
        contrasts=contrasts,
        fdr=fdr,
        lfc_threshold=lfc,
        normalization=normalization_label(config.get("normalization", {}) or {}),
        shifts=_run_shifts(runs, sheet),
        alerts=tuple(alerts),
        shrinkage_prior=_shrinkage_prior(variance),
        variance_tests=variance_test_counts(variance, fdr),
        calibration=None if calibration is None else calibration_outcome(calibration, fdr),
        majority_excluded=_majority_excluded(kept, config),
    )


def _majority_excluded(kept: pd.DataFrame, config: Mapping[str, Any]) -> int | None:
    """Modelled proteins whose ``detail`` names a feature the majority rule excluded; None
    when ``model.feature_majority`` is off."""
    if not bool((config.get("model", {}) or {}).get("feature_majority", True)):
        return None
    if "detail" not in kept.columns:
        return 0
    return int(kept["detail"].fillna("").astype(str).str.contains(MAJORITY_NOTE, regex=False).sum())


_RST_SPECIAL = str.maketrans({c: "\\" + c for c in "*`_|\\<>"})


def rst_escape(text: object) -> str:
    """``text`` with reStructuredText inline markup characters escaped."""
    return str(text).translate(_RST_SPECIAL)


def _n(value: int) -> str:
    return f"{value:,}"


def _listing(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{rst_escape(k)}: {_n(v)}" for k, v in counts.items()) or "none"


def verdict(summary: Summary) -> str:
    """One line that says whether to trust the run: its warnings first, else its calls."""
    tested = sum(c.tested for c in summary.contrasts)
    if summary.alerts:
        n = len(summary.alerts)
        return (
            f"**{n} warning{'s' if n != 1 else ''}**: read "
            f"{'them' if n != 1 else 'it'} (below) before using the results."
        )
    return (
        f"**No warnings.** {_n(tested)} tests in {len(summary.contrasts)} contrast(s), "
        f"{_n(summary.called)} calls at adjusted p < {summary.fdr:g}."
    )


def _input_lines(s: Summary) -> list[str]:
    batches = "; ".join(f"{rst_escape(n)}, format {rst_escape(f)}" for n, f in s.batches)
    conditions = "; ".join(
        f"{rst_escape(c)}: {r} run{'s' if r != 1 else ''}, {b} sample{'s' if b != 1 else ''}"
        for c, (r, b) in s.conditions.items()
    )
    removed = (
        f"{_n(s.proteins_removed)} proteins removed before the model: "
        f"{_listing(s.removed_by_filter)}"
        if s.proteins_removed
        else "no protein removed"
    )
    majority = (
        ""
        if s.majority_excluded is None
        else f"; {_n(s.majority_excluded)} with a feature left out by the feature majority rule "
        "(inconsistent with the protein's other features; ``detail`` in "
        "``variance_components.tsv``)"
    )
    return [
        f":Input: {_n(s.proteins_read)} proteins read from {len(s.batches)} "
        f"input{'s' if len(s.batches) != 1 else ''} ({batches}); {_n(s.runs)} runs in "
        f"{len(s.conditions)} conditions ({conditions}).",
        f":Filters: {removed}.",
        f":Model: {_n(s.proteins_modelled)} proteins with {_n(s.features)} features and "
        f"{_n(s.observations)} observations; status {_listing(s.model_statuses)}{majority}.",
    ]


def _normalization_lines(s: Summary) -> list[str]:
    if not s.shifts:
        return [f":Normalisation: {rst_escape(s.normalization)}."]
    shifts = np.array([r.shift for r in s.shifts])
    flagged = [r for r in s.shifts if r.flags]
    flag_text = (
        "; ".join(f"{rst_escape(r.run)} ({', '.join(r.flags)})" for r in flagged)
        if flagged
        else "none"
    )
    lines = [
        f":Normalisation: {rst_escape(s.normalization)}; run shifts {shifts.min():+.3f} to "
        f"{shifts.max():+.3f} log2 (median absolute {np.median(np.abs(shifts)):.3f}); "
        f"flagged runs: {flag_text}."
    ]
    if len(s.shifts) <= MAX_LISTED_RUNS:
        listed = ", ".join(f"{rst_escape(r.run)} {r.shift:+.3f}" for r in s.shifts)
        lines.append(f":Run shifts: {listed} (log2, subtracted).")
    return lines


def _variance_test_line(s: Summary) -> list[str]:
    if not s.variance_tests:
        return []
    counts = ", ".join(
        f"{rst_escape(t)} {_n(sig)} of {_n(n)}" for t, (sig, n) in s.variance_tests.items()
    )
    return [
        f":Variance tests: proteins with a variance above zero at adjusted p < {s.fdr:g} "
        f"(REML likelihood ratio per random term, ``variance_components.tsv``): {counts}."
    ]


def _calibration_line(s: Summary) -> list[str]:
    c = s.calibration
    if c is None:
        return []
    calls = "; ".join(
        f"{rst_escape(name)} {k} of {n} ({_n(total)} call{'s' if total != 1 else ''})"
        for name, (k, n, total) in c.with_calls.items()
    )
    if c.flagged:
        verdict = (
            f"**the FDR may not hold**: {rst_escape(', '.join(c.flagged))} "
            "(warning calibration_excess)"
        )
    else:
        verdict = "no excess of calls or small p-values"
    return [
        f":Calibration: {c.permutations} runs with permuted condition labels "
        f"(``calibration.tsv``); permutations with calls: {calls}; "
        f"{100 * c.fraction_p05:.1f} % of p < 0.05; {verdict}."
    ]


def _contrast_rows(s: Summary, table_targets: Mapping[str, str]) -> list[str]:
    lines = [
        ".. list-table::",
        "   :header-rows: 1",
        "",
        "   * - contrast",
        "     - tested",
        "     - up",
        "     - down",
        "     - not tested",
        "     - replication",
    ]
    for c in s.contrasts:
        target = table_targets.get(c.name)
        name = rst_escape(c.name)
        if target and not set("<>`") & set(c.name):
            name = f"`{c.name} <{target}_>`_"
        replication = ", ".join(rst_escape(k) for k in c.replication) or "none"
        lines += [
            f"   * - {name}",
            f"     - {_n(c.tested)}",
            f"     - {_n(c.up)}",
            f"     - {_n(c.down)}",
            f"     - {_n(c.not_tested)}",
            f"     - {replication}",
        ]
    return lines


def _status_line(s: Summary) -> str:
    intro = (
        "*not tested*: modelled proteins without a test in the contrast (the filtered ones are "
        "under *Filters*). Rows per status"
    )
    distinct = {tuple(c.statuses.items()) for c in s.contrasts}
    if len(distinct) == 1:
        return f"{intro} (every contrast): {_listing(s.contrasts[0].statuses)}."
    return f"{intro}: " + "; ".join(
        f"{rst_escape(c.name)}: {_listing(c.statuses)}" for c in s.contrasts
    )


def alerts_rst(alerts: Sequence[Alert]) -> list[str]:
    """The warnings as an RST list (or a sentence saying there are none)."""
    if not alerts:
        return ["No warnings: no stage of this analysis raised one (``results/alerts.tsv``)."]
    lines = [f"**Warnings** ({len(alerts)}; also in ``results/alerts.tsv``):", ""]
    lines += [f"- **{rst_escape(a.stage)}** ({rst_escape(a.code)}): {rst_escape(a.message)}"
              for a in alerts]  # fmt: skip
    return lines


def summary_rst(
    summary: Summary,
    table_targets: Mapping[str, str] | None = None,
    category: str | None = None,
) -> str:
    """The summary as reStructuredText (a section titled *Summary*).

    Parameters
    ----------
    summary : Summary
        From :func:`summarize`.
    table_targets : mapping of str to str, optional
        Per contrast, the file name of its top-protein table in the report: the contrast's name
        links to it (Snakemake defines a link target per report file name). Default: no links.
    category : str, optional
        Report category of the per-contrast figures, linked from the calls line (Snakemake
        defines a link target per category). Default: no link.

    Returns
    -------
    str
    """
    s = summary
    rule = f"adjusted p < {s.fdr:g} (Benjamini-Hochberg per contrast)"
    if s.lfc_threshold > 0:
        rule += f" and \\|log2 FC\\| > {s.lfc_threshold:g}"
    where = f"; volcano plots and tables under `{category}`_" if category else ""
    lines = ["Summary", "-------", "", verdict(s), ""]
    lines += _input_lines(s) + _normalization_lines(s)
    lines += [f":Calls: {rule}{where}.", *_variance_test_line(s), *_calibration_line(s), ""]
    lines += [*_contrast_rows(s, table_targets or {}), "", _status_line(s), ""]
    lines += [*alerts_rst(s.alerts), ""]
    return "\n".join(lines)
