"""Spectronaut long report (the "normal report" or an MSstats-style export), fragment or precursor
level.

One row per fragment (``F.*`` columns) or per precursor (``FG.*``) x run. Columns used:

============ =====================================================================
canonical    report column
============ =====================================================================
feature      ``EG.PrecursorId`` (e.g. ``_AVDITTPK_.2``); ``FG.Id`` when absent; when both
             are absent, built from its parts as ``_<modified sequence>_.<FG.Charge>``
             (the form of ``EG.PrecursorId``)
peptide      ``EG.ModifiedSequence`` (``EG.ModifiedPeptide``, ``FG.LabeledSequence``)
             without the flanking ``_``
charge       ``FG.Charge``
run          ``R.FileName``; ``R.Label`` when absent; ``R.Condition`` in compact exports
             that have neither (through :func:`pepmix.readers._common.run_name`)
protein      ``PG.ProteinGroups``, else ``PG.ProteinAccessions`` (option ``protein_column``)
intensity    fragment level: sum of ``F.PeakArea`` over the fragments of the precursor in the
             run, fragments with ``F.ExcludedFromQuantification`` true left out; precursor
             level: ``FG.Quantity`` (``FG.MS2Quantity`` when there is no ``FG.Quantity``)
q_value      ``EG.Qvalue``
pg_q_value   ``PG.Qvalue``
decoy        ``EG.IsDecoy`` when present
contaminant  a member of the protein group matches ``contaminant_pattern``
============ =====================================================================

Choices:

- **Level** (option ``level``): ``fragment`` when the report has ``F.PeakArea`` (default),
  ``precursor`` otherwise. Summing the raw fragment areas Spectronaut itself selected for
  quantification (not excluded) gives a precursor intensity on a raw, unnormalised scale;
  ``FG.Quantity`` may already be normalised across runs, depending on the Spectronaut settings.
  ``intensity_column`` overrides the column (e.g. ``F.NormalizedPeakArea`` or
  ``FG.MS2Quantity``).
- Compact fragment-level templates (e.g. ``R.Condition, PG.ProteinGroups, EG.ModifiedSequence,
  FG.Charge, F.FrgIon, F.Charge, F.PeakArea, PG.Genes, PG.ProteinNames``) are read too: the run is
  ``R.Condition`` (such exports label each run as a condition), which is checked: a fragment
  (``F.FrgIon``, ``F.Charge``, ``F.FrgLossType``) of one precursor appearing twice under one
  ``R.Condition`` means it holds conditions, not runs, and is an error. Other layouts can be
  mapped with the input's ``columns:`` setting.
- Values Spectronaut writes as ``Filtered`` or ``NaN`` are missing.
- A precursor whose fragments are all excluded has no observation in that run.
- The report is parsed in chunks of ``chunk_rows`` rows (default 1,000,000) of only the needed
  columns, and fragments are summed chunk by chunk, so memory is bounded by the number of
  precursor x run pairs rather than fragment rows. The optional thresholds ``q_value`` and
  ``pg_q_value`` (passed by the ingest step from the ``filter:`` config) are applied while reading;
  proteins without a row passing them (or, at fragment level, ``F.ExcludedFromQuantification``)
  are recorded in the output's ``attrs[REMOVED_PROTEINS]`` (:mod:`pepmix.readers._dropped`).
- ``unique`` is not filled: Spectronaut's protein groups are the result of its own inference and
  the report does not say whether a peptide maps to other groups.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pepmix.errors import InputFormatError
from pepmix.filters import threshold_step
from pepmix.readers._common import require_columns, run_names, to_float
from pepmix.readers._dropped import DroppedProteins
from pepmix.readers._support import (
    DEFAULT_CONTAMINANT_PATTERN,
    first_present,
    flag_proteins,
    option_pattern,
    option_positive_int,
    option_str,
    option_threshold,
    parse_flag,
    read_selected,
    strip_underscores,
    table_header,
)

log = logging.getLogger(__name__)

SIGNATURE: dict[str, tuple[str, ...]] = {
    "spectronaut": ("R.FileName", "PG.ProteinGroups", "EG.PrecursorId"),
}
#: compact templates without ``R.FileName``/``EG.PrecursorId`` (see :mod:`pepmix.readers.detect`)
COMPACT_SIGNATURES: tuple[tuple[str, ...], ...] = (
    ("PG.ProteinGroups", "EG.ModifiedSequence", "FG.Charge"),
    ("PG.ProteinGroups", "EG.ModifiedPeptide", "FG.Charge"),
    ("PG.ProteinAccessions", "EG.ModifiedSequence", "FG.Charge"),
)

_MISSING = ("Filtered", "filtered", "NaN")
#: accepted spellings, in order of preference, of the columns of Spectronaut's report templates
_RUN_COLUMNS = ("R.FileName", "R.Label", "R.Condition")
_PROTEIN_COLUMNS = ("PG.ProteinGroups", "PG.ProteinAccessions")
_FEATURE_COLUMNS = ("EG.PrecursorId", "FG.Id")
_PEPTIDE_COLUMNS = ("EG.ModifiedSequence", "EG.ModifiedPeptide", "FG.LabeledSequence")
#: columns that tell the fragments of one precursor apart
_FRAGMENT_KEY = ("F.FrgIon", "F.Charge", "F.FrgLossType")
_BUILT_FEATURE = "_precursor_id"
_DEFAULT_CHUNK_ROWS = 1_000_000
_KEYS = ["protein", "feature", "run"]
#: q-value columns applied while reading, and the ``filter:`` option giving each threshold
_THRESHOLD_KEYS = {"EG.Qvalue": "q_value", "PG.Qvalue": "pg_q_value"}
#: name of the read-time filter on excluded fragments (in a removed protein's ``detail``)
_EXCLUDED_STEP = "F.ExcludedFromQuantification False"


def read_spectronaut(path: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Read a Spectronaut long report (see module docstring).

    Parameters
    ----------
    path : pathlib.Path
        The report (tab- or comma-separated, optionally gzipped).
    options : mapping
        ``level`` (``fragment`` or ``precursor``), ``intensity_column``, ``protein_column``
        (default ``PG.ProteinGroups``), ``q_value`` and ``pg_q_value`` (thresholds applied while
        reading), ``contaminant_pattern``, ``chunk_rows``.

    Returns
    -------
    pandas.DataFrame
        Reader columns for :func:`pepmix.canonical.conform`, one row per precursor x run.

    Raises
    ------
    InputFormatError
        If a required column is missing or a value cannot be parsed.
    """
    header, separator = table_header(path)
    layout = _layout(header, path, options)
    chunk_rows = option_positive_int(options, "chunk_rows", _DEFAULT_CHUNK_ROWS)
    pattern = option_pattern(options, "contaminant_pattern", DEFAULT_CONTAMINANT_PATTERN)
    steps = [
        threshold_step(_THRESHOLD_KEYS[c], options[_THRESHOLD_KEYS[c]]) for c in layout.thresholds
    ]
    if layout.level == "fragment" and "F.ExcludedFromQuantification" in header:
        steps.append(_EXCLUDED_STEP)
    dropped = DroppedProteins(steps)
    parts = []
    n_rows = 0
    for chunk in read_selected(path, layout.columns, separator, chunksize=chunk_rows):
        n_rows += len(chunk)
        parts.append(_chunk_rows(chunk, path, layout, dropped))
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=_KEYS)
    frame = _reduce(frame, layout.level)
    if layout.level == "precursor":
        _check_one_value_per_precursor(frame, path, layout.intensity)
    frame["contaminant"] = flag_proteins(frame["protein"].astype("string"), pattern, "any")
    log.info(
        "%s: %s level, %d report rows -> %d precursor x run rows (%s)",
        path,
        layout.level,
        n_rows,
        len(frame),
        layout.intensity if layout.level == "precursor" else f"sum of {layout.intensity}",
    )
    return dropped.attach(frame)


@dataclass(frozen=True)
class _Layout:
    """What to read from one report: its level, the columns used, the read-time thresholds.

    Attributes
    ----------
    level : {"fragment", "precursor"}
        Rows of the report.
    intensity, protein, run, feature : str
        Columns; ``feature`` is :data:`_BUILT_FEATURE` when the precursor id is built.
    peptide : str or None
        Modified-sequence column, None when absent.
    columns : list of str
        Every column to read (required, then the optional ones present).
    thresholds : dict of str to float
        q-value column -> threshold, for the columns present with a threshold given.
    """

    level: str
    intensity: str
    protein: str
    run: str
    feature: str
    peptide: str | None
    columns: list[str]
    thresholds: dict[str, float]


def _layout(header: list[str], path: Path, options: Mapping[str, Any]) -> _Layout:
    """Resolve the report's columns from its header and the options; require the needed ones."""
    default_level = "fragment" if "F.PeakArea" in header else "precursor"
    level = option_str(options, "level", default_level, ("fragment", "precursor"))
    if level == "fragment":
        default_intensity = "F.PeakArea"
    else:
        default_intensity = first_present(header, ("FG.Quantity", "FG.MS2Quantity")) or (
            "FG.Quantity"
        )
    intensity_column = option_str(options, "intensity_column", default_intensity)
    protein_column = option_str(
        options, "protein_column", first_present(header, _PROTEIN_COLUMNS) or _PROTEIN_COLUMNS[0]
    )
    run_column = _run_column(header, path)
    peptide_column = first_present(header, _PEPTIDE_COLUMNS)
    feature_column = first_present(header, _FEATURE_COLUMNS)
    if feature_column is None:
        # compact templates: the precursor id is built from its parts (see module docstring)
        feature_column = _BUILT_FEATURE
        required = [run_column, protein_column, peptide_column or _PEPTIDE_COLUMNS[0], "FG.Charge"]
        require_columns(header, [*required, intensity_column], path)
    else:
        required = [run_column, protein_column, feature_column]
    required.append(intensity_column)
    require_columns(header, required, path)
    optional = [*_PEPTIDE_COLUMNS, "FG.Charge", "EG.Qvalue", "PG.Qvalue", "EG.IsDecoy"]
    if level == "fragment":
        optional += ["F.ExcludedFromQuantification", *_FRAGMENT_KEY]
    thresholds = {
        column: limit
        for column, key in _THRESHOLD_KEYS.items()
        if (limit := option_threshold(options, key)) is not None and column in header
    }
    return _Layout(
        level=level,
        intensity=intensity_column,
        protein=protein_column,
        run=run_column,
        feature=feature_column,
        peptide=peptide_column,
        columns=list(dict.fromkeys(required + [c for c in optional if c in header])),
        thresholds=thresholds,
    )


def _chunk_rows(
    chunk: pd.DataFrame, path: Path, layout: _Layout, dropped: DroppedProteins
) -> pd.DataFrame:
    """One chunk of the report filtered (recorded in ``dropped``) and reduced to precursor x run.

    Rows above a q-value threshold or, at fragment level, excluded from quantification are
    dropped; compact templates get their precursor id built.
    """
    if layout.run == "R.Condition" and layout.level == "fragment":
        _check_condition_runs(chunk, path)
    passes = [
        ~(to_float(chunk[column], path, column) > limit).to_numpy(dtype=bool)
        for column, limit in layout.thresholds.items()
    ]
    if layout.level == "fragment" and "F.ExcludedFromQuantification" in chunk.columns:
        excluded = parse_flag(
            chunk["F.ExcludedFromQuantification"], path, "F.ExcludedFromQuantification"
        )
        passes.append(~excluded.fillna(False).to_numpy(dtype=bool))
    if passes:
        dropped.add(chunk[layout.protein], passes)
        chunk = chunk.loc[np.logical_and.reduce(passes)]
    if layout.feature == _BUILT_FEATURE:
        chunk = chunk.assign(
            **{_BUILT_FEATURE: _precursor_ids(chunk[layout.peptide or ""], chunk["FG.Charge"])}
        )
    return _precursor_rows(
        chunk, path, (layout.protein, layout.feature, layout.run), layout.intensity, layout.level
    )


def _check_one_value_per_precursor(frame: pd.DataFrame, path: Path, intensity: str) -> None:
    """At precursor level, reject a precursor and run with different intensities on two rows."""
    conflict = frame.duplicated(_KEYS, keep=False)
    if conflict.any():
        row = frame.loc[conflict].iloc[0]
        raise InputFormatError(
            f"{path}: {intensity} differs between rows of precursor "
            f"{row['feature']!r} in run {row['run']!r}"
        )


def _run_column(header: list[str], path: Path) -> str:
    """The run column: ``R.FileName``, else ``R.Label``, else ``R.Condition`` (compact exports)."""
    found = first_present(header, _RUN_COLUMNS)
    if found is None:
        require_columns(header, [_RUN_COLUMNS[0]], path)  # raises, naming the columns present
        return _RUN_COLUMNS[0]
    if found != _RUN_COLUMNS[0]:
        log.info("%s: no R.FileName column; runs are named by %s", path, found)
    return found


def _check_condition_runs(chunk: pd.DataFrame, path: Path) -> None:
    """Require ``R.Condition``, used as the run, to name one run: no fragment twice in it."""
    keys = [c for c in ("R.Condition", _BUILT_FEATURE, *_FEATURE_COLUMNS) if c in chunk.columns]
    keys += [c for c in (*_PEPTIDE_COLUMNS, "FG.Charge", *_FRAGMENT_KEY) if c in chunk.columns]
    repeated = chunk.duplicated(keys)
    if repeated.any():
        row = chunk.loc[repeated].iloc[0]
        raise InputFormatError(
            f"{path}: the run is taken from R.Condition (there is no R.FileName), but fragment "
            f"{' '.join(str(row[k]) for k in keys[1:])} appears twice in {row['R.Condition']!r}: "
            "R.Condition holds conditions, not runs; add R.FileName to the export, or map the "
            "run column with the input's columns: setting"
        )


def _precursor_ids(peptide: pd.Series, charge: pd.Series) -> pd.Series:
    """Spectronaut-style precursor ids ``_PEPTIDE_.2`` from the modified sequence and charge."""
    text = peptide.astype("string").str.strip()
    text = text.where(text.str.startswith("_"), "_" + text + "_")
    number = pd.to_numeric(charge, errors="coerce").astype("Int64").astype("string")
    return text + "." + number.fillna("NA")


def _precursor_rows(
    chunk: pd.DataFrame,
    path: Path,
    id_columns: tuple[str, str, str],
    intensity_column: str,
    level: str,
) -> pd.DataFrame:
    """Map one chunk to reader columns and reduce it to precursor x run rows.

    ``id_columns`` are the protein, feature and run columns.
    """
    protein_column, feature_column, run_column = id_columns
    values = chunk[intensity_column]
    if not pd.api.types.is_numeric_dtype(values.dtype):
        values = values.mask(values.isin(_MISSING))
    out = pd.DataFrame(
        {
            "protein": chunk[protein_column],
            "feature": chunk[feature_column],
            "run": run_names(chunk[run_column]),
            "intensity": to_float(values, path, intensity_column),
        }
    )
    peptide_column = first_present(list(chunk.columns), _PEPTIDE_COLUMNS)
    if peptide_column is not None:
        out["peptide"] = strip_underscores(chunk[peptide_column])
    if "FG.Charge" in chunk.columns:
        out["charge"] = to_float(chunk["FG.Charge"], path, "FG.Charge")
    if "EG.Qvalue" in chunk.columns:
        out["q_value"] = to_float(chunk["EG.Qvalue"], path, "EG.Qvalue")
    if "PG.Qvalue" in chunk.columns:
        out["pg_q_value"] = to_float(chunk["PG.Qvalue"], path, "PG.Qvalue")
    if "EG.IsDecoy" in chunk.columns:
        out["decoy"] = parse_flag(chunk["EG.IsDecoy"], path, "EG.IsDecoy")
    return _reduce(out, level)


def _reduce(frame: pd.DataFrame, level: str) -> pd.DataFrame:
    """Sum fragment intensities per precursor x run, or drop repeated precursor rows.

    The per-precursor columns (peptide, charge, q-values, decoy) are constant within a precursor
    and run, so they are part of the grouping key.
    """
    if frame.empty:
        return frame
    keys = [c for c in frame.columns if c != "intensity"]
    if level == "precursor":
        return frame.drop_duplicates().reset_index(drop=True)
    grouped = frame.groupby(keys, sort=False, dropna=False, observed=True)["intensity"]
    return grouped.sum(min_count=1).reset_index()
