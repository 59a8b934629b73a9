"""CPU seconds of one fit shard (``pepmix.stages.fit.run``), for interleaved before/after pairs.

The call the fit job makes (peptide usage on, MAR, abundances; no prior, default variance
tests), with BLAS limited to one thread as rule ``fit`` does (``pepmix.rule.limit_threads``):
without the limit OpenBLAS spins two threads on the engine's small products and the CPU
seconds double. Reports ``time.process_time`` of the call (CPU seconds: the machine may be
shared) and the part spent in the peptide-usage refit and LRT (``usage.usage_shard``). Numba
kernels load from their cache (run once per checkout before measuring). With ``--out DIR``
the fit's tables and the test stage's differential table are written there (for comparing two
checkouts' outputs). Run it once per checkout with ``PYTHONPATH=<checkout>/src``, from the
checkout (the config schema is read from ``workflow/schemas``), alternating checkouts.
``--feature-majority true|false`` overrides ``model.feature_majority`` (for the rule's cost,
measured by alternating the two in one checkout).

Usage::

    PYTHONPATH=src python benchmarks/fit_stage_cpu.py /tmp/bwc6a/p10000_f60000_r200/ \\
        results/model/shards/1-of-2/features.parquet /tmp/bwc6a/p10000_f60000_r200/config.yaml
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from typing import Any

from threadpoolctl import threadpool_limits

from pepmix.config import load_yaml, validate_config
from pepmix.model import usage
from pepmix.stages import fit, test

log = logging.getLogger("fit_stage_cpu")


def main() -> None:
    """Parse the arguments, fit the shard once and log the CPU seconds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="workflow directory (with results/ingest/samples.tsv)")
    parser.add_argument("shard", help="the shard's features.parquet, relative to root")
    parser.add_argument("config", help="the workflow's config.yaml")
    parser.add_argument("--out", default=None, help="write the outputs into this directory")
    parser.add_argument(
        "--feature-majority",
        choices=("config", "true", "false"),
        default="config",
        help="model.feature_majority: the config's (default) or forced on / off",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = validate_config(load_yaml(args.config), load_yaml("workflow/schemas/config.schema.yaml"))
    if args.feature_majority != "config":
        cfg.setdefault("model", {})["feature_majority"] = args.feature_majority == "true"
    samples = os.path.join(args.root, "results/ingest/samples.tsv")
    spent = [0.0]
    inner = usage.usage_shard

    def timed(*a: Any, **k: Any) -> Any:
        start = time.process_time()
        try:
            return inner(*a, **k)
        finally:
            spent[0] += time.process_time() - start

    usage.usage_shard = timed  # fit.run imports it at call time
    with threadpool_limits(limits=1):
        start = time.process_time()
        res = fit.run(features=os.path.join(args.root, args.shard), samples=samples,
                      model=cfg.get("model", {}), usage=True)  # fmt: skip
        cpu = time.process_time() - start
    log.info("cpu %.3f usage %.3f rest %.3f", cpu, spent[0], cpu - spent[0])
    if args.out:
        out = args.out
        os.makedirs(out, exist_ok=True)
        res.write(proteins=f"{out}/proteins.parquet", fit=f"{out}/fit.parquet",
                  fixed=f"{out}/fixed.parquet", blups=f"{out}/blups.parquet",
                  usage=f"{out}/usage.parquet", abundance=f"{out}/abundance.parquet")  # fmt: skip
        table = test.run(fit=f"{out}/fit.parquet", samples=samples, config=cfg)
        table.write(tsv=f"{out}/diff.tsv", parquet=f"{out}/diff.parquet",
                    missing=f"{out}/missing.tsv")  # fmt: skip


if __name__ == "__main__":
    main()
