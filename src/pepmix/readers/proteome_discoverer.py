"""Thermo Proteome Discoverer exports (``proteome_discoverer``): PeptideGroups and PSMs.

The export type is chosen from the header: a table with ``Abundance: ...`` columns and
``Annotated Sequence`` is a PeptideGroups export; a table with ``Precursor Area`` and
``Spectrum File`` is a PSM export. Column names are matched ignoring case, spaces, dots and
underscores, so R-mangled names (``Protein.Group.Accessions``, ``X..Protein.Groups`` for
``# Protein Groups``) are accepted.

PeptideGroups.txt (tab-separated, quoted headers; one row per peptide group)
--------------------------------------------------------------------------
- protein = ``Master Protein Accessions`` (a peptide with several master proteins keeps the
  ``; ``-separated list as its protein identifier).
- feature = ``Annotated Sequence`` without the flanking residues (``[R].PEPTIDE.[S]`` ->
  ``PEPTIDE``; PD marks modified residues in lower case there), plus ``_<Modifications>`` when
  ``Modifications`` is not empty (``PEPTIDE_1xOxidation [M2]``). A peptide group combines all
  charge states, so features are peptidoforms and charge is empty; peptide = feature (the
  modified sequence, as other readers give it), so ``feature_level: peptide`` changes nothing.
- Intensities: the per-file ``Abundance: <file id>: <sample>`` columns (option
  ``abundance: raw``, the default) or ``Abundances (Normalized): <file id>: <sample>``
  (``abundance: normalized``). ``Abundances (Scaled)`` and ``Abundances (Grouped)`` are not
  intensities and are never used.
- run = the file id (``F1``, ``F2``, ...) between the first and the second colon of the abundance
  column name; the sample label after it (``Sample, ConditionA``) is ignored because it is not
  unique. The sample sheet therefore lists ``F1``, ``F2``, ... (PD's "Input Files" table gives
  the raw file behind each id).
- contaminant = ``Contaminant`` (``True``/``False``) when present. unique = ``# Protein Groups``
  equal to 1 when present, otherwise no ``;`` in the master accessions.
- ``Confidence`` (High/Medium/Low) is kept as is by default; option ``min_confidence``
  (``"High"``, ``"Medium"`` or ``"Low"``) removes peptide groups below that level. PD exports carry
  no q-values, so the q-value filters do not apply.
- Rows without a master protein accession are dropped (logged): they cannot be assigned.

PSM export (``PSMs.txt``; also as re-written by R in MSstatsConvert)
-------------------------------------------------------------------
- protein = ``Master Protein Accessions`` when present, otherwise ``Protein Group Accessions``;
  peptide = ``Sequence`` (+ ``_<Modifications>`` when modified) as feature with the charge:
  feature = ``<peptide>_<charge>``; run = ``Spectrum File`` via
  :func:`~pepmix.readers._common.run_name`; intensity = ``Precursor Area``.
- Several PSMs of one precursor in one run point to the same LC-MS feature and repeat its area, so
  they are combined with the maximum (as MSstats' ``PDtoMSstatsFormat`` does by default), not the
  sum. unique = ``# Protein Groups`` equal to 1 when present; contaminant from ``Contaminant``
  when present.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import pandas as pd

from pepmix.errors import ConfigError, InputFormatError
from pepmix.readers._common import plain, read_table, require_columns, run_names, to_float
from pepmix.readers.msstats import check_nonnegative, find_column, precursor_feature

log = logging.getLogger(__name__)

SIGNATURE: dict[str, tuple[str, ...]] = {
    "proteome_discoverer": ("Master Protein Accessions", "Annotated Sequence", "Modifications"),
}
"""PeptideGroups header; a PSM export has ``Precursor Area`` and ``Spectrum File`` instead."""

_ABUNDANCE_PREFIX: Final = {"raw": "Abundance:", "normalized": "Abundances (Normalized):"}
_CONFIDENCE: Final = {"high": 3, "medium": 2, "low": 1}
_FLANKS = re.compile(r"^\[[^\]]*\]\.|\.\[[^\]]*\]$")


def read_peptide_groups(path: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Read a Proteome Discoverer PeptideGroups or PSM export (see module docstring).

    Parameters
    ----------
    path : pathlib.Path
        Tab- or comma-separated export.
    options : mapping
        ``abundance`` (``"raw"``, default, or ``"normalized"``; PeptideGroups only),
        ``min_confidence`` (``"High"``, ``"Medium"``, ``"Low"``; default none).

    Returns
    -------
    pandas.DataFrame
        PeptideGroups: one row per peptidoform x run; PSMs: one row per precursor x run.
    """
    frame = read_table(path)
    if find_column(frame.columns, "Precursor Area") and find_column(frame.columns, "Spectrum File"):
        frame = _filter_confidence(frame, options, path)
        return _read_psms(frame, path)
    frame = _filter_confidence(frame, options, path)
    return _read_groups(frame, path, options)


def _filter_confidence(frame: pd.DataFrame, options: Mapping[str, Any], path: Path) -> pd.DataFrame:
    level = options.get("min_confidence")
    if level is None:
        return frame
    key = str(level).strip().lower()
    if key not in _CONFIDENCE:
        raise ConfigError(f"min_confidence: must be High, Medium or Low, got {level!r}")
    col = find_column(frame.columns, "Confidence", "Confidence Level")
    if col is None:
        require_columns(list(frame.columns), ["Confidence"], path)
        return frame
    rank = frame[col].astype("string").str.strip().str.lower().map(_CONFIDENCE)
    keep = (rank >= _CONFIDENCE[key]).fillna(False).to_numpy(dtype=bool)
    log.info("%s: min_confidence %s removed %d row(s)", path, level, int((~keep).sum()))
    return frame.loc[keep]


def _read_groups(frame: pd.DataFrame, path: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    kind = str(options.get("abundance", "raw")).strip().lower()
    if kind not in _ABUNDANCE_PREFIX:
        raise ConfigError(f"abundance: must be 'raw' or 'normalized', got {kind!r}")
    protein_col = find_column(frame.columns, "Master Protein Accessions")
    seq_col = find_column(frame.columns, "Annotated Sequence")
    mods_col = find_column(frame.columns, "Modifications")
    missing = [
        name
        for name, col in (
            ("Master Protein Accessions", protein_col),
            ("Annotated Sequence", seq_col),
            ("Modifications", mods_col),
        )
        if col is None
    ]
    if missing:
        require_columns(list(frame.columns), missing, path)
    assert protein_col is not None and seq_col is not None and mods_col is not None
    prefix = _ABUNDANCE_PREFIX[kind]
    run_columns: list[tuple[str, str]] = []
    for col in frame.columns:
        text = str(col)
        if text.startswith(prefix):
            run = text[len(prefix) :].split(":")[0].strip()
            if run:
                run_columns.append((text, run))
    if not run_columns:
        raise InputFormatError(
            f"{path}: no per-file abundance column ('{prefix} F1: ...'); columns present: "
            f"{', '.join(list(frame.columns)[:40])}"
        )
    runs = [run for _, run in run_columns]
    if len(set(runs)) != len(runs):
        raise InputFormatError(f"{path}: abundance columns repeat a file id ({', '.join(runs)})")
    protein = frame[protein_col].astype("string").str.strip()
    no_protein = (protein.isna() | (protein == "")).to_numpy(dtype=bool)
    if no_protein.any():
        log.info("%s: dropped %d peptide group(s) without a master protein", path, no_protein.sum())
        frame = frame.loc[~no_protein]
        protein = protein[~no_protein]
    peptide = frame[seq_col].astype("string").str.strip().str.replace(_FLANKS, "", regex=True)
    mods = frame[mods_col].astype("string").fillna("").str.strip()
    feature = peptide.where(mods == "", peptide + "_" + mods)
    base = pd.DataFrame({"protein": protein, "feature": feature, "peptide": feature})
    groups_col = find_column(frame.columns, "# Protein Groups", "X..Protein.Groups")
    if groups_col is not None:
        n_groups = to_float(frame[groups_col], path, groups_col)
        base["unique"] = (n_groups == 1).astype("boolean")
    else:
        base["unique"] = (~protein.str.contains(";", regex=False)).astype("boolean")
    contaminant_col = find_column(frame.columns, "Contaminant")
    if contaminant_col is not None:
        base["contaminant"] = _bool(frame[contaminant_col], path, contaminant_col)
    pieces = []
    for col, run in run_columns:
        values = to_float(frame[col], path, col)
        check_nonnegative(values, path, col)
        piece = base.copy()
        piece["run"] = run
        piece["intensity"] = values.to_numpy()
        pieces.append(piece)
    return pd.concat(pieces, ignore_index=True)


def _read_psms(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    protein_col = find_column(
        frame.columns, "Master Protein Accessions", "Protein Group Accessions"
    )
    needed = {
        "Protein Group Accessions": protein_col,
        "Sequence": find_column(frame.columns, "Sequence"),
        "Charge": find_column(frame.columns, "Charge"),
        "Precursor Area": find_column(frame.columns, "Precursor Area"),
        "Spectrum File": find_column(frame.columns, "Spectrum File"),
    }
    missing = [name for name, col in needed.items() if col is None]
    if missing:
        require_columns(list(frame.columns), missing, path)
    cols = {name: str(col) for name, col in needed.items()}
    protein = frame[cols["Protein Group Accessions"]].astype("string").str.strip()
    no_protein = (protein.isna() | (protein == "")).to_numpy(dtype=bool)
    if no_protein.any():
        log.info("%s: dropped %d PSM(s) without a protein accession", path, no_protein.sum())
        frame = frame.loc[~no_protein]
        protein = protein[~no_protein]
    peptide = frame[cols["Sequence"]].astype("string").str.strip()
    mods_col = find_column(frame.columns, "Modifications")
    if mods_col is not None:
        mods = frame[mods_col].astype("string").fillna("").str.strip()
        peptide = peptide.where(mods == "", peptide + "_" + mods)
    intensity = to_float(frame[cols["Precursor Area"]], path, cols["Precursor Area"])
    check_nonnegative(intensity, path, cols["Precursor Area"])
    out = pd.DataFrame(
        {
            "protein": protein,
            "peptide": peptide,
            "charge": to_float(frame[cols["Charge"]], path, cols["Charge"]),
            "run": run_names(frame[cols["Spectrum File"]]),
            "intensity": intensity.where(intensity > 0),
        }
    )
    groups_col = find_column(frame.columns, "# Protein Groups", "X..Protein.Groups")
    if groups_col is not None:
        out["unique"] = (to_float(frame[groups_col], path, groups_col) == 1).astype("boolean")
    contaminant_col = find_column(frame.columns, "Contaminant")
    if contaminant_col is not None:
        out["contaminant"] = _bool(frame[contaminant_col], path, contaminant_col)
    keys = ["protein", "peptide", "charge", "run"]
    agg: dict[str, Any] = {"intensity": "max"}
    if "unique" in out.columns:
        agg["unique"] = "min"
    if "contaminant" in out.columns:
        agg["contaminant"] = "max"
    n_before = len(out)
    out = out.groupby(keys, sort=False, dropna=False).agg(agg).reset_index()
    if len(out) < n_before:
        log.info(
            "%s: %d PSM rows combined into %d precursor x run rows (maximum precursor area)",
            path,
            n_before,
            len(out),
        )
    out["feature"] = precursor_feature(out["peptide"], out["charge"])
    return out


def _bool(series: pd.Series, path: Path, column: str) -> pd.Series:
    text = series.astype("string").str.strip().str.lower()
    values = text.map({"true": True, "false": False, "1": True, "0": False, "": False})
    bad = text.notna() & values.isna()
    if bad.any():
        raise InputFormatError(
            f"{path}: column {column!r} must be True/False, found {plain(series[bad].iloc[0])!r}"
        )
    return values.astype("boolean")
