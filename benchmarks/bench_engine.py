"""Speed, memory and agreement of pepmix's batched REML engine against lmerTest and statsmodels.

For each data size (default 2,000 proteins x 12 runs and 10,000 proteins x 200 runs; ~30% missing,
simulated by :mod:`simulate`), measured in the same run:

- **engine**: one ``pepmix.model.fit.fit_proteins`` call for ``y ~ condition + (1|feature) +
  (1|sample)`` with one contrast (``B - A``) plus the two-sided Satterthwaite t p-values, on all
  proteins, single-threaded (``OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=MKL_NUM_THREADS=1`` and
  threadpoolctl), in a child process that reads the long table from Parquet like the pipeline's
  fit stage. Time per protein = median wall time of ``--repeats`` calls / proteins. Peak memory =
  the child's peak RSS (``VmHWM`` from ``/proc/self/status``; includes the interpreter, the
  imports and the table; not ``ru_maxrss``, which a forked child inherits from its parent).
  An untimed warm-up call on 50 proteins precedes the timed calls.
- **lmerTest** (when ``Rscript`` is found): ``benchmarks/lmertest_loop.R`` loops ``lmer`` +
  ``contest1D`` over a random subset of proteins and times the loop itself (no R start-up,
  untimed warm-up on three proteins). Proteins lme4 refuses (one feature, ...) stay in the loop.
- **statsmodels** MixedLM (REML, crossed effects as variance components of one group) on a
  smaller subset of the same proteins; z-tests only, timed per protein in a child process.

It prints the per-protein times, the ratios, the goals next to the measured values and the
agreement of the engine with lmerTest (estimates, Satterthwaite df, REML criterion) and
statsmodels (estimates) on the subset, plus the engine's status counts and calibration (share of
unchanged proteins with p < 0.05) on all proteins. Results are also written as JSON.

    .venv/bin/python benchmarks/bench_engine.py            # full sizes (several minutes)
    .venv/bin/python benchmarks/bench_engine.py --quick    # small sizes, ~1-2 minutes
"""

from __future__ import annotations

import os

for _var in (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import contextlib  # noqa: E402
import datetime as dt  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from simulate import simulate_full  # noqa: E402

CONTRAST = ("B - A", "B", "A")
GOAL_RATIO = 150.0
GOAL_SECONDS = 15.0
GOAL_RSS_GB = 4.0
FULL_SIZE = (10_000, 200)
FITTED = ("ok", "boundary", "reduced_model")


# ----------------------------------------------------------------------------------------------
# child processes


def peak_rss_kb() -> int:
    """Peak resident set size of this process since exec (``VmHWM``), in KiB.

    Not ``getrusage().ru_maxrss``: on Linux a child's ``ru_maxrss`` starts from the parent's
    RSS at fork, so a child of a parent holding the simulated data would report that instead.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def child_engine(args: argparse.Namespace) -> None:
    """Time fit_proteins (+ p-values) on a Parquet table; write JSON and per-protein results."""
    from scipy import stats
    from threadpoolctl import threadpool_info, threadpool_limits

    from pepmix.model.design import ModelSpec, build_run_design
    from pepmix.model.fit import fit_proteins
    from pepmix.samples import load_design
    from pepmix.stages.files import read_model_input

    rss_start = peak_rss_kb()
    t0 = time.perf_counter()
    # as the workflow's fit rule reads it: identifiers dictionary-encoded (categoricals)
    table = read_model_input(args.table)
    read_s = time.perf_counter() - t0
    sheet = load_design(args.sheet).runs
    design = build_run_design(sheet, ModelSpec(random=("feature", "sample")))
    rss_loaded = peak_rss_kb()
    times: list[float] = []
    cpu: list[float] = []
    fit = None
    p_value = np.zeros(0)
    with threadpool_limits(limits=1):
        blas = [
            {"api": i.get("user_api"), "lib": i.get("internal_api"), "threads": i["num_threads"]}
            for i in threadpool_info()
        ]
        # untimed warm-up on a few proteins (first-call costs: lazy imports, caches)
        first = table["protein"].drop_duplicates().iloc[:50]
        fit_proteins(table[table["protein"].isin(first)], design, [CONTRAST])
        for _ in range(args.repeats):
            fit = None
            gc.collect()
            t, c = time.perf_counter(), time.process_time()
            fit = fit_proteins(table, design, [CONTRAST])
            with np.errstate(invalid="ignore"):
                p_value = 2.0 * stats.t.sf(np.abs(fit.estimate[:, 0] / fit.se[:, 0]), fit.df[:, 0])
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    assert fit is not None
    rss_peak = peak_rss_kb()
    res = fit.contrast_table([CONTRAST[1]], [CONTRAST[2]])
    res["p"] = np.where(res["estimate"].notna(), p_value, np.nan)
    res["fit_status"] = fit.status
    res["reml_crit"] = fit.reml_crit
    res["converged"] = fit.converged
    with np.errstate(invalid="ignore"):
        res["theta_max"] = np.nanmax(np.where(np.isnan(fit.theta), -np.inf, fit.theta), axis=1)
    res.to_parquet(args.fits, index=False)
    out = {
        "n_proteins": len(fit.proteins),
        "n_rows": len(table),
        "times_s": times,
        "cpu_s": cpu,
        "read_s": read_s,
        "rss_start_kb": rss_start,
        "rss_loaded_kb": rss_loaded,
        "rss_peak_kb": rss_peak,
        "blas": blas,
    }
    Path(args.result).write_text(json.dumps(out))


def _sm_fit(smf: Any, d: pd.DataFrame) -> Any:
    """Crossed feature and run intercepts as variance components of a single group, REML."""
    model = smf.mixedlm(
        "y ~ condition",
        d,
        groups=np.ones(len(d)),
        re_formula="0",
        vc_formula={"feature": "0 + C(feature)", "run": "0 + C(run)"},
    )
    return model.fit(reml=True)


def child_statsmodels(args: argparse.Namespace) -> None:
    """statsmodels MixedLM per protein (crossed effects as variance components); time each."""
    import statsmodels.formula.api as smf

    data = pd.read_csv(args.data, dtype={"protein": str, "feature": str, "run": str})
    data["condition"] = pd.Categorical(data["condition"], categories=["A", "B"])
    groups = [g for _, g in data.groupby("protein", sort=True)]
    rows = []
    total = cpu_total = 0.0
    for d in groups[:1]:  # untimed warm-up (imports, formula machinery)
        with warnings.catch_warnings(), contextlib.suppress(Exception):
            warnings.simplefilter("ignore")
            _sm_fit(smf, d.reset_index(drop=True))
    for d in groups:
        d = d.reset_index(drop=True)
        row: dict[str, Any] = {"protein": d["protein"].iloc[0]}
        t, c = time.perf_counter(), time.process_time()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                fit = _sm_fit(smf, d)
                row.update(
                    estimate=float(fit.params["condition[T.B]"]),
                    se=float(fit.bse["condition[T.B]"]),
                    converged=bool(fit.converged),
                    llf=float(fit.llf),
                    error="",
                )
            except Exception as exc:  # noqa: BLE001 - any failure is a result here
                row.update(estimate=np.nan, se=np.nan, converged=False, llf=np.nan, error=str(exc))
        elapsed = time.perf_counter() - t
        total += elapsed
        cpu_total += time.process_time() - c
        row["seconds"] = elapsed
        row["warnings"] = len(caught)
        rows.append(row)
    pd.DataFrame(rows).to_csv(args.fits, index=False)
    Path(args.result).write_text(
        json.dumps({"n_proteins": len(groups), "total_s": total, "cpu_s": cpu_total})
    )


# ----------------------------------------------------------------------------------------------
# orchestration


def run_child(cmd: list[str], label: str) -> int:
    """Run a child with single-threaded BLAS (the environment set at the top); exit status."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH", "")]))
    rc = subprocess.run(cmd, env=env, check=False).returncode
    if rc != 0:
        print(f"  !! {label} failed (exit {rc})")
    return rc


def subset_csv(table: pd.DataFrame, sheet: pd.DataFrame, proteins: list[str], path: Path) -> None:
    sub = table[table["protein"].isin(proteins)].copy()
    sub["condition"] = sub["run"].map(dict(zip(sheet["run"], sheet["condition"], strict=True)))
    sub[["protein", "feature", "run", "condition", "y"]].to_csv(
        path, index=False, float_format="%.17g"
    )


def bench_size(
    n_prot: int, n_runs: int, args: argparse.Namespace, work: Path, rscript: str | None
) -> dict[str, Any]:
    label = f"{n_prot:,} proteins x {n_runs} runs"
    tag = f"p{n_prot}_r{n_runs}"
    out: dict[str, Any] = {"proteins": n_prot, "runs": n_runs}
    t0 = time.perf_counter()
    sim = simulate_full(n_prot, n_runs, args.seed, missing=args.missing)
    table, sheet, truth = sim.table, sim.sheet, sim.truth
    missing = 1.0 - float(sim.observed.mean())
    del sim
    table_path = work / f"{tag}.table.parquet"
    sheet_path = work / f"{tag}.samples.tsv"
    table.to_parquet(table_path, index=False)
    sheet.to_csv(sheet_path, sep="\t", index=False)
    present = sorted(table["protein"].unique())
    out.update(rows=len(table), missing=missing, proteins_with_data=len(present))
    print(
        f"\n== {label}: {len(table):,} observed rows ({missing:.1%} missing), "
        f"{len(present):,} proteins with data (simulated in {time.perf_counter() - t0:.1f} s) =="
    )

    # engine
    eng_json, eng_fits = work / f"{tag}.engine.json", work / f"{tag}.engine.parquet"
    cmd = [sys.executable, str(Path(__file__).resolve()), "_engine", "--table", str(table_path)]
    cmd += ["--sheet", str(sheet_path), "--repeats", str(args.repeats)]
    cmd += ["--result", str(eng_json), "--fits", str(eng_fits)]
    rc = run_child(cmd, "engine")
    if rc != 0:
        out["engine_error"] = True
        return out
    eng = json.loads(eng_json.read_text())
    fits = pd.read_parquet(eng_fits)
    median_s = float(np.median(eng["times_s"]))
    out["engine"] = {
        "times_s": eng["times_s"],
        "median_s": median_s,
        "ms_per_protein": 1000.0 * median_s / eng["n_proteins"],
        "cpu_ms_per_protein": 1000.0 * float(np.median(eng["cpu_s"])) / eng["n_proteins"],
        "read_s": eng["read_s"],
        "rss_peak_mb": eng["rss_peak_kb"] / 1024.0,
        "rss_loaded_mb": eng["rss_loaded_kb"] / 1024.0,
        "rss_start_mb": eng["rss_start_kb"] / 1024.0,
        "n_proteins": eng["n_proteins"],
        "blas": eng["blas"],
    }
    e = out["engine"]
    threads = sorted({b["threads"] for b in eng["blas"]})
    print(
        f"engine   fit_proteins + p, BLAS threads {threads}: "
        f"{', '.join(f'{t:.2f}' for t in eng['times_s'])} s -> median {median_s:.2f} s = "
        f"{e['ms_per_protein']:.3f} ms/protein (CPU time {e['cpu_ms_per_protein']:.3f}); "
        f"read Parquet {eng['read_s']:.2f} s"
    )
    print(
        f"         peak RSS {e['rss_peak_mb']:.0f} MB (interpreter+imports {e['rss_start_mb']:.0f}"
        f" MB, after reading the table {e['rss_loaded_mb']:.0f} MB)"
    )
    out["engine_checks"] = engine_checks(fits, truth)

    # subsets for the reference implementations
    rng = np.random.default_rng([args.seed, n_prot, n_runs])
    n_lmer = min(args.lmer_proteins, len(present))
    subset = sorted(rng.choice(present, size=n_lmer, replace=False).tolist())
    sm_subset = subset[: min(args.sm_proteins, n_lmer)]
    if rscript and n_lmer:
        data_csv = work / f"{tag}.lmer_data.csv"
        subset_csv(table, sheet, subset, data_csv)
        res_csv, timing = work / f"{tag}.lmer_results.csv", work / f"{tag}.lmer_timing.txt"
        cmd = [rscript, "--vanilla", str(HERE / "lmertest_loop.R"), str(data_csv)]
        rc = run_child([*cmd, str(res_csv), str(timing)], "lmerTest")
        if rc == 0:
            tinfo = dict(line.split() for line in timing.read_text().splitlines())
            lmer = pd.read_csv(res_csv, dtype={"protein": str}, keep_default_na=True)
            ms = float(tinfo["ms_per_protein"])
            cpu_ms = 1000.0 * float(tinfo["cpu_s"]) / int(tinfo["proteins"])
            out["lmertest"] = {
                "proteins": int(tinfo["proteins"]),
                "ms_per_protein": ms,
                "ratio": ms / e["ms_per_protein"],
                "cpu_ms_per_protein": cpu_ms,
                "cpu_ratio": cpu_ms / e["cpu_ms_per_protein"],
                "failed": int((lmer["error"].fillna("") != "").sum()),
                "agreement": agreement_lmer(fits, lmer),
            }
            lt = out["lmertest"]
            print(
                f"lmerTest {lt['proteins']} proteins: {ms:.2f} ms/protein -> "
                f"{lt['ratio']:.0f}x the engine (goal >= {GOAL_RATIO:.0f}x: "
                f"{'met' if lt['ratio'] >= GOAL_RATIO else 'NOT met'}); CPU time "
                f"{cpu_ms:.2f} ms/protein -> {lt['cpu_ratio']:.0f}x; "
                f"{lt['failed']} fits failed in lme4"
            )
    elif not rscript:
        print("lmerTest skipped: Rscript not found")
    if args.sm_proteins > 0 and sm_subset:
        data_csv = work / f"{tag}.sm_data.csv"
        subset_csv(table, sheet, sm_subset, data_csv)
        sm_json, sm_csv = work / f"{tag}.sm.json", work / f"{tag}.sm_results.csv"
        cmd = [sys.executable, str(Path(__file__).resolve()), "_statsmodels", "--data"]
        cmd += [str(data_csv), "--result", str(sm_json), "--fits", str(sm_csv)]
        rc = run_child(cmd, "statsmodels")
        if rc == 0:
            smr = json.loads(sm_json.read_text())
            sm = pd.read_csv(sm_csv, dtype={"protein": str})
            ms = 1000.0 * smr["total_s"] / smr["n_proteins"]
            cpu_ms = 1000.0 * smr["cpu_s"] / smr["n_proteins"]
            out["statsmodels"] = {
                "proteins": smr["n_proteins"],
                "ms_per_protein": ms,
                "ratio": ms / e["ms_per_protein"],
                "cpu_ms_per_protein": cpu_ms,
                "cpu_ratio": cpu_ms / e["cpu_ms_per_protein"],
                "agreement": agreement_sm(fits, sm),
            }
            print(
                f"statsmodels {smr['n_proteins']} proteins: {ms:.1f} ms/protein -> "
                f"{ms / e['ms_per_protein']:.0f}x the engine; CPU time {cpu_ms:.1f} ms/protein -> "
                f"{cpu_ms / e['cpu_ms_per_protein']:.0f}x"
            )
    print_details(out)
    return out


def engine_checks(fits: pd.DataFrame, truth: pd.DataFrame) -> dict[str, Any]:
    """Statuses, NaNs and calibration of the engine's results on all proteins."""
    fitted = fits["status"].isin(FITTED)
    sub = fits[fitted]
    merged = sub.merge(truth[["protein", "log2fc", "changing"]], on="protein")
    null = merged[~merged["changing"]]
    alt = merged[merged["changing"]]
    details = (
        fits.loc[fits["fit_status"].isin(["not_estimable", "reduced_model"]), "detail"]
        .str.replace(r"\d+", "#", regex=True)
        .value_counts()
    )
    return {
        "fit_status": fits["fit_status"].value_counts().to_dict(),
        "contrast_status": fits["status"].value_counts().to_dict(),
        "fitted_nan_estimate": int(sub["estimate"].isna().sum()),
        "fitted_nan_se": int(sub["se"].isna().sum()),
        "fitted_nan_df": int(sub["df"].isna().sum()),
        "fitted_nan_p": int(sub["p"].isna().sum()),
        "fitted_df_below_1": int((sub["df"] < 1 - 1e-6).sum()),
        "fitted_df_above_residual": int((sub["df"] > sub["df_residual"] + 1e-6).sum()),
        # residual SD ~ 0 relative to a random effect: REML optimum at sigma -> 0
        "fitted_theta_above_100": int((sub["theta_max"] > 100).sum()),
        "fitted_nonfinite_reml": int((~np.isfinite(sub["reml_crit"])).sum()),
        "fitted_not_converged": int((~sub["converged"].astype(bool)).sum()),
        "null_p_below_0.05": float((null["p"] < 0.05).mean()) if len(null) else np.nan,
        "n_null": len(null),
        "changed_p_below_0.05": float((alt["p"] < 0.05).mean()) if len(alt) else np.nan,
        "n_changed": len(alt),
        "rmse_estimate_vs_truth": float(
            np.sqrt(np.nanmean((merged.estimate - merged.log2fc) ** 2))
        ),
        "detail_patterns": {k: int(v) for k, v in details.head(8).items()},
    }


def agreement_lmer(fits: pd.DataFrame, lmer: pd.DataFrame) -> dict[str, Any]:
    """Engine vs lmerTest on the proteins both fitted with the full model."""
    m = fits.merge(lmer, on="protein", suffixes=("", "_lmer"))
    ok_lmer = m["error"].fillna("").eq("") & m["estimate_lmer"].notna()
    full = m["fit_status"].isin(["ok", "boundary"]) & m["status"].isin(["ok", "boundary"])
    both = m[ok_lmer & full]
    d_est = (both["estimate"] - both["estimate_lmer"]).abs()
    rel_df = ((both["df"] - both["df_lmer"]) / both["df_lmer"]).abs()
    d_crit = both["reml_crit"] - both["reml_crit_lmer"]
    interior = (
        both["fit_status"].eq("ok") & ~both["singular"].astype(bool) & (both["theta_max"] <= 100)
    )
    return {
        "compared": len(both),
        "engine_status_where_lme4_failed": m.loc[~ok_lmer, "fit_status"].value_counts().to_dict(),
        "lme4_failed_where_engine_full": int((~ok_lmer & full).sum()),
        "engine_reduced_where_lme4_fitted": int((ok_lmer & ~full).sum()),
        "max_abs_d_estimate": float(d_est.max()) if len(both) else np.nan,
        "p99_abs_d_estimate": float(d_est.quantile(0.99)) if len(both) else np.nan,
        "max_rel_d_df_interior": float(rel_df[interior].max()) if interior.any() else np.nan,
        "p99_rel_d_df_interior": float(rel_df[interior].quantile(0.99))
        if interior.any()
        else np.nan,
        "max_rel_d_df_boundary": float(rel_df[~interior].max()) if (~interior).any() else np.nan,
        "n_interior": int(interior.sum()),
        "n_boundary_or_singular": int((~interior).sum()),
        "max_abs_d_se": float((both["se"] - both["se_lmer"]).abs().max()) if len(both) else np.nan,
        "max_abs_d_p": float((both["p"] - both["p_lmer"]).abs().max()) if len(both) else np.nan,
        "reml_engine_lower_1e-4": int((d_crit < -1e-4).sum()),
        "reml_engine_higher_1e-4": int((d_crit > 1e-4).sum()),
        "max_abs_d_reml": float(d_crit.abs().max()) if len(both) else np.nan,
        "lme4_singular": int(m["singular"].fillna(False).astype(bool).sum()),
        "lme4_warned": int(m["warning"].astype(bool).sum()),
    }


def agreement_sm(fits: pd.DataFrame, sm: pd.DataFrame) -> dict[str, Any]:
    """Engine vs statsmodels estimates on the proteins both fitted with the full model."""
    m = fits.merge(sm, on="protein", suffixes=("", "_sm"))
    ok = m["estimate_sm"].notna() & m["fit_status"].isin(["ok", "boundary"])
    d = (m.loc[ok, "estimate"] - m.loc[ok, "estimate_sm"]).abs()
    return {
        "compared": int(ok.sum()),
        "max_abs_d_estimate": float(d.max()) if ok.any() else np.nan,
        "n_abs_d_estimate_above_1e-3": int((d > 1e-3).sum()),
        "failed": int(m["estimate_sm"].isna().sum()),
        "not_converged": int((~m["converged"].astype(bool)).sum()),
        "with_warnings": int((m["warnings"] > 0).sum()),
    }


def print_details(out: dict[str, Any]) -> None:
    c = out["engine_checks"]
    print(f"engine statuses (fit): {fmt_counts(c['fit_status'])}")
    print(f"engine statuses (B - A): {fmt_counts(c['contrast_status'])}")
    odd = {k: c[k] for k in c if k.startswith("fitted_") and c[k]}
    print(f"fitted proteins with odd values: {odd if odd else 'none'}")
    if c["detail_patterns"]:
        print("reduced/not_estimable details: " + fmt_counts(c["detail_patterns"]))
    print(
        f"calibration: unchanged proteins with p < 0.05: {c['null_p_below_0.05']:.1%} "
        f"(n={c['n_null']}); changed: {c['changed_p_below_0.05']:.1%} (n={c['n_changed']}); "
        f"RMSE of estimate vs true log2FC {c['rmse_estimate_vs_truth']:.3f}"
    )
    if "lmertest" in out:
        a = out["lmertest"]["agreement"]
        print(
            f"vs lmerTest on {a['compared']} proteins (engine ok/boundary, lme4 fitted): "
            f"max |d estimate| {a['max_abs_d_estimate']:.2g} (p99 {a['p99_abs_d_estimate']:.2g}),"
            f" max |d se| {a['max_abs_d_se']:.2g}, max |d p| {a['max_abs_d_p']:.2g}"
        )
        print(
            f"  rel. |d df|: interior fits (n={a['n_interior']}) max "
            f"{a['max_rel_d_df_interior']:.2g}"
            f" (p99 {a['p99_rel_d_df_interior']:.2g}); boundary/singular/residual SD ~ 0 "
            f"(n={a['n_boundary_or_singular']}) max {a['max_rel_d_df_boundary']:.2g}"
        )
        print(
            "  REML criterion (-2 log-lik., lower = better fit): engine lower by >1e-4 on "
            f"{a['reml_engine_lower_1e-4']}, higher on "
            f"{a['reml_engine_higher_1e-4']}; max |d| {a['max_abs_d_reml']:.2g}; lme4 singular "
            f"{a['lme4_singular']}, warned {a['lme4_warned']}; engine status where lme4 failed: "
            f"{fmt_counts(a['engine_status_where_lme4_failed']) or '-'}; engine reduced where "
            f"lme4 fitted: {a['engine_reduced_where_lme4_fitted']}"
        )
    if "statsmodels" in out:
        a = out["statsmodels"]["agreement"]
        print(
            f"vs statsmodels on {a['compared']} proteins: max |d estimate| "
            f"{a['max_abs_d_estimate']:.2g} ({a['n_abs_d_estimate_above_1e-3']} above 1e-3); "
            f"failed {a['failed']}, not converged {a['not_converged']}, "
            f"with warnings {a['with_warnings']}"
        )


def fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def summary(results: list[dict[str, Any]]) -> None:
    print("\n## Summary (single-threaded; ms per protein; goals in brackets)\n")
    print(
        "| size | engine ms/protein | lmerTest ms/protein | lmerTest / engine [>= 150x] | "
        "statsmodels ms/protein | statsmodels / engine | engine fit s (+ read s) "
        "[<= 15 s at 10k x 200] | engine peak RSS [<= 4 GB] |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        size = f"{r['proteins']:,} x {r['runs']}"
        if "engine" not in r:
            print(f"| {size} | failed | | | | | | |")
            continue
        e = r["engine"]
        full = (r["proteins"], r["runs"]) >= FULL_SIZE
        lt, sm = r.get("lmertest"), r.get("statsmodels")
        lt_ms = f"{lt['ms_per_protein']:.1f} (n={lt['proteins']})" if lt else "skipped"
        lt_ratio = (
            f"{lt['ratio']:.0f}x {'met' if lt['ratio'] >= GOAL_RATIO else 'NOT met'} "
            f"(CPU {lt['cpu_ratio']:.0f}x)"
            if lt
            else "-"
        )
        sm_ms = f"{sm['ms_per_protein']:.1f} (n={sm['proteins']})" if sm else "skipped"
        sm_ratio = f"{sm['ratio']:.0f}x (CPU {sm['cpu_ratio']:.0f}x)" if sm else "-"
        stage = e["median_s"] + e["read_s"]
        t_goal = ("met" if stage <= GOAL_SECONDS else "NOT met") if full else "n/a"
        m_goal = ("met" if e["rss_peak_mb"] <= GOAL_RSS_GB * 1024 else "NOT met") if full else "n/a"
        print(
            f"| {size} | {e['ms_per_protein']:.3f} | {lt_ms} | {lt_ratio} | {sm_ms} | {sm_ratio} "
            f"| {e['median_s']:.2f} (+{e['read_s']:.2f}) {t_goal} | "
            f"{e['rss_peak_mb'] / 1024:.2f} GB {m_goal} |"
        )


def parse_size(text: str) -> tuple[int, int]:
    p, r = text.lower().split("x")
    return int(p), int(r)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("_engine", "_statsmodels"):
        cp = argparse.ArgumentParser()
        cp.add_argument("mode")
        for opt in ("--table", "--sheet", "--result", "--fits", "--data"):
            cp.add_argument(opt)
        cp.add_argument("--repeats", type=int, default=1)
        cargs = cp.parse_args(argv)
        (child_engine if cargs.mode == "_engine" else child_statsmodels)(cargs)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and subsets")
    parser.add_argument(
        "--sizes", nargs="+", type=parse_size, help="PROTEINSxRUNS (default 2000x12 10000x200)"
    )
    parser.add_argument("--repeats", type=int, help="engine calls per size (default 3; quick 1)")
    parser.add_argument("--lmer-proteins", type=int, help="lmerTest subset (default 150; quick 40)")
    parser.add_argument("--sm-proteins", type=int, help="statsmodels subset (default 40; quick 8)")
    parser.add_argument("--missing", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-r", action="store_true", help="skip lmerTest")
    parser.add_argument("--out", type=Path, default=HERE / "out", help="where the JSON goes")
    parser.add_argument("--keep", action="store_true", help="keep the generated data in --out")
    args = parser.parse_args(argv)
    quick = args.quick
    args.sizes = args.sizes or ([(500, 12), (1000, 200)] if quick else [(2000, 12), FULL_SIZE])
    args.repeats = args.repeats or (1 if quick else 3)
    args.lmer_proteins = (
        args.lmer_proteins if args.lmer_proteins is not None else 40 if quick else 150
    )
    args.sm_proteins = args.sm_proteins if args.sm_proteins is not None else 8 if quick else 40
    rscript = None if args.no_r else shutil.which("Rscript")

    import numpy
    import scipy

    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    print(
        f"pepmix engine benchmark {stamp}; {platform.node()}: {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}; python {platform.python_version()}, "
        f"numpy {numpy.__version__}, scipy {scipy.__version__}; "
        f"{'Rscript ' + rscript if rscript else 'no R'}"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="pepmix-bench-") as tmp:
        work = args.out / "data" if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for n_prot, n_runs in args.sizes:
            results.append(bench_size(n_prot, n_runs, args, work, rscript))
    summary(results)
    path = args.out / f"bench_engine_{dt.datetime.now():%Y%m%d_%H%M%S}.json"
    meta = {"date": stamp, "cores": os.cpu_count(), "quick": quick, "seed": args.seed}
    path.write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=str))
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}; results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
