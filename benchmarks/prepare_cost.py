"""CPU and wall seconds of rule ``prepare`` (ingest, merge, normalize, shard in one job).

    PYTHONPATH=src .venv/bin/python benchmarks/prepare_cost.py CONFIG OUTDIR [--shards 2]

``CONFIG`` is a workflow config with one ``inputs:`` entry (e.g. ``simulate.py cohort``'s
``config.yaml`` or ``config_generic_long.yaml``). Runs :func:`pepmix.stages.prepare.run` of the
imported pepmix (set ``PYTHONPATH`` to the checkout to measure) with the rule's outputs under
``OUTDIR`` and prints the CPU seconds (``time.process_time``: this process, all threads), the
CPU seconds of the job's own thread (``time.thread_time``: without the writer thread and
pyarrow's pool; on an idle 2-core machine the wall time follows it) and the wall seconds
(``time.perf_counter``) of each stage, from the stage log records (and the
wait for the table writes at the end, where the checkout writes them in a thread), the totals,
and the peak RSS. Compare checkouts by running
them interleaved in one sitting; CPU seconds are inflated by other load far less than wall times.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import resource
import sys
import time
from pathlib import Path

import pepmix
from pepmix.config import load_yaml, validate_config
from pepmix.stages import prepare

log = logging.getLogger("prepare_cost")


class _Marks(logging.Handler):
    """Records the CPU and wall times at each ``stage NAME`` record of
    :mod:`pepmix.stages.prepare` (and at its ``waiting for the writes ...`` record: ``write``)."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: list[tuple[str, float, float, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name != "pepmix.stages.prepare":
            return
        message = record.getMessage()
        if message.startswith("stage "):
            self.marks.append((message[6:], *_clocks()))
        elif message.startswith("waiting for the writes"):
            self.marks.append(("write", *_clocks()))


def _clocks() -> tuple[float, float, float]:
    """Process CPU, this thread's CPU, wall seconds."""
    return time.process_time(), time.thread_time(), time.perf_counter()


def main() -> None:
    """Run the prepare stage once and print its CPU seconds per step."""
    parser = argparse.ArgumentParser()
    parser.add_argument("config", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--shards", type=int, default=2)
    args = parser.parse_args()
    root = Path(pepmix.__file__).resolve().parents[2]
    schema = load_yaml(root / "workflow/schemas/config.schema.yaml")
    config = validate_config(load_yaml(args.config), schema)
    entry = config["inputs"][0]
    out = args.out
    n = args.shards
    items = [f"{i + 1}-of-{n}" for i in range(n)]
    outputs = prepare.PrepareOutputs(
        batch=out / f"results/ingest/batches/{entry['name']}.parquet",
        merged=out / "results/ingest/features.parquet",
        samples=out / "results/ingest/samples.tsv",
        removed=out / "results/ingest/removed_proteins.tsv",
        features=out / "results/normalize/features.parquet",
        runs=out / "results/normalize/runs.tsv",
        shards=[out / f"results/model/shards/{i}/features.parquet" for i in items],
        largest=[out / f"results/model/shards/{i}/largest.json" for i in items],
        alerts={},
        logs={},
    )
    marks = _Marks()
    logging.getLogger().addHandler(marks)
    logging.getLogger().setLevel(logging.INFO)
    start, main_start, wall = _clocks()
    prepare.run(
        entry=entry,
        filters=config["filter"],
        feature_level=config["feature_level"],
        samples=config["samples"],
        sheet_config=config.get("sample_sheet", {}),
        normalization=config["normalization"],
        outputs=outputs,
    )
    end, main_end, wall_end = _clocks()
    points = [*marks.marks, ("end", end, main_end, wall_end)]
    parts = [
        f"{name} {c1 - c0:.2f}/{m1 - m0:.2f}/{w1 - w0:.2f}"
        for (name, c0, m0, w0), (_, c1, m1, w1) in itertools.pairwise(points)
    ]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    sys.stdout.write(
        f"{root}: prepare {end - start:.2f} CPU s / {main_end - main_start:.2f} main-thread CPU s"
        f" / {wall_end - wall:.2f} wall s (CPU/main/wall: {', '.join(parts)}); "
        f"peak RSS {rss:.2f} GB\n"
    )


if __name__ == "__main__":
    main()
