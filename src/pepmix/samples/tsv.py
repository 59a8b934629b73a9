"""The pepmix TSV sample sheet: one row per run (or per data file), tab-separated.

Columns and rules: see :mod:`pepmix.samples`. Reading is parsing plus the header check; the
values are checked by :func:`pepmix.samples.design.validate_design`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pepmix.errors import SampleSheetError
from pepmix.readers._common import check_text_file
from pepmix.samples.design import REQUIRED, SampleDesign, validate_design


def read_tsv_design(path: str | Path) -> SampleDesign:
    """Read and check a TSV sample sheet, keeping its data files.

    Use :func:`pepmix.samples.load_design`, which detects the layout; this is its TSV step.

    Parameters
    ----------
    path : str or pathlib.Path
        Tab-separated file with a header row; optional ``file`` and ``fraction`` columns.

    Returns
    -------
    SampleDesign
        Runs (``run``, ``condition``, ``bioreplicate``, ``batch`` as strings, ``batch`` may be
        null, then any other run-level columns; ``run`` values normalized like run names in the
        data: directories and MS file extensions removed), and the data files of each run when
        the sheet has a ``file`` column.

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
    _check_required_columns(sheet.columns, p)
    return validate_design(sheet, str(p))


def _check_required_columns(columns: pd.Index, path: Path) -> None:
    """Reject a header without ``run`` or ``condition`` (hinting at a comma-separated file)."""
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        hint = " (is it comma-separated? it must be tab-separated)" if len(columns) == 1 else ""
        raise SampleSheetError(
            f"{path}: missing column(s) {', '.join(missing)}; columns present: "
            f"{', '.join(columns)}{hint}"
        )
