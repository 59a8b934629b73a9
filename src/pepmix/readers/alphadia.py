"""AlphaDIA precursor matrix (``precursors.matrix.tsv`` / ``precursor.matrix.tsv``), wide.

One row per precursor, identified by ``mod_seq_charge_hash``, with one intensity column per run
and annotation columns ``pg`` (protein group; newer versions), ``genes``, ``proteins``,
``decoy``, ``mods``, ``mod_sites``, ``sequence``, ``charge``. Columns used:

============ =====================================================================
canonical    matrix column
============ =====================================================================
feature      ``mod_seq_charge_hash`` (AlphaDIA's precursor identifier)
peptide      ``sequence``, followed by ``[mods@mod_sites]`` when modified
             (e.g. ``AMDEK[Oxidation@M@2]``), so peptide-level features keep modifications
charge       ``charge``
run          each run column (every column that is not an annotation column, or the option
             ``run_columns``: a list or a regular expression)
intensity    the run column's value; 0.0 means not quantified (dropped at conform)
protein      ``pg`` when present, else ``genes``, else ``proteins`` (option ``protein_column``)
decoy        ``decoy`` (0/1)
unique       ``proteins`` (else ``genes``) holds a single entry (no ``;``)
contaminant  a member of the protein matches ``contaminant_pattern``
============ =====================================================================

The matrix has no q-values: AlphaDIA writes only precursors that passed its FDR threshold.

Exact duplicate rows (the ProteoBench sample repeats most rows verbatim) are removed with a
warning; a precursor id that appears on rows with different values is an error, since there is no
way to tell which row is right.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from pepmix.errors import ConfigError, InputFormatError
from pepmix.readers._common import plain, require_columns
from pepmix.readers._support import (
    DEFAULT_CONTAMINANT_PATTERN,
    first_present,
    flag_proteins,
    melt_runs,
    option_pattern,
    option_str,
    parse_flag,
    read_all_selected,
    table_header,
)

log = logging.getLogger(__name__)

SIGNATURE: dict[str, tuple[str, ...]] = {
    "alphadia": ("mod_seq_charge_hash", "decoy", "mods", "mod_sites", "sequence", "charge"),
}

_ANNOTATION = frozenset(
    {
        "mod_seq_charge_hash",
        "mod_seq_hash",
        "precursor_idx",
        "pg",
        "pg_master",
        "genes",
        "proteins",
        "decoy",
        "mods",
        "mod_sites",
        "sequence",
        "charge",
    }
)


def _run_columns(header: list[str], spec: object, path: Path) -> list[str]:
    if spec is None:
        columns = [c for c in header if c not in _ANNOTATION]
    elif isinstance(spec, str):
        try:
            pattern = re.compile(spec)
        except re.error as exc:
            raise ConfigError(f"run_columns: invalid regular expression {spec!r} ({exc})") from None
        columns = [c for c in header if pattern.search(c)]
    elif isinstance(spec, list):
        columns = [str(s) for s in spec]
        require_columns(header, columns, path)
    else:
        raise ConfigError("run_columns must be a list of column names or a regular expression")
    if not columns:
        raise InputFormatError(f"{path}: expected one intensity column per run, found none")
    return columns


def read_alphadia(path: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Read an AlphaDIA precursor matrix (see module docstring).

    Parameters
    ----------
    path : pathlib.Path
        The precursor matrix.
    options : mapping
        ``protein_column`` (default ``pg``, else ``genes``, else ``proteins``), ``run_columns``,
        ``contaminant_pattern``.

    Returns
    -------
    pandas.DataFrame
        Reader columns for :func:`pepmix.canonical.conform`.

    Raises
    ------
    InputFormatError
        If a required column is missing, a precursor id is ambiguous, or a value cannot be
        parsed.
    """
    header, separator = table_header(path)
    default_protein = first_present(header, ("pg", "genes", "proteins")) or "pg"
    protein_column = option_str(options, "protein_column", default_protein)
    require_columns(header, ["mod_seq_charge_hash", protein_column], path)
    runs = _run_columns(header, options.get("run_columns"), path)
    optional = [
        c
        for c in ("sequence", "mods", "mod_sites", "charge", "decoy", "proteins", "genes")
        if c in header and c != protein_column
    ]
    frame = read_all_selected(
        path, ["mod_seq_charge_hash", protein_column, *optional, *runs], separator
    )
    frame = _deduplicate(frame, path)

    protein = frame[protein_column].astype("string")
    ids = pd.DataFrame({"protein": protein, "feature": frame["mod_seq_charge_hash"]})
    if "sequence" in frame.columns:
        ids["peptide"] = _modified_peptide(frame)
    if "charge" in frame.columns:
        ids["charge"] = frame["charge"]
    if "decoy" in frame.columns:
        ids["decoy"] = parse_flag(frame["decoy"], path, "decoy")
    members_column = first_present(frame.columns, ("proteins", "genes"))
    if members_column is not None:
        members = frame[members_column].astype("string")
        ids["unique"] = ~members.str.contains(";", regex=False).fillna(False)
    pattern = option_pattern(options, "contaminant_pattern", DEFAULT_CONTAMINANT_PATTERN)
    ids["contaminant"] = flag_proteins(protein, pattern, "any")
    log.info("%s: AlphaDIA matrix, %d precursors, %d runs", path, len(frame), len(runs))
    return melt_runs(ids, frame[runs], path)


def _deduplicate(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    exact = frame.duplicated()
    if exact.any():
        log.warning(
            "%s: %d row(s) repeat another row exactly and are ignored", path, int(exact.sum())
        )
        frame = frame.loc[~exact].reset_index(drop=True)
    clash = frame["mod_seq_charge_hash"].duplicated()
    if clash.any():
        first = plain(frame.loc[clash, "mod_seq_charge_hash"].iloc[0])
        raise InputFormatError(
            f"{path}: precursor {first!r} appears on rows with different values; expected one "
            "row per mod_seq_charge_hash"
        )
    return frame


def _modified_peptide(frame: pd.DataFrame) -> pd.Series:
    sequence = frame["sequence"].astype("string")
    if "mods" not in frame.columns:
        return sequence
    mods = frame["mods"].astype("string").fillna("")
    sites = (
        frame["mod_sites"].astype("string").fillna("")
        if "mod_sites" in frame.columns
        else pd.Series("", index=frame.index, dtype="string")
    )
    annotated = sequence + "[" + mods + "@" + sites + "]"
    return annotated.where(mods.str.strip() != "", sequence)
