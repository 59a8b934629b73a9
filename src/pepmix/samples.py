"""Sample sheets: which run belongs to which condition, biological sample and batch.

A TSV sample sheet has one row per MS run with columns ``run`` and ``condition`` and optionally
``bioreplicate`` (biological sample; defaults to the run, i.e. no technical replicates) and
``batch``. Further columns are kept as run-level covariates. Condition levels keep their order of
first appearance in the sheet; the first level is the reference of treatment coding.

Fractions
---------
A fractionated sample is measured as several data files that together make one run. The sheet
then has a ``file`` column and one row per data file: rows sharing a ``run`` are the fractions of
that run (an optional ``fraction`` column numbers them, for the record). ``file`` values are
matched against the run names the readers produce (the data file name without directories and MS
extensions); every other column must have the same value in all rows of a run. The merge step maps
each file to its run and sums the fractions of a feature (:func:`pepmix.merge.merge_batches`).
Without a ``file`` column, the run names in the data are the runs of the sheet. SDRF sheets
express the same with ``comment[fraction identifier]`` (see :mod:`pepmix.sdrf`).

:func:`read_sample_design` and :func:`load_design` return both levels as a
:class:`SampleDesign`; :func:`read_sample_sheet` and :func:`load_sample_sheet` return the runs only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pepmix.errors import ConfigError, SampleSheetError
from pepmix.readers._common import check_text_file, run_name

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


def read_sample_sheet(path: str | Path) -> pd.DataFrame:
    """Read and check a TSV sample sheet.

    Parameters
    ----------
    path : str or pathlib.Path
        Tab-separated file with a header row.

    Returns
    -------
    pandas.DataFrame
        One row per run: columns ``run``, ``condition``, ``bioreplicate``, ``batch`` (strings;
        ``batch`` may be null) followed by any other run-level columns of the sheet. ``run`` values
        are normalized like run names in the data (directories and MS file extensions removed).

    Raises
    ------
    SampleSheetError
        On a missing file or column, an empty value, or a duplicated run.
    """
    return read_sample_design(path).runs


def read_sample_design(path: str | Path) -> SampleDesign:
    """Read and check a TSV sample sheet, keeping its data files (see module docstring).

    Parameters
    ----------
    path : str or pathlib.Path
        Tab-separated file with a header row; optional ``file`` and ``fraction`` columns.

    Returns
    -------
    SampleDesign
        Runs, and the data files of each run when the sheet has a ``file`` column.

    Raises
    ------
    SampleSheetError
        On a missing file or column, a file that is not UTF-8 text or holds a NUL byte, an empty
        value, a duplicated run or file, or a run whose files disagree on a run-level column.
    """
    p = Path(path)
    if not p.exists():
        raise SampleSheetError(f"{p}: sample sheet not found")
    check_text_file(p, SampleSheetError)
    try:
        sheet = pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False, comment=None)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise SampleSheetError(f"{p}: cannot parse as a tab-separated table ({exc})") from None
    sheet.columns = [str(c).strip() for c in sheet.columns]
    missing = [c for c in REQUIRED if c not in sheet.columns]
    if missing:
        hint = (
            " (is it comma-separated? it must be tab-separated)" if len(sheet.columns) == 1 else ""
        )
        raise SampleSheetError(
            f"{p}: missing column(s) {', '.join(missing)}; columns present: "
            f"{', '.join(sheet.columns)}{hint}"
        )
    return normalize_design(sheet, str(p))


def load_sample_sheet(
    path: str | Path,
    fmt: str = "auto",
    condition_column: str | None = None,
    bioreplicate_column: str | None = None,
    batch_column: str | None = None,
) -> pd.DataFrame:
    """Read a sample sheet in either layout (pepmix TSV or SDRF-Proteomics): one row per run.

    Parameters and errors as :func:`load_design`; returns :attr:`SampleDesign.runs`.
    """
    return load_design(path, fmt, condition_column, bioreplicate_column, batch_column).runs


def load_design(
    path: str | Path,
    fmt: str = "auto",
    condition_column: str | None = None,
    bioreplicate_column: str | None = None,
    batch_column: str | None = None,
) -> SampleDesign:
    """Read a sample sheet in either layout: pepmix TSV or SDRF-Proteomics.

    Parameters
    ----------
    path : str or pathlib.Path
        Sample sheet file.
    fmt : {"auto", "tsv", "sdrf"}, default "auto"
        Layout. ``"auto"`` reads the header line: SDRF if a column starts with ``source name`` or
        is ``comment[data file]`` (case-insensitive), TSV otherwise.
    condition_column, bioreplicate_column, batch_column : str, optional
        SDRF only: see :func:`pepmix.sdrf.read_sdrf` (defaults there). Giving one for a TSV
        sheet is an error: a TSV sheet names its columns ``condition``, ``bioreplicate``,
        ``batch``.

    Returns
    -------
    SampleDesign
        Runs (as :func:`read_sample_sheet`) and, for fractionated designs, their data files.

    Raises
    ------
    ConfigError
        On an unknown ``fmt`` or column options given for a TSV sheet.
    SampleSheetError
        On any problem in the sheet itself.
    """
    from pepmix import sdrf

    if fmt not in ("auto", "tsv", "sdrf"):
        raise ConfigError(f"sample sheet format must be auto, tsv or sdrf, got {fmt!r}")
    p = Path(path)
    if fmt == "auto":
        if not p.exists():
            raise SampleSheetError(f"{p}: sample sheet not found")
        with open(p, encoding="utf-8-sig", errors="replace") as handle:
            first = handle.readline().rstrip("\r\n")
        fmt = "sdrf" if sdrf.is_sdrf_header(first.split("\t")) else "tsv"
    if fmt == "sdrf":
        return sdrf.read_sdrf_design(p, condition_column, bioreplicate_column, batch_column)
    given = [
        name
        for name, value in (
            ("condition_column", condition_column),
            ("bioreplicate_column", bioreplicate_column),
            ("batch_column", batch_column),
        )
        if value is not None
    ]
    if given:
        raise ConfigError(
            f"{p}: {', '.join(given)} apply to SDRF sample sheets only; this is a TSV sheet "
            "(columns run, condition, bioreplicate, batch)"
        )
    return read_sample_design(p)


def normalize_sheet(sheet: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check a sample sheet frame and fill defaults: one row per run (see normalize_design)."""
    return normalize_design(sheet, source).runs


def normalize_design(sheet: pd.DataFrame, source: str) -> SampleDesign:
    """Check a sample sheet frame, fill defaults and split it into runs and data files.

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
        See :func:`read_sample_design`.

    Raises
    ------
    SampleSheetError
        On an empty required value, a duplicated run (no ``file`` column) or file, a run whose
        files disagree on a run-level column, or a biological sample in several conditions.
    """
    sheet = sheet.copy()
    for col in sheet.columns:
        sheet[col] = sheet[col].astype(str).str.strip()
    required = (*REQUIRED, "file") if "file" in sheet.columns else REQUIRED
    for col in required:
        empty = sheet[col] == ""
        if empty.any():
            first = int(empty.to_numpy().nonzero()[0][0]) + 2
            raise SampleSheetError(
                f"{source}: line {first}: empty {col!r} ({int(empty.sum())} row(s) in all)"
            )
    sheet["run"] = sheet["run"].map(run_name)
    has_files = "file" in sheet.columns
    key = "file" if has_files else "run"
    if has_files:
        sheet["file"] = sheet["file"].map(run_name)
    dup = sheet[key][sheet[key].duplicated()]
    if len(dup):
        raise SampleSheetError(
            f"{source}: {key}(s) listed more than once: {', '.join(dup.unique())}"
        )
    if "bioreplicate" not in sheet.columns:
        sheet["bioreplicate"] = sheet["run"]
    else:
        blank = sheet["bioreplicate"] == ""
        sheet.loc[blank, "bioreplicate"] = sheet.loc[blank, "run"]
    if "batch" not in sheet.columns:
        sheet["batch"] = pd.NA
    else:
        sheet["batch"] = sheet["batch"].replace("", pd.NA)
    leading = ["run", "condition", "bioreplicate", "batch"]
    others = [c for c in sheet.columns if c not in leading and c not in FILE_LEVEL]
    files = None
    if has_files:
        files = pd.DataFrame(
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
        _check_run_level(sheet, leading[1:] + others, source)
    runs = sheet.drop_duplicates("run")[leading + others].reset_index(drop=True)
    mixed = runs.groupby("bioreplicate")["condition"].nunique()
    if (mixed > 1).any():
        bad = mixed[mixed > 1].index[0]
        raise SampleSheetError(
            f"{source}: bioreplicate {bad!r} has runs in more than one condition"
        )
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
