"""Rebuild the MSstatsConvert-style outputs used by tests/unit/test_readers_msstats.py.

MSstatsConvert's converters for Skyline, Proteome Discoverer and Progenesis write the MSstats
long format with the peptide in a ``PeptideModifiedSequence`` column and no ``PeptideSequence``
(its ``standard_columns`` list both; these converters keep the modified one). R is not available
here, so the three files are reconstructed with pandas from the tool exports stored next to the
other test data (all Artistic-2.0, from Vitek-Lab/MSstatsConvert's tinytest inputs), following
the converters' documented steps:

- columns ``ProteinName, PeptideModifiedSequence, PrecursorCharge, FragmentIon, ProductCharge,
  IsotopeLabelType, Condition, BioReplicate, Run, Fraction, Intensity`` (Skyline keeps
  ``StandardType``), written like R's ``write.csv(..., row.names = FALSE)``;
- Skyline: one row per transition; ``#N/A`` areas and truncated peaks become ``NA``;
- Proteome Discoverer (PSM export): modified sequence = ``Sequence`` + ``_`` + ``Modifications``
  (the separator is this reconstruction's choice), several PSMs of one precursor and run reduced
  with ``max`` (the converters' default ``summaryforMultipleRows = max``), fragment columns ``NA``;
- Progenesis: the ``Raw abundance`` block melted to one row per peptide ion x run, modified
  sequence as for PD.

Run from the repository root: ``python tests/data/formats/msstats/make_msstatsconvert_outputs.py``.
Slices are small (two proteins for Skyline and PD, the first 12 peptide ions for Progenesis).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

FORMATS = Path(__file__).resolve().parents[1]
OUT = FORMATS / "msstats"
COLUMNS = [
    "ProteinName",
    "PeptideModifiedSequence",
    "PrecursorCharge",
    "FragmentIon",
    "ProductCharge",
    "IsotopeLabelType",
    "Condition",
    "BioReplicate",
    "Run",
    "Fraction",
    "Intensity",
]


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NA"
    if isinstance(value, str):
        return '"' + value.replace('"', '""') + '"'
    if isinstance(value, float):
        return f"{value:.15g}"
    return str(value)


def _write(frame: pd.DataFrame, name: str) -> None:
    """Write like R's write.csv(row.names = FALSE): strings quoted, numbers and NA bare."""
    lines = [",".join(_cell(str(c)) for c in frame.columns)]
    lines += [",".join(_cell(v) for v in row) for row in frame.astype(object).itertuples(False)]
    (OUT / name).write_text("\n".join(lines) + "\n")


def skyline() -> None:
    raw = pd.read_csv(
        FORMATS / "skyline" / "msstatsconvert_skyline_input_slice.csv",
        dtype=str,
        keep_default_na=False,
    )
    raw = raw[raw["Protein.Name"] == "P23827"]
    area = pd.to_numeric(raw["Area"].replace("#N/A", ""), errors="coerce")
    area = area.mask(raw["Truncated"].str.upper() == "TRUE")
    out = pd.DataFrame(
        {
            "ProteinName": raw["Protein.Name"],
            "PeptideModifiedSequence": raw["Peptide.Modified.Sequence"],
            "PrecursorCharge": raw["Precursor.Charge"].astype(int),
            "FragmentIon": raw["Fragment.Ion"],
            "ProductCharge": raw["Product.Charge"].astype(int),
            "IsotopeLabelType": "L",
            "Condition": raw["Condition"],
            "BioReplicate": raw["BioReplicate"].astype(int),
            "Run": raw["File.Name"],
            "Fraction": 1,
            "Intensity": area,
            "StandardType": raw["Standard.Type"].replace("", None),
        }
    )
    _write(out, "msstatsconvert_skyline_output.csv")


def proteome_discoverer() -> None:
    raw = pd.read_csv(FORMATS / "proteome_discoverer" / "msstatsconvert_pd_input.csv")
    raw = raw[raw["Protein.Group.Accessions"].isin(["P60664", "P0A8F4"])]
    mods = raw["Modifications"].fillna("")
    raw = raw.assign(
        peptide=raw["Sequence"].where(mods == "", raw["Sequence"] + "_" + mods),
    )
    keys = ["Protein.Group.Accessions", "peptide", "Charge", "Spectrum.File"]
    best = raw.groupby(keys, sort=True)["Precursor.Area"].max().reset_index()
    mixture = best["Spectrum.File"].map(lambda f: int(re.search(r"Mixt_(\d+)_", f).group(1)))
    out = pd.DataFrame(
        {
            "ProteinName": best["Protein.Group.Accessions"],
            "PeptideModifiedSequence": best["peptide"],
            "PrecursorCharge": best["Charge"],
            "FragmentIon": None,
            "ProductCharge": None,
            "IsotopeLabelType": "L",
            "Condition": "Condition" + mixture.astype(str),
            "BioReplicate": mixture,
            "Run": best["Spectrum.File"],
            "Fraction": 1,
            "Intensity": best["Precursor.Area"],
        }
    )
    _write(out[COLUMNS], "msstatsconvert_pd_output.csv")


def progenesis() -> None:
    path = FORMATS / "progenesis" / "msstatsconvert_progenesis_input.csv"
    top = pd.read_csv(path, header=None, nrows=3, dtype=str, keep_default_na=False)
    data = pd.read_csv(path, header=None, skiprows=3, dtype=str, keep_default_na=False)
    groups, conditions, names = (top.iloc[i].tolist() for i in range(3))
    start = groups.index("Raw.abundance")
    end = groups.index("Spectral.counts")
    data = data.head(12)
    mods = data[names.index("Modifications")]
    seq = data[names.index("Sequence")]
    peptide = seq.where(mods == "", seq + "_" + mods)
    rows = []
    condition = ""
    for position in range(start, end):
        condition = conditions[position] or condition
        run = names[position]
        replicate = int(re.search(r"sample(\d)", run).group(1))
        rows.append(
            pd.DataFrame(
                {
                    "ProteinName": data[names.index("Accession")],
                    "PeptideModifiedSequence": peptide,
                    "PrecursorCharge": data[names.index("Charge")].astype(int),
                    "FragmentIon": None,
                    "ProductCharge": None,
                    "IsotopeLabelType": "L",
                    "Condition": condition,
                    "BioReplicate": replicate,
                    "Run": run,
                    "Fraction": 1,
                    "Intensity": pd.to_numeric(data[position]),
                }
            )
        )
    _write(pd.concat(rows, ignore_index=True)[COLUMNS], "msstatsconvert_progenesis_output.csv")


if __name__ == "__main__":
    skyline()
    proteome_discoverer()
    progenesis()
