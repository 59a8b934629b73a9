"""Rebuild ``spectronaut_compact_fragments.tsv`` from ``msstatsconvert_spectronaut_slice.csv``.

A compact Spectronaut fragment-level export template has only the columns ``R.Condition,
PG.ProteinGroups, EG.ModifiedSequence, FG.Charge, F.FrgIon, F.Charge, F.PeakArea, PG.Genes,
PG.ProteinNames`` (no ``R.FileName``, no ``EG.PrecursorId``) and labels each run as its own
condition. This reconstruction keeps the real values of the slice (Artistic-2.0, from
Vitek-Lab/MSstatsConvert): rows excluded from quantification are left out (the compact template
has no exclusion column), ``R.Condition`` takes the run name from ``R.FileName``, and
``PG.Genes``/``PG.ProteinNames`` (absent from the source) are derived from the UniProt entry name
(``PSIP1_HUMAN`` -> gene ``PSIP1``). Tab-separated, as Spectronaut writes it.

Run from the repository root: ``python tests/data/formats/spectronaut/make_compact_export.py``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    full = pd.read_csv(HERE / "msstatsconvert_spectronaut_slice.csv", dtype=str)
    full = full[full["F.ExcludedFromQuantification"].str.upper() == "FALSE"]
    entry = full["PG.ProteinGroups"].str.split("|").str[-1]
    compact = pd.DataFrame(
        {
            "R.Condition": full["R.FileName"],
            "PG.ProteinGroups": full["PG.ProteinGroups"],
            "EG.ModifiedSequence": full["EG.ModifiedSequence"],
            "FG.Charge": full["FG.Charge"],
            "F.FrgIon": full["F.FrgIon"],
            "F.Charge": full["F.Charge"],
            "F.PeakArea": full["F.PeakArea"],
            "PG.Genes": entry.str.split("_").str[0],
            "PG.ProteinNames": entry,
        }
    )
    compact.to_csv(HERE / "spectronaut_compact_fragments.tsv", sep="\t", index=False)
