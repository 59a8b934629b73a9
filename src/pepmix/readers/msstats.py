"""MSstats long format (``msstats``), including the FragPipe and OpenMS/quantms variants.

The MSstats input is one row per transition (fragment ion) or precursor x run with the ten columns
``ProteinName, PeptideSequence, PrecursorCharge, FragmentIon, ProductCharge, IsotopeLabelType,
Condition, BioReplicate, Run, Intensity`` and optionally ``Fraction``, ``StandardType`` and
``Reference``. Variants read by the same code:

- FragPipe/IonQuant ``MSstats.csv`` (extra ``Protein.Start``/``Protein.End`` columns, bracketed
  mass modifications such as ``C[57.0215]``, ``NA`` fragment ions);
- OpenMS ``MSstatsConverter`` / ProteomicsLFQ / quantms ``msstats_in.csv`` (numeric ``Run``, the
  file name in a quoted ``Reference`` column, modifications as ``(Carbamidomethyl)``, an N-terminal
  modification written with a leading ``.`` as in ``.(Acetyl)PEPTIDE``, optional ``Fraction``).

Column names are matched ignoring case, spaces, dots and underscores, so R-mangled names
(``Protein.Name``) are accepted; an ``X`` row-index column written by R is ignored.

- MSstatsConvert's converters for Skyline, Proteome Discoverer and Progenesis (and MSstats itself
  since version 4) name the peptide column ``PeptideModifiedSequence``; it may replace or accompany
  ``PeptideSequence``.

Columns used
------------
``ProteinName`` -> protein. ``PeptideModifiedSequence`` when present (it identifies the precursor,
as in MSstats), otherwise ``PeptideSequence`` -> peptide (the modified sequence as written, with a
leading ``.`` removed). ``PrecursorCharge`` -> charge. feature = ``<peptide>_<charge>``.
``Reference`` (file name) -> run when the column is present, otherwise ``Run``; both go through
:func:`~pepmix.readers._common.run_name`. ``Fraction`` -> fraction. ``Intensity`` -> intensity.
``Condition`` and ``BioReplicate`` are ignored: the design comes from the sample sheet.

Choices
-------
- Transitions are summed to precursors: rows sharing protein, peptide, charge and run are summed
  over ``FragmentIon``/``ProductCharge`` (and any repeated rows). ``NA`` and 0 intensities are
  missing values: they are skipped in the sum (as MSstats does with ``na.rm = TRUE``), and a
  precursor with no positive transition in a run stays missing (dropped by
  :func:`pepmix.canonical.conform`).
- Only light rows are used (``IsotopeLabelType`` ``L`` or ``light``, option ``label``, default
  ``"light"``; ``"heavy"`` selects ``H``/``heavy`` rows instead). Heavy-labelled reference peptides
  (SRM/PRM spike-ins) are therefore dropped; label-based normalisation is not supported. A file
  without ``IsotopeLabelType`` is taken as all light.
- Rows whose ``StandardType`` is ``iRT`` are removed (option ``remove_irt``, default true), as the
  MSstats converters do; other standard types are kept.
- ``unique`` is false for a peptide sequence that occurs under more than one ``ProteinName`` in the
  file (MSstats' ``useUniquePeptide``); the shared-peptide filter then removes it. A protein group
  written as ``A;B`` is one protein.
- ``contaminant``/``decoy`` are set when the protein name (or any ``;``-separated member) matches
  ``contaminant_pattern`` (default: a member starting with ``CONTAMINANT_``, ``contam_``,
  ``CON__`` or ``Cont_`` (ProteoBench FASTA), also after a ``sp|``-style prefix) or
  ``decoy_pattern`` (default: ``DECOY_``, ``REV__``, ``rev_``, ``decoy_``). MSstats files
  carry no q-values.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from pepmix.errors import ConfigError, InputFormatError
from pepmix.readers._common import read_table, require_columns, run_names, to_float

log = logging.getLogger(__name__)

SIGNATURE: dict[str, tuple[str, ...]] = {
    "msstats": (
        "ProteinName",
        "PeptideSequence",
        "PrecursorCharge",
        "FragmentIon",
        "ProductCharge",
        "IsotopeLabelType",
        "Run",
        "Intensity",
    ),
}

DEFAULT_CONTAMINANT_PATTERN: Final = r"(?:^|[|;]\s*)(?:CONTAMINANT_|contam_|CON__|Cont_)"
DEFAULT_DECOY_PATTERN: Final = r"(?:^|[|;]\s*)(?:DECOY_|REV__|rev_|decoy_)"

_LIGHT: Final = frozenset({"l", "light"})
_HEAVY: Final = frozenset({"h", "heavy"})


def canonical_name(name: str) -> str:
    """Key used to match column names: lower case, letters and digits only.

    ``Protein.Name``, ``Protein Name``, ``protein_name`` and ``ProteinName`` all give
    ``proteinname``.
    """
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def find_column(columns: Iterable[str], *names: str) -> str | None:
    """Return the first column of ``columns`` matching one of ``names`` (see canonical_name)."""
    by_key: dict[str, str] = {}
    for col in columns:
        by_key.setdefault(canonical_name(col), col)
    for name in names:
        found = by_key.get(canonical_name(name))
        if found is not None:
            return found
    return None


def resolve_columns(
    frame: pd.DataFrame,
    required: Mapping[str, Sequence[str]],
    optional: Mapping[str, Sequence[str]],
    path: Path,
) -> dict[str, str]:
    """Map roles to the file's column names; raise naming the first spelling of missing roles.

    Parameters
    ----------
    frame : pandas.DataFrame
        Table as read.
    required, optional : mapping of role to accepted spellings
        The first spelling is the one named in error messages.
    path : pathlib.Path
        File, for messages.
    """
    found: dict[str, str] = {}
    missing: list[str] = []
    for role, names in required.items():
        col = find_column(frame.columns, *names)
        if col is None:
            missing.append(" or ".join(names[:2]) if len(names) > 1 else names[0])
        else:
            found[role] = col
    if missing:
        require_columns(list(frame.columns), missing, path)
    for role, names in optional.items():
        col = find_column(frame.columns, *names)
        if col is not None:
            found[role] = col
    return found


def pattern_flag(proteins: pd.Series, pattern: str, option: str) -> pd.Series:
    """Boolean series: protein (group) matches the regular expression ``pattern``."""
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"{option}: invalid regular expression {pattern!r} ({exc})") from None
    text = proteins.astype("string").fillna("")
    return text.str.contains(regex, regex=True).astype("boolean")


def unique_flags(peptide: pd.Series, protein: pd.Series) -> pd.Series:
    """True where the peptide occurs under a single protein (group) in the whole table."""
    counts = (
        pd.DataFrame({"peptide": peptide.to_numpy(), "protein": protein.to_numpy()})
        .groupby("peptide", dropna=False, sort=False)["protein"]
        .nunique()
    )
    n = peptide.map(counts)
    return (n <= 1).astype("boolean")


def select_label(labels: pd.Series | None, label: object, path: Path) -> pd.Series | None:
    """Boolean mask of rows with the requested isotope label, or None to keep every row.

    Parameters
    ----------
    labels : pandas.Series or None
        The ``IsotopeLabelType`` column; None when the file has none (all rows are light).
    label : {"light", "heavy"}
        Requested label; ``L``/``H`` are accepted too.
    path : pathlib.Path
        File, for messages.
    """
    wanted = str(label).strip().lower()
    if wanted in _LIGHT:
        accepted = _LIGHT
    elif wanted in _HEAVY:
        accepted = _HEAVY
    else:
        raise ConfigError(f"label: must be 'light' or 'heavy', got {label!r}")
    if labels is None:
        if accepted is _HEAVY:
            raise InputFormatError(f"{path}: no IsotopeLabelType column, cannot select heavy rows")
        return None
    text = labels.astype("string").str.strip().str.lower()
    keep = text.isin(accepted).fillna(False).astype(bool)
    if not keep.any():
        found = ", ".join(sorted(text.dropna().unique().tolist())[:10])
        raise InputFormatError(
            f"{path}: no row with IsotopeLabelType {label!r} (L/light or H/heavy); "
            f"labels found: {found or 'none'}"
        )
    dropped = int((~keep).sum())
    if dropped:
        log.info("%s: dropped %d row(s) with another isotope label than %s", path, dropped, label)
    return keep


def check_nonnegative(values: pd.Series, path: Path, column: str) -> None:
    """Raise if a parsed intensity column has a negative value (before any summing)."""
    negative = values < 0
    if negative.any():
        raise InputFormatError(
            f"{path}: column {column!r} has {int(negative.sum())} negative value(s) "
            f"(first: {float(values[negative].iloc[0])}); intensities must be on the linear scale"
        )


def clean_sequence(seq: pd.Series) -> pd.Series:
    """Remove the OpenMS leading ``.`` of N-terminal modifications and surrounding blanks."""
    return seq.astype("string").str.strip().str.replace(r"^\.", "", regex=True)


def sum_to_precursors(frame: pd.DataFrame, extra: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Sum rows of one precursor x run (transitions, isotope peaks, repeats).

    Missing and zero intensities are skipped; a group without a positive value stays NaN.

    Parameters
    ----------
    frame : pandas.DataFrame
        Columns protein, peptide, charge, run, intensity and optionally fraction.
    extra : mapping, optional
        Further columns and their aggregation (``"min"``, ``"max"``, ``"first"``).
    """
    keys = ["protein", "peptide", "charge", "run"]
    named: dict[str, tuple[str, Any]] = {
        "intensity": ("intensity", "sum"),
        "n_obs": ("intensity", "count"),
    }
    if "fraction" in frame.columns:
        named["fraction"] = ("fraction", "first")
    for col, how in (extra or {}).items():
        named[col] = (col, how)
    work = frame.copy()
    work["intensity"] = work["intensity"].where(work["intensity"] != 0)
    grouped = work.groupby(keys, sort=False, dropna=False).agg(**named)
    grouped.loc[grouped["n_obs"] == 0, "intensity"] = np.nan
    out = grouped.drop(columns="n_obs").reset_index()
    if len(out) < len(work):
        log.info("summed %d transition rows into %d precursor x run rows", len(work), len(out))
    return out


def precursor_feature(peptide: pd.Series, charge: pd.Series) -> pd.Series:
    """Feature identifier ``<peptide>_<charge>`` (charge ``NA`` when missing)."""
    numeric = pd.to_numeric(charge, errors="coerce").astype("Float64")
    text = numeric.round().astype("Int64").astype("string").fillna("NA")
    return peptide.astype("string") + "_" + text.set_axis(peptide.index)


def finish_long(
    frame: pd.DataFrame, options: Mapping[str, Any], extra: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Sum to precursors and add feature, unique, contaminant and decoy columns."""
    out = sum_to_precursors(frame, extra)
    out["feature"] = precursor_feature(out["peptide"], out["charge"])
    out["unique"] = unique_flags(out["peptide"], out["protein"])
    out["contaminant"] = pattern_flag(
        out["protein"],
        str(options.get("contaminant_pattern", DEFAULT_CONTAMINANT_PATTERN)),
        "contaminant_pattern",
    )
    out["decoy"] = pattern_flag(
        out["protein"],
        str(options.get("decoy_pattern", DEFAULT_DECOY_PATTERN)),
        "decoy_pattern",
    )
    return out


_REQUIRED: Final[dict[str, tuple[str, ...]]] = {
    "protein": ("ProteinName",),
    "peptide": ("PeptideModifiedSequence", "PeptideSequence"),
    "charge": ("PrecursorCharge",),
    "intensity": ("Intensity",),
}
_OPTIONAL: Final[dict[str, tuple[str, ...]]] = {
    "run": ("Run",),
    "reference": ("Reference",),
    "label": ("IsotopeLabelType",),
    "fraction": ("Fraction",),
    "standard": ("StandardType",),
}


def read_msstats(path: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Read an MSstats long table (see module docstring).

    Parameters
    ----------
    path : pathlib.Path
        Comma- or tab-separated MSstats input.
    options : mapping
        ``label`` (default ``"light"``), ``remove_irt`` (default true), ``contaminant_pattern``,
        ``decoy_pattern`` (regular expressions; defaults in the module docstring).

    Returns
    -------
    pandas.DataFrame
        One row per precursor x run.
    """
    frame = read_table(path)
    return msstats_frame(frame, path, options)


def msstats_frame(frame: pd.DataFrame, path: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Convert an MSstats-format frame that has already been read (see :func:`read_msstats`)."""
    cols = resolve_columns(frame, _REQUIRED, _OPTIONAL, path)
    if "run" not in cols and "reference" not in cols:
        require_columns(list(frame.columns), ["Run"], path)
    frame = _drop_standards(frame, cols, options, path)
    keep = select_label(
        frame[cols["label"]] if "label" in cols else None, options.get("label", "light"), path
    )
    if keep is not None:
        frame = frame.loc[keep.to_numpy()]
    if "reference" in cols and frame[cols["reference"]].notna().all():
        run_source = frame[cols["reference"]]
    elif "run" in cols:
        run_source = frame[cols["run"]]
    else:
        raise InputFormatError(f"{path}: column Reference has empty values and there is no Run")
    out = pd.DataFrame(
        {
            "protein": frame[cols["protein"]].astype("string").str.strip(),
            "peptide": clean_sequence(frame[cols["peptide"]]),
            "charge": to_float(frame[cols["charge"]], path, cols["charge"]),
            "run": run_names(run_source).astype("string"),
            "intensity": to_float(frame[cols["intensity"]], path, cols["intensity"]),
        }
    )
    check_nonnegative(out["intensity"], path, cols["intensity"])
    if "fraction" in cols:
        out["fraction"] = frame[cols["fraction"]].astype("string")
    return finish_long(out, options)


def _drop_standards(
    frame: pd.DataFrame, cols: Mapping[str, str], options: Mapping[str, Any], path: Path
) -> pd.DataFrame:
    if "standard" not in cols or not options.get("remove_irt", True):
        return frame
    irt = frame[cols["standard"]].astype("string").str.strip().str.lower().eq("irt").fillna(False)
    n = int(irt.sum())
    if n:
        log.info("%s: removed %d iRT standard row(s) (StandardType == 'iRT')", path, n)
        return frame.loc[~irt.to_numpy(dtype=bool)]
    return frame
