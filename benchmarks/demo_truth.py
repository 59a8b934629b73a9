"""Ground truth on the demo: UPS1 spike-ins (true changes) against the Chlamydomonas background.

Runs the library stages (ingest, normalise, fit, test) on ``data/demo`` and prints, per contrast,
true positives (UPS proteins called), false positives (background proteins called) and the false
discovery proportion at adjusted p < 0.01 and < 0.05, for pepmix's defaults (protein_median
normalisation with the KDE mode, Huber M-estimation) and for each default switched off in turn
(moderation, df cap, robust fit, normalisation, two-feature minimum).

    .venv/bin/python benchmarks/demo_truth.py
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from pepmix.config import resolve_contrasts
from pepmix.filters import filter_proteins
from pepmix.inference.differential import InferenceOptions, differential_table
from pepmix.ingest import ingest_batch
from pepmix.model.design import build_run_design, model_spec_from_config
from pepmix.model.fit import fit_proteins
from pepmix.model.shrinkage import fit_variance_prior
from pepmix.normalization import normalize
from pepmix.samples import condition_levels, load_design

REPO = Path(__file__).resolve().parents[1]
#: the default normalisation (method:location)
NORM = "protein_median:mode"
ENTRY = {
    "name": "berg2019",
    "format": "generic_wide",
    "path": str(REPO / "data/demo/berg2019_ups_progenesis_peptides.csv.gz"),
    "id_column": "identifier",
    "id_separator": "--",
}


def contrast_stats(
    normalization: str, min_features: int, shrinkage: bool = False, robust: str = "none"
) -> tuple[pd.DataFrame, list[str]]:
    """Fit the demo with the given normalisation and feature minimum; return contrast stats.

    ``normalization`` is a method, or ``protein_median:mode`` for its mode location.
    ``shrinkage``: with the variance-ratio prior (``model.shrinkage``), estimated on all proteins.
    ``robust``: ``model.robust``.
    """
    sheet = load_design(REPO / "config/samples.tsv").runs
    table = ingest_batch(ENTRY, {}, feature_level="peptide")
    table = filter_proteins(table, {"min_features": min_features, "min_observations": 2})
    method, _, location = normalization.partition(":")
    features, _ = normalize(table, method=method, location=location or "median")
    design = build_run_design(sheet, model_spec_from_config({}, sheet))
    contrasts = resolve_contrasts("all_pairwise", condition_levels(sheet))
    long = features.loc[:, ["protein", "feature", "run", "y"]]
    fit = fit_proteins(
        long,
        design,
        [(c.name, c.numerator, c.denominator) for c in contrasts],
        prior=fit_variance_prior(long, design) if shrinkage else None,
        robust=robust,
    )
    stats = fit.contrast_table([c.numerator for c in contrasts], [c.denominator for c in contrasts])
    return stats, [c.name for c in contrasts]


def score(result: pd.DataFrame) -> list[dict[str, object]]:
    """TP, FP and FDP per contrast at adjusted p < 0.01 and < 0.05."""
    rows = []
    ups = result["protein"].str.contains("UPS")
    for contrast, part in result.groupby("contrast", sort=False):
        is_ups = ups.loc[part.index]
        row: dict[str, object] = {"contrast": contrast}
        for alpha in (0.01, 0.05):
            called = part["adj_pvalue"] < alpha
            tp = int((called & is_ups).sum())
            fp = int((called & ~is_ups).sum())
            row[f"TP@{alpha}"] = tp
            row[f"FP@{alpha}"] = fp
            row[f"FDP@{alpha}"] = round(fp / max(tp + fp, 1), 3)
        row["UPS tested"] = int((is_ups & part["pvalue"].notna()).sum())
        row["bg median log2FC"] = round(float(part.loc[~is_ups, "log2fc"].median()), 3)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    defaults = InferenceOptions()
    variants: list[tuple[str, str, int, InferenceOptions]] = [
        # the workflow's defaults: protein_median with the KDE mode, Huber M-estimation
        ("pepmix defaults", f"{NORM}+huber", 2, defaults),
        # model.shrinkage: the workflow then skips the contrast-variance moderation
        ("+ model.shrinkage", f"{NORM}+huber+shrinkage", 2, replace(defaults, moderation=False)),
        ("plain REML fit (model.robust none)", NORM, 2, defaults),
        ("Tukey bisquare (model.robust bisquare)", f"{NORM}+bisquare", 2, defaults),
        ("moderation off", f"{NORM}+huber", 2, replace(defaults, moderation=False)),
        ("df cap off", f"{NORM}+huber", 2, replace(defaults, df_cap=False)),
        ("non-robust prior", f"{NORM}+huber", 2, replace(defaults, robust=False)),
        ("protein_median, location median", "protein_median:median+huber", 2, defaults),
        ("median_ratio normalisation", "median_ratio+huber", 2, defaults),
        ("median normalisation", "median+huber", 2, defaults),
        ("single-feature proteins kept", f"{NORM}+huber", 1, defaults),
        (
            "plain lmerTest-like (median, 1 feature, no moderation, no cap)",
            "median",
            1,
            InferenceOptions(moderation=False, df_cap=False),
        ),
    ]
    cache: dict[tuple[str, int], tuple[pd.DataFrame, list[str]]] = {}
    rows = []
    for label, norm, min_features, options in variants:
        key = (norm, min_features)
        if key not in cache:
            start = time.perf_counter()
            method, *flags = norm.split("+")
            robust = next((f for f in flags if f in ("huber", "bisquare")), "none")
            cache[key] = contrast_stats(method, min_features, "shrinkage" in flags, robust)
            logging.info("fitted %s in %.1f s", key, time.perf_counter() - start)
        stats, order = cache[key]
        result = differential_table(stats, order, options)
        for row in score(result):
            rows.append({"variant": label, **row})
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False))
    worst = table.loc[table["variant"] == "pepmix defaults", "FDP@0.05"].to_numpy(dtype=float)
    print(f"\npepmix defaults: largest FDP at adjusted p < 0.05 over contrasts = {np.max(worst)}")


if __name__ == "__main__":
    main()
