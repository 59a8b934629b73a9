"""Sage ``lfq.tsv``: label-free quantification table, one row per precursor.

Columns ``peptide``, ``charge``, ``proteins``, ``q_value``, ``score``, ``spectral_angle``, then one
intensity column per input file, named by the file (``<run>.mzML.gz``, ``<run>.mzML``, ``<run>.d``
...). Columns used:

============ =====================================================================
canonical    lfq.tsv column
============ =====================================================================
feature      ``peptide`` + ``_`` + ``charge``
peptide      ``peptide`` (with Sage's bracketed mass shifts, e.g. ``C[+57.0215]``)
charge       ``charge``
run          each file column, extensions removed (``A.mzML.gz`` -> ``A``)
intensity    the file column's value (0 = not quantified, dropped at conform)
protein      ``proteins`` (all proteins the peptide maps to, ``;``-separated)
q_value      ``q_value`` (precursor-level, one value for all runs)
unique       ``proteins`` has no ``;``
decoy        ``decoy`` column when present; otherwise every member of ``proteins`` matches
             ``decoy_pattern`` (Sage's decoy tag is ``rev_``)
contaminant  a member of ``proteins`` matches ``contaminant_pattern``
============ =====================================================================

Run columns: the columns whose names carry an MS file extension (recognised by
:func:`pepmix.readers._common.run_name`); if none do, every column not in the fixed set above is a
run column. Sage does not infer protein groups, so the protein of a shared peptide is the list of
its proteins; with the default ``shared_peptides: exclude`` filter those rows are removed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from pepmix.errors import InputFormatError
from pepmix.readers._common import require_columns, run_name, to_float
from pepmix.readers._support import (
    DEFAULT_CONTAMINANT_PATTERN,
    DEFAULT_DECOY_PATTERN,
    flag_proteins,
    melt_runs,
    option_pattern,
    parse_flag,
    precursor_id,
    read_all_selected,
    table_header,
)

log = logging.getLogger(__name__)

SIGNATURE: dict[str, tuple[str, ...]] = {
    "sage": ("peptide", "charge", "proteins", "q_value", "score", "spectral_angle"),
}

_METADATA = frozenset(
    {"peptide", "charge", "proteins", "q_value", "score", "spectral_angle", "decoy", "label"}
)


def _run_columns(header: list[str], path: Path) -> list[str]:
    candidates = [c for c in header if c not in _METADATA]
    with_extension = [c for c in candidates if run_name(c) != c]
    runs = with_extension or candidates
    if not runs:
        raise InputFormatError(
            f"{path}: expected one intensity column per MS file (e.g. 'A.mzML.gz'), found none; "
            f"columns present: {', '.join(header[:40])}"
        )
    return runs


def read_sage(path: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Read a Sage ``lfq.tsv`` (see module docstring).

    Parameters
    ----------
    path : pathlib.Path
        The LFQ table.
    options : mapping
        ``decoy_pattern`` and ``contaminant_pattern`` (regular expressions; null disables).

    Returns
    -------
    pandas.DataFrame
        Reader columns for :func:`pepmix.canonical.conform`.

    Raises
    ------
    InputFormatError
        If a required column is missing or a value cannot be parsed.
    """
    header, separator = table_header(path)
    require_columns(header, ["peptide", "charge", "proteins"], path)
    runs = _run_columns(header, path)
    optional = [c for c in ("q_value", "decoy") if c in header]
    frame = read_all_selected(path, ["peptide", "charge", "proteins", *optional, *runs], separator)
    proteins = frame["proteins"].astype("string")
    charge = to_float(frame["charge"], path, "charge")
    ids = pd.DataFrame(
        {
            "protein": proteins,
            "feature": precursor_id(frame["peptide"], charge),
            "peptide": frame["peptide"],
            "charge": charge,
            "unique": ~proteins.str.contains(";", regex=False).fillna(False),
            "contaminant": flag_proteins(
                proteins,
                option_pattern(options, "contaminant_pattern", DEFAULT_CONTAMINANT_PATTERN),
                "any",
            ),
        }
    )
    if "q_value" in frame.columns:
        ids["q_value"] = to_float(frame["q_value"], path, "q_value")
    if "decoy" in frame.columns:
        ids["decoy"] = parse_flag(frame["decoy"], path, "decoy")
    else:
        pattern = option_pattern(options, "decoy_pattern", DEFAULT_DECOY_PATTERN)
        ids["decoy"] = flag_proteins(proteins, pattern, "all")
    log.info("%s: Sage lfq.tsv, %d precursors, %d runs", path, len(frame), len(runs))
    return melt_runs(ids, frame[runs], path)
