"""Ground-truth benchmark of pepmix's statistics on the demo and on hard simulated scenarios.

For the demo (UPS1 spike-ins = changed by log2 of the concentration ratio, Chlamydomonas
background = unchanged) and each scenario of ``scenarios.py`` (true log2 fold change per
protein), pepmix runs through the workflow's own stage functions (``stage_runner.py``: ingest,
merge, normalize, fit, test, each given the config sections its rule gets) once per variant, and
this prints per scenario and variant:

- ``tested``: proteins with a p-value; ``TP``, ``FP`` and the observed false discovery
  proportion ``FDP = FP / max(TP + FP, 1)`` at adjusted p < 0.05 (0 without discoveries, so that
  its mean over seeds estimates the FDR);
- ``TP@FDP5``: ranking power, the most true positives among the top k proteins by p-value
  whose running FDP is at most 5% (independent of how the p-values are calibrated);
- ``|err|``: median absolute error of the estimated log2 fold change of the changed proteins;
- ``alerts``: codes of the alerts (:mod:`pepmix.alerts`) the rules raised, over all seeds.

Variants are config overrides (the keys the workflow uses): the old defaults
(:data:`OLD_DEFAULTS`), each new piece of issue 10 alone on top of them (:data:`PIECES`; the
feature majority rule only acts on robust fits, so its piece is Huber + the rule), combinations
(:data:`COMBINATIONS`), the build's own defaults and overrides of them
(:data:`MISSING_VARIANTS`, e.g. without the feature majority rule). A variant whose keys the
build's schema does not know is reported as ``n/a (not available in this build)``. With several
seeds the figures are means over seeds.

    .venv/bin/python benchmarks/ground_truth.py                 # everything, seed 1
    .venv/bin/python benchmarks/ground_truth.py --quick         # 1,000 proteins, no demo (~45 s)
    .venv/bin/python benchmarks/ground_truth.py --scenarios demo up60 technical --seeds 1 2 \\
        --csv out.csv
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scenarios import SCENARIOS, simulate_scenario, write_inputs
from stage_runner import (
    StageRunner,
    availability,
    demo_config,
    known_only,
    merge_overrides,
    scenario_config,
)

from pepmix.errors import PepmixError

log = logging.getLogger("ground_truth")

ALPHA = 0.05
#: the defaults before issue 10 (keys a build does not know are left out: absent = old behaviour)
OLD_DEFAULTS: dict[str, Any] = {
    "normalization": {"method": "median_ratio"},
    "model": {"shrinkage": False, "robust": "none", "feature_majority": False},
    "testing": {"replication": "biological"},
}
#: each new piece of issue 10, applied alone on top of the old defaults
PIECES: dict[str, dict[str, Any]] = {
    "+ protein_median normalisation": {
        "normalization": {"method": "protein_median", "location": "median"}
    },
    "+ protein_median normalisation, KDE mode": {
        "normalization": {"method": "protein_median", "location": "mode"}
    },
    "+ runs as replicates (replication auto)": {"testing": {"replication": "auto"}},
    "+ sample-variance shrinkage": {"model": {"shrinkage": True}},
    "+ Huber M-estimation": {"model": {"robust": "huber"}},
    # the feature majority rule only acts on robust (Huber) fits, so it comes with them
    "+ Huber M-estimation + feature majority rule": {
        "model": {"robust": "huber", "feature_majority": True}
    },
}
#: combinations of the pieces (on top of the new normalisation and replication rule)
COMBINATIONS: dict[str, dict[str, Any]] = {
    "mode + shrinkage": {
        "normalization": {"method": "protein_median", "location": "mode"},
        "testing": {"replication": "auto"},
        "model": {"shrinkage": True},
    },
    "mode + Huber": {
        "normalization": {"method": "protein_median", "location": "mode"},
        "testing": {"replication": "auto"},
        "model": {"robust": "huber"},
    },
    "all new pieces together": {
        "normalization": {"method": "protein_median", "location": "mode"},
        "testing": {"replication": "auto"},
        "model": {"shrinkage": True, "robust": "huber"},
    },
    "mode + Tukey bisquare": {
        "normalization": {"method": "protein_median", "location": "mode"},
        "testing": {"replication": "auto"},
        "model": {"robust": "bisquare"},
    },
    "mode + Huber + feature precision weights": {
        "normalization": {"method": "protein_median", "location": "mode"},
        "testing": {"replication": "auto"},
        "model": {"robust": "huber", "feature_weights": "empirical_bayes"},
    },
}
#: issue 14: the missing-value model on top of the build's defaults. The detection model has no
#: robust weights (``missing: detection`` sets ``model.robust: none``), so MAR with robust none is
#: its like-for-like comparison
MISSING_VARIANTS: dict[str, dict[str, Any]] = {
    # the feature majority rule's own effect on top of everything else (not a missing-value
    # variant, but like these an override of the build's defaults)
    "build defaults without the feature majority rule": {"model": {"feature_majority": False}},
    "build defaults, robust none (MAR)": {"model": {"robust": "none"}},
    "build defaults, missing: detection": {"missing": "detection"},
}
OLD_LABEL, NEW_LABEL = "old defaults", "build defaults"
ORACLE_LABEL = "diagnostic: old defaults, oracle normalisation on the unchanged proteins"
NA_TEXT = "n/a (not available in this build)"
#: variants found unavailable, with the override leaves the build's schema does not accept
UNAVAILABLE: dict[str, list[str]] = {}


def variants(
    base: Mapping[str, Any],
    config_schema: Mapping[str, Any],
    oracle_reference: list[str] | None = None,
) -> list[tuple[str, Any]]:
    """``(label, overrides)`` per variant; overrides is :data:`NA_TEXT` when unavailable.

    With ``oracle_reference`` (the truly unchanged proteins), a diagnostic variant normalises
    on them (``method: reference``): the best any normalisation could do.
    """
    old = known_only(OLD_DEFAULTS, config_schema)
    out: list[tuple[str, Any]] = [(OLD_LABEL, old)]
    for label, piece in {**PIECES, **COMBINATIONS}.items():
        missing = availability(piece, merge_overrides(base, old), config_schema)
        if missing:
            UNAVAILABLE[label] = missing
            out.append((label, NA_TEXT))
        else:
            out.append((label, merge_overrides(old, piece)))
    out.append((NEW_LABEL, {}))
    for label, piece in MISSING_VARIANTS.items():
        missing = availability(piece, base, config_schema)
        if missing:
            UNAVAILABLE[label] = missing
        out.append((label, NA_TEXT if missing else piece))
    if oracle_reference:
        oracle = {"normalization": {"method": "reference", "reference_proteins": oracle_reference}}
        out.append((ORACLE_LABEL, merge_overrides(old, oracle)))
    return out


def ranking_power(pvalue: np.ndarray, true: np.ndarray, level: float = ALPHA) -> int:
    """Most true positives among the top k by p-value with running FDP <= level."""
    order = np.argsort(pvalue, kind="stable")
    hits = np.cumsum(true[order])
    k = np.arange(1, order.size + 1)
    ok = (k - hits) <= level * k
    return int(hits[ok].max()) if ok.any() else 0


def score(table: pd.DataFrame, true_lfc: pd.Series) -> dict[str, float]:
    """Scores of one contrast's differential table against the true log2 fold changes."""
    tested = table.loc[table["pvalue"].notna()]
    truth = true_lfc.reindex(tested["protein"].astype(str)).fillna(0.0).to_numpy()
    changed = truth != 0
    called = tested["adj_pvalue"].to_numpy() < ALPHA
    tp, fp = int((called & changed).sum()), int((called & ~changed).sum())
    err = np.abs(tested["log2fc"].to_numpy() - truth)[changed]
    return {
        "tested": len(tested),
        "changed tested": int(changed.sum()),
        "TP": tp,
        "FP": fp,
        "FDP": fp / max(tp + fp, 1),
        "TP@FDP5": ranking_power(tested["pvalue"].to_numpy(), changed),
        "|err|": float(np.median(err)) if err.size else np.nan,
    }


def demo_truth(contrast: str, proteins: pd.Series) -> pd.Series:
    """True log2FC of a demo contrast ``fmolX - fmolY``: log2(X/Y) for UPS proteins, else 0."""
    num, den = (float(re.sub(r"\D", "", side)) for side in contrast.split(" - "))
    ups = proteins.astype(str).str.contains("UPS").to_numpy()
    return pd.Series(np.where(ups, np.log2(num / den), 0.0), index=proteins.astype(str))


def demo_rows(table: pd.DataFrame, variant: str) -> list[dict[str, Any]]:
    """:func:`score` of every contrast of a demo differential table, one row per contrast
    (``contrast``, ``variant`` and the scores)."""
    rows = []
    for contrast in table["contrast"].unique():
        part = table.loc[table["contrast"] == contrast]
        truth = demo_truth(contrast, part["protein"].drop_duplicates())
        rows.append({"contrast": contrast, "variant": variant} | score(part, truth))
    return rows


def run_case(runner: StageRunner, config: dict[str, Any], overrides: Any) -> pd.DataFrame | str:
    """Differential table of one variant, or the reason it is not available / failed."""
    if isinstance(overrides, str):
        return overrides
    try:
        table, _ = runner.run(merge_overrides(config, overrides))
    except PepmixError as exc:
        return f"error: {exc}"
    return table.assign(alerts=" ".join(sorted(set(runner.alerts()))))


def _rows(
    name: str, label: str, result: pd.DataFrame | str, truths: dict[str, pd.Series], seed: Any
) -> list[dict[str, Any]]:
    if isinstance(result, str):
        return [
            {"scenario": f"{name} {c}".strip(), "variant": label, "seed": seed, "note": result}
            for c in truths
        ]
    rows = []
    for contrast, truth in truths.items():
        part = result.loc[result["contrast"] == (contrast or "B - A")]
        label_c = f"{name} {contrast}".strip()
        alerts = str(result["alerts"].iloc[0]) if len(result) else ""
        rows.append(
            {
                "scenario": label_c,
                "variant": label,
                "seed": seed,
                **score(part, truth),
                "alerts": alerts,
            }
        )
    return rows


def benchmark(
    names: list[str],
    seeds: list[int],
    n_proteins: int,
    workdir: Path,
    only: list[str] | None = None,
) -> pd.DataFrame:
    """Score every variant (or the labels in ``only``) on every scenario and seed (one row per
    scenario, contrast, variant and seed)."""
    runner = StageRunner(workdir / "cache")
    rows: list[dict[str, Any]] = []
    for name in names:
        start = time.perf_counter()
        if name == "demo":
            config = demo_config()
            result = run_case(runner, config, {})
            contrasts = [] if isinstance(result, str) else list(result["contrast"].unique())
            proteins = pd.Series(dtype=str) if isinstance(result, str) else result["protein"]
            truths = {c: demo_truth(c, proteins.drop_duplicates()) for c in contrasts}
            cases = [(config, truths, "-", ["regex:^(?!.*UPS)"])]
        else:
            cases = []
            for seed in seeds:
                sim = simulate_scenario(name, n_proteins, seed)
                data, samples = write_inputs(sim, workdir / "data" / f"{name}-{n_proteins}-{seed}")
                truth = sim.truth.set_index("protein")["log2fc"]
                unchanged = list(truth.index[truth == 0])
                cases.append((scenario_config(data, samples), {"": truth}, seed, unchanged))
        for config, truths, seed, reference in cases:
            for label, overrides in variants(config, runner.schema, reference or None):
                if only and label not in only:
                    continue
                result = run_case(runner, config, overrides)
                rows += _rows(name, label, result, truths, seed)
        log.info("%s: %.1f s", name, time.perf_counter() - start)
    return pd.DataFrame(rows)


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds per scenario and variant (scenario and variant order kept)."""
    keys = ["scenario", "variant"]
    if "note" not in rows.columns:
        rows = rows.assign(note=np.nan)
    if "alerts" not in rows.columns:
        rows = rows.assign(alerts="")
    numeric = [c for c in rows.columns if c not in (*keys, "seed", "note", "alerts")]
    grouped = rows.groupby(keys, sort=False)
    out = grouped[numeric].mean()
    out["note"] = grouped["note"].first()
    out["alerts"] = grouped["alerts"].agg(
        lambda codes: " ".join(sorted({c for text in codes.dropna() for c in str(text).split()}))
    )
    out["seeds"] = grouped["seed"].nunique()
    out = out.reset_index()
    first = {name: i for i, name in enumerate(dict.fromkeys(rows["scenario"]))}
    out["_order"] = out["scenario"].map(first)
    return out.sort_values("_order", kind="stable").drop(columns="_order")


def markdown(summary: pd.DataFrame, show_na: bool = False) -> str:
    """The summary as a Markdown table (rows of unavailable variants only with ``show_na``)."""
    if not show_na:
        summary = summary.loc[summary["note"] != NA_TEXT]
    head = (
        "| scenario | variant | tested | TP | FP | FDP | TP@FDP5 | median abs. log2FC error "
        "| alerts |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for rec in summary.to_dict("records"):
        if isinstance(rec["note"], str):
            cells = [rec["note"]] + [""] * 6
        else:
            cells = [
                f"{rec['tested']:.0f}",
                f"{rec['TP']:.1f}".removesuffix(".0"),
                f"{rec['FP']:.1f}".removesuffix(".0"),
                f"{rec['FDP']:.1%}",
                f"{rec['TP@FDP5']:.1f}".removesuffix(".0"),
                "-" if np.isnan(rec["|err|"]) else f"{rec['|err|']:.3f}",
                rec["alerts"] or "-",
            ]
        lines.append(f"| {rec['scenario']} | {rec['variant']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compact_markdown(summary: pd.DataFrame) -> str:
    """One row per scenario, one column per available variant: ``FDP (TP@FDP5)``."""
    summary = summary.loc[summary["note"].isna()]
    variants_ = list(dict.fromkeys(summary["variant"]))
    lines = [
        "| scenario | " + " | ".join(variants_) + " |",
        "|---" * (len(variants_) + 1) + "|",
    ]
    for scenario, part in summary.groupby("scenario", sort=False):
        by_variant = part.set_index("variant")
        cells = [
            f"{by_variant.at[v, 'FDP']:.1%} ({by_variant.at[v, 'TP@FDP5']:.0f})"
            if by_variant.at[v, "tested"] > 0
            else "not tested"
            for v in variants_
        ]
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    choices = ["demo", *SCENARIOS]
    parser.add_argument("--scenarios", nargs="+", choices=choices, default=choices)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    parser.add_argument("--proteins", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="1,000 proteins, no demo")
    parser.add_argument("--csv", type=Path, help="write the per-seed rows here")
    parser.add_argument("--workdir", type=Path, help="keep stage outputs here (default: temp)")
    parser.add_argument("--compact", action="store_true", help="also a scenario x variant table")
    parser.add_argument("--show-na", action="store_true", help="table rows for n/a variants")
    parser.add_argument("--variants", nargs="+", help="only these variants (labels)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    log.setLevel(logging.INFO)
    names = [n for n in args.scenarios if not (args.quick and n == "demo")]
    n_proteins = 1000 if args.quick else args.proteins
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pepmix-gt-") as tmp:
        rows = benchmark(
            names, args.seeds, n_proteins, args.workdir or Path(tmp), only=args.variants
        )
    if args.csv:
        rows.to_csv(args.csv, index=False)
    summary = summarise(rows)
    print(markdown(summary, args.show_na))
    if args.compact:
        print("\nFDP at adjusted p < 0.05 (TP@FDP5):\n")
        print(compact_markdown(summary))
    if UNAVAILABLE:
        print(f"\n{NA_TEXT}:")
        for label, missing in UNAVAILABLE.items():
            print(f"- `{label}`: the schema does not accept `{', '.join(missing)}`")
    print(
        f"\n{n_proteins} proteins per scenario, seeds {', '.join(map(str, args.seeds))} "
        f"(means over seeds); {time.perf_counter() - start:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
