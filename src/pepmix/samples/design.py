"""The sample design: validation of a sample sheet and checks of the runs against the data.

The bottom layer of :mod:`pepmix.samples` (see there for the sheet layouts): the readers
(:mod:`pepmix.samples.tsv`, :mod:`pepmix.samples.sdrf`) build a frame and call
:func:`validate_design`; nothing here reads a file."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from pepmix.errors import SampleSheetError
from pepmix.readers._common import run_name

log = logging.getLogger(__name__)

REQUIRED = ("run", "condition")
FILE_LEVEL = ("file", "fraction")
"""Columns describing a data file rather than a run; they are kept in :attr:`SampleDesign.files`."""


@dataclass(frozen=True)
class SampleDesign:
    """A sample sheet resolved to MS runs, with the data files that make up each run.

    Attributes
    ----------
    runs : pandas.DataFrame
        One row per run: ``run``, ``condition``, ``bioreplicate``, ``batch`` (may be null), then
        the other run-level columns of the sheet.
    files : pandas.DataFrame or None
        One row per data file: ``file``, ``run``, ``fraction`` (null when not given), in sheet
        order. None when the sheet names no data files: the data's run names are then the runs.
    """

    runs: pd.DataFrame
    files: pd.DataFrame | None = None

    def file_runs(self) -> dict[str, str] | None:
        """Map data file -> run, or None when the sheet names no data files."""
        if self.files is None:
            return None
        return dict(zip(self.files["file"], self.files["run"], strict=True))


def validate_design(sheet: pd.DataFrame, source: str) -> SampleDesign:
    """Check a sample sheet frame, fill defaults and split it into runs and data files.

    Both sheet readers (:func:`pepmix.samples.tsv.read_tsv_design`,
    :func:`pepmix.samples.sdrf.read_sdrf_design`) end here, so a TSV sheet and an SDRF are held to
    the same rules.

    Parameters
    ----------
    sheet : pandas.DataFrame
        Columns ``run`` and ``condition``, optionally ``bioreplicate``, ``batch``, ``file``,
        ``fraction`` and others; one row per run, or per data file when ``file`` is present.
    source : str
        Name of the sheet, for messages.

    Returns
    -------
    SampleDesign
        Runs (``run``, ``condition``, ``bioreplicate``, ``batch``, then the other run-level
        columns) and, when the sheet has a ``file`` column, the data files of each run.

    Raises
    ------
    SampleSheetError
        On an empty required value, a duplicated run (no ``file`` column) or file, a run whose
        files disagree on a run-level column, or a biological sample in several conditions.
    """
    sheet = _stripped(sheet)
    has_files = "file" in sheet.columns
    _check_required_values(sheet, (*REQUIRED, "file") if has_files else REQUIRED, source)
    _canonical_run_names(sheet, has_files, source)
    _fill_bioreplicate_and_batch(sheet)
    leading = ["run", "condition", "bioreplicate", "batch"]
    others = [c for c in sheet.columns if c not in leading and c not in FILE_LEVEL]
    files = None
    if has_files:
        files = _file_table(sheet)
        _check_run_level(sheet, leading[1:] + others, source)
    runs = sheet.drop_duplicates("run")[leading + others].reset_index(drop=True)
    _check_one_condition_per_bioreplicate(runs, source)
    if files is not None:
        n_fractionated = int((files.groupby("run").size() > 1).sum())
        log.info(
            "%s: %d data file(s) in %d run(s), %d of them fractionated",
            source,
            len(files),
            len(runs),
            n_fractionated,
        )
    return SampleDesign(runs=runs, files=files)


def _stripped(sheet: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``sheet`` with every value as a string without surrounding blanks."""
    sheet = sheet.copy()
    for col in sheet.columns:
        sheet[col] = sheet[col].astype(str).str.strip()
    return sheet


def _check_required_values(sheet: pd.DataFrame, columns: Iterable[str], source: str) -> None:
    """Reject an empty cell in a required column, naming the first line (header = line 1)."""
    for col in columns:
        empty = sheet[col] == ""
        if empty.any():
            first = int(empty.to_numpy().nonzero()[0][0]) + 2
            raise SampleSheetError(
                f"{source}: line {first}: empty {col!r} ({int(empty.sum())} row(s) in all)"
            )


def _canonical_run_names(sheet: pd.DataFrame, has_files: bool, source: str) -> None:
    """Name runs (and files) as the readers do, in place; reject a repeated run or file.

    Runs are the key of a sheet without a ``file`` column, files the key of one with it.
    """
    sheet["run"] = sheet["run"].map(run_name)
    key = "file" if has_files else "run"
    if has_files:
        sheet["file"] = sheet["file"].map(run_name)
    dup = sheet[key][sheet[key].duplicated()]
    if len(dup):
        raise SampleSheetError(
            f"{source}: {key}(s) listed more than once: {', '.join(dup.unique())}"
        )


def _fill_bioreplicate_and_batch(sheet: pd.DataFrame) -> None:
    """Default ``bioreplicate`` to the run and ``batch`` to null (missing or empty), in place."""
    if "bioreplicate" not in sheet.columns:
        sheet["bioreplicate"] = sheet["run"]
    else:
        blank = sheet["bioreplicate"] == ""
        sheet.loc[blank, "bioreplicate"] = sheet.loc[blank, "run"]
    if "batch" not in sheet.columns:
        sheet["batch"] = pd.NA
    else:
        sheet["batch"] = sheet["batch"].replace("", pd.NA)


def _file_table(sheet: pd.DataFrame) -> pd.DataFrame:
    """The data files of a sheet with a ``file`` column: ``file, run, fraction`` (null if none)."""
    return pd.DataFrame(
        {
            "file": sheet["file"],
            "run": sheet["run"],
            "fraction": (
                sheet["fraction"].replace("", pd.NA)
                if "fraction" in sheet.columns
                else pd.Series(pd.NA, index=sheet.index, dtype="object")
            ),
        }
    ).reset_index(drop=True)


def _check_one_condition_per_bioreplicate(runs: pd.DataFrame, source: str) -> None:
    """Reject a biological sample whose runs are in more than one condition."""
    mixed = runs.groupby("bioreplicate")["condition"].nunique()
    if (mixed > 1).any():
        bad = mixed[mixed > 1].index[0]
        raise SampleSheetError(
            f"{source}: bioreplicate {bad!r} has runs in more than one condition"
        )


def _check_run_level(sheet: pd.DataFrame, columns: Iterable[str], source: str) -> None:
    """Require every run-level column to have one value over the files of a run."""
    for col in columns:
        values = sheet[col].astype("string").fillna("")
        n_values = values.groupby(sheet["run"], sort=False).nunique()
        if (n_values > 1).any():
            run = str(n_values[n_values > 1].index[0])
            found = ", ".join(repr(v) for v in dict.fromkeys(values[sheet["run"] == run]))
            raise SampleSheetError(
                f"{source}: the files of run {run!r} have different {col!r} values ({found}); "
                "a run-level column must be the same in all rows of a run"
            )


def condition_levels(sheet: pd.DataFrame) -> list[str]:
    """Condition levels in order of first appearance in the sheet."""
    return list(dict.fromkeys(sheet["condition"]))


def check_runs(
    sheet: pd.DataFrame,
    runs: Iterable[str],
    source: str = "sample sheet",
    empty_runs: Iterable[str] = (),
) -> None:
    """Require the runs in the data and in the sheet to be the same set.

    Parameters
    ----------
    sheet : pandas.DataFrame
        Sample sheet, one row per run.
    runs : iterable of str
        Runs with at least one observation in the data.
    source : str, default "sample sheet"
        Name of the sheet, for messages.
    empty_runs : iterable of str, default ()
        Runs that are in the data files but have no valid intensity (all missing or zero);
        named as such rather than as absent from the data.

    Raises
    ------
    SampleSheetError
        Naming the runs found in the data but not in the sheet, the sheet's runs without any
        valid value, and the sheet's runs absent from the data.
    """
    data_runs = set(runs)
    sheet_runs = set(sheet["run"])
    only_data = sorted(data_runs - sheet_runs)
    only_sheet = sheet_runs - data_runs
    empty = sorted(only_sheet & set(empty_runs))
    absent = sorted(only_sheet - set(empty))
    problems = []
    if only_data:
        problems.append(f"run(s) in the data but not in the sheet: {', '.join(only_data)}")
    if empty:
        problems.append(
            f"run(s) in the data with no valid intensity (every value missing or zero): "
            f"{', '.join(empty)}; remove them from the sheet or check the export"
        )
    if absent:
        problems.append(f"run(s) in the sheet but not in the data: {', '.join(absent)}")
    if problems:
        raise SampleSheetError(f"{source}: " + "; ".join(problems))
