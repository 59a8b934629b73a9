"""CPU time of the model stage with ``missing: detection`` against MAR (issue 14, speed).

Runs the workflow's stage functions in-process on one normalised feature table (one shard):
the MAR fit stage (:func:`pepmix.stages.fit.run`, ``model.robust`` none and huber), and the
detection model stage: rule ``detection_curve`` (:func:`pepmix.stages.detection_curve.run`) plus
the fit stage with ``missing: detection``. Abundances and peptide usage are off in all (they do
not depend on ``missing``). CPU time by ``time.process_time`` (run with OMP_NUM_THREADS=1).

    python benchmarks/detection_stage_cpu.py --simulate 2000 12      # detection_sim's generator
    python benchmarks/detection_stage_cpu.py --features F.parquet --samples S.tsv --contrasts \\
        "B - A" ...                                                     # e.g. the demo's tables

With ``--config`` (a workflow config, e.g. the cohort's) the model stage is measured as the
workflow runs it (:func:`measure_workflow`): the config is validated with the build's schema
(defaults filled in, as :mod:`stage_runner` does), the rules up to ``normalize`` are run by
:class:`stage_runner.StageRunner` (cached under ``--workdir``), and then, for the build's
defaults, ``model.robust: none`` and ``missing: detection`` (each merged into the config), the
model-stage rules run their own scripts with the params their ``rules/*.smk`` blocks evaluate to:
``fit`` as one shard job of a sharded run (so with the protein abundances and, when the config's
``peptide_usage`` is on, the peptide-usage test in the job, as every shard job does; shards split
proteins only, so one job on all proteins is the sum over shards up to per-job overheads), plus
``variance_prior`` and ``detection_curve`` (with its figure) when the fit rule's inputs name
them. Gathers are not timed.

    python benchmarks/detection_stage_cpu.py --config /tmp/cohort/full/config.yaml \\
        --workdir /tmp/dspeed-work
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from pepmix.io import write_parquet, write_tsv
from pepmix.stages import detection_curve, fit

log = logging.getLogger("detection_stage_cpu")


def _cpu(fun: Callable[[], Any]) -> tuple[float, Any]:
    start = time.process_time()
    out = fun()
    return time.process_time() - start, out


def measure(features: Path, samples: Path, contrasts: list[tuple[str, str, str]]) -> dict[str, Any]:
    """CPU seconds of the MAR stages and of the detection stages on one table."""
    row: dict[str, Any] = {}
    for robust in ("none", "huber"):
        row[f"mar_{robust}_cpu_s"], _ = _cpu(
            lambda robust=robust: fit.run(
                features=features, samples=samples, model={"robust": robust}, abundance=False
            )
        )
    row["curve_cpu_s"], curve = _cpu(
        lambda: detection_curve.run(features=features, samples=samples)
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "curve.tsv"
        curve.write(table=path)
        row["detection_fit_cpu_s"], result = _cpu(
            lambda: fit.run(
                features=features,
                samples=samples,
                model={"robust": "none"},
                abundance=False,
                missing="detection",
                curve=path,
                contrasts=contrasts,
            )
        )
    det = row["curve_cpu_s"] + row["detection_fit_cpu_s"]
    row["detection_stage_cpu_s"] = det
    row["ratio_vs_mar_none"] = det / row["mar_none_cpu_s"]
    row["ratio_vs_mar_huber"] = det / row["mar_huber_cpu_s"]
    row["proteins"] = int(result.detection["protein"].nunique())
    row["grouping"] = curve.curve.grouping
    return row


#: the variants of :func:`measure_workflow` (config overrides; ``{}``: the build's defaults)
VARIANTS: dict[str, dict[str, Any]] = {
    "mar_default": {},
    "mar_robust_none": {"model": {"robust": "none"}},
    "detection": {"missing": "detection"},
}


#: modules the model-stage scripts import (loaded before timing)
WARM_IMPORTS = (
    "pepmix.api", "pepmix.rule", "pepmix.stages.fit", "pepmix.stages.detection_curve",
    "pepmix.stages.variance_prior", "pepmix.model.mnar", "pepmix.model.missing",
    "pepmix.model.usage", "pepmix.model.robust", "pepmix.model.abundance",
    "pepmix.plots.detection", "scipy.optimize",
)  # fmt: skip


def _stage_runner() -> Any:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    import stage_runner

    return stage_runner


def prepare(config: dict[str, Any], workdir: Path) -> tuple[Path, Path]:
    """The normalised features and the resolved sample sheet of ``config`` (rules up to
    ``normalize`` by :class:`stage_runner.StageRunner`, cached in ``workdir``)."""
    sr = _stage_runner()
    runner = sr.StageRunner(workdir)
    cfg = sr.validate_config(config, runner.schema)
    namespace, made = runner._namespace(cfg), {}
    features = runner._make("results/normalize/features.parquet", namespace, made)
    samples = runner._make("results/ingest/samples.tsv", namespace, made)
    return Path(features), Path(samples)


def _run_script(runner: Any, job: Any, inputs: dict[str, Any], out: Path) -> float:
    """CPU seconds of a rule's own script with the job's params, all outputs under ``out``."""
    import runpy
    from types import SimpleNamespace

    sr = _stage_runner()
    out.mkdir(parents=True, exist_ok=True)
    script = sr.rule_block(runner.texts[runner.rule_file[job.rule]], job.rule, "script")
    path = (runner.root / "rules" / script.strip("\"'")).resolve()
    # the workflow's file names (a figure's format is its extension), one directory per output
    outputs = {
        k: [str(out / k / Path(p).name) for p in v]
        if isinstance(v, list)
        else str(out / k / Path(v).name)
        for k, v in job.output.items()
    }
    for k in outputs:
        (out / k).mkdir(exist_ok=True)
    smk = SimpleNamespace(
        input=sr._Named(inputs), output=sr._Named(outputs), params=sr._Named(job.params),
        log=[str(out / "log")], threads=1, rule=job.rule,
        wildcards=SimpleNamespace(**job.wildcards),
    )  # fmt: skip
    start = time.process_time()
    runpy.run_path(str(path), init_globals={"snakemake": smk})
    return time.process_time() - start


def measure_workflow(
    config: dict[str, Any],
    features: Path,
    samples: Path,
    workdir: Path,
    variants: list[str] | None = None,
) -> pd.DataFrame:
    """CPU seconds of the model-stage rules per variant of :data:`VARIANTS` (one row each;
    ``variants``: their names, default None: all)."""
    import importlib

    sr = _stage_runner()
    runner = sr.StageRunner(workdir)
    # imports first, so that no variant pays them (each workflow job pays them once, ~1-2 s)
    for module in WARM_IMPORTS:
        importlib.import_module(module)
    rows = []
    for name, overrides in VARIANTS.items():
        if variants is not None and name not in variants:
            continue
        cfg = sr.validate_config(sr.merge_overrides(config, overrides), runner.schema)
        namespace = runner._namespace(cfg)
        # rules/common.smk's PEPTIDE_USAGE: every fit job tests peptide usage when it is on
        namespace["PEPTIDE_USAGE"] = bool(cfg.get("peptide_usage", True)) and (
            "condition|batch" not in ((cfg.get("model") or {}).get("random") or [])
        )
        job = runner._job("fit", namespace, sr._ITEM)
        row: dict[str, Any] = {"variant": name, "robust": cfg["model"].get("robust")}
        inputs: dict[str, Any] = {"features": str(features), "samples": str(samples)}
        out = workdir / f"model-{name}"
        for rule, key in (("variance_prior", "prior"), ("detection_curve", "curve")):
            if not job.input.get(key):
                row[f"{rule}_cpu_s"] = 0.0
                continue
            pre = runner._job(rule, namespace, sr._ITEM)
            pre_in = {"features": str(features), "samples": str(samples), "largest": []}
            row[f"{rule}_cpu_s"] = _run_script(runner, pre, pre_in, out / rule)
            first = next(iter(pre.output.values()))
            inputs[key] = str(out / rule / next(iter(pre.output)) / Path(first).name)
        inputs.update(largest=str(out / "largest.json"), removed=[])
        row["usage_in_fit"] = "usage" in job.output
        row["fit_cpu_s"] = _run_script(runner, job, inputs, out / "fit")
        row["stage_cpu_s"] = row["fit_cpu_s"] + row["variance_prior_cpu_s"]
        row["stage_cpu_s"] += row["detection_curve_cpu_s"]
        log.warning("%s", row)
        rows.append(row)
    table = pd.DataFrame(rows).set_index("variant")
    if "detection" in table.index:
        table["detection_over_this"] = table.loc["detection", "stage_cpu_s"] / table["stage_cpu_s"]
    return table


def _simulated(n_proteins: int, n_runs: int, root: Path) -> tuple[Path, Path]:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from detection_sim import simulate

    table, sheet, _ = simulate(n_proteins, n_runs, 1.0, 0.3, 1)
    for col in ("protein", "feature", "run"):
        table[col] = table[col].astype("category")
    write_parquet(table, root / "features.parquet")
    write_tsv(sheet, root / "samples.tsv")
    return root / "features.parquet", root / "samples.tsv"


def main() -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulate", nargs=2, type=int, metavar=("PROTEINS", "RUNS"))
    parser.add_argument("--features", type=Path)
    parser.add_argument("--samples", type=Path)
    parser.add_argument("--contrasts", nargs="+", default=["B - A"])
    parser.add_argument("--config", type=Path, help="workflow config: measure_workflow")
    parser.add_argument("--workdir", type=Path, help="cache of the rules (with --config)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="with --config")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.config:
        from pepmix.config import load_yaml

        config = load_yaml(args.config)
        workdir = args.workdir or Path(tempfile.mkdtemp(prefix="detection_stage_"))
        if args.features is None:
            args.features, args.samples = prepare(config, workdir / "prepare")
        table = measure_workflow(config, args.features, args.samples, workdir, args.variants)
        with pd.option_context("display.width", 200):
            print(table.round(2).to_string())
        return
    contrasts = [(c, *c.split(" - ")) for c in args.contrasts]
    with tempfile.TemporaryDirectory() as tmp:
        if args.simulate:
            features, samples = _simulated(*args.simulate, Path(tmp))
        else:
            features, samples = args.features, args.samples
        row = measure(features, samples, [(c[0], c[1], c[2]) for c in contrasts])
    print(pd.Series(row).to_string())


if __name__ == "__main__":
    main()
