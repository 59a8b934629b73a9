"""CPU seconds of the prepare job (``pepmix.stages.prepare.run``: ingest, merge, normalize and
shard in one process), for interleaved before/after pairs of two checkouts.

The call rule ``prepare`` makes for a one-batch config, writing into ``OUT`` (``--shards N``
shard files, default 2). Reports ``time.process_time`` of the call (CPU seconds; the machine may
be shared: two threads write Parquet beside the main one, so CPU seconds exceed wall) and the
wall seconds. A checkout whose :class:`pepmix.stages.prepare.PrepareOutputs` still has
``majority_prior`` (the feature majority rule's prior written by this job, before it moved into
the fit jobs) gets that output too, as its workflow would. Run it once per checkout with
``PYTHONPATH=<checkout>/src``, from the checkout, alternating checkouts.

Usage::

    PYTHONPATH=src python benchmarks/prepare_stage_cpu.py \\
        /tmp/bwc6a/p10000_f60000_r200/config.yaml /tmp/shardprior/after
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

from pepmix.config import load_yaml, validate_config
from pepmix.stages import prepare

log = logging.getLogger("prepare_stage_cpu")


def main() -> None:
    """Parse the arguments, run the prepare stage once and log its CPU and wall seconds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="the workflow's config.yaml (one batch)")
    parser.add_argument("out", help="directory the job's files are written into")
    parser.add_argument("--shards", type=int, default=2, help="shard files (default 2)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = validate_config(load_yaml(args.config), load_yaml("workflow/schemas/config.schema.yaml"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n = args.shards
    files = {
        "batch": out / "batch.parquet",
        "merged": out / "merged.parquet",
        "samples": out / "samples.tsv",
        "removed": out / "removed.tsv",
        "features": out / "features.parquet",
        "runs": out / "runs.tsv",
        "shards": [out / f"{k}-of-{n}.parquet" for k in range(1, n + 1)],
        "largest": [out / f"{k}-of-{n}.json" for k in range(1, n + 1)],
        "alerts": {},
        "logs": {},
    }
    if "majority_prior" in {f.name for f in dataclasses.fields(prepare.PrepareOutputs)}:
        files["majority_prior"] = out / "majority_prior.json"
    start, wall = time.process_time(), time.perf_counter()
    with threadpool_limits(limits=2):  # the rule's threads: 2
        prepare.run(
            entry=cfg["inputs"][0],
            filters=cfg["filter"],
            feature_level=cfg["feature_level"],
            samples=cfg["samples"],
            sheet_config=cfg.get("sample_sheet", {}),
            normalization=cfg["normalization"],
            outputs=prepare.PrepareOutputs(**files),  # type: ignore[arg-type]
        )
    log.info(
        "prepare: %.2f CPU s, %.2f s wall (%s)",
        time.process_time() - start,
        time.perf_counter() - wall,
        "with the majority prior" if "majority_prior" in files else "no majority prior",
    )


if __name__ == "__main__":
    main()
