"""Sample sheets: which run belongs to which condition, biological sample and batch.

A TSV sample sheet has one row per MS run with columns ``run`` and ``condition`` and optionally
``bioreplicate`` (biological sample; defaults to the run, i.e. no technical replicates) and
``batch``. Further columns are kept as run-level covariates. Condition levels keep their order of
first appearance in the sheet; the first level is the reference of treatment coding.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from pepmix.errors import ConfigError, SampleSheetError
from pepmix.readers._common import run_name

REQUIRED = ("run", "condition")


def read_sample_sheet(path: str | Path) -> pd.DataFrame:
    """Read and check a TSV sample sheet.

    Parameters
    ----------
    path : str or pathlib.Path
        Tab-separated file with a header row.

    Returns
    -------
    pandas.DataFrame
        Columns ``run``, ``condition``, ``bioreplicate``, ``batch`` (strings; ``batch`` may be
        null) followed by any other columns of the sheet. ``run`` values are normalized like run
        names in the data (directories and MS file extensions removed).

    Raises
    ------
    SampleSheetError
        On a missing file or column, an empty value, or a duplicated run.
    """
    p = Path(path)
    if not p.exists():
        raise SampleSheetError(f"{p}: sample sheet not found")
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
    return normalize_sheet(sheet, str(p))


def load_sample_sheet(
    path: str | Path,
    fmt: str = "auto",
    condition_column: str | None = None,
    bioreplicate_column: str | None = None,
    batch_column: str | None = None,
) -> pd.DataFrame:
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
    pandas.DataFrame
        As :func:`read_sample_sheet`.

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
        return sdrf.read_sdrf(p, condition_column, bioreplicate_column, batch_column)
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
    return read_sample_sheet(p)


def normalize_sheet(sheet: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check a sample sheet frame and fill defaults (see :func:`read_sample_sheet`)."""
    sheet = sheet.copy()
    for col in sheet.columns:
        sheet[col] = sheet[col].astype(str).str.strip()
    for col in REQUIRED:
        empty = sheet[col] == ""
        if empty.any():
            first = int(empty.to_numpy().nonzero()[0][0]) + 2
            raise SampleSheetError(
                f"{source}: line {first}: empty {col!r} ({int(empty.sum())} row(s) in all)"
            )
    sheet["run"] = sheet["run"].map(run_name)
    dup = sheet["run"][sheet["run"].duplicated()]
    if len(dup):
        raise SampleSheetError(f"{source}: run(s) listed more than once: {', '.join(dup.unique())}")
    if "bioreplicate" not in sheet.columns:
        sheet["bioreplicate"] = sheet["run"]
    else:
        blank = sheet["bioreplicate"] == ""
        sheet.loc[blank, "bioreplicate"] = sheet.loc[blank, "run"]
    if "batch" not in sheet.columns:
        sheet["batch"] = pd.NA
    else:
        sheet["batch"] = sheet["batch"].replace("", pd.NA)
    mixed = sheet.groupby("bioreplicate")["condition"].nunique()
    if (mixed > 1).any():
        bad = mixed[mixed > 1].index[0]
        raise SampleSheetError(
            f"{source}: bioreplicate {bad!r} has runs in more than one condition"
        )
    leading = ["run", "condition", "bioreplicate", "batch"]
    others = [c for c in sheet.columns if c not in leading]
    return sheet[leading + others].reset_index(drop=True)


def condition_levels(sheet: pd.DataFrame) -> list[str]:
    """Condition levels in order of first appearance in the sheet."""
    return list(dict.fromkeys(sheet["condition"]))


def check_runs(sheet: pd.DataFrame, runs: Iterable[str], source: str = "sample sheet") -> None:
    """Require the runs in the data and in the sheet to be the same set.

    Raises
    ------
    SampleSheetError
        Naming the runs found in the data but not in the sheet, and vice versa.
    """
    data_runs = set(runs)
    sheet_runs = set(sheet["run"])
    only_data = sorted(data_runs - sheet_runs)
    only_sheet = sorted(sheet_runs - data_runs)
    problems = []
    if only_data:
        problems.append(f"run(s) in the data but not in the sheet: {', '.join(only_data)}")
    if only_sheet:
        problems.append(f"run(s) in the sheet but not in the data: {', '.join(only_sheet)}")
    if problems:
        raise SampleSheetError(f"{source}: " + "; ".join(problems))
