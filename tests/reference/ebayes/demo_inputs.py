"""Write the variances pepmix moderates on the demo, for limma to fit the same prior.

    .venv/bin/python tests/reference/ebayes/demo_inputs.py   # then Rscript demo_limma.R

For each demo contrast and each tested protein: the contrast variance per biological sample
``s2 = se^2 / (1/n_A + 1/n_B)`` and its (capped) Satterthwaite df, exactly what
``pepmix.inference.moderation`` hands to ``squeeze_var``. Written with 17 significant digits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pepmix.config import resolve_contrasts
from pepmix.filters import filter_proteins
from pepmix.ingest import ingest_batch
from pepmix.model.design import build_run_design, model_spec_from_config
from pepmix.model.fit import FITTED, fit_proteins
from pepmix.normalization import normalize
from pepmix.samples import condition_levels, load_design

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]


def demo_contrast_stats() -> tuple[pd.DataFrame, list[str]]:
    """Fit the demo (workflow defaults, median_ratio normalisation); return contrasts and order."""
    sheet = load_design(REPO / "config/samples.tsv").runs
    entry = {
        "name": "demo",
        "format": "generic_wide",
        "path": str(REPO / "data/demo/berg2019_ups_progenesis_peptides.csv.gz"),
        "id_column": "identifier",
        "id_separator": "--",
    }
    table = filter_proteins(ingest_batch(entry, {}, "peptide"), {"min_features": 2})
    # the stored inputs (demo_inputs.csv.gz) were written with median_ratio, the default
    # normalisation until issue 10; the comparison with limma does not depend on it
    features, _ = normalize(table, method="median_ratio")
    design = build_run_design(sheet, model_spec_from_config({}, sheet))
    contrasts = resolve_contrasts("all_pairwise", condition_levels(sheet))
    fit = fit_proteins(
        features.loc[:, ["protein", "feature", "run", "y"]],
        design,
        [(c.name, c.numerator, c.denominator) for c in contrasts],
    )
    stats = fit.contrast_table([c.numerator for c in contrasts], [c.denominator for c in contrasts])
    return stats, [c.name for c in contrasts]


def main() -> None:
    stats, _ = demo_contrast_stats()
    tested = stats["status"].isin(FITTED) & (stats["se"] > 0) & (stats["df"] > 0)
    tested &= stats["df_between"] >= 1
    part = stats.loc[tested].copy()
    unscaled = 1.0 / part["n_samples_num"] + 1.0 / part["n_samples_den"]
    out = pd.DataFrame(
        {
            "contrast": part["contrast"],
            "protein": part["protein"],
            "s2": part["se"] ** 2 / unscaled,
            "df": np.minimum(part["df"], part["df_between"]),
        }
    )
    out.to_csv(HERE / "demo_inputs.csv.gz", index=False, float_format="%.17g")


if __name__ == "__main__":
    main()
