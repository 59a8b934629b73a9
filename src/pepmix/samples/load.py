"""The one sample-sheet loader: detect the layout (TSV or SDRF) and read the sheet.

The top layer of :mod:`pepmix.samples`: it imports the two readers, which import
:mod:`pepmix.samples.design`; nothing below imports upwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO, Final

import pandas as pd

from pepmix.errors import ConfigError, SampleSheetError
from pepmix.samples.design import SampleDesign
from pepmix.samples.sdrf import is_sdrf_header, read_sdrf_design
from pepmix.samples.tsv import read_tsv_design

FORMATS: Final = ("auto", "tsv", "sdrf")
"""Values of ``fmt`` (config ``sample_sheet: format``)."""
SDRF_OPTIONS: Final = ("condition_column", "bioreplicate_column", "batch_column")
"""The config's ``sample_sheet:`` keys that name SDRF columns (see :func:`load_design`)."""


def load_design(
    path: str | Path,
    fmt: str = "auto",
    condition_column: str | None = None,
    bioreplicate_column: str | None = None,
    batch_column: str | None = None,
) -> SampleDesign:
    """Read a sample sheet in either layout: pepmix TSV or SDRF-Proteomics.

    Every reader of a sample sheet in pepmix (the workflow's set-up in ``rules/common.smk``, the
    merge stage, benchmarks and tests) calls this function; with the config's ``sample_sheet:``
    section, pass ``**sheet_options(config.get("sample_sheet"))``.

    Parameters
    ----------
    path : str or pathlib.Path
        Sample sheet file.
    fmt : {"auto", "tsv", "sdrf"}, default "auto"
        Layout. ``"auto"`` reads the header line: SDRF if a column starts with ``source name`` or
        is ``comment[data file]`` (case-insensitive), TSV otherwise.
    condition_column, bioreplicate_column, batch_column : str, optional
        SDRF only: see :func:`pepmix.samples.sdrf.read_sdrf_design` (defaults there: the only
        ``factor value[...]`` column; source name and biological replicate; no batch). Giving one
        for a TSV sheet is an error: a TSV sheet names its columns ``condition``,
        ``bioreplicate``, ``batch``.

    Returns
    -------
    SampleDesign
        ``runs``: one row per run, ``run``, ``condition``, ``bioreplicate``, ``batch`` (may be
        null), then the other run-level columns; ``files``: for fractionated designs, the data
        files of each run, otherwise None.

    Raises
    ------
    ConfigError
        On an unknown ``fmt`` or column options given for a TSV sheet.
    SampleSheetError
        On any problem in the sheet itself.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"sample sheet format must be auto, tsv or sdrf, got {fmt!r}")
    p = Path(path)
    if fmt == "auto":
        fmt = _detect_layout(p)
    if fmt == "sdrf":
        return read_sdrf_design(p, condition_column, bioreplicate_column, batch_column)
    given = [
        name
        for name, value in zip(
            SDRF_OPTIONS, (condition_column, bioreplicate_column, batch_column), strict=True
        )
        if value is not None
    ]
    if given:
        raise ConfigError(
            f"{p}: {', '.join(given)} apply to SDRF sample sheets only; this is a TSV sheet "
            "(columns run, condition, bioreplicate, batch)"
        )
    return read_tsv_design(p)


def sheet_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Keyword arguments of :func:`load_design` from the config's ``sample_sheet:`` section.

    Parameters
    ----------
    options : mapping or None
        ``format`` (default ``"auto"``) and the SDRF column names (default None each); None or
        an empty mapping gives the defaults.

    Returns
    -------
    dict
        ``fmt``, ``condition_column``, ``bioreplicate_column``, ``batch_column``.
    """
    opts = dict(options or {})
    return {"fmt": opts.get("format", "auto"), **{key: opts.get(key) for key in SDRF_OPTIONS}}


def read_resolved_sheet(path: str | Path | BinaryIO) -> pd.DataFrame:
    """Read the sample sheet the merge stage writes (``results/ingest/samples.tsv``).

    That sheet was checked by :func:`load_design` and resolved (``batch`` filled from the input
    names), so it is read as is: strings, ``NA`` as null.

    Parameters
    ----------
    path : str, pathlib.Path or binary file
        The resolved sheet, one row per run (a file object: its bytes, as the Python API
        re-reads an in-memory sheet).

    Returns
    -------
    pandas.DataFrame
        One row per run, all columns strings (``batch`` null where ``NA``).

    Raises
    ------
    SampleSheetError
        If the sheet has no row.
    """
    sheet = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_values=["NA"])
    if sheet.empty:
        raise SampleSheetError(f"{path}: empty sample sheet")
    return sheet


def _detect_layout(path: Path) -> str:
    """``"sdrf"`` or ``"tsv"`` from the header line of a sample sheet."""
    if not path.exists():
        raise SampleSheetError(f"{path}: sample sheet not found")
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        first = handle.readline().rstrip("\r\n")
    return "sdrf" if is_sdrf_header(first.split("\t")) else "tsv"
