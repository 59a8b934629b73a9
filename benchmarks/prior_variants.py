"""Priors of the contrast-variance moderation on one stored fit per data set (issue 10, seventh
session: the ``skewed_variance`` null and why vash fails ``mnar`` at seed 11).

Each data set of the calibration tests (``tests/unit/test_calibration_scenarios.py``: same
generator and stage runner, build defaults) is fitted once; its contrast table (what rule
``test`` moderates) is then tested with each variant below by the library's test-stage code,
so the variants differ only in the moderation:

- ``limma`` (the default: limma's robust prior), ``limma_nonrobust`` (``testing.robust:
  false``), ``vash``, ``vash_censored``: the build's options;
- ``stratum``: the prior on the replicate stratum's variance (:mod:`pepmix.inference.stratum`;
  its fits export the residual floors, the fit rule's ``stratum`` param);
- ``none``: no moderation;
- diagnostics (not options): the prior fitted to the interior fits only (``limma_interior``,
  ``vash_interior``: boundary fits moderated but not in the fit), or to the proteins with df >= 3
  only (``vash_df3``).

Outputs: null data (2,000 proteins, seeds 11-16): KS p per seed, pooled KS, shares below 0.05
and 0.01; ``--by-status``: the same per fit status (``ok``, replicate boundary, other
boundary, reduced model) for seed 11; changes (1,500 proteins, seeds 21-24): FDP, TP,
TP@FDP5; the demo: UPS / background calls.

    cd benchmarks && PYTHONPATH=../src ../.venv/bin/python prior_variants.py --workdir /tmp/pv \\
        --parts null fdp demo [--scenarios mnar] [--variants limma vash] [--by-status]
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ground_truth import demo_truth, ranking_power, score
from scenarios import simulate_scenario, write_inputs
from scipy import stats
from stage_runner import StageRunner, demo_config, merge_overrides, scenario_config

from pepmix import api
from pepmix.config import contrasts_for, validate_config
from pepmix.inference import moderation
from pepmix.inference.differential import InferenceOptions, differential_table
from pepmix.inference.moderation import replicate_boundary
from pepmix.stages.files import read_removed

log = logging.getLogger("prior_variants")

NULL = ("no_change", "technical", "outliers", "skewed_variance", "mnar")
NULL_SEEDS = (11, 12, 13, 14, 15, 16)
FDP = ("both20", "both60", "technical", "skewed_variance", "mnar", "up20", "outliers")
FDP_SEEDS = (21, 22, 23, 24)
OPTIONS: dict[str, dict[str, Any]] = {
    "none": {"moderation": False},
    "limma": {},
    "limma_nonrobust": {"robust": False},
    "vash": {"prior": "vash"},
    "vash_censored": {"prior": "vash_censored"},
    "stratum": {"prior": "stratum"},
    "limma_interior": {"fit": "interior"},
    "vash_interior": {"prior": "vash", "fit": "interior"},
    "vash_df3": {"prior": "vash", "fit": "df3"},
}


#: fit with the stratum prior's export (``--variants`` with ``stratum``; the fit rule's
#: ``stratum`` param): the other variants only ignore the extra columns
EXPORT_STRATUM = {"on": False}


def contrast_stats(runner: StageRunner, config: dict[str, Any]) -> pd.DataFrame:
    """The contrast table rule ``test`` moderates (build defaults), from one fit."""
    if EXPORT_STRATUM["on"]:
        config = merge_overrides(config, {"testing": {"variance_prior": "stratum"}})
    _, sheet = runner.run(config)
    made, full = runner.made, validate_config(config, runner.schema)
    stored = api.Fit.read(
        made["results/model/fit.parquet"],
        runs=sheet,
        model=full.get("model", {}) or {},
        replication=full["testing"].get("replication", "auto"),
        removed=read_removed(made["results/ingest/removed_proteins.tsv"]),
    )
    cs = contrasts_for(config["contrasts"], sheet)
    return stored.stored.contrast_table([(c.name, c.numerator, c.denominator) for c in cs])


def _restricted(fit: str) -> Callable[..., Any]:
    """``moderate_contrast`` with the prior fitted to a subset (a diagnostic, not an option):
    the interior fits (``interior``) or the rows with df >= 3 (``df3``); every tested row is
    moderated with that prior."""
    original = moderation.moderate_contrast

    def patched(
        part: pd.DataFrame, name: str, tested: np.ndarray, se: Any, df: Any, **kw: Any
    ) -> Any:
        full = original(part, name, tested, se, df, **kw)
        if not full.moderated.any():
            return full
        interior = part["status"].to_numpy() != "boundary"
        keep = interior if fit == "interior" else np.asarray(df) >= 3
        return _apply_subset_prior(part, tested, keep, se, df, kw, full)

    return patched


def _apply_subset_prior(
    part: pd.DataFrame,
    tested: np.ndarray,
    keep: np.ndarray,
    se: np.ndarray,
    df: np.ndarray,
    kw: dict[str, Any],
    full: Any,
) -> Any:
    """Rows of ``tested`` moderated with the prior fitted to ``tested & keep``."""
    from pepmix.inference import vash
    from pepmix.inference.limma import total_df

    with np.errstate(divide="ignore"):  # untested rows with a condition unobserved
        u = 1.0 / part["n_samples_num"].to_numpy(float) + 1.0 / part["n_samples_den"].to_numpy(
            float
        )
    s2, d = se[tested] ** 2 / u[tested], df[tested]
    fit_rows = keep[tested] & (d >= 1)
    if kw.get("prior", "limma") == "limma":
        res = moderation.squeeze_var_masked(s2, d, fit_rows, robust=kw.get("robust", True))
        d0 = np.broadcast_to(np.asarray(res.df_prior, float), s2.shape)
        full.se[tested] = np.sqrt(res.var_post * u[tested])
        full.df[tested] = total_df(d, d0)
        return full
    prior = vash.fit_prior(s2[fit_rows], d[fit_rows])
    post = vash.posterior(prior, s2, d)
    full.se[tested] = np.sqrt(post.var_post * u[tested])  # p-values: from the mixture
    full.mixture = moderation.PosteriorMixture(
        rows=tested.copy(), unscaled=u[tested], posterior=post
    )
    return full


def table(stats_: pd.DataFrame, variant: str) -> pd.DataFrame:
    """Differential table of ``stats_`` under ``variant`` (tested rows only)."""
    opts = dict(OPTIONS[variant])
    fit = opts.pop("fit", None)
    order = list(dict.fromkeys(stats_["contrast"]))
    if fit is None:
        out = differential_table(stats_, order, InferenceOptions(**opts))
    else:
        original = moderation.moderate_contrast
        import pepmix.inference.differential as differential

        differential.moderate_contrast = _restricted(fit)
        try:
            out = differential_table(stats_, order, InferenceOptions(**opts))
        finally:
            differential.moderate_contrast = original
    out = out.loc[out["pvalue"].notna()]
    keys = ["protein", "contrast", "detail", "replication"]
    keys += ["true_lfc"] if "true_lfc" in stats_.columns else []
    return out.drop(columns=["detail", "replication"]).merge(stats_[keys], on=keys[:2])


def _null_stats(p: np.ndarray) -> dict[str, float]:
    return {
        "ks_p": float(stats.kstest(p, "uniform").pvalue),
        "p<0.05": float(np.mean(p < 0.05)),
        "p<0.01": float(np.mean(p < 0.01)),
    }


def _group(t: pd.DataFrame) -> pd.Series:
    at_zero = replicate_boundary(t)
    return pd.Series(
        np.where(at_zero, "replicate boundary", t["status"].astype(str)), index=t.index
    )


def _data(runner: StageRunner, name: str, n: int, seed: int, **kw: Any) -> pd.DataFrame:
    sim = simulate_scenario(name, n, seed, **kw)
    tag = "-".join(f"{k}{v}" for k, v in kw.items())
    data, samples = write_inputs(sim, runner.workdir / "data" / f"{name}-{n}-{seed}-{tag}")
    out = contrast_stats(runner, scenario_config(data, samples))
    truth = sim.truth.set_index("protein")["log2fc"]
    return out.assign(true_lfc=truth.reindex(out["protein"].astype(str)).to_numpy())


def null_rows(
    runner: StageRunner,
    names: list[str],
    variants: list[str],
    by_status: bool,
    seeds: tuple[int, ...] = NULL_SEEDS,
) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        for seed in seeds:
            st = _data(runner, name, 2000, seed, frac_changing=0.0)
            for v in variants:
                t = table(st, v)
                p = t["pvalue"].to_numpy()
                rows.append(
                    {"scenario": name, "seed": seed, "variant": v, "group": "all", **_null_stats(p)}
                )
                if by_status and seed == seeds[0]:
                    for g, part in t.groupby(_group(t)):
                        rows.append(
                            {
                                "scenario": name,
                                "seed": seed,
                                "variant": v,
                                "group": g,
                                "n": len(part),
                                **_null_stats(part["pvalue"].to_numpy()),
                            }
                        )
                log.info("%s", rows[-1])
    return rows


def fdp_rows(runner: StageRunner, names: list[str], variants: list[str]) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        for seed in FDP_SEEDS:
            st = _data(runner, name, 1500, seed)
            for v in variants:
                t = table(st, v)
                truth = t.set_index(t["protein"].astype(str))["true_lfc"]
                got = score(t, truth)
                keys = ("TP", "FP", "FDP", "TP@FDP5")
                rows.append({"scenario": name, "seed": seed, "variant": v}
                            | {k: got[k] for k in keys})  # fmt: skip
                log.info("%s", rows[-1])
    return rows


def demo_rows(runner: StageRunner, variants: list[str]) -> list[dict[str, Any]]:
    st = contrast_stats(runner, demo_config())
    rows = []
    for v in variants:
        t = table(st, v)
        for contrast, part in t.groupby("contrast", sort=False):
            truth = demo_truth(str(contrast), part["protein"]).to_numpy() != 0
            called = part["adj_pvalue"].to_numpy() < 0.05
            rows.append(
                {
                    "scenario": f"demo {contrast}",
                    "variant": v,
                    "TP": int((called & truth).sum()),
                    "FP": int((called & ~truth).sum()),
                    "TP@FDP5": ranking_power(part["pvalue"].to_numpy(), truth),
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--csv", type=Path, help="prefix of the output CSVs")
    parser.add_argument("--parts", nargs="+", default=["null"], choices=["null", "fdp", "demo"])
    parser.add_argument("--scenarios", nargs="+")
    parser.add_argument("--variants", nargs="+", default=list(OPTIONS), choices=list(OPTIONS))
    parser.add_argument("--by-status", action="store_true")
    parser.add_argument("--null-seeds", type=int, nargs="+", default=list(NULL_SEEDS))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for name in ("pepmix", "stage_runner"):
        logging.getLogger(name).setLevel(logging.ERROR)
    runner = StageRunner(args.workdir)
    EXPORT_STRATUM["on"] = "stratum" in args.variants
    frames = {}
    if "null" in args.parts:
        frames["null"] = pd.DataFrame(
            null_rows(
                runner,
                list(args.scenarios or NULL),
                args.variants,
                args.by_status,
                tuple(args.null_seeds),
            )
        )
        f = frames["null"].query("group == 'all'")
        summary = f.groupby(["scenario", "variant"])[["ks_p", "p<0.05", "p<0.01"]].agg(
            ["min", "mean"]
        )
        print(
            f.pivot_table(index=["scenario", "variant"], columns="seed", values="ks_p")
            .round(3)
            .to_string()
        )
        print(summary.round(4).to_string())
        groups = frames["null"].query("group != 'all'")
        if not groups.empty:
            cols = ["n", "ks_p", "p<0.05", "p<0.01"]
            print(
                groups.set_index(["scenario", "seed", "group", "variant"])[cols]
                .round(4)
                .to_string()
            )
    if "fdp" in args.parts:
        frames["fdp"] = pd.DataFrame(fdp_rows(runner, list(args.scenarios or FDP), args.variants))
        print(
            frames["fdp"]
            .groupby(["scenario", "variant"])[["FDP", "TP", "FP", "TP@FDP5"]]
            .mean()
            .round(4)
            .to_string()
        )
    if "demo" in args.parts:
        frames["demo"] = pd.DataFrame(demo_rows(runner, args.variants))
        print(frames["demo"].to_string(index=False))
    if args.csv:
        for part, frame in frames.items():
            frame.to_csv(f"{args.csv}-{part}.csv", index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
