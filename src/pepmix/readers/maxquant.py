"""MaxQuant ``evidence.txt`` (DDA and MaxDIA) and ``peptides.txt``.

``maxquant_evidence`` (:func:`read_evidence`): one row per MS1 feature ("evidence") of a precursor
in a raw file; tab-separated, written by every MaxQuant release (tested: an older release with 60
columns, 2.5.1 with 63 columns, MaxDIA with 78 columns).

========================== ===================================================================
canonical column           evidence.txt column(s)
========================== ===================================================================
feature                    ``Modified sequence`` (flanking ``_`` removed) + ``_`` + ``Charge``
peptide                    ``Modified sequence`` without the flanking ``_``
charge                     ``Charge``
run                        ``Raw file``; ``Experiment`` when a ``Fraction`` column exists
fraction                   ``Fraction`` when present
intensity                  ``Intensity``
protein                    ``Leading razor protein`` (option ``protein_column``)
q_value                    ``Q-value`` (MaxDIA only); null for DDA evidence
decoy                      ``Reverse == "+"``, or every member of the protein matches
                           ``decoy_pattern``
contaminant                ``Potential contaminant == "+"`` (``Contaminant`` in old releases), or
                           a member of the protein matches ``contaminant_pattern``
unique                     ``Protein group IDs`` holds one group (no ``;``); from ``Proteins``
                           when that column is absent
========================== ===================================================================

Choices:

- **Protein**: the razor protein. Every peptide is assigned to exactly one protein, the one with
  the most peptide evidence (MaxQuant's razor rule), so shared peptides still count once and the
  protein identifiers are stable accessions. ``protein_column: Proteins`` or ``Leading proteins``
  uses the full or leading list instead.
- **Unique**: the canonical ``unique`` means "maps to one protein group", which is exactly
  ``Protein group IDs`` without ``;`` (the same rule as ``Unique (Groups)`` of peptides.txt).
  ``Proteins`` with ``;`` would also mark peptides shared between isoforms or subsumed members of
  the same group as shared, which is stricter than intended.
- **q-value**: DDA evidence has no per-row q-value (MaxQuant already filtered PSMs and proteins at
  its FDR, 1% by default); ``PEP`` is a posterior error probability, not a q-value, so it is not
  used. MaxDIA writes a ``Q-value`` column, which is used. When the option ``q_value`` (a
  threshold) is given, rows above it are removed *before* duplicates are combined, so a
  low-confidence duplicate cannot replace a confident one; proteins left without a row are
  recorded in the output's ``attrs[REMOVED_PROTEINS]`` (:mod:`pepmix.readers._dropped`).
- **Duplicates** (option ``duplicates``, default ``max``): one precursor can have several rows in
  one raw file: an MS/MS-identified feature next to a match-between-runs transfer at another
  retention time, split chromatographic peaks, or (MaxDIA) several candidate peaks. These are
  alternative measurements of one quantity, not parts of it, and summing them would inflate the
  intensity by a factor that differs between runs. The row with the highest intensity is kept
  (whole row: its q-value goes with it), as MSstats does for MaxQuant. ``duplicates: sum`` adds
  them instead, which reproduces the ``Intensity <experiment>`` values of MaxQuant's own
  peptides.txt. Rows of different fractions are never combined here: the ingest step sums
  fractions of one sample.
- **Runs and fractions**: without fractions each raw file is a run. With fractions (a ``Fraction``
  column) the raw files are fractions of a sample, so the run is the ``Experiment`` and the ingest
  step sums the fractions. ``run_column`` overrides either.

``maxquant_peptides`` (:func:`read_peptides`): peptides.txt, one row per peptide sequence with one
``Intensity <experiment>`` column per experiment (the ``LFQ intensity`` columns are not used: they
are already normalised and filled in by MaxLFQ). Feature and peptide are ``Sequence``; protein is
``Leading razor protein``; unique is ``Unique (Groups) == "yes"``; decoy and contaminant as above.
Runs are experiment names. Labelled (SILAC) tables are rejected.

Options of both formats: ``protein_column``; ``decoy_pattern`` and ``contaminant_pattern``
(regular expressions searched in each ``;``-separated member of the protein; null disables; see
:mod:`pepmix.readers._support` for the defaults).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from pepmix.errors import InputFormatError
from pepmix.filters import threshold_step
from pepmix.readers._common import require_columns, run_name, run_names, to_float
from pepmix.readers._dropped import DroppedProteins
from pepmix.readers._support import (
    DEFAULT_CONTAMINANT_PATTERN,
    DEFAULT_DECOY_PATTERN,
    first_present,
    flag_proteins,
    melt_runs,
    option_pattern,
    option_str,
    option_threshold,
    precursor_id,
    read_all_selected,
    strip_underscores,
    table_header,
)

log = logging.getLogger(__name__)

SIGNATURE: dict[str, tuple[str, ...]] = {
    "maxquant_evidence": (
        "Modified sequence",
        "Charge",
        "Raw file",
        "Intensity",
        "Leading razor protein",
    ),
    "maxquant_peptides": ("Sequence", "Leading razor protein", "Unique (Groups)", "Intensity"),
}

_CONTAMINANT_COLUMNS = ("Potential contaminant", "Contaminant")
_SILAC = re.compile(r"^Intensity [LMH]( |$)")


def _flags(
    frame: pd.DataFrame, protein: pd.Series, options: Mapping[str, Any]
) -> tuple[pd.Series, pd.Series]:
    """Decoy and contaminant flags: MaxQuant's ``+`` columns or an accession pattern."""
    decoy = flag_proteins(
        protein, option_pattern(options, "decoy_pattern", DEFAULT_DECOY_PATTERN), "all"
    )
    if "Reverse" in frame.columns:
        decoy = decoy | frame["Reverse"].astype("string").str.strip().eq("+").fillna(False)
    contaminant = flag_proteins(
        protein, option_pattern(options, "contaminant_pattern", DEFAULT_CONTAMINANT_PATTERN), "any"
    )
    column = first_present(frame.columns, _CONTAMINANT_COLUMNS)
    if column is not None:
        flagged = frame[column].astype("string").str.strip().eq("+").fillna(False)
        contaminant = contaminant | flagged
    return decoy.astype(bool), contaminant.astype(bool)


def read_evidence(path: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Read a MaxQuant or MaxDIA ``evidence.txt`` (see module docstring).

    Parameters
    ----------
    path : pathlib.Path
        The evidence table.
    options : mapping
        ``protein_column`` (default ``Leading razor protein``), ``run_column`` (default
        ``Raw file``, or ``Experiment`` with fractions), ``duplicates`` (``max`` or ``sum``),
        ``q_value`` (threshold applied before combining duplicates; MaxDIA only),
        ``decoy_pattern``, ``contaminant_pattern``.

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
    protein_column = option_str(options, "protein_column", "Leading razor protein")
    has_fraction = "Fraction" in header
    default_run = "Experiment" if has_fraction and "Experiment" in header else "Raw file"
    run_column = option_str(options, "run_column", default_run)
    duplicates = option_str(options, "duplicates", "max", ("max", "sum"))
    required = ["Modified sequence", "Charge", run_column, "Intensity", protein_column]
    require_columns(header, required, path)
    optional = [
        "Protein group IDs",
        "Proteins",
        "Reverse",
        *_CONTAMINANT_COLUMNS,
        "Fraction",
        "Q-value",
    ]
    columns = required + [c for c in optional if c in header]
    frame = read_all_selected(path, columns, separator)
    if run_column != "Raw file":
        log.info("%s: runs are the %r column (fractions: %s)", path, run_column, has_fraction)
    out = _evidence_rows(frame, path, options, protein_column, run_column)
    if "Q-value" in frame.columns:
        threshold = option_threshold(options, "q_value")
        if threshold is not None:
            kept, dropped = _apply_q_value(out, threshold, path, options)
            return dropped.attach(_combine(kept, duplicates, path))
    return _combine(out, duplicates, path)


def _evidence_rows(
    frame: pd.DataFrame,
    path: Path,
    options: Mapping[str, Any],
    protein_column: str,
    run_column: str,
) -> pd.DataFrame:
    """Reader columns of each evidence row (repeated precursors not yet combined).

    ``unique`` when a protein group column is present, ``fraction`` and ``q_value`` when the
    table has them.
    """
    peptide = strip_underscores(frame["Modified sequence"])
    charge = to_float(frame["Charge"], path, "Charge")
    protein = frame[protein_column]
    decoy, contaminant = _flags(frame, protein, options)
    out = pd.DataFrame(
        {
            "protein": protein,
            "feature": precursor_id(peptide, charge),
            "peptide": peptide,
            "run": run_names(frame[run_column]),
            "intensity": to_float(frame["Intensity"], path, "Intensity"),
            "charge": charge,
            "decoy": decoy,
            "contaminant": contaminant,
        }
    )
    groups_column = first_present(frame.columns, ("Protein group IDs", "Proteins"))
    if groups_column is not None:
        groups = frame[groups_column].astype("string")
        out["unique"] = (~groups.str.contains(";", regex=False)).astype("boolean")
    if "Fraction" in frame.columns:
        out["fraction"] = frame["Fraction"]
    if "Q-value" in frame.columns:
        out["q_value"] = to_float(frame["Q-value"], path, "Q-value")
    return out


def _apply_q_value(
    out: pd.DataFrame, threshold: float, path: Path, options: Mapping[str, Any]
) -> tuple[pd.DataFrame, DroppedProteins]:
    """Keep the rows with ``q_value <= threshold`` (logged); record the proteins left without."""
    keep = ~(out["q_value"] > threshold)
    log.info(
        "%s: q_value <= %g keeps %d of %d evidence rows",
        path,
        threshold,
        int(keep.sum()),
        len(out),
    )
    dropped = DroppedProteins([threshold_step("q_value", options["q_value"])])
    dropped.add(out["protein"], [keep.to_numpy(dtype=bool)])
    return out.loc[keep], dropped


def _combine(frame: pd.DataFrame, how: str, path: Path) -> pd.DataFrame:
    """Combine rows of one precursor in one run (and fraction): keep the max or sum them."""
    keys = ["protein", "feature", "run"] + (["fraction"] if "fraction" in frame.columns else [])
    dup = frame.duplicated(keys, keep=False)
    if not dup.any():
        return frame.reset_index(drop=True)
    n_before = len(frame)
    if how == "max":
        ordered = frame.sort_values("intensity", ascending=False, na_position="last", kind="stable")
        out = ordered.drop_duplicates(keys, keep="first").sort_index()
    else:
        grouped = frame.groupby(keys, sort=False, dropna=False)
        out = grouped.first()
        out["intensity"] = grouped["intensity"].sum(min_count=1)
        if "q_value" in frame.columns:
            out["q_value"] = grouped["q_value"].min()
        out = out.reset_index()
    log.info(
        "%s: %d evidence rows of %d precursor x run pairs seen more than once; "
        "combined by %s into %d rows",
        path,
        int(dup.sum()),
        int(frame.loc[dup, keys].drop_duplicates().shape[0]),
        how,
        len(out) - (n_before - int(dup.sum())),
    )
    return out.reset_index(drop=True)


def read_peptides(path: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Read a MaxQuant ``peptides.txt`` (see module docstring).

    Parameters
    ----------
    path : pathlib.Path
        The peptides table.
    options : mapping
        ``protein_column`` (default ``Leading razor protein``), ``decoy_pattern``,
        ``contaminant_pattern``.

    Returns
    -------
    pandas.DataFrame
        Reader columns for :func:`pepmix.canonical.conform`.

    Raises
    ------
    InputFormatError
        If a required column is missing, there is no ``Intensity <experiment>`` column, the table
        is SILAC-labelled, or a value cannot be parsed.
    """
    header, separator = table_header(path)
    protein_column = option_str(options, "protein_column", "Leading razor protein")
    require_columns(header, ["Sequence", protein_column], path)
    silac = [c for c in header if _SILAC.match(c)]
    if silac:
        raise InputFormatError(
            f"{path}: labelled (SILAC) peptides.txt is not supported; found column {silac[0]!r}"
        )
    run_columns = [c for c in header if c.startswith("Intensity ")]
    if not run_columns:
        raise InputFormatError(
            f"{path}: expected one 'Intensity <experiment>' column per experiment, found none; "
            f"columns present: {', '.join(header[:40])}"
        )
    optional = ["Unique (Groups)", "Reverse", *_CONTAMINANT_COLUMNS]
    columns = ["Sequence", protein_column, *[c for c in optional if c in header], *run_columns]
    frame = read_all_selected(path, columns, separator)
    protein = frame[protein_column]
    decoy, contaminant = _flags(frame, protein, options)
    ids = pd.DataFrame(
        {
            "protein": protein.to_numpy(),
            "feature": frame["Sequence"].to_numpy(),
            "peptide": frame["Sequence"].to_numpy(),
            "decoy": decoy.to_numpy(),
            "contaminant": contaminant.to_numpy(),
        }
    )
    if "Unique (Groups)" in frame.columns:
        text = frame["Unique (Groups)"].astype("string").str.strip().str.lower()
        ids["unique"] = text.eq("yes").astype("boolean").array
    runs = [run_name(c[len("Intensity ") :]) for c in run_columns]
    return melt_runs(ids, frame[run_columns], path, runs)
