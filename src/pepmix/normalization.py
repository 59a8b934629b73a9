r"""log2 transform and normalisation of runs.

With :math:`y_{fr} = \log_2 I_{fr}` for feature :math:`f` of protein :math:`p` in run :math:`r`:

``protein_median`` (default)
    :math:`y_{fr} - s_r`. Let :math:`R_f` be the runs where feature :math:`f` is observed (only
    features with :math:`|R_f| \ge 2` count) and :math:`\bar y_f = |R_f|^{-1} \sum_{r \in R_f}
    (y_{fr} - s_r)` its mean over them (the feature's reference).

    1. feature log ratio to the reference: :math:`y_{fr} - s_r - \bar y_f`;
    2. protein ratio :math:`\rho_{pr}` = median of these over the protein's features observed in
       run :math:`r` (one number per protein and run: a protein counts once, not once per
       peptide);
    3. the run's step :math:`\ell_r` = location over proteins of :math:`\{\rho_{pr}\}_p`: the
       median (``location: median``) or the KDE mode (``location: mode``, default; Gaussian
       kernel, Silverman's bandwidth, falling back to the median when there is no clear mode:
       fewer than 100 proteins or two nearly equal peaks; :mod:`pepmix.protein_ratios`);
    4. :math:`s_r \leftarrow s_r + \ell_r`, centred so that :math:`\sum_r s_r = 0` (per batch
       with ``within_batch``).

    Starting from :math:`s_r = 0`, steps 1-4 are repeated three times (as for
    ``median_ratio``: the reference of a feature missing in some runs depends on the shifts of
    the others). With ``reference_proteins`` the location in step 3 is taken over those
    proteins only (all proteins still enter the feature references).

    Why: ``median_ratio`` takes the median over *features*, so proteins with many peptides
    weigh more, and abundant changing proteins (spike-ins, pull-down baits and their partners,
    strongly induced proteins) have many; when they are a large share of the features the whole
    run shifts and unchanged proteins get fold changes of the opposite sign (measured on two
    spike-in data sets: median log2 FC of unchanged proteins -0.43 and -2.4). Counting each
    protein once removes that weighting. It does not help when most *proteins* change in one
    direction; the mode then still finds the unchanged cluster if it is the densest one, and
    the diagnostics below say when neither can be trusted.
``median_ratio``
    :math:`y_{fr} - m_r`, where :math:`m_r` is the median over the features observed in run
    :math:`r` of :math:`y_{fr} - \bar y_f` (:math:`\bar y_f` the feature's mean over the runs it
    was seen in), iterated three times and centred so that :math:`\sum_r m_r = 0`. The median of
    *ratios* to a feature-wise reference is robust to a minority of changing features
    (spike-ins, real biology): their large ratios sit in the tails, while the median of raw
    intensities shifts whenever changing proteins cross it. This is the median-of-ratios idea of
    DESeq applied to log intensities.
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

Diagnostics (every method; columns of the runs table): the protein ratios :math:`\rho_{pr}` of
the *normalised* values, per run their number ``n_proteins``, ``ratio_median``, KDE
``ratio_mode`` (NaN when it fell back) and its standard error ``ratio_mode_se``,
``ratio_spread`` (:math:`\mathrm{IQR}/1.349`, the SD for normal data) and ``bimodal`` (a second
KDE peak of >= 25 % of the highest behind a dip of >= 30 %: a cluster of >= ~20 % of the
proteins that moved together; :mod:`pepmix.protein_ratios`). Ratios are to each feature's mean
over runs, so after a correct normalisation the unchanged proteins sit at 0 and both the median
and the mode of a run's protein ratios should be near 0; ``ratio_median`` and ``ratio_mode`` are
reported minus the mean of the runs' ``ratio_median`` (per batch with ``within_batch``), because
a normalisation only sets the differences between runs and a common offset cancels in fold
changes. A run with at least 300 proteins (fewer give too many chance bumps in the density) is
``doubtful`` when

- its protein-ratio distribution is bimodal; or
- it is off centre: :math:`\max(|\mathrm{median}|, |\mathrm{mode}|) > \max(0.25\,
  \mathrm{spread}, 0.1, 3\,\mathrm{SE}_\mathrm{mode})`: the bulk or the peak of the proteins
  is more than a quarter of a spread (and 0.1 log2, 7 %) from where the normalisation put the
  run, i.e. it was pulled by a group of proteins or features changing together, or median and
  mode disagree. Runs of two conditions pulled in opposite directions
  bias every fold change between them by twice that, half a protein-ratio SD. The 3 SE
  (:mod:`pepmix.protein_ratios`: a conservative SE) keep the mode's sampling noise out, of the
  mode itself and of the median when the runs were placed by the mode; the median's own noise
  (:math:`1.25\,\mathrm{spread}/\sqrt n`, below 0.08 spreads from 300 proteins) is smaller.
  Simulated data without changing proteins (``tests/unit/test_normalize.py::simulate``, 300 and
  2,000 proteins, 12 runs, protein-by-run SD 0.1 and 0.4, 10 data sets each, normalised by
  ``protein_median`` with either location and by ``median_ratio``: 1,440 runs) and
  ``benchmarks/simulate.py``'s data (10 % of proteins changing in both directions, sample SD
  0.2-0.5; 2,000 proteins, 5 data sets, 180 runs) gave no doubtful run; or
- :math:`|s_r| > \max(3\,\mathrm{spread}, 1)`: a correction larger than three times the run's
  own protein-ratio noise *and* above a two-fold loading difference (larger than usual
  loading variation) means a failed run or a global change of most proteins.

One-sided fold changes between conditions (every method; needs the run -> condition mapping,
``run_condition``, which the workflow passes from the sample sheet). The checks above look at
one run at a time, where a protein's ratio carries its biological and technical noise (spread
about 0.5 log2 with biological replicates): when most changing proteins go one way their
ratios shift a run's distribution only a little and both ways, and the checks mostly stay silent
(measured on ``benchmarks/scenarios.py``, 2,000 proteins, seeds 1-20: a doubtful run in 0/20
``up20``, 2-4/20 ``up60`` and 5-6/20 ``up40`` data sets). The fold changes
average that noise over the replicates. For each pair of conditions :math:`(a, b)`, with
:math:`d_p = \overline{\rho}_{p,b} - \overline{\rho}_{p,a}` (means of the protein ratios over
the runs of each condition; proteins with a ratio in at least :math:`\min(2, \text{runs})`
runs of each), the pair is *one-sided* when, with at least 300 such proteins,

.. math:: |\operatorname{median}_p d_p - \hat\theta| > \max(0.1,\ 3\,\mathrm{SE}(\hat\theta))

for the KDE mode :math:`\hat\theta` of :math:`\{d_p\}` (:func:`pepmix.protein_ratios.kde_peaks`;
when two peaks of nearly equal height make the mode ambiguous, for each of them). Rationale:
whatever share of proteins changes, the unchanged ones form the peak of the fold changes, and
changes in both directions (in any proportion that balances) leave the median at that peak;
only changes that go mostly one way move the median off it. :math:`|\mathrm{median} -
\mathrm{mode}|` is then how far a median-based and a mode-based normalisation disagree on every
fold change between the two conditions: no data-driven normalisation can tell which is right
(only a reference can), so the fold changes are uncertain by that much. Thresholds as for the
runs: 0.1 log2 (7 %), and 3 conservative SEs of the mode (the median's own noise,
:math:`1.25\,\mathrm{spread}/\sqrt n`, is smaller). ``share_above`` / ``share_below`` (the
shares of proteins above and below the peak) are reported with it. Measured on
``benchmarks/scenarios.py`` (2,000 proteins, 4 samples per condition, seeds 1-20, either
location): no pair fired in 160 data sets without one-way changes (``no_change``,
``both20/40/60``, ``technical``, ``outliers``, ``skewed_variance``, ``mnar``; largest
:math:`|\mathrm{median} - \mathrm{mode}|` 0.07 log2, 1.8 SE with the mode), nor on the
demo; it fired in
20/20 ``up40``, 19/20 ``up60`` (the miss: two near-equal peaks, the median 2.7 SE from the
nearer) and 2/20 ``up20`` data sets (benchmarks/README.md). The runs of the conditions of a
one-sided pair get ``one_sided`` (column of the runs table; all false without
``run_condition``).

With ``protein_median``, ``median_ratio``, ``median`` or ``quantile`` any doubtful run or
one-sided pair raises one ``normalization_doubtful`` alert (:mod:`pepmix.alerts`) naming the
runs and the pairs of conditions (all their runs) and the ways out: ``method: reference`` with
proteins known not to change, or ``method: none`` when equal amounts were loaded.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from pepmix.alerts import alert
from pepmix.canonical import distinct_values, row_key
from pepmix.errors import ConfigError
from pepmix.protein_ratios import MIN_PROTEINS, ProteinRatios, kde_peaks, radix_argsort

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_METHOD = "protein_median"
METHODS = ("protein_median", "median_ratio", "median", "quantile", "reference", "none")
LOCATIONS = ("median", "mode")
#: default ``normalization.location`` (the config schema's default is checked against it): the
#: mode follows the unchanged proteins when many change in one direction (ground truth in
#: benchmarks/README.md: observed FDP 5.6 % instead of 30.7 % with 40 % of proteins up)
DEFAULT_LOCATION = "mode"
#: doubtful-run thresholds (module docstring): off centre, and shift, in spreads and log2
OFF_CENTRE_SPREADS = 0.25
OFF_CENTRE_FLOOR = 0.1
MODE_SES = 3.0
#: runs with fewer proteins are not checked
MIN_PROTEINS_CHECK = 300
SHIFT_SPREADS = 3.0
SHIFT_FLOOR = 1.0
#: one-sided fold changes between two conditions (module docstring): median off the KDE mode
#: by more than this (log2) and more than ONE_SIDED_SES standard errors of the mode
ONE_SIDED_FLOOR = 0.1
ONE_SIDED_SES = 3.0
#: build the protein-ratio layout in a second thread while the run medians and shifts are
#: computed (default False: in the calling thread first; the results are the same bit for bit).
#: Off: on the loaded 2-core benchmark machine it halved the job thread's CPU of the
#: normalisation but not its wall time, and added ~0.1 GB of peak memory (benchmarks/README.md)
LAYOUT_THREAD = False
#: methods whose doubtful runs raise the alert (the others are the user's explicit choice)
_ALERTED = ("protein_median", "median_ratio", "median", "quantile")


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


def _checked_reference_mask(
    out: pd.DataFrame, references: Sequence[str], runs: pd.Index
) -> pd.Series:
    """Reference rows; error when none is in the data or some run has none."""
    mask = reference_mask(out["protein"], list(references))
    if not mask.any():
        raise ConfigError(
            "config: normalization.reference_proteins: none of the reference proteins "
            "is in the data"
        )
    missing = sorted(set(runs) - set(out.loc[mask, "run"].astype(str)))
    if missing:
        raise ConfigError(
            "config: normalization.reference_proteins: no reference protein observed "
            f"in run(s) {', '.join(missing)}"
        )
    return mask


def normalize(
    table: pd.DataFrame,
    method: str = DEFAULT_METHOD,
    reference_proteins: Sequence[str] = (),
    within_batch: bool = False,
    run_batch: Mapping[str, str] | None = None,
    location: str = DEFAULT_LOCATION,
    run_condition: Mapping[str, str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """log2-transform and normalise a canonical table.

    Parameters
    ----------
    table : pandas.DataFrame
        Canonical table (``protein, feature, run, intensity`` at least).
    method : {"protein_median", "median_ratio", "median", "quantile", "reference", "none"}, \
default "protein_median"
    reference_proteins : sequence of str, default ()
        For ``method="reference"`` (required) and ``"protein_median"`` (optional: the run
        location over these proteins only); see :func:`reference_mask`.
    within_batch : bool, default False
        Equalise runs within each batch only.
    run_batch : mapping of str to str, optional
        Batch of each run (default: the table's ``batch`` column).
    location : {"median", "mode"}, default "mode"
        Location over proteins for ``protein_median``.
    run_condition : mapping of str to str, optional
        Condition of each run; with it, every pair of conditions is checked for one-sided
        fold changes (module docstring; default: not checked, ``one_sided`` all false).

    Returns
    -------
    features : pandas.DataFrame
        ``protein, feature, peptide, run, log2_raw, y`` (``y`` normalised).
    runs : pandas.DataFrame
        One row per run: ``run, batch, shift`` (for median-type methods the value subtracted),
        ``median_before, median_after``, and the diagnostics ``n_proteins, ratio_median,
        ratio_mode, ratio_mode_se, ratio_spread, bimodal, doubtful, one_sided`` (module
        docstring).
    """
    _check_options(method, location)
    # (no copy: pandas copies on write, so adding columns to ``out`` leaves ``table`` alone)
    out = table.loc[:, ["protein", "feature", "peptide", "run"]]
    out["log2_raw"] = np.log2(table["intensity"].to_numpy(dtype=np.float64))
    runs = _run_table(table, out, run_batch)
    group = runs.set_index("run")["batch"] if within_batch else pd.Series("", index=runs["run"])
    # with LAYOUT_THREAD the protein-ratio layout is built by a second thread meanwhile (numpy
    # and pandas' sorts and hashing release the GIL); it reads only these columns, a frame of
    # their own; otherwise it is built here first
    executor = ThreadPoolExecutor if LAYOUT_THREAD else _Serial
    with executor(max_workers=1, thread_name_prefix="pepmix-ratios") as pool:
        pending = pool.submit(
            ProteinRatios,
            out.loc[:, ["protein", "feature", "run"]],
            pd.Index(group.index.astype(str)),
        )
        by_run = RunMedians(out["run"])
        before = by_run(out["log2_raw"])
        runs["median_before"] = runs["run"].map(before)
        offsets = _apply_method(
            out, runs, method, reference_proteins, group, location, pending, before
        )
        after = by_run(out["y"]) if offsets is None else by_run.shifted(offsets)
        runs["median_after"] = runs["run"].map(after)
        layout = pending.result()
    log.info(
        "normalisation %s%s%s: run medians spread %.3f before, %.3f after",
        method,
        f" ({location})" if method == "protein_median" else "",
        " within batch" if within_batch else "",
        float(np.ptp(runs["median_before"])),
        float(np.ptp(runs["median_after"])),
    )
    rho = layout.ratios(out["y"].to_numpy(dtype=np.float64), np.zeros(layout.n_runs))
    runs = _with_diagnostics(runs, layout, rho, group)
    flagged = _mark_one_sided(runs, layout, rho, group, run_condition)
    if method in _ALERTED:
        _alert_doubtful(runs, method, flagged)
    return out, runs


class _Serial:
    """The executor interface of :data:`LAYOUT_THREAD` off: each task runs when submitted."""

    def __init__(self, **_: Any) -> None:
        pass

    def __enter__(self) -> _Serial:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        """Run ``fn(*args)`` now; its result (or exception) in a done future."""
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:  # noqa: BLE001 - re-raised by future.result()
            future.set_exception(exc)
        return future


def _check_options(method: str, location: str) -> None:
    """Reject an unknown ``method`` or ``location`` (config errors, named by their key)."""
    if method not in METHODS:
        raise ConfigError(f"config: normalization.method: unknown method {method!r}")
    if location not in LOCATIONS:
        raise ConfigError(f"config: normalization.location: unknown location {location!r}")


def _run_table(
    table: pd.DataFrame, out: pd.DataFrame, run_batch: Mapping[str, str] | None
) -> pd.DataFrame:
    """One row per run of ``out`` (sorted): ``run, batch`` (``""`` where the batch is unknown).

    The batch comes from ``run_batch``, or, when it is None, the table's ``batch`` column.
    """
    if run_batch is None:
        batch_of_run = table.groupby("run", observed=True)["batch"].first().astype(str)
    else:
        batch_of_run = pd.Series(dict(run_batch), dtype=str)
    runs = pd.DataFrame({"run": sorted(distinct_values(out["run"]))})
    runs["batch"] = runs["run"].map(batch_of_run).fillna("")
    return runs


def _apply_method(
    out: pd.DataFrame,
    runs: pd.DataFrame,
    method: str,
    reference_proteins: Sequence[str],
    group: pd.Series,
    location: str,
    layout: Future[ProteinRatios],
    before: pd.Series,
) -> NDArray[np.float64] | None:
    """Write the normalised ``y`` into ``out`` and each run's ``shift`` into ``runs``, in place.

    Median-type methods subtract a per-run shift (:func:`_shifts`); ``quantile`` has no single
    shift (NaN); ``none`` leaves the log2 values (shift 0). ``layout`` is the
    :class:`~pepmix.protein_ratios.ProteinRatios` of ``out`` (being built) and ``before`` the
    run medians of ``log2_raw`` (:class:`RunMedians`).

    Returns the value subtracted from each row's ``log2_raw`` (``y = log2_raw - offsets``), or
    None when ``y`` is not such a difference (``quantile``).
    """
    shift = _shifts(out, method, reference_proteins, group, location, layout, before)
    if shift is not None:
        runs["shift"] = runs["run"].map(shift)
        offsets: NDArray[np.float64] = out["run"].map(shift).to_numpy(dtype=np.float64)
        out["y"] = out["log2_raw"] - offsets
        return offsets
    if method == "quantile":
        out["y"] = _quantile(out, group)
        runs["shift"] = np.nan
        return None
    out["y"] = out["log2_raw"]
    runs["shift"] = 0.0
    # x - 0.0 is x for every float (signed zeros and NaN included)
    return np.zeros(len(out))


def _mark_one_sided(
    runs: pd.DataFrame,
    layout: ProteinRatios,
    rho: NDArray[np.float64],
    group: pd.Series,
    run_condition: Mapping[str, str] | None,
) -> pd.DataFrame:
    """Set ``runs["one_sided"]`` in place; return the condition pairs flagged one-sided.

    A run is marked when its condition is in a pair whose fold changes look one-sided
    (:func:`condition_pairs`); without ``run_condition`` nothing is checked or marked.
    """
    pairs = condition_pairs(layout, rho, group.index, run_condition)
    flagged = pairs.loc[pairs["one_sided"]]
    involved = set(flagged["condition_1"]) | set(flagged["condition_2"])
    condition = runs["run"].astype(str).map(dict(run_condition or {}))
    runs["one_sided"] = condition.isin(involved).to_numpy(dtype=bool)
    return flagged


def _shifts(
    out: pd.DataFrame,
    method: str,
    reference_proteins: Sequence[str],
    group: pd.Series,
    location: str,
    layout: Future[ProteinRatios],
    before: pd.Series,
) -> pd.Series | None:
    """Per-run shift of the shift-type methods (None for ``quantile`` and ``none``).

    ``before`` (the run medians of all ``log2_raw``, :class:`RunMedians`) is ``median``'s
    :math:`m_r` when no value is NaN: both are the exact middle order statistic (or the mean of
    the two middle ones) of the same values, so they are equal bit for bit (the grouped median
    skips NaNs, :func:`numpy.median` would not).
    """
    if method in ("median", "reference"):
        if method == "median" and not before.isna().any():
            med = before
        else:
            basis = out
            if method == "reference":
                basis = out.loc[_checked_reference_mask(out, reference_proteins, group.index)]
            med = basis.groupby("run", observed=True)["log2_raw"].median()
            med.index = med.index.astype(str)
        target = med.groupby(group.reindex(med.index)).transform("median")
        return med - target
    if method == "median_ratio":
        shift = _median_ratio_shifts(out, group)
        shift.index = shift.index.astype(str)
        return shift
    if method == "protein_median":
        used = None
        if reference_proteins:
            rows = _checked_reference_mask(out, reference_proteins, group.index)
            used = layout.result().cell_mask(rows)
        return _protein_median_shifts(out, group, location, layout.result(), used)
    return None


def _segment_medians(values: NDArray[np.float64], bounds: NDArray[np.int64]) -> NDArray[np.float64]:
    """Median of each segment ``values[bounds[i]:bounds[i + 1]]`` (NaN for empty segments)."""
    out = np.full(bounds.size - 1, np.nan)
    for i in range(bounds.size - 1):
        if bounds[i + 1] > bounds[i]:
            out[i] = np.median(values[bounds[i] : bounds[i + 1]])
    return out


def _segment_middles(
    values: NDArray[np.float64], bounds: NDArray[np.int64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_]]:
    """Per segment ``values[bounds[i]:bounds[i + 1]]``: its lower and upper middle order
    statistics (equal for an odd length; NaN for an empty segment), whether the length is odd,
    and whether the segment holds a NaN (its median is then NaN, as :func:`numpy.median`'s)."""
    n = bounds.size - 1
    low, high = np.full(n, np.nan), np.full(n, np.nan)
    sizes = np.diff(bounds)
    nan = np.zeros(n, dtype=bool)
    for i in range(n):
        k = int(sizes[i])
        if k == 0:
            continue
        segment = values[bounds[i] : bounds[i + 1]]
        # numpy.median's partition: the middle element(s) and the last (a NaN if any)
        part = np.partition(segment, sorted({(k - 1) // 2, k // 2, k - 1}))
        low[i], high[i] = part[(k - 1) // 2], part[k // 2]
        nan[i] = bool(np.isnan(part[-1]))
    return low, high, sizes % 2 == 1, nan


def _median_of_middles(
    low: NDArray[np.float64],
    high: NDArray[np.float64],
    odd: NDArray[np.bool_],
    nan: NDArray[np.bool_],
) -> NDArray[np.float64]:
    """The medians from :func:`_segment_middles`' order statistics, with :func:`numpy.median`'s
    arithmetic: the middle value, or the mean ``(low + high) / 2`` of the two middle ones."""
    with np.errstate(invalid="ignore"):
        medians: NDArray[np.float64] = np.where(odd, low, (low + high) / 2)
    medians[nan] = np.nan
    return medians


def run_medians(runs: pd.Series, values: pd.Series) -> pd.Series:
    """Median of ``values`` per run, sorting once (faster than a grouped median on millions)."""
    return RunMedians(runs)(values)


class RunMedians:
    """Medians per run of values aligned with ``runs``; the rows are sorted by run once and the
    order reused for every set of values (:func:`run_medians` of each).

    Parameters
    ----------
    runs : pandas.Series
        The run of each row.
    """

    def __init__(self, runs: pd.Series) -> None:
        codes, names = pd.factorize(runs)
        self.order = radix_argsort(codes.astype(np.int64, copy=False), len(names))
        self.bounds = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(names)))])
        self.names = pd.Index(names).astype(str)

    def __call__(self, values: pd.Series) -> pd.Series:
        """Median of ``values`` per run (NaN where a run's values include a NaN), indexed by
        the run names (as text) in order of first appearance; :meth:`shifted` then reuses its
        middle order statistics."""
        self._middles = _segment_middles(values.to_numpy(dtype=np.float64)[self.order], self.bounds)
        return pd.Series(_median_of_middles(*self._middles), index=self.names)

    def shifted(self, offsets: NDArray[np.float64]) -> pd.Series:
        """The medians of ``values - offsets`` for the ``values`` of the last call, where
        ``offsets`` (aligned with the rows) is constant within each run, without a pass over
        the rows.

        Exact: ``x -> fl(x - c)`` is non-decreasing, so the middle order statistics of a run's
        shifted values are the shifted middle order statistics, and the median formed from
        them (:func:`_median_of_middles`, :func:`numpy.median`'s arithmetic) is the median of
        the shifted values bit for bit; a run with a NaN value stays NaN.
        """
        low, high, odd, nan = self._middles
        first = self.order[np.minimum(self.bounds[:-1], max(self.order.size - 1, 0))]
        c = offsets[first] if offsets.size else np.zeros(low.size)
        return pd.Series(_median_of_middles(low - c, high - c, odd, nan), index=self.names)


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
    order = radix_argsort(run_codes[usable].astype(np.int64, copy=False), len(run_names))
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


def _protein_median_shifts(
    out: pd.DataFrame,
    group: pd.Series,
    location: str,
    layout: ProteinRatios,
    used: NDArray[np.bool_] | None = None,
    iterations: int = 3,
) -> pd.Series:
    """Per-run shifts of ``protein_median`` (module docstring), centred per group.

    ``layout`` is built on ``out`` with the runs of ``group.index``; ``used`` marks the
    (protein, run) cells of the proteins that enter the location (default all).
    """
    run_names = pd.Index(group.index.astype(str))
    y = out["log2_raw"].to_numpy(dtype=np.float64)
    groups = group.fillna("").to_numpy()
    shift = np.zeros(len(run_names))
    fell_back = np.zeros(len(run_names), dtype=bool)
    for _ in range(iterations):
        rho = layout.ratios(y, shift)
        step, fell_back = layout.location(rho, location, used)
        shift = shift + np.nan_to_num(step)
        for g in np.unique(groups):
            members = groups == g
            shift[members] -= shift[members].mean()
    if location == "mode" and fell_back.any():
        log.info(
            "normalisation protein_median: no clear mode (fewer than %d proteins or two "
            "similar peaks) in %d run(s), used the median there: %s",
            MIN_PROTEINS,
            int(fell_back.sum()),
            ", ".join(run_names[fell_back][:10]),
        )
    return pd.Series(shift, index=run_names)


def _with_diagnostics(
    runs: pd.DataFrame, layout: ProteinRatios, rho: NDArray[np.float64], group: pd.Series
) -> pd.DataFrame:
    """Add the per-run protein-ratio diagnostics of the normalised values to ``runs``.

    ``rho`` are the protein ratios of the normalised values (``layout`` built on the normalised
    table) and ``group`` is indexed with the runs in the order of ``runs``.
    """
    diag = layout.diagnostics(rho)
    centre = diag["ratio_median"].groupby(group.to_numpy()).transform("mean").to_numpy()
    diag["ratio_median"] -= centre
    diag["ratio_mode"] -= centre
    runs = pd.concat([runs.reset_index(drop=True), diag], axis=1)
    spread = runs["ratio_spread"].to_numpy(dtype=np.float64)
    limit = np.maximum(OFF_CENTRE_SPREADS * spread, OFF_CENTRE_FLOOR)
    limit = np.fmax(limit, MODE_SES * runs["ratio_mode_se"].to_numpy(dtype=np.float64))
    shift = runs["shift"].abs().to_numpy(dtype=np.float64)
    enough = runs["n_proteins"].to_numpy() >= MIN_PROTEINS_CHECK
    with np.errstate(invalid="ignore"):
        skewed = _off_centre(runs) > limit
        large = shift > np.maximum(SHIFT_SPREADS * spread, SHIFT_FLOOR)
    runs["doubtful"] = enough & (runs["bimodal"].to_numpy(dtype=bool) | skewed | large)
    return runs


def _off_centre(runs: pd.DataFrame) -> NDArray[np.float64]:
    """Per run ``max(|ratio_median|, |ratio_mode|)`` (NaNs ignored)."""
    median = np.abs(runs["ratio_median"].to_numpy(dtype=np.float64))
    mode = np.abs(runs["ratio_mode"].to_numpy(dtype=np.float64))
    off: NDArray[np.float64] = np.fmax(median, mode)
    return off


def condition_pairs(
    layout: ProteinRatios,
    rho: NDArray[np.float64],
    run_names: pd.Index,
    run_condition: Mapping[str, str] | None,
) -> pd.DataFrame:
    """One-sided fold changes between every pair of conditions (module docstring).

    Parameters
    ----------
    layout : ProteinRatios
        Layout of the normalised table, runs in the order of ``run_names``.
    rho : numpy.ndarray
        Protein ratios of the normalised values (:meth:`ProteinRatios.ratios`).
    run_names : pandas.Index
        Runs in layout order.
    run_condition : mapping of str to str, optional
        Condition of each run (default None: no pair is checked).

    Returns
    -------
    pandas.DataFrame
        One row per pair: ``condition_1, condition_2`` (fold change = condition_2 minus
        condition_1), ``n_proteins, fc_median, fc_mode, fc_mode_se, share_above,
        share_below, one_sided``.
    """
    columns = ["condition_1", "condition_2", "n_proteins", "fc_median", "fc_mode"]
    columns += ["fc_mode_se", "share_above", "share_below", "one_sided"]
    if not run_condition:
        return pd.DataFrame(columns=columns).astype({"one_sided": bool})
    cond = pd.Series(run_names.astype(str), index=run_names).map(dict(run_condition))
    levels = [c for c in pd.unique(cond.dropna())]
    matrix = layout.matrix(rho)
    rows = []
    for i, first in enumerate(levels):
        for second in levels[i + 1 :]:
            a = matrix[:, (cond == first).to_numpy()]
            b = matrix[:, (cond == second).to_numpy()]
            rows.append({"condition_1": first, "condition_2": second, **_fold_change_shape(a, b)})
    for row in rows:
        log.info(
            "fold changes %s - %s: %d proteins, median %.3f, mode %.3f (SE %.3f), %.0f%% above"
            " the mode, %.0f%% below%s",
            row["condition_2"],
            row["condition_1"],
            row["n_proteins"],
            row["fc_median"],
            row["fc_mode"],
            row["fc_mode_se"],
            100 * row["share_above"],
            100 * row["share_below"],
            ": one-sided" if row["one_sided"] else "",
        )
    return pd.DataFrame(rows, columns=columns).astype({"one_sided": bool})


def _fold_change_shape(a: NDArray[np.float64], b: NDArray[np.float64]) -> dict[str, Any]:
    """Median, KDE mode and one-sidedness of the protein fold changes ``mean(b) - mean(a)``.

    ``a`` and ``b`` are proteins x runs ratio arrays; a protein counts when it has a ratio in
    at least ``min(2, runs)`` runs of each condition.
    """
    seen_a, seen_b = np.sum(~np.isnan(a), axis=1), np.sum(~np.isnan(b), axis=1)
    keep = (seen_a >= min(2, a.shape[1])) & (seen_b >= min(2, b.shape[1]))
    fc = np.nanmean(b[keep], axis=1) - np.nanmean(a[keep], axis=1) if keep.any() else keep[:0]
    result: dict[str, Any] = {"n_proteins": int(fc.size), "fc_median": np.nan, "fc_mode": np.nan}
    result.update(fc_mode_se=np.nan, share_above=np.nan, share_below=np.nan, one_sided=False)
    if fc.size < MIN_PROTEINS_CHECK:
        return result
    median = float(np.median(fc))
    result["fc_median"] = median
    peaks = [(m, se) for m, se in kde_peaks(fc) if np.isfinite(se)]
    if not peaks:
        return result
    # the candidate peak nearest the median: one-sided only if the median is off every peak
    mode, se = min(peaks, key=lambda peak: abs(peak[0] - median))
    result.update(
        fc_mode=mode,
        fc_mode_se=se,
        share_above=float(np.mean(fc > mode)),
        share_below=float(np.mean(fc < mode)),
    )
    off = [abs(median - m) > max(ONE_SIDED_FLOOR, ONE_SIDED_SES * e) for m, e in peaks]
    result["one_sided"] = bool(all(off))
    return result


def _run_part(runs: pd.DataFrame) -> str:
    """The alert's sentence on the doubtful runs ('' if none)."""
    bad = runs.loc[runs["doubtful"]]
    if bad.empty:
        return ""
    names = ", ".join(bad["run"].astype(str).head(10))
    more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
    off = _off_centre(bad)
    return (
        f" in {len(bad)} of {len(runs)} runs ({names}{more}):"
        f" {int(bad['bimodal'].sum())} have a bimodal distribution of protein log ratios,"
        f" the median or mode of their protein ratios is up to {np.nanmax(off):.2f} log2 off"
        f" centre, largest shift {bad['shift'].abs().max():.2f} log2 (results/normalize/runs.tsv)."
    )


def _pair_part(flagged: pd.DataFrame) -> str:
    """The alert's sentence on the one-sided pairs of conditions ('' if none)."""
    if flagged.empty:
        return ""
    items = [
        f"{r['condition_2']} vs {r['condition_1']} (all runs of both conditions;"
        f" {100 * r['share_above']:.0f}% of the proteins lie above the peak of the fold"
        f" changes, {100 * r['share_below']:.0f}% below; their median is"
        f" {r['fc_median'] - r['fc_mode']:+.2f} log2 from the peak)"
        for r in flagged.head(5).to_dict("records")
    ]
    more = f" and {len(flagged) - 5} more pairs" if len(flagged) > 5 else ""
    return (
        " between conditions: most proteins change in one direction in "
        + "; ".join(items)
        + more
        + "."
    )


def _alert_doubtful(runs: pd.DataFrame, method: str, flagged: pd.DataFrame) -> None:
    """One ``normalization_doubtful`` alert naming the doubtful runs and one-sided pairs."""
    run_part, pair_part = _run_part(runs), _pair_part(flagged)
    if not run_part and not pair_part:
        return
    joined = run_part + (" Also" if run_part and pair_part else "") + pair_part
    alert(
        log,
        "normalization_doubtful",
        f"normalisation {method} may be biased{joined}"
        " Many proteins may change together (spike-ins, pull-downs, strong treatments), which"
        " moves every data-driven normalisation. If some proteins are known not to change, set"
        " normalization.method: reference with normalization.reference_proteins: [their ids or"
        " regex:<pattern>]; if equal amounts were loaded and acquired, set"
        " normalization.method: none.",
    )


def normalization_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of :func:`normalize` from the ``normalization:`` config section."""
    return {
        "method": config.get("method", DEFAULT_METHOD),
        "reference_proteins": list(config.get("reference_proteins", [])),
        "within_batch": bool(config.get("within_batch", False)),
        "location": config.get("location", DEFAULT_LOCATION),
    }
