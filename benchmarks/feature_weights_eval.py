"""Feature precision weights (``model.feature_weights``) against the build defaults.

Through the workflow's rules (``stage_runner.py``), as the calibration tests:

- FDP at adjusted p < 0.05 and TP@FDP5 (ranking power), mean over seeds 21-24, 1,500 proteins,
  on ``hetero_features``, ``both20``, ``outliers``, ``technical``;
- null p-values (``no_change`` and ``hetero_features`` without changes, seed 11, 2,000
  proteins): KS p and share below 0.05;
- the demo: UPS called / background false positives / TP@FDP5 per contrast;
- ``--fixed-d0 D``: the variant with the prior df fixed at ``D`` instead of estimated (a
  diagnostic: what the weights could do if the prior were known), in its own cache.

    PYTHONPATH=src:benchmarks .venv/bin/python benchmarks/feature_weights_eval.py \\
        --workdir /tmp/fw [--fixed-d0 2] [--parts scenarios null demo]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ground_truth import demo_rows, score
from scenarios import simulate_scenario, write_inputs
from scipy import stats
from stage_runner import StageRunner, demo_config, merge_overrides, scenario_config

log = logging.getLogger("feature_weights_eval")

VARIANTS: dict[str, dict[str, Any]] = {
    "build defaults": {},
    "feature_weights: empirical_bayes": {"model": {"feature_weights": "empirical_bayes"}},
}
SCENARIO_NAMES = ("hetero_features", "both20", "outliers", "technical")
#: null data sets: ``name`` or ``name:null`` (that scenario with no protein changing)
NULL_NAMES = ("no_change", "hetero_features:null")


def _fix_prior(d0: float) -> None:
    """Replace the estimated prior df by ``d0`` (scale 1, the estimated df factor): the
    diagnostic variant."""
    from dataclasses import replace

    from pepmix.model import feature_weights as fw

    estimate = fw.fit_feature_prior

    def fixed(enc: Any) -> fw.FeaturePrior:
        return replace(estimate(enc), df=d0, scale=1.0)

    fw.fit_feature_prior = fixed


def _downweight_only() -> None:
    """Diagnostic: weights min(1, median posterior ratio of the protein / the feature's), no
    renormalisation: noisy features down-weighted, quiet ones not up-weighted."""
    from pepmix.inference.limma.squeeze import posterior_var
    from pepmix.model import feature_weights as fw

    def weights(r: fw.FeatureRatios, prior: fw.FeaturePrior) -> Any:
        use = r.df > 0
        post = posterior_var(
            np.nan_to_num(r.ratio, nan=1.0), prior.df_factor * r.df, prior.scale, prior.df
        )
        frame = pd.DataFrame({"p": r.protein[use], "v": post[use]})
        med = frame.groupby("p")["v"].transform("median").to_numpy()
        w = np.ones(r.ratio.size)
        w[use] = np.minimum(1.0, med / post[use])
        return w

    fw.precision_weights = weights


#: oracle diagnostic: the true residual SD factor of every feature of the current data set
ORACLE: dict[str, pd.Series] = {}


def _oracle(restricted: bool = False) -> None:
    """Feature weights 1 / g_f^2 from the simulation's truth (mean 1 within protein), for every
    protein with >= 2 features: the most any feature weighting could give (``restricted``:
    only the features the estimator gives a ratio)."""
    from pepmix.model import feature_weights as fw

    original = fw.feature_ratios
    seen: dict[str, Any] = {}

    def ratios(enc: Any, y: Any = None) -> fw.FeatureRatios:
        seen["features"] = np.asarray(enc.features, dtype=str)
        out = original(enc, y)
        df = out.df if restricted else np.where(out.n_obs >= 2, 1.0, 0.0)
        return fw.FeatureRatios(out.ratio, df, out.protein, out.n_obs)

    def weights(r: fw.FeatureRatios, prior: fw.FeaturePrior) -> Any:
        g = ORACLE["noise"].reindex(seen["features"]).fillna(1.0).to_numpy()
        w = np.where(r.df > 0, 1.0 / g**2, 1.0)
        n_prot = int(r.protein.max()) + 1
        mean = np.bincount(r.protein, weights=w * r.n_obs, minlength=n_prot) / np.maximum(
            np.bincount(r.protein, weights=r.n_obs, minlength=n_prot), 1
        )
        return np.where(r.df > 0, w / mean[r.protein], 1.0)

    fw.feature_ratios = ratios
    fw.precision_weights = weights
    fw.fit_feature_prior = lambda enc: fw.FeaturePrior(1.0, 1.0, 1.0, 0)


def _table(runner: StageRunner, name: str, n: int, seed: int, work: Path, over: Any) -> Any:
    base, _, null = name.partition(":")
    sim = simulate_scenario(base, n, seed, **({"frac_changing": 0.0} if null else {}))
    if sim.feature_noise is not None:
        ORACLE["noise"] = sim.feature_noise
    else:
        ORACLE["noise"] = pd.Series(dtype=float)
    data, samples = write_inputs(sim, work / "data" / f"{name.replace(':', '-')}-{n}-{seed}")
    table, _ = runner.run(merge_overrides(scenario_config(data, samples), over))
    return table, sim.truth.set_index("protein")["log2fc"]


def scenarios(runner: StageRunner, work: Path, seeds: list[int], n: int) -> pd.DataFrame:
    """Mean FDP / TP@FDP5 / TP per scenario and variant."""
    rows = []
    for name in SCENARIO_NAMES:
        for label, over in VARIANTS.items():
            for seed in seeds:
                table, truth = _table(runner, name, n, seed, work, over)
                rows.append(
                    {"scenario": name, "variant": label, "seed": seed} | score(table, truth)
                )
    out = pd.DataFrame(rows)
    return out.groupby(["scenario", "variant"], sort=False)[["TP", "FP", "FDP", "TP@FDP5"]].mean()


def null(runner: StageRunner, work: Path, seed: int, n: int) -> pd.DataFrame:
    """KS p and share of p < 0.05 on null data."""
    rows = []
    for name in NULL_NAMES:
        for label, over in VARIANTS.items():
            table, _ = _table(runner, name, n, seed, work, over)
            p = table["pvalue"].dropna().to_numpy()
            ks = stats.kstest(p, "uniform").pvalue
            rows.append(
                {"scenario": name, "variant": label, "KS p": ks, "p<0.05": np.mean(p < 0.05)}
            )
    return pd.DataFrame(rows)


def demo(runner: StageRunner) -> pd.DataFrame:
    """UPS called, background FP and TP@FDP5 per contrast."""
    rows = []
    for label, over in VARIANTS.items():
        table, _ = runner.run(merge_overrides(demo_config(), over))
        rows.extend(demo_rows(table, label))
    return pd.DataFrame(rows)[["contrast", "variant", "TP", "FP", "TP@FDP5", "|err|"]]


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--parts", nargs="+", default=["scenarios", "null", "demo"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[21, 22, 23, 24])
    parser.add_argument("--proteins", type=int, default=1500)
    parser.add_argument("--fixed-d0", type=float)
    parser.add_argument("--oracle", action="store_true", help="true feature noise as weights")
    parser.add_argument("--downweight-only", action="store_true", help="weights capped at 1")
    parser.add_argument("--oracle-restricted", action="store_true", help="... where estimable")
    parser.add_argument("--scenarios", nargs="+")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    global SCENARIO_NAMES
    if args.scenarios:
        SCENARIO_NAMES = tuple(args.scenarios)
    if args.fixed_d0 is not None:
        _fix_prior(args.fixed_d0)
    if args.downweight_only:
        _downweight_only()
    if args.oracle or args.oracle_restricted:
        _oracle(args.oracle_restricted)
    runner = StageRunner(args.workdir / "cache")
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    if "scenarios" in args.parts:
        print(scenarios(runner, args.workdir, args.seeds, args.proteins).round(4), flush=True)
    if "null" in args.parts:
        print(null(runner, args.workdir, 11, 2000).round(4), flush=True)
    if "demo" in args.parts:
        print(demo(runner).round(3), flush=True)


if __name__ == "__main__":
    main()
