r"""The workflow's missing-value model (config ``missing``): MAR, or the detection model.

``missing: mar`` (default) fits the observed values only (missing at random). ``missing:
detection`` uses the detection probability curve of :mod:`pepmix.model.detection` inside the
mixed model (:mod:`pepmix.model.mnar`): missing cells carry information, and proteins never
observed in one condition get a finite, shrunken log2 fold change with a confidence interval and
a p-value. This module is the thin layer between those two library modules and the workflow
stages; it does not change their estimates.

Curve and prior, once for all proteins
--------------------------------------
The curve :math:`P(\text{detected} \mid y) = \Phi(b_{0g} + b_{1g}y)` is fitted once, before the
model stage is split into shards (rule ``detection_curve``), on the normalised feature table
(:func:`fit_workflow_curve`): conditions of the runs give each feature one complete-data mean
per condition, the batches of the sample sheet give the per-batch candidate, and BIC chooses
pooled, per batch or per run. The SD :math:`\tau` of the condition prior of
:mod:`pepmix.model.mnar` is computed there too, by :func:`pepmix.model.mnar.condition_prior_sd`
applied to each protein's per-condition mean of its observed log2 intensities
(:func:`observed_levels`). The library default applies the same function to the MAR fit's
condition means; those exist only after the fit, per shard, so a per-shard :math:`\tau` would make
the results depend on the number of shards. :math:`\tau` is the spread of the protein abundances
(typically 1.5-3 log2 units); the observed means and the MAR condition means of a protein differ
by far less than that spread (they differ where features are missing unevenly across
conditions), so the prior is practically the same. Both are written to
``results/model/detection_curve.tsv`` (:func:`curve_table`, read back by :func:`read_curve`).

Per shard
---------
Each fit job fits its proteins with the MAR engine (start values, Satterthwaite df and the
per-protein columns) and then with the detection model given the curve and :math:`\tau`
(:func:`pepmix.model.mnar.detection_contrasts`), for the config's contrasts; the rows are
gathered in the order of a single job (:func:`gather_detection`). Proteins never observed in one
condition of a contrast become status ``ok`` with a ``detail`` saying so. Degrees of freedom
(rule of :mod:`pepmix.model.mnar`): the MAR Satterthwaite df where the contrast is estimable
under MAR, else the between-sample df (observed samples minus fixed effects, at least 1); the
moderation and Benjamini-Hochberg of :mod:`pepmix.inference.differential` then apply as for MAR.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from pepmix.errors import PepmixError
from pepmix.model.detection import DetectionCurve, feature_matrix, fit_detection_curve

if TYPE_CHECKING:
    from pepmix.model.fit import ModelFit
    from pepmix.model.stored import StoredFit

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
PathLike = str | Path

#: values of the config key ``missing``
MISSING_MODELS = ("mar", "detection")
#: the ``detail`` note of the tested proteins never observed in one condition
ABSENT_NOTE = "absent from condition"
#: columns of ``results/model/detection_curve.tsv``
CURVE_COLUMNS = (
    "run",
    "curve_group",
    "grouping",
    "b0",
    "b1",
    "feature_sd",
    "n_features",
    "condition_prior_sd",
)


def _str_categorical(column: pd.Series) -> pd.Series:
    """``column`` as a categorical whose categories are the values as strings."""
    cat = column if isinstance(column.dtype, pd.CategoricalDtype) else column.astype("category")
    names = [str(c) for c in cat.cat.categories]
    out: pd.Series = (
        cat.cat.rename_categories(names)
        if len(set(names)) == len(names)
        else (cat.astype(str).astype("category"))
    )
    return out


def observed_levels(table: pd.DataFrame, sheet: pd.DataFrame) -> FloatArray:
    """Each protein's mean observed log2 intensity per condition, shape (P, C), NaN where absent.

    ``table`` has columns ``protein, run, y``; ``sheet`` ``run, condition``.
    """
    condition = sheet.set_index("run")["condition"].astype(str)
    run = _str_categorical(table["run"])
    cond = condition.reindex(run.cat.categories).to_numpy()[run.cat.codes.to_numpy()]
    protein = _str_categorical(table["protein"])
    # categories in string order: the groups come out in the order of a string groupby
    protein = protein.cat.reorder_categories(sorted(protein.cat.categories))
    frame = pd.DataFrame({"protein": protein.to_numpy(), "condition": cond, "y": table["y"]})
    means = frame.groupby(["protein", "condition"], observed=True)["y"].mean().unstack()
    out: FloatArray = means.to_numpy(dtype=np.float64)
    return out


def fit_workflow_curve(
    table: pd.DataFrame, sheet: pd.DataFrame, seed: int = 1
) -> tuple[DetectionCurve, float, FloatArray]:
    """Fit the detection curve and the condition prior SD on all proteins (module docstring).

    Parameters
    ----------
    table : pandas.DataFrame
        Normalised long table ``protein, feature, run, y`` (observed cells).
    sheet : pandas.DataFrame
        Resolved sample sheet (``run, condition`` and optionally ``batch``).
    seed : int, default 1
        Seed of the feature subset of :func:`pepmix.model.detection.fit_detection_curve`.

    Returns
    -------
    curve : DetectionCurve
    prior_sd : float
        SD of the condition prior (:func:`pepmix.model.mnar.condition_prior_sd`).
    matrix : ndarray, shape (J, R)
        The features x runs matrix the curve was fitted on (for the QC figure).
    """
    from pepmix.model.mnar import condition_prior_sd

    runs = [str(r) for r in sheet["run"]]
    # identifiers as categoricals with string categories (not millions of Python strings)
    long = pd.DataFrame(
        {
            "protein": _str_categorical(table["protein"]),
            "feature": _str_categorical(table["feature"]),
            "run": _str_categorical(table["run"]),
            "y": table["y"].to_numpy(dtype=np.float64),
        }
    )
    matrix = feature_matrix(long, runs)
    batches = None
    if "batch" in sheet.columns and sheet["batch"].notna().all():
        batches = [str(b) for b in sheet["batch"]]
    conditions = [str(c) for c in sheet["condition"]]
    curve = fit_detection_curve(matrix, runs, batches=batches, seed=seed, conditions=conditions)
    prior_sd = condition_prior_sd(observed_levels(long, sheet))
    log.info(
        "detection curve: %s, slope(s) %s; condition prior SD %.3g log2 units",
        curve.grouping,
        ", ".join(f"{b:.3g}" for b in np.unique(curve.b1)),
        prior_sd,
    )
    return curve, prior_sd, matrix


def curve_table(curve: DetectionCurve, prior_sd: float) -> pd.DataFrame:
    """``results/model/detection_curve.tsv``: one row per run (columns :data:`CURVE_COLUMNS`)."""
    b0, b1 = curve.per_run()
    return pd.DataFrame(
        {
            "run": curve.runs,
            "curve_group": curve.group_of_run.astype(np.int64),
            "grouping": curve.grouping,
            "b0": b0,
            "b1": b1,
            "feature_sd": curve.feature_sd,
            "n_features": curve.n_features,
            "condition_prior_sd": prior_sd,
        },
        columns=list(CURVE_COLUMNS),
    )


def read_curve(path: PathLike, runs: Sequence[str]) -> tuple[DetectionCurve, float]:
    """Read :func:`curve_table`'s file back, for the design's ``runs`` (in that order).

    Raises
    ------
    PepmixError
        When the file lacks a column or a run of ``runs``.
    """
    table = pd.read_csv(path, sep="\t", dtype={"run": str})
    missing_cols = [c for c in CURVE_COLUMNS if c not in table.columns]
    if missing_cols:
        raise PepmixError(f"{path}: missing column(s) {', '.join(missing_cols)}")
    table = table.set_index("run")
    absent = [r for r in runs if r not in table.index]
    if absent:
        raise PepmixError(f"{path}: no detection curve for run(s) {', '.join(absent[:5])}")
    rows = table.loc[list(runs)]
    groups = rows["curve_group"].to_numpy(dtype=np.intp)
    n_groups = int(table["curve_group"].max()) + 1
    b0 = np.zeros(n_groups)
    b1 = np.zeros(n_groups)
    b0[groups] = rows["b0"].to_numpy(dtype=np.float64)
    b1[groups] = rows["b1"].to_numpy(dtype=np.float64)
    curve = DetectionCurve(
        b0=b0,
        b1=b1,
        group_of_run=groups,
        runs=list(runs),
        grouping=str(rows["grouping"].iloc[0]),
        n_features=int(rows["n_features"].iloc[0]),
        feature_sd=float(rows["feature_sd"].iloc[0]),
    )
    return curve, float(rows["condition_prior_sd"].iloc[0])


def gather_detection(parts: Sequence[pd.DataFrame], contrast_order: Sequence[str]) -> pd.DataFrame:
    """Concatenate shards' detection contrast tables in the order of a single job.

    A single job's table is contrast-major (``contrast_order``), proteins sorted within each
    contrast (:class:`pepmix.model.fit.Encoded` sorts them).
    """
    table = pd.concat(list(parts), ignore_index=True)
    rank = pd.Series(range(len(contrast_order)), index=list(contrast_order))
    key = rank.reindex(table["contrast"].astype(str)).to_numpy()
    if np.any(np.isnan(key)):
        raise PepmixError("gather: a shard has a contrast that is not in the config")
    order = np.lexsort((table["protein"].astype(str).to_numpy(), key))
    return table.iloc[order].reset_index(drop=True)


def detection_table(
    mar: ModelFit,
    stored: StoredFit,
    curve: DetectionCurve,
    prior_sd: float,
    contrasts: Sequence[tuple[str, str, str]],
) -> pd.DataFrame:
    """The detection model's contrast table of one shard (module docstring, "Per shard").

    Parameters
    ----------
    mar : ModelFit
        The shard's MAR fit (``pepmix.api.fit(...).model``; fitted without contrasts).
    stored : StoredFit
        Its stored fit (``pepmix.api.fit(...).stored``): the MAR estimates, SEs and
        Satterthwaite df of the contrasts, exactly as the test stage computes them for MAR.
    curve : DetectionCurve
        The curve of :func:`read_curve`, over the design's runs.
    prior_sd : float
        SD of the condition prior (:func:`read_curve`).
    contrasts : sequence of (name, numerator, denominator)
        The config's contrasts, in output order.

    Returns
    -------
    pandas.DataFrame
        :func:`pepmix.model.mnar.detection_contrasts`'s table (the layout of
        :meth:`pepmix.model.fit.ModelFit.contrast_table`), contrast-major, proteins sorted.
    """
    from pepmix.model.fit import contrast_matrix
    from pepmix.model.mnar import detection_contrasts

    names = [c[0] for c in contrasts]
    nums = [c[1] for c in contrasts]
    dens = [c[2] for c in contrasts]
    estimate, se, df = stored.contrast_tests(
        contrast_matrix(mar.design, list(zip(nums, dens, strict=True)))
    )
    with_contrasts = dataclasses.replace(
        mar,
        contrast_names=names,
        estimate=estimate,
        se=se,
        df=df,
        contrast_ok=np.isfinite(estimate),
    )
    table = detection_contrasts(
        with_contrasts, curve, nums, dens, prior_sd=prior_sd, fold_change_prior=False
    )
    _name_absent_conditions(table, with_contrasts, nums, dens)
    return gather_detection([table], names)


def _name_absent_conditions(
    table: pd.DataFrame, mar: ModelFit, numerators: Sequence[str], denominators: Sequence[str]
) -> None:
    """Append "absent from condition X" to the ``detail`` of the rows the MAR model could not
    estimate (``one_condition_missing``) and the detection model tested (in place; the table is
    contrast-major in the MAR fit's protein order, as both tables come from it)."""
    conditions = list(mar.design.conditions)
    seen = np.isfinite(mar.beta[:, : len(conditions)])
    notes = []
    for num, den in zip(numerators, denominators, strict=True):
        num_seen = seen[:, conditions.index(num)]
        notes.append(np.where(num_seen, f"{ABSENT_NOTE} {den}", f"{ABSENT_NOTE} {num}"))
    note = np.concatenate(notes)
    before = mar.contrast_table(list(numerators), list(denominators))["status"].to_numpy()
    rows = (before == "one_condition_missing") & (table["status"].to_numpy() == "ok")
    detail = table["detail"].fillna("").astype(str).to_numpy()
    table["detail"] = np.where(
        rows, [f"{d}; {n}" if d else str(n) for d, n in zip(detail, note, strict=True)], detail
    )


def alert_absent(stats: pd.DataFrame) -> int:
    """One alert when proteins never observed in one condition were tested; return their count.

    Their fold changes, intervals and p-values come from the marginal likelihood of the missing
    cells under the fold-change prior of the other proteins
    (:func:`pepmix.model.mnar.apply_fold_change_prior`): calibrated on simulated data (95 %
    intervals covered 96.5 % of 228 absent rows with effects drawn from a prior, 98 % of 152
    drops of 3-5 log2 units, and 100 % of 91 rows of the ground-truth scenarios, where before
    they covered 50-77 %; no null absent protein had p < 0.05: ``benchmarks/README.md``, "Absent
    proteins under a fold-change prior"), but they rest on that prior and on the detection curve
    being right, which no absent protein can check; hence the alert.
    """
    from pepmix.alerts import alert

    tested = (stats["status"] == "ok") & stats["detail"].astype(str).str.contains(ABSENT_NOTE)
    n = int(tested.sum())
    if n:
        alert(
            log,
            "detection_absent_tested",
            f"{n} protein-contrast pairs never observed in one condition were tested by the "
            f"detection model (detail '{ABSENT_NOTE} ...'): their log2 fold changes, intervals "
            "and p-values rest on the detection curve and on the fold-change distribution of the "
            "other proteins (they are shrunk towards 0 and rarely significant); treat them as "
            "presence/absence candidates, not as measured fold changes",
        )
    return n
