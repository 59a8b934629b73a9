"""Skyline "MSstats input" report (``skyline``).

The report has one row per transition x replicate with the columns ``ProteinName,
PeptideSequence`` (or ``PeptideModifiedSequence``), ``PrecursorCharge, FragmentIon, ProductCharge,
IsotopeLabelType, Condition, BioReplicate, FileName, Area, StandardType, Truncated`` and optionally
``DetectionQValue``. Column names are matched ignoring case, spaces, dots and underscores, so the
report's own spellings (``Protein Name``), R-mangled ones (``Protein.Name``, ``File.Name``,
``Peptide.Modified.Sequence``) and an ``X`` row-index column written by R are all accepted.

Columns used
------------
``ProteinName`` -> protein. ``PeptideModifiedSequence`` when present, otherwise
``PeptideSequence`` -> peptide (as MSstats does: the modified sequence identifies the
precursor). ``PrecursorCharge`` -> charge; feature = ``<peptide>_<charge>``. ``FileName`` -> run
(through :func:`~pepmix.readers._common.run_name`, so ``.raw``/``.mzXML`` is removed).
``Area`` -> intensity. ``DetectionQValue`` -> q_value (the largest over the precursor's
transitions). ``Condition``/``BioReplicate`` are ignored (the design comes from the sample sheet).

Choices
-------
- ``#N/A`` (and empty, ``NA``) areas are missing values.
- Truncated peaks (``Truncated`` equal to ``True``/``TRUE``, any case) are set to missing before
  summing, as MSstats' ``SkylinetoMSstatsFormat`` does (it fills them with NA); option
  ``remove_truncated`` (default true) keeps them when false.
- Transitions (fragment ions, or the ``precursor``, ``precursor [M+1]``, ``precursor [M+2]``
  isotope peaks of DDA/MS1 reports) are summed to one value per precursor x run, skipping missing
  ones (MSstats sums isotope peaks with ``na.rm = TRUE`` too). A precursor whose transitions are
  all missing in a run is missing there. Because of the skipping, a run where one transition is
  missing or truncated contributes a partial sum.
- Only light rows (``IsotopeLabelType`` ``light``; option ``label``) are used; heavy reference
  peptides are dropped. ``StandardType == "iRT"`` rows are removed (option ``remove_irt``,
  default true), as in MSstats.
- ``unique``, ``contaminant`` and ``decoy`` are set as for the MSstats format
  (:mod:`pepmix.readers.msstats`); Skyline's own decoys sit in a ``Decoys`` protein, matched by the
  default ``decoy_pattern`` here (``DECOY``/``Decoys`` as in MSstats).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import pandas as pd

from pepmix.readers._common import read_table, run_names, to_float
from pepmix.readers.msstats import (
    check_nonnegative,
    clean_sequence,
    finish_long,
    resolve_columns,
    select_label,
)

log = logging.getLogger(__name__)

SIGNATURE: dict[str, tuple[str, ...]] = {
    "skyline": (
        "ProteinName",
        "PrecursorCharge",
        "FragmentIon",
        "ProductCharge",
        "IsotopeLabelType",
        "FileName",
        "Area",
    ),
}

DEFAULT_DECOY_PATTERN: Final = r"DECOY|Decoys|(?:^|[|;]\s*)(?:REV__|rev_|decoy_)"

_REQUIRED: Final[dict[str, tuple[str, ...]]] = {
    "protein": ("ProteinName",),
    "peptide": ("PeptideModifiedSequence", "PeptideSequence"),
    "charge": ("PrecursorCharge",),
    "run": ("FileName",),
    "intensity": ("Area",),
}
_OPTIONAL: Final[dict[str, tuple[str, ...]]] = {
    "label": ("IsotopeLabelType",),
    "standard": ("StandardType",),
    "truncated": ("Truncated",),
    "q_value": ("DetectionQValue",),
}


def read_skyline(path: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Read a Skyline MSstats report (see module docstring).

    Parameters
    ----------
    path : pathlib.Path
        Comma- or tab-separated report.
    options : mapping
        ``label`` (default ``"light"``), ``remove_truncated`` (default true), ``remove_irt``
        (default true), ``contaminant_pattern``, ``decoy_pattern``.

    Returns
    -------
    pandas.DataFrame
        One row per precursor x run.
    """
    frame = read_table(path)
    cols = resolve_columns(frame, _REQUIRED, _OPTIONAL, path)
    if "standard" in cols and options.get("remove_irt", True):
        irt = frame[cols["standard"]].astype("string").str.strip().str.lower().eq("irt")
        irt_mask = irt.fillna(False).to_numpy(dtype=bool)
        if irt_mask.any():
            log.info("%s: removed %d iRT standard row(s)", path, int(irt_mask.sum()))
            frame = frame.loc[~irt_mask]
    keep = select_label(
        frame[cols["label"]] if "label" in cols else None, options.get("label", "light"), path
    )
    if keep is not None:
        frame = frame.loc[keep.to_numpy()]
    intensity = to_float(frame[cols["intensity"]], path, cols["intensity"])
    check_nonnegative(intensity, path, cols["intensity"])
    if "truncated" in cols and options.get("remove_truncated", True):
        truncated = (
            frame[cols["truncated"]].astype("string").str.strip().str.lower().eq("true")
        ).fillna(False)
        n_trunc = int((truncated & intensity.notna()).sum())
        if n_trunc:
            log.info("%s: %d truncated peak area(s) set to missing", path, n_trunc)
        intensity = intensity.mask(truncated.to_numpy(dtype=bool))
    out = pd.DataFrame(
        {
            "protein": frame[cols["protein"]].astype("string").str.strip(),
            "peptide": clean_sequence(frame[cols["peptide"]]),
            "charge": to_float(frame[cols["charge"]], path, cols["charge"]),
            "run": run_names(frame[cols["run"]]).astype("string"),
            "intensity": intensity,
        }
    )
    extra: dict[str, str] = {}
    if "q_value" in cols:
        out["q_value"] = to_float(frame[cols["q_value"]], path, cols["q_value"])
        extra["q_value"] = "max"
    opts = dict(options)
    opts.setdefault("decoy_pattern", DEFAULT_DECOY_PATTERN)
    return finish_long(out, opts, extra)
