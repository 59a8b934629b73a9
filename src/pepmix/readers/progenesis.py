"""Progenesis QI peptide-ion export (``progenesis``).

The export (CSV) has a three-row header:

1. a group row: empty cells, then ``Normalized abundance``, ``Raw abundance`` and
   ``Spectral counts`` over the first column of each block of per-run columns;
2. a condition row: the condition name over the first run of each condition;
3. the column names: ``#``, ``Retention time (min)``, ``Charge``, ``m/z``, ..., ``Sequence``,
   ``Modifications``, ``Accession``, ``Description``, ``Use in quantitation``, ... and one column
   per run in each block.

A file re-written by R has the group row mangled (``X, X.1, ..., Normalized.abundance, X.18,
...``); ``X``/``X.<n>``/``Unnamed: <n>`` cells count as empty and names are matched ignoring case,
spaces and dots. The row holding the column names is found as the first of the first six rows
containing two of ``Sequence``, ``Modifications``, ``Accession``, ``Charge``, so a file without the
condition row is read too.

Columns used
------------
- intensity: the ``Raw abundance`` block (option ``abundance: raw``, the default) or the
  ``Normalized abundance`` block (``abundance: normalized``). A block runs from its group label to
  the next group label (or the end of the row); run = the column name in that block, through
  :func:`~pepmix.readers._common.run_name`. Spectral counts are never used.
- protein = ``Accession``; peptide = ``Sequence``, plus ``_<Modifications>`` when modified;
  charge = ``Charge``; feature = ``<peptide>_<charge>`` (a peptide ion, as in MSstats).

Choices
-------
- Rows with ``Use in quantitation`` false are dropped (option ``quantitation_only``, default
  true), as MSstats' ``ProgenesistoMSstatsFormat`` does: Progenesis marks conflicted peptide ions
  that it does not use for protein quantitation this way.
- The same peptide ion (sequence, modifications, charge, accession) can appear on several rows
  (several LC-MS features, different ``#``). They are alternative measurements of one quantity,
  so they are combined with the maximum per run (MSstats' default ``summaryforMultipleRows =
  max``); option ``duplicates: sum`` adds them instead.
- ``unique`` is false for a peptide (sequence + modifications) that appears under more than one
  accession in the file; ``contaminant``/``decoy`` from accession patterns as in
  :mod:`pepmix.readers.msstats`. The Progenesis ``Score`` is not a q-value and is not used.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import pandas as pd

from pepmix.errors import ConfigError, InputFormatError
from pepmix.readers._common import read_table, require_columns, run_name, to_float
from pepmix.readers.msstats import (
    DEFAULT_CONTAMINANT_PATTERN,
    DEFAULT_DECOY_PATTERN,
    canonical_name,
    check_nonnegative,
    pattern_flag,
    precursor_feature,
    unique_flags,
)

log = logging.getLogger(__name__)

SIGNATURE: dict[str, tuple[str, ...]] = {
    "progenesis": ("Sequence", "Modifications", "Accession", "Use in quantitation", "Charge"),
}
"""Names from the third header row; the file's first row holds the block labels instead."""

_BLOCKS: Final = {"raw": "rawabundance", "normalized": "normalizedabundance"}
_EMPTY_LABEL = re.compile(r"^(x(\.\d+)?|unnamed:\s*\d+(_level_\d+)?|nan|)$", re.IGNORECASE)
_NAME_ROWS: Final = 5
_IDENTIFIERS: Final = ("Sequence", "Modifications", "Accession", "Charge")


def read_progenesis(path: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Read a Progenesis QI peptide-ion export (see module docstring).

    Parameters
    ----------
    path : pathlib.Path
        CSV export with the three-row header.
    options : mapping
        ``abundance`` (``"raw"``, default, or ``"normalized"``), ``quantitation_only`` (default
        true), ``duplicates`` (``"max"``, default, or ``"sum"``), ``contaminant_pattern``,
        ``decoy_pattern``.

    Returns
    -------
    pandas.DataFrame
        One row per peptide ion x run.
    """
    kind, duplicates = _checked_options(options)
    frame = read_table(path)
    names, name_index, block = _header_layout(frame, path, kind)
    data = frame.iloc[name_index:].reset_index(drop=True)
    index = {canonical_name(n): i for i, n in reversed(list(enumerate(names)))}
    missing = [n for n in _IDENTIFIERS if canonical_name(n) not in index]
    if missing:
        require_columns(names, missing, path)
    if options.get("quantitation_only", True) and canonical_name("Use in quantitation") in index:
        data = _drop_unquantified(data, _column(data, index, "Use in quantitation"), path)
    long = _run_intensities(_peptide_ions(data, index, path), data, names, block, path)
    long = _combine_repeated_ions(long, duplicates, path)
    long["feature"] = precursor_feature(long["peptide"], long["charge"])
    long["unique"] = unique_flags(long["peptide"], long["protein"])
    long["contaminant"] = pattern_flag(
        long["protein"],
        str(options.get("contaminant_pattern", DEFAULT_CONTAMINANT_PATTERN)),
        "contaminant_pattern",
    )
    long["decoy"] = pattern_flag(
        long["protein"],
        str(options.get("decoy_pattern", DEFAULT_DECOY_PATTERN)),
        "decoy_pattern",
    )
    return long


def _checked_options(options: Mapping[str, Any]) -> tuple[str, str]:
    """The ``abundance`` block (default ``"raw"``) and ``duplicates`` rule (default ``"max"``)."""
    kind = str(options.get("abundance", "raw")).strip().lower()
    if kind not in _BLOCKS:
        raise ConfigError(f"abundance: must be 'raw' or 'normalized', got {kind!r}")
    duplicates = str(options.get("duplicates", "max")).strip().lower()
    if duplicates not in ("max", "sum"):
        raise ConfigError(f"duplicates: must be 'max' or 'sum', got {duplicates!r}")
    return kind, duplicates


def _header_layout(frame: pd.DataFrame, path: Path, kind: str) -> tuple[list[str], int, list[int]]:
    """Find the header rows: column names, their row in ``frame``, the abundance block.

    Returns
    -------
    names : list of str
        The column names (the third header row).
    name_index : int
        Row of ``frame`` holding the names (0 when they are pandas' header); the data rows
        follow it.
    block : list of int
        Column positions of the ``kind`` abundance block (one per run).
    """
    rows: list[list[str]] = [[_cell(c) for c in frame.columns]]
    head = frame.head(_NAME_ROWS)
    rows += [[_cell(v) for v in row] for row in head.itertuples(index=False)]
    name_index = _find_name_row(rows)
    if name_index is None:
        raise InputFormatError(
            f"{path}: no header row with the columns Sequence, Modifications, Accession and "
            f"Charge in the first {_NAME_ROWS + 1} lines (expected the Progenesis three-row "
            f"header); first row: "
            f"{', '.join(rows[0][:20])}"
        )
    groups = _group_row(rows[:name_index])
    if groups is None:
        raise InputFormatError(
            f"{path}: no 'Raw abundance' / 'Normalized abundance' group row above the column "
            f"names (expected the Progenesis three-row header)"
        )
    block = _block(groups, _BLOCKS[kind])
    if block is None:
        found = ", ".join(g for g in groups if not _EMPTY_LABEL.match(g))
        label = "Raw abundance" if kind == "raw" else "Normalized abundance"
        raise InputFormatError(
            f"{path}: no {label!r} block in the group row; blocks found: {found or 'none'}"
        )
    return rows[name_index], name_index, block


def _column(data: pd.DataFrame, index: Mapping[str, int], name: str) -> pd.Series:
    """The data column named ``name`` (first of that name, matched by :func:`canonical_name`)."""
    return data.iloc[:, index[canonical_name(name)]]


def _drop_unquantified(data: pd.DataFrame, use: pd.Series, path: Path) -> pd.DataFrame:
    """Keep the rows whose ``Use in quantitation`` is true (logged)."""
    flag = use.astype("string").str.strip().str.lower()
    keep = flag.eq("true").fillna(False).to_numpy(dtype=bool)
    log.info(
        "%s: dropped %d of %d row(s) with 'Use in quantitation' false",
        path,
        int((~keep).sum()),
        len(keep),
    )
    return data.loc[keep].reset_index(drop=True)


def _peptide_ions(data: pd.DataFrame, index: Mapping[str, int], path: Path) -> pd.DataFrame:
    """``protein, peptide, charge`` of each row; peptide = sequence[_modifications]."""
    sequence = _column(data, index, "Sequence").astype("string").str.strip()
    mods = _column(data, index, "Modifications").astype("string").fillna("").str.strip()
    peptide = sequence.where(mods == "", sequence + "_" + mods)
    return pd.DataFrame(
        {
            "protein": _column(data, index, "Accession").astype("string").str.strip(),
            "peptide": peptide,
            "charge": to_float(_column(data, index, "Charge"), path, "Charge"),
        }
    )


def _run_intensities(
    ions: pd.DataFrame, data: pd.DataFrame, names: Sequence[str], block: Sequence[int], path: Path
) -> pd.DataFrame:
    """Long table: ``ions`` repeated per run of the block, with ``run`` and ``intensity``.

    Zero abundances become missing; a negative one, an empty or repeated run name is an error.
    """
    pieces = []
    seen: set[str] = set()
    for position in block:
        run = run_name(names[position])
        if not run or run in seen:
            raise InputFormatError(
                f"{path}: run column name {names[position]!r} in the abundance block is empty or "
                "repeated"
            )
        seen.add(run)
        values = to_float(data.iloc[:, position], path, names[position])
        check_nonnegative(values, path, names[position])
        piece = ions.copy()
        piece["run"] = run
        piece["intensity"] = values.where(values > 0).to_numpy()
        pieces.append(piece)
    return pd.concat(pieces, ignore_index=True)


def _combine_repeated_ions(long: pd.DataFrame, duplicates: str, path: Path) -> pd.DataFrame:
    """One row per peptide ion and run: repeated rows by their ``max`` or ``sum`` (logged)."""
    keys = ["protein", "peptide", "charge", "run"]
    n_before = len(long)
    if duplicates == "max":
        long = long.groupby(keys, sort=False, dropna=False)["intensity"].max().reset_index()
    else:
        long = (
            long.groupby(keys, sort=False, dropna=False)["intensity"].sum(min_count=1).reset_index()
        )
    if len(long) < n_before:
        log.info(
            "%s: %d repeated peptide-ion rows combined (%s)", path, n_before - len(long), duplicates
        )
    return long


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value).strip()


def _find_name_row(rows: Sequence[Sequence[str]]) -> int | None:
    """Index of the first row holding at least two of the identifier column names."""
    wanted = {"sequence", "accession", "charge", "modifications"}
    for i, row in enumerate(rows):
        keys = {canonical_name(c) for c in row}
        if len(keys & wanted) >= 2:
            return i
    return None


def _group_row(rows: Sequence[Sequence[str]]) -> list[str] | None:
    for row in rows:
        keys = {canonical_name(c) for c in row}
        if keys & set(_BLOCKS.values()):
            return list(row)
    return None


def _block(groups: Sequence[str], key: str) -> list[int] | None:
    labels = [(i, g) for i, g in enumerate(groups) if not _EMPTY_LABEL.match(g)]
    for n, (start, label) in enumerate(labels):
        if canonical_name(label) == key:
            end = labels[n + 1][0] if n + 1 < len(labels) else len(groups)
            return list(range(start, end))
    return None
