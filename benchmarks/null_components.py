"""Where the null non-uniformity of the defaults comes from (issue 10 calibration).

One factor of the default inference switched at a time on null data (no protein changes) of the
calibration scenarios (``tests/unit/test_calibration_scenarios.py``: same generator, stage
runner, 2,000 proteins, seeds 11-16). Per variant: Kolmogorov-Smirnov p of the tested p-values
against U(0, 1) per seed, shares below 0.05 and 0.01 (means over seeds) and the decile
histogram of p (pooled over seeds, % per decile); optionally the same for the proteins whose
sample variance is estimated at zero (``boundary``) and the others (``interior``).

Variants (config overrides unless said otherwise):

- ``default``: the build's defaults;
- ``robust_none``: ``model.robust: none``;
- ``dfcap_off``: ``testing.df_cap: false``;
- ``mod_off``: ``moderation: false``;
- ``plain``: all three (lmerTest's Satterthwaite t on the normalised data);
- ``oracle_norm``: data simulated without run loading shifts, ``normalization.method: none``
  (what a perfect normalisation gives);
- ``c1``: Huber weights, variance factor 1 (``pepmix.model.robust.variance_factor`` patched:
  the weights treated as known, as msqrob2 reports);
- ``boundary_only``: the Huber variance factor applied only to fits whose sample (run)
  variance is at zero (``correct_variance`` patched);
- ``residual_only``: the factor applied to the residual variance only, the random-effect
  variances as fitted: fixed-effect covariance :math:`(X'V^{-1}X)^{-1}` at
  :math:`V = c\\sigma^2 W^{-1} + Z G Z'` instead of :math:`c` times the weighted fit's
  (Satterthwaite df of the weighted fit kept: ``dcov_beta`` rescaled for the contrast B - A).

The patched variants are diagnostics, not options of the build: they run in their own cache
directory (the stage runner's cache key does not see a patch).

    PYTHONPATH=src .venv/bin/python benchmarks/null_components.py --workdir /tmp/nullcal \\
        --scenarios no_change skewed_variance --variants default robust_none c1
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scenarios
from scipy import stats
from stage_runner import StageRunner, merge_overrides, scenario_config

import pepmix.model.robust as robust
from pepmix.model.fit import contrast_matrix
from pepmix.model.reml import _inverses, evaluate
from pepmix.model.suffstats import build_problem

log = logging.getLogger("null_components")

OVERRIDES: dict[str, dict[str, Any]] = {
    "default": {},
    "robust_none": {"model": {"robust": "none"}},
    "dfcap_off": {"testing": {"df_cap": False}},
    "mod_off": {"moderation": False},
    "plain": {"model": {"robust": "none"}, "moderation": False, "testing": {"df_cap": False}},
    "oracle_norm": {"normalization": {"method": "none"}},
    "c1": {},
    "boundary_only": {},
    "residual_only": {},
}
PATCHED = ("c1", "boundary_only", "residual_only")
SEEDS = (11, 12, 13, 14, 15, 16)

_ORIGINAL = {
    "variance_factor": robust.variance_factor,
    "correct_variance": robust.correct_variance,
    "irls": robust.irls,
}
_LAST: dict[str, Any] = {}


def _irls_keep(*args: Any, **kwargs: Any) -> Any:
    """``robust.irls``, keeping what :func:`_residual_only` needs (encoded data, final weights)."""
    result = _ORIGINAL["irls"](*args, **kwargs)
    _LAST.update(enc=args[1], design=args[2], weights=result[1])
    return result


def _boundary_only(out: Any, fitted: np.ndarray, factor: Any = None) -> None:
    """The variance factor only for fits with the sample (or run) variance at zero."""
    cols = [i for i, f in enumerate(out.factors) if f in ("sample", "run")]
    at_zero = (out.theta[:, cols] == 0.0).all(axis=1)
    _ORIGINAL["correct_variance"](out, fitted & at_zero, factor)


def _residual_only(out: Any, fitted: np.ndarray, factor: Any = None) -> None:
    """Covariance at :math:`V = c\\sigma^2 W^{-1} + ZGZ'` (module docstring)."""
    enc, design = _LAST["enc"], _LAST["design"]
    c = np.asarray(factor, dtype=np.float64)
    problem = build_problem(
        enc.prot, enc.feat, enc.run, enc.y, design, n_proteins=len(enc.proteins),
        weights=_LAST["weights"],
    )  # fmt: skip
    cm = contrast_matrix(design, [("B", "A")])[0]
    before = np.einsum("p,bpq,q->b", cm, np.nan_to_num(out.cov_beta), cm)
    cov = out.cov_beta.copy()
    for idx, bucket in problem.buckets:
        _, s0inv = _inverses(evaluate(bucket, out.theta[idx] / np.sqrt(c[idx])[:, None]))
        xs = slice(bucket.dim - 1 - bucket.n_x, bucket.dim - 1)
        keep = problem.xkeep[idx]
        part = (c[idx] * out.sigma[idx] ** 2)[:, None, None] * s0inv[:, xs, xs]
        cov[idx] = np.where(keep[:, :, None] & keep[:, None, :], part, np.nan)
    _ORIGINAL["correct_variance"](out, fitted, factor)
    after = np.einsum("p,bpq,q->b", cm, np.nan_to_num(cov), cm)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(fitted, after / (before * c), 1.0)
    out.cov_beta[fitted] = cov[fitted]
    out.dcov_beta[fitted] *= ratio[fitted][:, None, None, None]  # same Satterthwaite df


@contextmanager
def _patched(variant: str) -> Iterator[None]:
    """Patch :mod:`pepmix.model.robust` for a diagnostic variant; restore afterwards."""
    patches: dict[str, Callable[..., Any]] = {}
    if variant == "c1":
        patches["variance_factor"] = lambda *a, **k: 1.0
    elif variant == "boundary_only":
        patches["correct_variance"] = _boundary_only
    elif variant == "residual_only":
        patches.update(correct_variance=_residual_only, irls=_irls_keep)
    for name, fn in patches.items():
        setattr(robust, name, fn)
    try:
        yield
    finally:
        for name, fn in _ORIGINAL.items():
            setattr(robust, name, fn)


def null_table(workdir: Path, scenario: str, seed: int, variant: str, n: int) -> pd.DataFrame:
    """Differential table of one variant on null data (cached as parquet under ``workdir``)."""
    path = workdir / "tables" / f"{scenario}-{seed}-{n}-{variant}.parquet"
    if path.exists():
        return pd.read_parquet(path)
    oracle = variant == "oracle_norm"
    shift_sd = scenarios.RUN_SHIFT_SD
    scenarios.RUN_SHIFT_SD = 0.0 if oracle else shift_sd
    try:
        sim = scenarios.simulate_scenario(scenario, n, seed, frac_changing=0.0)
    finally:
        scenarios.RUN_SHIFT_SD = shift_sd
    tag = "noshift" if oracle else "data"
    data, samples = scenarios.write_inputs(sim, workdir / "data" / f"{scenario}-{seed}-{n}-{tag}")
    cache = workdir / "cache" / (variant if variant in PATCHED else "shared")
    cfg = merge_overrides(scenario_config(data, samples), OVERRIDES[variant])
    with _patched(variant):
        table, _ = StageRunner(cache).run(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(path)
    return table


def summarise(pvalues: list[np.ndarray]) -> dict[str, Any]:
    """KS p per seed, mean shares below 0.05 / 0.01, pooled decile histogram (%)."""
    pooled = np.concatenate(pvalues)
    hist = np.histogram(pooled, bins=10, range=(0.0, 1.0))[0] / max(pooled.size, 1) * 100
    return {
        "ks": [float(stats.kstest(p, "uniform").pvalue) for p in pvalues],
        "below_05": float(np.mean([np.mean(p < 0.05) for p in pvalues]) * 100),
        "below_01": float(np.mean([np.mean(p < 0.01) for p in pvalues]) * 100),
        "n": pooled.size / len(pvalues),
        "deciles": hist.round(1).tolist(),
    }


def _subset(table: pd.DataFrame, part: str) -> np.ndarray:
    tested = table[table["pvalue"].notna()]
    at_zero = tested["detail"].fillna("").str.contains("variance at zero: (?:sample|run)")
    keep = {"all": np.ones(len(tested), dtype=bool), "boundary": at_zero, "interior": ~at_zero}
    return np.asarray(tested["pvalue"].to_numpy()[np.asarray(keep[part])], dtype=np.float64)


def se_ratios(table: pd.DataFrame, reference: pd.DataFrame) -> tuple[float, float]:
    """Against ``reference`` (least squares, ``robust_none``) on the proteins both test:
    ratio of the mean squared null estimates (the true variance ratio of the estimators) and
    median ratio of the unmoderated squared standard errors (what the fits report)."""
    cols = ["protein", "log2fc", "se_unmoderated"]
    both = table[cols].merge(reference[cols], on="protein", suffixes=("", "_ls"))
    both = both.dropna()
    true = float(np.mean(both["log2fc"] ** 2) / np.mean(both["log2fc_ls"] ** 2))
    reported = float(np.median(both["se_unmoderated"] ** 2 / both["se_unmoderated_ls"] ** 2))
    return true, reported


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--scenarios", nargs="+", default=["no_change", "skewed_variance", "mnar"])
    ap.add_argument("--variants", nargs="+", default=list(OVERRIDES), choices=list(OVERRIDES))
    ap.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    ap.add_argument("--proteins", type=int, default=2000)
    ap.add_argument("--parts", nargs="+", default=["all"], choices=["all", "boundary", "interior"])
    ap.add_argument(
        "--ratios", action="store_true", help="variance ratios against robust_none (se_ratios)"
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for scenario in args.scenarios:
        for variant in args.variants:
            tables = [
                null_table(args.workdir, scenario, s, variant, args.proteins) for s in args.seeds
            ]
            for part in args.parts:
                r = summarise([_subset(t, part) for t in tables])
                ks = " / ".join(f"{k:.3f}" for k in r["ks"])
                dec = " ".join(f"{d:.1f}" for d in r["deciles"])
                print(
                    f"| {scenario} | {variant} | {part} | {ks} | {r['below_05']:.1f} % | "
                    f"{r['below_01']:.2f} % | {r['n']:.0f} | {dec} |"
                )
            if args.ratios and variant != "robust_none":
                ref = [
                    null_table(args.workdir, scenario, s, "robust_none", args.proteins)
                    for s in args.seeds
                ]
                ratio = np.mean([se_ratios(t, r) for t, r in zip(tables, ref, strict=True)], 0)
                print(f"  {scenario} {variant}: E[lfc^2] ratio {ratio[0]:.3f}, se^2 {ratio[1]:.3f}")


if __name__ == "__main__":
    main()
