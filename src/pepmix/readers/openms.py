"""OpenMS / quantms outputs (``openms``): the MSstats CSV and the mzTab 1.0 file.

The file type is chosen from the content: a file whose first non-empty line starts with ``MTD``
(or whose name ends in ``.mzTab``/``.mztab``, optionally gzipped) is read as mzTab, anything else
as the MSstats CSV.

MSstats CSV (``msstats_in.csv``, ``out_msstats.csv``, ``MSstatsConverter`` output)
--------------------------------------------------------------------------------
Read by :func:`pepmix.readers.msstats.msstats_frame`: transitions summed to precursors, light
rows only, ``Reference`` (the quoted mzML file name) -> run when present, ``Run`` otherwise;
``Fraction`` -> fraction. OpenMS quirks: the N-terminal modification is written with a leading
``.`` (``.(Acetyl)PEPTIDE``) which is removed (``(Acetyl)PEPTIDE``; a modification before the first
residue is unambiguous); ``(Carbamidomethyl)``-style modification names are kept as written; the
fragment ion is empty or ``NA`` and ``ProductCharge`` is 0.

mzTab 1.0 (ProteomicsLFQ ``*.mzTab``)
-------------------------------------
The PEP section is used: one row per consensus feature with ``sequence``, ``accession``,
``unique``, ``modifications``, ``charge``, the abundances, and the OpenMS optional columns
``opt_global_cv_MS:1000889_peptidoform_sequence`` and ``opt_global_cv_MS:1002217_decoy_peptide``.

- Level: assay-level abundances ``peptide_abundance_assay[i]`` are used when present (one value per
  assay, i.e. per sample). Otherwise ``peptide_abundance_study_variable[i]`` is used, but only when
  every study variable refers to exactly one assay (as ProteomicsLFQ writes it: study variable i =
  assay i), because then the study-variable value is the assay value; a study variable pooling
  several assays holds an average over replicates, not a per-run value, and is refused with an
  error suggesting the MSstats CSV instead.
- Run names: an assay's ``ms_run_ref`` lists its MS runs; the run name is the file name of
  ``ms_run[j]-location`` without directories and extensions (``BSA1_F1``). An assay made of several
  MS runs (fractions of one sample: ProteomicsLFQ sums them) is named by joining those names with
  ``+`` (``BSA1_F1+BSA1_F2``), so the sample sheet must list that name. Without ``ms_run_ref`` the
  assay is named ``assay[i]``.
- protein = ``accession``; peptide = the peptidoform sequence when present, otherwise
  ``sequence`` followed by ``[<modifications>]`` when modified; feature = ``<peptide>_<charge>``;
  ``unique`` from the ``unique`` column (1/0); ``decoy`` from the decoy column;
  ``contaminant`` from ``contaminant_pattern`` as in :mod:`pepmix.readers.msstats`.
- The peptide ``best_search_engine_score`` is not used as a q-value (its meaning depends on the
  search engine settings recorded in the metadata); ProteomicsLFQ writes FDR-filtered results.
- ``null`` and empty cells are missing values. Several PEP rows of one peptidoform and charge
  (separate consensus features) are left as separate rows; ingest sums them per run.
"""

from __future__ import annotations

import gzip
import io
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import pandas as pd

from pepmix.errors import InputFormatError
from pepmix.readers._common import read_table, run_name, to_float
from pepmix.readers.msstats import (
    DEFAULT_CONTAMINANT_PATTERN,
    msstats_frame,
    pattern_flag,
    precursor_feature,
)

log = logging.getLogger(__name__)

SIGNATURE: dict[str, tuple[str, ...]] = {
    "openms": (
        "ProteinName",
        "PeptideSequence",
        "PrecursorCharge",
        "FragmentIon",
        "ProductCharge",
        "IsotopeLabelType",
        "Run",
        "Intensity",
        "Reference",
    ),
}
"""Header of the OpenMS MSstats CSV. An mzTab file is recognised by its ``MTD`` lines instead."""

_PEP_REQUIRED: Final = ("sequence", "accession", "charge")
_PEPTIDOFORM: Final = "opt_global_cv_MS:1000889_peptidoform_sequence"
_DECOY: Final = "opt_global_cv_MS:1002217_decoy_peptide"
_NULLS: Final = frozenset({"", "null", "NULL", "NA", "NaN", "nan"})


def read_openms(path: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Read an OpenMS MSstats CSV or mzTab file (see module docstring).

    Parameters
    ----------
    path : pathlib.Path
        ``*.csv``/``*.tsv`` MSstats table or ``*.mzTab`` file.
    options : mapping
        MSstats CSV: as :func:`pepmix.readers.msstats.read_msstats`. mzTab:
        ``contaminant_pattern`` (regular expression, default as for MSstats).

    Returns
    -------
    pandas.DataFrame
        One row per precursor (consensus feature) x run.
    """
    if is_mztab(path):
        return read_mztab(path, options)
    return msstats_frame(read_table(path), path, options)


def is_mztab(path: Path) -> bool:
    """True if the file name ends in ``.mzTab`` or its first non-empty line starts with ``MTD``."""
    name = path.name.lower()
    if name.endswith((".mztab", ".mztab.gz")):
        return True
    if not path.exists():
        return False
    with _open(path) as handle:
        for line in handle:
            if line.strip():
                return line.startswith(("MTD\t", "MTD "))
    return False


def _open(path: Path) -> io.TextIOBase:
    if path.suffix.lower() == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig")
    return open(path, encoding="utf-8-sig", newline="")


def read_mztab(path: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Read the PEP section of an mzTab 1.0 file (see module docstring).

    Parameters
    ----------
    path : pathlib.Path
        mzTab file (optionally gzipped) with MTD and PEH/PEP lines.
    options : mapping
        ``contaminant_pattern`` (default :data:`DEFAULT_CONTAMINANT_PATTERN`).

    Returns
    -------
    pandas.DataFrame
        One row per peptide ion x run (the abundance columns of the PEP section).
    """
    metadata, table = _pep_section(path)
    abundance = _abundance_columns(table, metadata, path)
    ions = _peptide_ions(table, path, options)
    pieces = []
    for column, run in abundance:
        values = to_float(table[column], path, column)
        piece = ions.copy()
        piece["run"] = run
        piece["intensity"] = values.to_numpy()
        pieces.append(piece)
    out = pd.concat(pieces, ignore_index=True)
    log.info(
        "%s: mzTab PEP section, %d rows x %d runs (%s)",
        path,
        len(table),
        len(abundance),
        abundance[0][0].split("[")[0],
    )
    return out


def _pep_section(path: Path) -> tuple[dict[str, str], pd.DataFrame]:
    """The MTD metadata (key -> value) and the PEP rows (null markers as None) of an mzTab file.

    Raises
    ------
    InputFormatError
        On a missing or non-UTF-8 file, a PEP row before the PEH header or of another length, no
        or an empty peptide section, or a required PEP column missing.
    """
    if not path.exists():
        raise InputFormatError(f"{path}: file not found")
    metadata: dict[str, str] = {}
    header: list[str] | None = None
    rows: list[list[str]] = []
    try:
        with _open(path) as handle:
            for number, raw in enumerate(handle, start=1):
                line = raw.rstrip("\r\n")
                if line.startswith("MTD"):
                    parts = line.split("\t")
                    if len(parts) >= 3:
                        metadata[parts[1].strip()] = parts[2].strip()
                elif line.startswith("PEH"):
                    header = line.split("\t")
                elif line.startswith("PEP"):
                    rows.append(_pep_cells(line, header, path, number))
    except UnicodeDecodeError:
        raise InputFormatError(f"{path}: not a UTF-8 text file") from None
    if header is None:
        raise InputFormatError(
            f"{path}: no peptide section (PEH/PEP lines) in the mzTab file; it is needed for "
            "peptide-level quantities"
        )
    if not rows:
        raise InputFormatError(f"{path}: the mzTab peptide section (PEP) has no rows")
    table = pd.DataFrame(rows, columns=header, dtype=object)
    table = table.drop(columns=["PEH"], errors="ignore")
    table = table.apply(lambda col: col.where(~col.isin(_NULLS), None))
    missing = [c for c in _PEP_REQUIRED if c not in table.columns]
    if missing:
        shown = ", ".join(list(table.columns)[:40])
        raise InputFormatError(
            f"{path}: PEP section lacks column(s) {', '.join(missing)}; columns present: {shown}"
        )
    return metadata, table


def _pep_cells(line: str, header: list[str] | None, path: Path, number: int) -> list[str]:
    """The cells of PEP line ``number``; it must follow the PEH header and match its length."""
    if header is None:
        raise InputFormatError(f"{path}: line {number}: PEP row before the PEH header")
    cells = line.split("\t")
    if len(cells) != len(header):
        raise InputFormatError(
            f"{path}: line {number}: PEP row has {len(cells)} cells, the PEH "
            f"header has {len(header)} (truncated or malformed file?)"
        )
    return cells


def _peptide_ions(table: pd.DataFrame, path: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """The peptide ion of each PEP row, with its flags.

    Columns ``protein, peptide, charge, feature``, ``unique`` and ``decoy`` when the section has
    them, and ``contaminant`` from the accession pattern.
    """
    base = pd.DataFrame(
        {
            "protein": table["accession"].astype("string").str.strip(),
            "peptide": _peptide(table),
            "charge": to_float(table["charge"], path, "charge"),
        }
    )
    base["feature"] = precursor_feature(base["peptide"], base["charge"])
    for flag, column in (("unique", "unique"), ("decoy", _DECOY)):
        if column in table.columns:
            base[flag] = _binary_flag(table[column])
    base["contaminant"] = pattern_flag(
        base["protein"],
        str(options.get("contaminant_pattern", DEFAULT_CONTAMINANT_PATTERN)),
        "contaminant_pattern",
    )
    return base


def _binary_flag(values: pd.Series) -> pd.Series:
    """mzTab's ``1``/``0`` as a nullable boolean (anything else missing)."""
    return values.astype("string").str.strip().map({"1": True, "0": False}).astype("boolean")


def _peptide(table: pd.DataFrame) -> pd.Series:
    if _PEPTIDOFORM in table.columns and table[_PEPTIDOFORM].notna().all():
        seq = table[_PEPTIDOFORM].astype("string").str.strip()
        return seq.str.replace(r"^\.", "", regex=True)
    seq = table["sequence"].astype("string").str.strip()
    if "modifications" in table.columns:
        mods = table["modifications"].astype("string")
        has = mods.notna() & (mods.str.strip() != "")
        seq = seq.where(~has, seq + "[" + mods.fillna("") + "]")
    return seq


_INDEXED = re.compile(r"^(?P<kind>assay|study_variable|ms_run)\[(?P<i>\d+)\]-(?P<key>.+)$")


def _abundance_columns(
    table: pd.DataFrame, metadata: Mapping[str, str], path: Path
) -> list[tuple[str, str]]:
    """Return (abundance column, run name) pairs at the assay level."""
    assays = _indexed_columns(table, "peptide_abundance_assay")
    study = _indexed_columns(table, "peptide_abundance_study_variable")
    runs = _ms_run_names(metadata)
    assay_runs = _assay_names(metadata, runs)
    if assays:
        return [(col, assay_runs.get(i, f"assay[{i}]")) for i, col in assays]
    if not study:
        raise InputFormatError(
            f"{path}: PEP section has no peptide_abundance_assay[i] or "
            "peptide_abundance_study_variable[i] column"
        )
    pairs: list[tuple[str, str]] = []
    for i, col in study:
        refs = metadata.get(f"study_variable[{i}]-assay_refs", "")
        assay_ids = [int(m) for m in re.findall(r"assay\[(\d+)\]", refs)]
        if len(assay_ids) != 1:
            raise InputFormatError(
                f"{path}: study_variable[{i}] pools {len(assay_ids) or 'an unknown number of'} "
                "assays, so its peptide abundance is not a per-run value; use the OpenMS/quantms "
                "MSstats CSV (msstats_in.csv) instead"
            )
        a = assay_ids[0]
        pairs.append((col, assay_runs.get(a, f"assay[{a}]")))
    names = [name for _, name in pairs]
    if len(set(names)) != len(names):
        raise InputFormatError(f"{path}: several study variables map to the same run ({names})")
    return pairs


def _indexed_columns(table: pd.DataFrame, prefix: str) -> list[tuple[int, str]]:
    pattern = re.compile(rf"^{re.escape(prefix)}\[(\d+)\]$")
    found = []
    for col in table.columns:
        match = pattern.match(str(col))
        if match:
            found.append((int(match.group(1)), str(col)))
    return sorted(found)


def _ms_run_names(metadata: Mapping[str, str]) -> dict[int, str]:
    names: dict[int, str] = {}
    for key, value in metadata.items():
        match = _INDEXED.match(key)
        if match and match["kind"] == "ms_run" and match["key"] == "location":
            location = re.sub(r"^file:(//)?", "", value.strip())
            names[int(match["i"])] = run_name(location)
    return names


def _assay_names(metadata: Mapping[str, str], runs: Mapping[int, str]) -> dict[int, str]:
    names: dict[int, str] = {}
    for key, value in metadata.items():
        match = _INDEXED.match(key)
        if match and match["kind"] == "assay" and match["key"] == "ms_run_ref":
            ids = [int(m) for m in re.findall(r"ms_run\[(\d+)\]", value)]
            parts = [runs.get(j, f"ms_run[{j}]") for j in ids]
            if parts:
                names[int(match["i"])] = "+".join(parts)
    return names


__all__ = ["SIGNATURE", "is_mztab", "read_mztab", "read_openms"]
