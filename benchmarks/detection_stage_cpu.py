"""CPU time of the model stage with ``missing: detection`` against MAR (issue 14, speed).

Runs the workflow's stage functions in-process on one normalised feature table (one shard):
the MAR fit stage (:func:`pepmix.stages.fit.run`, ``model.robust`` none and huber), and the
detection model stage: rule ``detection_curve`` (:func:`pepmix.stages.detection_curve.run`) plus
the fit stage with ``missing: detection``. Abundances and peptide usage are off in all (they do
not depend on ``missing``). CPU time by ``time.process_time`` (run with OMP_NUM_THREADS=1).

    python benchmarks/detection_stage_cpu.py --simulate 2000 12      # detection_sim's generator
    python benchmarks/detection_stage_cpu.py --features F.parquet --samples S.tsv --contrasts \\
        "B - A" ...                                                     # e.g. the demo's tables
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
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
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
