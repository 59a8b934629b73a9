"""MAR vs the detection model (issue 14) on data simulated with a known detection curve.

Model (log2), protein ``p``, feature ``f``, run ``r`` (one sample per run; conditions A, B and,
with ``--conditions 3|4``, C, D, assigned to the runs in turn: A, B, C, A, B, C, ...)::

    y = mu_p + u_f + delta_pc + v_r + e,  mu_p ~ N(mean, 1.5), u ~ N(0, 1),
    v ~ N(0, U(0.2, 0.5)), e ~ N(0, U(0.2, 0.3)),  delta_pA = 0,
    20 % of proteins change by +-U(1, 3) in one condition, 5 % drop by U(3, 5) in one condition
    from a level 1 higher (many of them never observed there); with 2 conditions the changing
    condition is B, with 3-4 it is drawn uniformly among the non-reference ones
    P(observed | y) = Phi(b1 (y - y50))                       (--link probit, default)
    P(observed | y) = 1 / (1 + exp(-1.702 b1 (y - y50)))      (--link logit)

The slope ``b1`` (``--slopes``) is the *probit-equivalent* slope for both links: the logistic
truth uses ``1.702 b1`` on the logit scale, the logistic curve closest to ``Phi(b1 d)`` (at most
0.0095 apart in probability), so the two truths share the 50 % point and the steepness there and
differ in the tails (the logistic one detects 4.5x as many cells 3 probit units below ``y50``).
A logit-scale slope ``s`` is ``--slopes s/1.702``. The fitted curve is probit either way
(:mod:`pepmix.model.detection`).

Features per protein: ``--features uniform`` (default) uniform on 1..``--max-features``
(default 20); ``--features zipf``: ``P(m)`` proportional to ``m^-1.5`` on 1..``--max-features``
(with 50: 43 % of proteins with 1 feature, 76 % with 1-5, 7 % with more than 20, mean 5.5;
skewed like real data, e.g. the demo has 34 % single-feature proteins). ``y50`` is set so that
the expected missing fraction over the simulated cells is the target; features and proteins
whose cells are all missing are dropped (as the ingest would), so the reported missing fraction
(over the features seen) is below the target. The curve is estimated by
:func:`pepmix.model.detection.fit_detection_curve` (condition means; pooled vs per run by BIC).
Contrasts: all pairwise (``B-A``; with 3 conditions ``B-A, C-A, C-B``; with 4 six), BH per
contrast as in the workflow.

Reported per design, slope and missing fraction: bias and RMSE of the log2 FC (changing
rows, and the absent-from-one-condition ones separately), p < 0.05 rate of null rows and its
KS distance to uniform, 95 % CI coverage (all, present, absent; and 1-feature proteins
separately), FDP at BH 5 % (pooled over contrasts, and the largest per contrast), for the MAR
model (only estimable rows) and the detection model (all rows), after the usual moderation
(:mod:`pepmix.inference`; ``--no-moderation`` turns it off in both).

Usage::

    python benchmarks/detection_sim.py [--proteins 400 --runs 8 --seeds 1]
    # other designs: logistic truth, 3 conditions x 4 runs, skewed feature counts up to 50
    python benchmarks/detection_sim.py --link logit --conditions 3 --per-condition 4 \
        --features zipf --max-features 50 --seeds 2 --csv rows.csv
    python benchmarks/detection_sim.py --summarise rows.csv   # means over seeds
    # speed: MAR fit vs detection fit in the same run (slope 1, 30 % missing), e.g. 2,000 x 12
    python benchmarks/detection_sim.py --speed --proteins 2000 --runs 12
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import special, stats

from pepmix.inference.differential import InferenceOptions, differential_table
from pepmix.model.design import ModelSpec, build_run_design
from pepmix.model.detection import DetectionCurve, feature_matrix, fit_detection_curve
from pepmix.model.fit import fit_proteins
from pepmix.model.mnar import detection_contrasts

log = logging.getLogger("detection_sim")
T = TypeVar("T")
FloatArray = NDArray[np.float64]


CONDITIONS = "ABCD"
LOGIT_SCALE = 1.702  # logistic slope matching a probit slope (max |P difference| 0.0095)
ZIPF_EXPONENT = 1.5  # features per protein: P(m) proportional to m^-1.5 on 1..max_features


def simulate(
    n_proteins: int,
    n_runs: int,
    slope: float,
    missing: float,
    seed: int,
    prior_sd: float | None = None,
    max_features: int = 20,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """Long table (observed cells), sample sheet and true log2 FC (B - A) per protein.

    ``prior_sd`` (default None: the mixture of the module docstring) draws every protein's
    log2 FC from the detection model's condition prior instead: condition deviations
    ``N(0, prior_sd^2)``, i.e. ``delta ~ N(0, 2 prior_sd^2)`` (the setting in which credible
    intervals have their nominal coverage). Features per protein are uniform on
    1..``max_features`` (default 20).
    """
    table, sheet, truth, _ = simulate_curve(
        n_proteins, n_runs, slope, missing, seed, prior_sd=prior_sd, max_features=max_features
    )
    return table, sheet, truth


def simulate_curve(
    n_proteins: int,
    n_runs: int,
    slope: float,
    missing: float,
    seed: int,
    shift: float = 0.0,
    prior_sd: float | None = None,
    max_features: int = 20,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, float]:
    """:func:`simulate` plus the true 50 % point (on the table's scale, first-half runs).

    ``shift`` (default 0: one pooled curve) moves the 50 % point of the second half of the runs
    by that many log2 units (a batch effect on detection); the first half's ``y50`` is solved
    for the target missing fraction before the shift.
    """
    sim = simulate_design(
        n_proteins,
        n_runs,
        slope,
        missing,
        seed,
        shift=shift,
        prior_sd=prior_sd,
        max_features=max_features,
    )
    return sim.table, sim.sheet, sim.effects["B"] - sim.effects["A"], sim.y50


@dataclass(frozen=True)
class SimData:
    """One simulated data set of :func:`simulate_design`.

    ``table`` (observed cells: protein, feature, run, y), ``sheet`` (run, condition,
    bioreplicate, batch), ``effects`` (true condition effects, proteins x conditions, first
    condition 0 except under ``prior_sd``), ``y50`` (true 50 % point of the first-half runs, on
    the table's scale) and ``n_features`` (simulated features per protein, before detection).
    """

    table: pd.DataFrame
    sheet: pd.DataFrame
    effects: pd.DataFrame
    y50: float
    n_features: pd.Series

    def truth(self, contrasts: Sequence[tuple[str, str, str]]) -> pd.Series:
        """True log2 FC per (protein, contrast name) of ``(name, numerator, denominator)``."""
        parts = {name: self.effects[num] - self.effects[den] for name, num, den in contrasts}
        out = pd.concat(parts, names=["contrast", "protein"]).swaplevel()
        return out.sort_index()


def detection_probability(d: FloatArray, slope: float, link: str = "probit") -> FloatArray:
    """True ``P(observed)`` at ``d = y - y50``: ``Phi(slope d)`` or the logistic curve.

    ``link="logit"``: ``1 / (1 + exp(-LOGIT_SCALE slope d))``, i.e. ``slope`` is the
    probit-equivalent slope (the logistic curve closest to ``Phi(slope d)``; its own slope on
    the logit scale is 1.702 x ``slope``). Same 50 % point and nearly the same curve in the
    middle; the logistic tails are heavier (at ``slope d = -3``: 0.60 % vs 0.13 % detected).
    """
    if link == "probit":
        return np.asarray(stats.norm.cdf(slope * d))
    if link == "logit":
        return np.asarray(special.expit(LOGIT_SCALE * slope * d))
    raise ValueError(f"unknown link {link!r}")


def _feature_count(rng: np.random.Generator, max_features: int, features: str) -> int:
    """Features of one protein: uniform on 1..max, or the skewed ``zipf`` law (module doc)."""
    if features == "uniform":
        return int(rng.integers(1, max_features + 1))
    if features == "zipf":
        m = np.arange(1, max_features + 1)
        w = m**-ZIPF_EXPONENT
        return int(rng.choice(m, p=w / w.sum()))
    raise ValueError(f"unknown feature distribution {features!r}")


def _effects(
    rng: np.random.Generator, n_cond: int, prior_sd: float | None
) -> tuple[FloatArray, float]:
    """Condition effects of one protein (first condition the reference) and its level shift.

    Two conditions: the draws of the original generator, in the same order (so seeded data
    sets are unchanged). More conditions: one non-reference condition, chosen uniformly,
    carries the change of the mixture; under ``prior_sd`` every condition gets an
    independent ``N(0, prior_sd^2)`` deviation.
    """
    eff = np.zeros(n_cond)
    kind = rng.random()
    if prior_sd is not None:
        if n_cond == 2:
            eff[1] = float(rng.normal(0.0, np.sqrt(2.0) * prior_sd))
        else:
            eff = rng.normal(0.0, prior_sd, n_cond)
        return eff, 0.0
    if kind >= 0.25:
        return eff, 0.0
    target = 1 if n_cond == 2 else int(rng.integers(1, n_cond))
    if kind < 0.05:  # drops out of the target condition: large decrease
        eff[target] = -float(rng.uniform(3, 5))
        return eff, 1.0
    eff[target] = float(rng.choice([-1, 1]) * rng.uniform(1, 3))
    return eff, 0.0


def simulate_design(
    n_proteins: int,
    n_runs: int,
    slope: float,
    missing: float,
    seed: int,
    shift: float = 0.0,
    prior_sd: float | None = None,
    max_features: int = 20,
    n_conditions: int = 2,
    link: str = "probit",
    features: str = "uniform",
) -> SimData:
    """The generator of the module docstring for 2-4 conditions, either link, either law.

    ``n_runs`` runs (one sample each) cycle through the ``n_conditions`` conditions (A, B, C,
    D; ``n_runs`` a multiple of ``n_conditions``). Defaults (2 conditions, ``probit``,
    ``uniform``) give exactly the data sets of :func:`simulate_curve` for the same seed.
    ``shift``, ``prior_sd``: as in :func:`simulate_curve`; ``link``: see
    :func:`detection_probability`; ``features``: ``uniform`` on 1..``max_features`` or
    ``zipf`` (``P(m)`` proportional to ``m^-1.5``).
    """
    if not 2 <= n_conditions <= len(CONDITIONS) or n_runs % n_conditions:
        raise ValueError(f"{n_runs} runs do not split into {n_conditions} conditions")
    rng = np.random.default_rng(seed)
    names = list(CONDITIONS[:n_conditions])
    code = np.tile(np.arange(n_conditions), n_runs // n_conditions)
    runs = [f"r{i:02d}" for i in range(n_runs)]
    sheet = pd.DataFrame(
        {"run": runs, "condition": [names[c] for c in code], "bioreplicate": runs, "batch": "b1"}
    )
    rows, effects, counts = [], {}, {}
    for p in range(n_proteins):
        m = _feature_count(rng, max_features, features)
        eff, level = _effects(rng, n_conditions, prior_sd)
        mu = level + rng.normal(0.0, 1.5) + rng.normal(0, 1, m)[:, None]
        y = mu + eff[code] + rng.normal(0, rng.uniform(0.2, 0.5), n_runs)
        y = y + rng.normal(0, rng.uniform(0.2, 0.3), (m, n_runs))
        effects[f"P{p:04d}"], counts[f"P{p:04d}"] = eff, m
        rows.append((f"P{p:04d}", y))
    all_y = np.concatenate([y.ravel() for _, y in rows])
    y50 = _solve_y50(all_y, slope, missing, link)
    y50_run = np.where(np.arange(n_runs) < n_runs // 2, y50, y50 + shift)
    out = []
    for name, y in rows:
        seen = rng.random(y.shape) < detection_probability(y - y50_run, slope, link)
        f_idx, r_idx = np.nonzero(seen)
        out.append(
            pd.DataFrame(
                {
                    "protein": name,
                    "feature": [f"{name}_f{i}" for i in f_idx],
                    "run": [runs[r] for r in r_idx],
                    "y": y[f_idx, r_idx] + 20.0,
                }
            )
        )
    eff_frame = pd.DataFrame.from_dict(effects, orient="index", columns=names)
    return SimData(
        pd.concat(out, ignore_index=True), sheet, eff_frame, y50 + 20.0, pd.Series(counts)
    )


def _solve_y50(y: np.ndarray, slope: float, missing: float, link: str = "probit") -> float:
    lo, hi = float(y.min()) - 10, float(y.max()) + 10
    for _ in range(60):
        mid = (lo + hi) / 2
        frac = 1.0 - float(np.mean(detection_probability(y - mid, slope, link)))
        lo, hi = (mid, hi) if frac < missing else (lo, mid)
    return (lo + hi) / 2


def all_pairs(conditions: Sequence[str]) -> list[tuple[str, str, str]]:
    """All pairwise contrasts ``(name, numerator, denominator)``, later minus earlier."""
    return [(f"{b}-{a}", b, a) for i, a in enumerate(conditions) for b in conditions[i + 1 :]]


def _row_truth(t: pd.DataFrame, truth: pd.Series) -> NDArray[np.float64]:
    """True log2 FC of each row: ``truth`` by protein, or by (protein, contrast)."""
    if isinstance(truth.index, pd.MultiIndex):
        keys = pd.MultiIndex.from_arrays([t["protein"], t["contrast"].astype(str)])
        return truth.reindex(keys).to_numpy(dtype=float)
    return truth.reindex(t["protein"]).to_numpy(dtype=float)


def _share(mask: pd.Series, sub: pd.Series) -> float:
    """Mean of ``mask`` over the rows in ``sub`` (NaN where none)."""
    return float(mask[sub].mean()) if sub.any() else np.nan


def evaluate(table: pd.DataFrame, truth: pd.Series, label: str) -> dict[str, float]:
    """Bias/RMSE (changing), absent-protein bias/RMSE, null p<0.05 rate, KS, CI coverage.

    ``truth``: true log2 FC by protein (one contrast) or by (protein, contrast). ``fdp`` pools
    the calls of all contrasts (BH per contrast), ``fdp_max`` is the largest per contrast;
    ``*_1f`` are the rows of proteins with one feature in the fit.
    """
    t = table.loc[table["pvalue"].notna()].copy()
    t["truth"] = _row_truth(t, truth)
    err = t["log2fc"] - t["truth"]
    changing = t["truth"] != 0
    null = ~changing
    absent = t["detail"].str.contains("never observed", na=False)
    one = t["n_features"] == 1
    covered = (t["ci_low"] <= t["truth"]) & (t["truth"] <= t["ci_high"])
    called = t["adj_pvalue"] < 0.05
    low = t["pvalue"] < 0.05
    fdp_c = [
        float((called & null)[idx].sum() / max(called[idx].sum(), 1))
        for _, idx in t.groupby("contrast", observed=True).groups.items()
    ]
    return {
        "model": label,
        "tested": len(t),
        "bias_de": float((np.sign(t["truth"]) * err)[changing & ~absent].mean()),
        "rmse_de": float(np.sqrt((err[changing & ~absent] ** 2).mean())),
        "n_absent": int(absent.sum()),
        "rmse_absent": float(np.sqrt((err[absent] ** 2).mean())) if absent.any() else np.nan,
        "null_p05": float((t.loc[null, "pvalue"] < 0.05).mean()),
        "null_ks": float(stats.kstest(t.loc[null, "pvalue"], "uniform").statistic),
        "coverage": float(covered.mean()),
        "coverage_absent": _share(covered, absent),
        "coverage_present": float(covered[~absent].mean()),
        "null_ks_absent": (
            float(stats.kstest(t.loc[null & absent, "pvalue"], "uniform").statistic)
            if (null & absent).any()
            else np.nan
        ),
        "null_p05_absent": _share(low, null & absent),
        "n_sig": int(called.sum()),
        "fdp": float((called & null).sum() / max(called.sum(), 1)),
        "fdp_max": max(fdp_c),
        "sig_absent": int((called & absent).sum()),
        "fp_absent": int((called & absent & null).sum()),
        "n_1f": int(one.sum()),
        "n_null_1f": int((one & null).sum()),
        "null_p05_1f": _share(low, one & null),
        "null_ks_1f": (
            float(stats.kstest(t.loc[null & one, "pvalue"], "uniform").statistic)
            if (null & one).any()
            else np.nan
        ),
        "coverage_1f": _share(covered, one),
        "null_p05_2f": _share(low, ~one & null),
        "coverage_2f": _share(covered, ~one),
    }


def run_case(
    n_proteins: int,
    n_runs: int,
    slope: float,
    missing: float,
    seed: int,
    prior_sd: float | None = None,
    n_conditions: int = 2,
    link: str = "probit",
    features: str = "uniform",
    max_features: int = 20,
    moderation: bool = True,
) -> list[dict]:
    """Fit both models on one simulated data set; return their rows of metrics.

    ``prior_sd`` (default None: the mixture) as in :func:`simulate`; the detection model then
    uses that prior SD (the generating one) instead of estimating it. ``n_conditions``,
    ``link``, ``features``, ``max_features``: as in :func:`simulate_design`; all pairwise
    contrasts (:func:`all_pairs`) are tested, BH per contrast; ``moderation``: see
    :func:`fit_case`.
    """
    sim = simulate_design(
        n_proteins,
        n_runs,
        slope,
        missing,
        seed,
        prior_sd=prior_sd,
        max_features=max_features,
        n_conditions=n_conditions,
        link=link,
        features=features,
    )
    fit = fit_case(sim, prior_sd, moderation)
    table = sim.table
    frac = 1.0 - len(table) / (table.groupby("protein")["feature"].nunique().sum() * n_runs)
    rows = [evaluate(fit.mar, fit.truth, "mar"), evaluate(fit.detection, fit.truth, "detection")]
    for row, cpu in zip(rows, fit.cpu_s, strict=True):
        row.update(
            link=link,
            slope=slope,
            conditions=n_conditions,
            per_condition=n_runs // n_conditions,
            features=f"{features}{max_features}",
            target_missing=missing,
            missing=round(frac, 3),
            seed=seed,
            slope_hat=float(np.median(fit.curve.b1)),
            grouping=fit.curve.grouping,
            cpu_s=cpu,
            moderation=moderation,
        )
    return rows


@dataclass(frozen=True)
class CaseFit:
    """Both models' differential tables on one data set (:func:`fit_case`).

    ``truth``: true log2 FC by protein (2 conditions) or by (protein, contrast); ``cpu_s``:
    CPU seconds of the MAR fit and of curve + detection fit + moderation.
    """

    mar: pd.DataFrame
    detection: pd.DataFrame
    truth: pd.Series
    curve: DetectionCurve
    cpu_s: tuple[float, float]


def fit_case(sim: SimData, prior_sd: float | None = None, moderation: bool = True) -> CaseFit:
    """MAR and detection model (curve estimated, conditions given) on ``sim``; all pairwise
    contrasts (:func:`all_pairs`), BH per contrast; ``prior_sd`` as in :func:`run_case`;
    ``moderation=False`` (default True) turns the empirical-Bayes moderation off in both."""
    opts = InferenceOptions(moderation=moderation)
    design = build_run_design(sim.sheet, ModelSpec(random=("feature", "sample")))
    contrasts = all_pairs(design.conditions)
    names, nums, dens = ([c[i] for c in contrasts] for i in range(3))
    if len(design.conditions) > 2:
        truth = sim.truth(contrasts)
    else:
        truth = sim.effects["B"] - sim.effects["A"]
    start = time.process_time()
    mar = fit_proteins(sim.table, design, contrasts=contrasts)
    mar_seconds = time.process_time() - start
    mar_table = differential_table(mar.contrast_table(nums, dens), names, opts)
    start = time.process_time()
    conditions = list(sim.sheet.set_index("run").loc[design.runs, "condition"])
    curve = fit_detection_curve(
        feature_matrix(sim.table, design.runs), design.runs, conditions=conditions
    )
    stats_det = detection_contrasts(mar, curve, nums, dens, prior_sd=prior_sd)
    det_table = differential_table(stats_det, names, opts)
    return CaseFit(mar_table, det_table, truth, curve, (mar_seconds, time.process_time() - start))


def speed(n_proteins: int, n_runs: int, seed: int = 1) -> dict[str, float]:
    """Seconds (wall and CPU) of the MAR fit, the detection curve and the detection fit.

    The detection fit is :func:`pepmix.model.mnar.detection_contrasts` given the curve (the MNAR
    minimisation, started at the MAR fit); ``ratio_fit`` = detection fit / MAR fit and
    ``ratio_stage`` = (MAR fit + curve + detection fit) / MAR fit, the model stage with
    ``missing: detection`` against the MAR model stage.
    """
    table, sheet, _ = simulate(n_proteins, n_runs, 1.0, 0.3, seed)
    design = build_run_design(sheet, ModelSpec(random=("feature", "sample")))
    row: dict[str, float] = {"proteins": n_proteins, "runs": n_runs}
    steps = {}

    def timed(name: str, fun: Callable[[], T]) -> T:
        wall, cpu = time.perf_counter(), time.process_time()
        out = fun()
        row[f"{name}_s"] = time.perf_counter() - wall
        row[f"{name}_cpu_s"] = time.process_time() - cpu
        return out

    mar = timed("mar", lambda: fit_proteins(table, design, contrasts=[("B-A", "B", "A")]))
    steps["curve"] = timed(
        "curve", lambda: fit_detection_curve(feature_matrix(table, design.runs), design.runs)
    )
    timed("detection", lambda: detection_contrasts(mar, steps["curve"], ["B"], ["A"]))
    for kind in ("", "_cpu"):
        mar_s = row[f"mar{kind}_s"]
        row[f"ratio_fit{kind}"] = row[f"detection{kind}_s"] / mar_s
        row[f"ratio_stage{kind}"] = (
            mar_s + row[f"curve{kind}_s"] + row[f"detection{kind}_s"]
        ) / mar_s
    return row


SUMMARY = {
    "missing": "mean",
    "tested": "mean",
    "bias_de": "mean",
    "rmse_de": "mean",
    "n_absent": "mean",
    "coverage": "mean",
    "coverage_present": "mean",
    "coverage_absent": "mean",
    "null_p05": "mean",
    "null_ks": "mean",
    "fdp": "mean",
    "fdp_max": "max",
    "sig_absent": "sum",
    "fp_absent": "sum",
    "null_p05_1f": "mean",
    "null_ks_1f": "mean",
    "coverage_1f": "mean",
    "null_p05_2f": "mean",
    "coverage_2f": "mean",
    "slope_hat": "mean",
    "cpu_s": "mean",
}
KEYS = [
    "link",
    "slope",
    "conditions",
    "per_condition",
    "features",
    "moderation",
    "target_missing",
    "model",
]


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Means over seeds per design, missing target and model (``fdp_max``: the maximum)."""
    if "moderation" not in rows:
        rows = rows.assign(moderation=True)
    out = rows.groupby(KEYS, sort=False).agg(SUMMARY)
    out["seeds"] = rows.groupby(KEYS, sort=False)["seed"].nunique()
    return out.reset_index()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--proteins", type=int, default=400)
    parser.add_argument("--runs", type=int, default=8, help="total runs (default 8)")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--slopes", default="0.5,1.0,1.5")
    parser.add_argument("--missing", default="0.2,0.4")
    parser.add_argument(
        "--prior-sd",
        type=float,
        default=None,
        help="draw every log2 FC from the condition prior with this SD and use it in the fit",
    )
    parser.add_argument("--link", choices=["probit", "logit"], default="probit")
    parser.add_argument("--conditions", type=int, default=2, choices=[2, 3, 4])
    parser.add_argument(
        "--per-condition", type=int, default=None, help="runs per condition (overrides --runs)"
    )
    parser.add_argument("--features", choices=["uniform", "zipf"], default="uniform")
    parser.add_argument("--max-features", type=int, default=20)
    parser.add_argument(
        "--no-moderation", action="store_true", help="no empirical-Bayes moderation (both)"
    )
    parser.add_argument("--csv", default=None, help="append the rows to this CSV")
    parser.add_argument(
        "--summarise", nargs="+", default=None, help="print the summary of these CSVs only"
    )
    parser.add_argument(
        "--speed", action="store_true", help="time MAR vs detection fit only (slope 1, 30 %%)"
    )
    return parser


def main() -> None:
    """CLI entry point."""
    args = _parser().parse_args()
    logging.basicConfig(level=logging.WARNING)
    pd.set_option("display.width", 250)
    if args.summarise:
        rows = pd.concat([pd.read_csv(f) for f in args.summarise], ignore_index=True)
        print(summarise(rows).round(3).to_string(index=False))
        return
    if args.speed:
        result = pd.Series(speed(args.proteins, args.runs))
        print(result.round(3).to_string())
        return
    n_runs = args.runs if args.per_condition is None else args.per_condition * args.conditions
    rows = []
    for slope in [float(s) for s in args.slopes.split(",")]:
        for miss in [float(m) for m in args.missing.split(",")]:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                case = run_case(
                    args.proteins,
                    n_runs,
                    slope,
                    miss,
                    seed,
                    args.prior_sd,
                    n_conditions=args.conditions,
                    link=args.link,
                    features=args.features,
                    max_features=args.max_features,
                    moderation=not args.no_moderation,
                )
                rows += case
                if args.csv:  # after every data set: a later failure loses nothing
                    _append_csv(Path(args.csv), pd.DataFrame(case))
                log.warning("done: slope %s, missing %s, seed %d", slope, miss, seed)
    print(pd.DataFrame(rows).round(3).to_string(index=False))


def _append_csv(path: Path, rows: pd.DataFrame) -> None:
    """Append ``rows`` to the CSV at ``path`` (columns aligned with the rows already there)."""
    before = pd.read_csv(path) if path.exists() else None
    pd.concat([before, rows], ignore_index=True).to_csv(path, index=False)


if __name__ == "__main__":
    main()
