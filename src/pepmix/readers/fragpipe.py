"""FragPipe / IonQuant combined tables: ``combined_ion.tsv``, ``combined_modified_peptide.tsv``
and ``combined_peptide.tsv`` (DDA and DIA layouts alike).

All three have one row per feature and per-run column blocks ``<run> Spectral Count``,
``<run> Intensity``, optionally ``<run> MaxLFQ Intensity``, ``<run> Match Type``, ``<run> Apex
Retention Time`` or ``<run> Localization``. The table is recognised from its header:

=========================== ============================================ =====================
table                       feature                                      recognised by
=========================== ============================================ =====================
combined_ion.tsv            ``Modified Sequence`` + ``_`` + ``Charge``   ``Charge`` column
combined_modified_peptide   ``Modified Sequence``                        ``Modified Sequence``
combined_peptide.tsv        ``Peptide Sequence``                         neither
=========================== ============================================ =====================

Columns used:

- **peptide**: ``Modified Sequence`` (``Peptide Sequence`` where it is empty, and for
  combined_peptide.tsv); **charge**: ``Charge`` (ion table only).
- **run**: the ``<run>`` prefix of the ``<run> Spectral Count`` columns (present in every layout),
  through :func:`pepmix.readers._common.run_name`; when there are none, the prefixes of the
  ``<run> Intensity`` columns.
- **intensity** (option ``intensity``): ``intensity`` (default) reads ``<run> Intensity``, the
  raw IonQuant feature intensities; ``maxlfq`` reads ``<run> MaxLFQ Intensity``, which exists only
  in the peptide-level tables of recent FragPipe versions and is already normalised and
  missing-value-filled across runs by MaxLFQ (so it is not a raw measurement; use it knowingly).
- **protein**: ``Protein`` (FragPipe's razor protein, e.g. ``sp|P36578|RL4_HUMAN``), or ``Protein
  ID`` when ``Protein`` is absent (option ``protein_column``).
- **unique**: ``Mapped Proteins`` is empty, i.e. no protein other than ``Protein`` contains the
  peptide.
- **decoy**/**contaminant**: FragPipe writes no flags (decoys are normally removed by
  Philosopher's FDR filter); proteins matching ``decoy_pattern`` (``rev_``, every member) and
  ``contaminant_pattern`` (``contam_``, ``Cont_``, ...; any member) are flagged.
- **q_value**: none (the tables are already FDR-filtered by Philosopher).

Rows of one precursor with several compensation voltages (FAIMS) share one feature and are summed
by the ingest step, like fractions.
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
    first_present,
    flag_proteins,
    melt_runs,
    option_pattern,
    option_str,
    precursor_id,
    read_all_selected,
    table_header,
)

log = logging.getLogger(__name__)

SIGNATURE: dict[str, tuple[str, ...]] = {
    "fragpipe": ("Peptide Sequence", "Protein", "Mapped Proteins", "Mapped Genes"),
}

_RUN_SUFFIX = " Spectral Count"
_INTENSITY_SUFFIX = {"intensity": " Intensity", "maxlfq": " MaxLFQ Intensity"}
_NOT_RUNS = ("Total", "Unique", "Razor", "Combined Total", "Combined Unique", "Combined")


def _runs(header: list[str], path: Path) -> list[str]:
    """Run prefixes of the per-run column blocks."""
    runs = [c[: -len(_RUN_SUFFIX)] for c in header if c.endswith(_RUN_SUFFIX)]
    if not runs:
        runs = [
            c[: -len(" Intensity")]
            for c in header
            if c.endswith(" Intensity") and not c.endswith(" MaxLFQ Intensity")
        ]
    runs = [r for r in runs if r and r not in _NOT_RUNS]
    if not runs:
        raise InputFormatError(
            f"{path}: expected per-run '<run> Spectral Count' or '<run> Intensity' columns, "
            f"found none; columns present: {', '.join(header[:40])}"
        )
    return runs


def read_fragpipe(path: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Read a FragPipe combined ion, modified-peptide or peptide table (see module docstring).

    Parameters
    ----------
    path : pathlib.Path
        The combined table.
    options : mapping
        ``intensity`` (``intensity`` or ``maxlfq``), ``protein_column`` (default ``Protein``,
        else ``Protein ID``), ``decoy_pattern``, ``contaminant_pattern``.

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
    kind = option_str(options, "intensity", "intensity", tuple(_INTENSITY_SUFFIX))
    default_protein = first_present(header, ("Protein", "Protein ID")) or "Protein"
    protein_column = option_str(options, "protein_column", default_protein)
    require_columns(header, ["Peptide Sequence", protein_column], path)
    if "Charge" in header:
        table = "combined_ion"
        require_columns(header, ["Modified Sequence"], path)
    elif "Modified Sequence" in header:
        table = "combined_modified_peptide"
    else:
        table = "combined_peptide"
    runs = _runs(header, path)
    suffix = _INTENSITY_SUFFIX[kind]
    value_columns = [f"{r}{suffix}" for r in runs]
    missing = [c for c in value_columns if c not in header]
    if missing:
        raise InputFormatError(
            f"{path}: option intensity: {kind} needs a '<run>{suffix}' column per run; missing "
            f"{missing[0]!r}" + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
        )
    id_columns = ["Peptide Sequence", protein_column] + [
        c for c in ("Modified Sequence", "Charge", "Mapped Proteins") if c in header
    ]
    frame = read_all_selected(path, id_columns + value_columns, separator)
    log.info("%s: FragPipe %s table, %d runs, %s values", path, table, len(runs), suffix.strip())

    sequence = frame["Peptide Sequence"].astype("string")
    if "Modified Sequence" in frame.columns:
        peptide = frame["Modified Sequence"].astype("string").fillna(sequence)
    else:
        peptide = sequence
    protein = frame[protein_column].astype("string")
    ids = pd.DataFrame({"protein": protein, "peptide": peptide})
    if table == "combined_ion":
        charge = to_float(frame["Charge"], path, "Charge")
        ids["feature"] = precursor_id(peptide, charge)
        ids["charge"] = charge
    else:
        ids["feature"] = peptide
    if "Mapped Proteins" in frame.columns:
        mapped = frame["Mapped Proteins"].astype("string").str.strip()
        ids["unique"] = mapped.isna() | (mapped == "")
    ids["decoy"] = flag_proteins(
        protein, option_pattern(options, "decoy_pattern", DEFAULT_DECOY_PATTERN), "all"
    )
    ids["contaminant"] = flag_proteins(
        protein, option_pattern(options, "contaminant_pattern", DEFAULT_CONTAMINANT_PATTERN), "any"
    )
    repeated = ids.duplicated(["protein", "feature"])
    if repeated.any():
        log.info(
            "%s: %d rows repeat a feature (e.g. several FAIMS compensation voltages); they are "
            "summed per run at ingest",
            path,
            int(repeated.sum()),
        )
    return melt_runs(ids, frame[value_columns], path, [run_name(r) for r in runs])
