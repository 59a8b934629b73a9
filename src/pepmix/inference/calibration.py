r"""Calibration check on the user's own data: permuted condition labels, refitted and tested.

Idea (the permutation null of Churchill & Doerge 1994, used for FDR checks since Storey &
Tibshirani 2003): relabel the replication units so that every permuted "condition" is a mixture
of the original ones. Then no protein truly differs between the permuted conditions and every
call is false; a test that holds its FDR makes (almost) no calls and gives uniform p-values,
on *this* data set with its own missingness, noise, batches and outliers.

Notation. The replication units :math:`u = 1, \dots, U` are what replicates a contrast
(:func:`pepmix.model.design.replication_unit`): biological samples (``bioreplicate``; all runs
of a sample move together), or the runs with technical replication. A unit's *block* is its batch
(the batches of its runs joined by ``+``; one block without a batch column). A permutation
:math:`\pi` assigns condition labels to the units such that every block keeps its number of units
per condition (a restricted permutation within blocks, so batch effects cannot become condition
effects). Two assignments that split the units into the same groups, only with the group names
swapped (e.g. ``AABB`` and ``BBAA``), give the same p-values for a two-group contrast and count
once (:func:`partition_key`); the original grouping is excluded.

Residual effect. A permuted group :math:`g` is made of original conditions in shares
:math:`f_g(c)`; a permuted contrast :math:`g - h` then carries
:math:`\sum_c (f_g(c) - f_h(c))\,\mu_c` of the true condition means: the fraction
:math:`r = \max_{g,h} \tfrac12 \lVert f_g - f_h \rVert_1` (total variation distance, 0 when every
permuted group has the same mixture, 1 for the original grouping) of a true difference
survives. With 3 vs 3 samples every permutation is 2+1 vs 1+2 (:math:`r = 1/3`); with 4 runs
per condition and 3 conditions (the demo) :math:`r = 1/4` at best. The permutations with the
smallest :math:`r` are used (ties in seeded random order), and an alert says when :math:`r > 0`:
strongly changing proteins can then be called in the permuted runs without any miscalibration.

Which permutations. The distinct assignments are enumerated when there are at most
:data:`ENUMERATE_MAX` labelled ones (product over blocks of the multinomial coefficients), else
:data:`DRAWS_PER_PERMUTATION` times the requested number are drawn at random (seeded) and
deduplicated. Fewer distinct permutations than requested: all are used and an alert says so.

Per permutation the whole test stage is rerun in-process: the model is refitted with the
permuted condition labels (the fixed effects change; with ``model.shrinkage`` the variance prior
is re-estimated), in chunks of at most :data:`CHUNK_OBSERVATIONS` observations (memory bounded as
one model shard), then the contrasts, df cap, moderation and Benjamini-Hochberg exactly as in the
test stage (:func:`pepmix.inference.differential.differential_table`). Cost: about
``permutations`` times the model stage.

Summary per permutation and contrast (:func:`summarise`): proteins tested, calls at adjusted
p < ``fdr``, fraction of p < 0.05, Kolmogorov-Smirnov distance of the p-values to the uniform,
the permutation's residual effect :math:`r`, the number of distinct permutations (empty when
sampled) and the units of each permuted group.

Alerts. Under the complete null, Benjamini-Hochberg's FDR is the probability of making any call,
:math:`P(R > 0) \le q` (for independent or positively dependent p-values; Benjamini & Hochberg
1995, Benjamini & Yekutieli 2001), and its expected number of calls is below
:math:`q/(1-q)` -- about 0, not :math:`q \times` tested. A contrast is flagged
(``calibration_excess``) when

- the number :math:`K` of its permutations with at least one call is improbable for a test that
  holds its FDR: :math:`P(\mathrm{Bin}(n, q) \ge K) <` :data:`ALERT_LEVEL` (with 5 permutations
  at :math:`q = 0.05`: 3 or more permutations with calls), or
- the pooled fraction of p < 0.05 over its permutations exceeds
  :data:`P05_MARGIN` :math:`\times 0.05` *and* a one-sided binomial test of that count against
  0.05 gives p < :data:`ALERT_LEVEL` (both: the effect must be large, because the p-values of one
  permutation are correlated across proteins -- a sample that is off shifts many proteins at once
  -- which makes the binomial test alone too eager).

Either is less informative when :math:`r > 0` (the residual effect alert says so).

The check is one-sided. True changes (and run effects clustered by condition, e.g. runs
acquired condition by condition) become within-group variance once the labels are permuted, so
the permuted p-values are then conservative: with 20 % of simulated proteins changing, 1.3-3.5 %
of them fall below 0.05 (3 and 4 samples per condition), on the demo 0.8-3.7 %. A permuted
histogram that rises towards 1 does not show that the real analysis is conservative; only an
excess of small p-values or calls is a finding.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from pepmix.alerts import ALERT_ATTR, alert
from pepmix.errors import ConfigError, DesignError

log = logging.getLogger(__name__)

#: labelled within-block assignments enumerated exhaustively up to this number
ENUMERATE_MAX = 50_000
#: candidates drawn per requested permutation when there are more than ENUMERATE_MAX
DRAWS_PER_PERMUTATION = 50
#: observations per model chunk (bounds the fit's working memory, like one shard)
CHUNK_OBSERVATIONS = 2_000_000
#: significance level of the calibration alerts
ALERT_LEVEL = 0.01
#: the pooled fraction of p < 0.05 must exceed this multiple of 0.05 to be flagged
P05_MARGIN = 1.5
#: default of ``calibration.permutations`` and ``calibration.seed``
DEFAULT_PERMUTATIONS = 5
DEFAULT_SEED = 1

TSV_COLUMNS = (
    "permutation",
    "contrast",
    "tested",
    "calls",
    "fraction_p05",
    "ks_statistic",
    "ks_pvalue",
    "residual_effect",
    "distinct_permutations",
    "groups",
)


@dataclass(frozen=True)
class Permutation:
    """One relabelling of the replication units.

    Attributes
    ----------
    labels : tuple of str
        Condition of each unit (order of :attr:`PermutationPlan.units`).
    residual : float
        Share of a true condition difference the permuted contrasts still carry (module
        docstring; 0 = fully mixed).
    """

    labels: tuple[str, ...]
    residual: float


@dataclass
class PermutationPlan:
    """The units, and the permutations chosen for the check.

    Attributes
    ----------
    units : pandas.DataFrame
        One row per replication unit: ``unit, condition, block`` (see :func:`replication_units`).
    permutations : list of Permutation
        The chosen permutations, best mixed first.
    n_distinct : int or None
        Distinct non-original groupings (label swaps counted once); None when they were sampled,
        not enumerated (there are then more than :data:`ENUMERATE_MAX` labelled assignments).
    unit_column : str, default "bioreplicate"
        Sample-sheet column naming the units (``run`` with technical replication).
    """

    units: pd.DataFrame
    permutations: list[Permutation]
    n_distinct: int | None
    unit_column: str = "bioreplicate"

    def groups(self, perm: Permutation) -> str:
        """Readable grouping: ``A: s1, s4; B: s2, s3`` (permuted condition: its units)."""
        by = pd.Series(self.units["unit"].to_numpy(), index=list(perm.labels))
        conditions = list(dict.fromkeys(self.units["condition"]))
        return "; ".join(f"{c}: {', '.join(map(str, by.loc[[c]]))}" for c in conditions)


def replication_units(sheet: pd.DataFrame, replication: str) -> pd.DataFrame:
    """The units a permutation moves: ``unit, condition, block`` in sheet order.

    Parameters
    ----------
    sheet : pandas.DataFrame
        Resolved sample sheet (``run, condition, bioreplicate, batch``).
    replication : {"biological", "technical"}
        The model's replication unit (``ModelSpec.replication``): biological samples
        (``bioreplicate``) or runs.

    Raises
    ------
    DesignError
        When a unit has runs in more than one condition.
    """
    column = "run" if replication == "technical" else "bioreplicate"
    frame = sheet.assign(
        _unit=sheet[column].astype(str),
        _batch=sheet["batch"].fillna("").astype(str) if "batch" in sheet else "",
    )
    rows = []
    for unit, part in frame.groupby("_unit", sort=False):
        conditions = part["condition"].astype(str).unique()
        if len(conditions) != 1:
            raise DesignError(f"sample {unit!r} has runs in several conditions")
        block = "+".join(sorted(set(part["_batch"])))
        rows.append((str(unit), str(conditions[0]), block))
    return pd.DataFrame(rows, columns=["unit", "condition", "block"])


def partition_key(labels: Sequence[str]) -> tuple[int, ...]:
    """The grouping of ``labels`` without the group names: codes by order of first appearance.

    ``AABB`` and ``BBAA`` both give ``(0, 0, 1, 1)``.
    """
    codes: dict[str, int] = {}
    return tuple(codes.setdefault(label, len(codes)) for label in labels)


def residual_effect(original: Sequence[str], labels: Sequence[str]) -> float:
    """Largest total-variation distance between permuted groups' original-condition shares."""
    names = list(dict.fromkeys([*original, *labels]))
    orig = np.array([names.index(c) for c in original])
    lab = np.array([[names.index(c) for c in labels]])
    return float(residual_effects(orig, lab, len(names))[0])


def residual_effects(
    original: NDArray[np.intp], labels: NDArray[np.intp], n_conditions: int
) -> NDArray[np.float64]:
    """:func:`residual_effect` of many assignments at once.

    Parameters
    ----------
    original : ndarray of int, shape (U,)
        Original condition code of each unit.
    labels : ndarray of int, shape (N, U)
        Permuted condition codes, one assignment per row.
    n_conditions : int
        Number of condition codes.
    """
    n, c = labels.shape[0], n_conditions
    flat = np.zeros((n, c * c))
    np.add.at(flat, (np.arange(n)[:, None], labels * c + original[None, :]), 1.0)
    counts = flat.reshape(n, c, c)
    size = counts.sum(axis=2, keepdims=True)
    shares = np.divide(counts, size, out=np.zeros_like(counts), where=size > 0)
    worst = np.zeros(n)
    for i, j in itertools.combinations(range(c), 2):
        present = (size[:, i, 0] > 0) & (size[:, j, 0] > 0)
        dist = 0.5 * np.abs(shares[:, i] - shares[:, j]).sum(axis=1)
        worst = np.maximum(worst, np.where(present, dist, 0.0))
    return worst


def n_assignments(units: pd.DataFrame) -> int:
    """Number of labelled within-block assignments (product of multinomial coefficients)."""
    total = 1
    for _, part in units.groupby("block", sort=False):
        counts = part["condition"].value_counts().to_numpy()
        total *= math.factorial(int(counts.sum())) // math.prod(
            math.factorial(int(c)) for c in counts
        )
    return total


def _distinct_orders(labels: list[str]) -> Iterator[tuple[str, ...]]:
    """Distinct orderings of a multiset of labels (no duplicates generated)."""
    if not labels:
        yield ()
        return
    for first in sorted(set(labels)):
        rest = list(labels)
        rest.remove(first)
        for tail in _distinct_orders(rest):
            yield (first, *tail)


def _candidates(
    units: pd.DataFrame, codes: NDArray[np.intp], n_draws: int, rng: np.random.Generator
) -> NDArray[np.intp]:
    """All labelled assignments (few) or ``n_draws`` random ones: condition codes, (N, U)."""
    block_values = units["block"].to_numpy()
    blocks = [np.flatnonzero(block_values == b) for b in units["block"].unique()]
    if n_assignments(units) <= ENUMERATE_MAX:
        per_block = [list(_distinct_orders(sorted(codes[idx].tolist()))) for idx in blocks]
        combos = list(itertools.product(*per_block))
        out = np.empty((len(combos), len(units)), dtype=np.intp)
        for idx, column in zip(blocks, zip(*combos, strict=True), strict=True):
            out[:, idx] = np.asarray(column, dtype=np.intp).reshape(len(combos), len(idx))
        return out
    out = np.tile(codes, (n_draws, 1))
    for idx in blocks:
        out[:, idx] = rng.permuted(out[:, idx], axis=1)
    return out


def plan_permutations(
    units: pd.DataFrame, n_permutations: int, seed: int, unit_column: str = "bioreplicate"
) -> PermutationPlan:
    """Choose ``n_permutations`` distinct within-block relabellings, the best mixed first.

    Parameters
    ----------
    units : pandas.DataFrame
        :func:`replication_units`.
    n_permutations : int
        How many are wanted (``calibration.permutations``).
    seed : int
        Seed of the random tie-breaking and sampling (``calibration.seed``).
    unit_column : {"bioreplicate", "run"}, default "bioreplicate"
        Sample-sheet column that names the units.

    Returns
    -------
    PermutationPlan
        Raises the ``calibration_permutations`` alert when fewer distinct permutations exist
        than requested, and ``calibration_residual_effect`` when the chosen ones cannot mix the
        original conditions completely (module docstring).
    """
    if n_permutations < 1:
        raise ConfigError("config: calibration.permutations must be at least 1")
    rng = np.random.default_rng(seed)
    names = list(dict.fromkeys(units["condition"].astype(str)))
    codes = np.array([names.index(c) for c in units["condition"].astype(str)], dtype=np.intp)
    exhaustive = n_assignments(units) <= ENUMERATE_MAX
    candidates = _candidates(units, codes, DRAWS_PER_PERMUTATION * n_permutations, rng)
    seen = {partition_key(codes.tolist())}
    keep = []
    for i, row in enumerate(candidates.tolist()):
        key = partition_key(row)
        if key not in seen:
            seen.add(key)
            keep.append(i)
    distinct = candidates[keep]
    residuals = residual_effects(codes, distinct, len(names))
    tie = rng.permutation(len(distinct))
    order = np.lexsort((tie, np.round(residuals, 12)))[:n_permutations]
    chosen = [Permutation(tuple(names[j] for j in distinct[i]), float(residuals[i])) for i in order]
    plan = PermutationPlan(units, chosen, len(distinct) if exhaustive else None, unit_column)
    _alert_plan(plan, n_permutations)
    return plan


def _alert_plan(plan: PermutationPlan, requested: int) -> None:
    """The plan's alerts: too few permutations, permutations that cannot mix the conditions."""
    units = plan.units
    per_condition = ", ".join(
        f"{c} {n}" for c, n in units["condition"].value_counts(sort=False).items()
    )
    blocks = units["block"].nunique()
    where = f" within {blocks} batches" if blocks > 1 else ""
    if not plan.permutations:
        alert(
            log,
            "calibration_permutations",
            f"calibration: no permutation of the condition labels{where} gives a new grouping "
            f"of the {len(units)} replication units ({per_condition}; every batch holds a "
            "single condition, or relabelling only swaps condition names): the check cannot run",
        )
    elif len(plan.permutations) < requested:
        alert(
            log,
            "calibration_permutations",
            f"calibration: only {len(plan.permutations)} distinct permutation(s) of the condition "
            f"labels exist{where} ({len(units)} replication units: {per_condition}; groupings "
            f"that only swap condition names count once), {requested} requested: the check "
            "rests on few relabellings",
        )
    worst = max((p.residual for p in plan.permutations), default=0.0)
    if worst > 0:
        alert(
            log,
            "calibration_residual_effect",
            f"calibration: with {per_condition} replication units per condition{where} no "
            "permutation mixes the conditions completely: the permuted groups still differ by "
            f"up to {100 * worst:.0f} % of each true condition difference, so strongly changing "
            "proteins can be called in the permuted runs without any miscalibration; more "
            "replicates per condition give a cleaner check",
        )


def permuted_sheet(sheet: pd.DataFrame, plan: PermutationPlan, perm: Permutation) -> pd.DataFrame:
    """The sample sheet with each unit's runs relabelled to the unit's permuted condition."""
    mapping = dict(zip(plan.units["unit"], perm.labels, strict=True))
    out = sheet.copy()
    out["condition"] = out[plan.unit_column].astype(str).map(mapping)
    return out


def summarise(
    table: pd.DataFrame,
    permutation: int,
    fdr: float,
    residual: float,
    groups: str,
    n_distinct: int | None = None,
) -> pd.DataFrame:
    """Per contrast of one permuted differential table: the columns of :data:`TSV_COLUMNS`.

    ``n_distinct`` (default None: sampled, not enumerated) is
    :attr:`PermutationPlan.n_distinct`, repeated on every row.
    """
    from scipy import stats  # not at import: the Snakefile imports this module (~0.7 CPU s)

    rows = []
    for contrast, part in table.groupby("contrast", sort=False):
        p = part["pvalue"].to_numpy(dtype=np.float64)
        p = p[np.isfinite(p)]
        adj = part["adj_pvalue"].to_numpy(dtype=np.float64)
        ks = stats.kstest(p, "uniform") if len(p) else None
        rows.append(
            {
                "permutation": permutation,
                "contrast": str(contrast),
                "tested": len(p),
                "calls": int(np.sum(adj < fdr)),
                "fraction_p05": float(np.mean(p < 0.05)) if len(p) else np.nan,
                "ks_statistic": float(ks.statistic) if ks is not None else np.nan,
                "ks_pvalue": float(ks.pvalue) if ks is not None else np.nan,
                "residual_effect": residual,
                "distinct_permutations": pd.NA if n_distinct is None else n_distinct,
                "groups": groups,
            }
        )
    return pd.DataFrame(rows, columns=list(TSV_COLUMNS))


def excess(summary: pd.DataFrame, fdr: float) -> dict[str, str]:
    """Contrasts whose permuted runs call or reject more than a calibrated test would.

    Returns
    -------
    dict of str to str
        Contrast to the reason (module docstring, "Alerts"); empty when none is flagged.
    """
    from scipy import stats  # not at import (see summarise)

    out: dict[str, str] = {}
    for contrast, part in summary.groupby("contrast", sort=False):
        n = len(part)
        with_calls = int((part["calls"] > 0).sum())
        reasons = []
        if with_calls and stats.binom.sf(with_calls - 1, n, fdr) < ALERT_LEVEL:
            reasons.append(
                f"{with_calls} of {n} permutations made calls "
                f"({int(part['calls'].sum())} in all; a test holding its FDR of {fdr:g} makes "
                f"any call in at most {100 * fdr:g} % of them)"
            )
        tested = int(part["tested"].sum())
        below = round(float((part["fraction_p05"] * part["tested"]).sum()))
        share = below / tested if tested else 0.0
        if share > P05_MARGIN * 0.05 and stats.binom.sf(below - 1, tested, 0.05) < ALERT_LEVEL:
            reasons.append(f"{100 * share:.1f} % of the permuted p-values are below 0.05")
        if reasons:
            out[str(contrast)] = "; ".join(reasons)
    return out


class _NoAlerts(logging.Filter):
    """Drop alert records: the permuted runs repeat the test stage's alerts (replication...)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, ALERT_ATTR, None) is None


@dataclass
class CalibrationResult:
    """What :func:`run_calibration` returns.

    Attributes
    ----------
    plan : PermutationPlan
    summary : pandas.DataFrame
        :data:`TSV_COLUMNS`, one row per permutation and contrast.
    pvalues : pandas.DataFrame
        ``permutation, contrast, pvalue`` of every tested protein (the histogram's data).
    """

    plan: PermutationPlan
    summary: pd.DataFrame
    pvalues: pd.DataFrame

    def write(self, *, table: str | Path, figure: str | Path, fdr: float = 0.05) -> None:
        """Write the summary table (TSV) and the permuted p-values' histogram (``fdr``, default
        0.05, marks the threshold)."""
        from pepmix.io import write_tsv
        from pepmix.plots.calibration import permuted_pvalue_histogram

        write_tsv(self.summary, table)
        permuted_pvalue_histogram(self.pvalues, self.summary, figure, fdr=fdr)


def chunk_tables(table: pd.DataFrame, limit: int) -> list[pd.DataFrame]:
    """The table in protein chunks of at most ``limit`` observations (a protein is never split;
    a protein with more observations is a chunk of its own); the table itself when it fits."""
    if len(table) <= limit:
        return [table]
    sizes = table.groupby("protein", observed=True, sort=True).size()
    chunk_of = (np.cumsum(sizes.to_numpy()) - 1) // max(limit, 1)
    codes = dict(zip(sizes.index.astype(str), chunk_of.tolist(), strict=True))
    row_chunk = table["protein"].astype(str).map(codes).to_numpy(dtype=np.int64)
    return [table.loc[row_chunk == k] for k in np.unique(chunk_of)]


def refit_contrasts(
    tables: Sequence[pd.DataFrame],
    sheet: pd.DataFrame,
    config: Mapping[str, Any],
    whole: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Contrast table (:meth:`pepmix.model.stored.StoredFit.contrast_table`) of a refit.

    ``tables``: the normalised long table in protein chunks; the model of ``config`` is fitted
    on each with the design of ``sheet`` (its conditions may be permuted). ``whole`` (default
    None: the chunks concatenated): the whole table, for the variance prior of
    ``model.shrinkage``, which is estimated on all proteins as rule ``variance_prior`` does.
    """
    from pepmix.config import contrasts_for
    from pepmix.model.design import build_run_design, model_spec_from_config
    from pepmix.model.fit import fit_proteins
    from pepmix.model.robust import DEFAULT_METHOD
    from pepmix.model.shrinkage import fit_variance_prior
    from pepmix.model.stored import StoredFit

    model = config.get("model", {}) or {}
    replication = (config.get("testing", {}) or {}).get("replication", "auto")
    design = build_run_design(sheet, model_spec_from_config(model, sheet, replication))
    prior = None
    if model.get("shrinkage", False):
        every = whole if whole is not None else pd.concat(list(tables), ignore_index=True)
        prior = fit_variance_prior(every, design)
    pairs = [
        (c.name, c.numerator, c.denominator) for c in contrasts_for(config["contrasts"], sheet)
    ]
    parts = []
    for part in tables:
        fit = fit_proteins(
            part, design, prior=prior, robust=str(model.get("robust", DEFAULT_METHOD))
        )
        parts.append(StoredFit.from_model_fit(fit).contrast_table(pairs))
    return pd.concat(parts, ignore_index=True)


def run_calibration(
    table: pd.DataFrame, sheet: pd.DataFrame, config: Mapping[str, Any]
) -> CalibrationResult:
    """Refit and test the data under each permutation of the condition labels.

    Parameters
    ----------
    table : pandas.DataFrame
        Normalised long table ``protein, feature, run, y`` (the model stage's input).
    sheet : pandas.DataFrame
        Resolved sample sheet.
    config : mapping
        Workflow config: ``contrasts, model, testing, moderation, lfc_threshold, fdr`` and
        ``calibration`` (``permutations``, default 5; ``seed``, default 1).
    """
    from pepmix.config import contrasts_for
    from pepmix.inference.differential import InferenceOptions, differential_table
    from pepmix.model.design import replication_unit

    options = config.get("calibration", {}) or {}
    fdr = float(config.get("fdr", 0.05))
    replication = (config.get("testing", {}) or {}).get("replication", "auto")
    unit = replication_unit(sheet, replication)
    units = replication_units(sheet, unit)
    plan = plan_permutations(
        units,
        int(options.get("permutations", DEFAULT_PERMUTATIONS)),
        int(options.get("seed", DEFAULT_SEED)),
        unit_column="run" if unit == "technical" else "bioreplicate",
    )
    log.info(
        "calibration: %d permutation(s) of %d units (%s distinct), residual effects %s",
        len(plan.permutations),
        len(units),
        plan.n_distinct if plan.n_distinct is not None else f"> {ENUMERATE_MAX} labelled",
        ", ".join(f"{p.residual:.2f}" for p in plan.permutations),
    )
    tables = chunk_tables(table, CHUNK_OBSERVATIONS)
    order = [c.name for c in contrasts_for(config["contrasts"], sheet)]
    summaries, pvalues = [], []
    quiet = _NoAlerts()
    root = logging.getLogger("pepmix")
    for handler in root.handlers:
        handler.addFilter(quiet)
    try:
        for k, perm in enumerate(plan.permutations, start=1):
            relabelled = permuted_sheet(sheet, plan, perm)
            stats_k = refit_contrasts(tables, relabelled, config, whole=table)
            diff = differential_table(stats_k, order, InferenceOptions.from_config(config))
            summaries.append(
                summarise(diff, k, fdr, perm.residual, plan.groups(perm), plan.n_distinct)
            )
            tested = diff.loc[np.isfinite(diff["pvalue"].to_numpy(dtype=np.float64))]
            pvalues.append(tested.loc[:, ["contrast", "pvalue"]].assign(permutation=k))
            log.info("calibration: permutation %d of %d done", k, len(plan.permutations))
    finally:
        for handler in root.handlers:
            handler.removeFilter(quiet)
    summary = (
        pd.concat(summaries, ignore_index=True)
        if summaries
        else pd.DataFrame(columns=list(TSV_COLUMNS))
    )
    pv = (
        pd.concat(pvalues, ignore_index=True)
        if pvalues
        else pd.DataFrame(columns=["contrast", "pvalue", "permutation"])
    )
    _alert_result(plan, summary, fdr)
    return CalibrationResult(plan, summary, pv.loc[:, ["permutation", "contrast", "pvalue"]])


def _alert_result(plan: PermutationPlan, summary: pd.DataFrame, fdr: float) -> None:
    """The alert on the permuted results: contrasts with excess calls or small p-values."""
    flagged = excess(summary, fdr)
    if flagged:
        alert(
            log,
            "calibration_excess",
            "calibration: with permuted condition labels (no true difference) "
            + "; ".join(f"{c}: {why}" for c, why in flagged.items())
            + ": the FDR may not hold on this data (see results/calibration/calibration.tsv)"
            + _residual_note(plan),
        )


def alert_inputs(config: Mapping[str, Any], workflow: Any, path: str) -> list[str]:
    """The calibration alert file for rule ``report_pages`` (``[path]``), when the check is
    part of this run: ``calibration.in_all``, the target ``calibration`` (or one of its files)
    requested, or an earlier run of it (``path`` exists: its outputs are then kept up to date,
    so the report and the alerts include it). Else ``[]``.

    Parameters
    ----------
    config : mapping
        The workflow config (``calibration.in_all``, default False).
    workflow : snakemake.workflow.Workflow
        The running workflow (its ``dag_settings.targets``, known when the DAG is built).
    path : str
        The calibration rule's alert file.
    """
    settings = getattr(workflow, "dag_settings", None)
    targets = {str(t) for t in (getattr(settings, "targets", None) or ())}
    wanted = bool((config.get("calibration", {}) or {}).get("in_all", False))
    wanted = (
        wanted
        or "calibration" in targets
        or any(t.startswith("results/calibration/") for t in targets)
    )
    return [path] if wanted or Path(path).exists() else []


def _residual_note(plan: PermutationPlan) -> str:
    """Reminder for the excess alert when the permuted groups keep part of the true effects."""
    worst = max((p.residual for p in plan.permutations), default=0.0)
    if worst <= 0:
        return ""
    return (
        f"; the permuted groups keep up to {100 * worst:.0f} % of each true difference, so "
        "part of these calls may be strongly changing proteins"
    )
