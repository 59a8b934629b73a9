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
measured by alternating the two in one checkout). ``--shards`` lists every shard's
``features.parquet`` (this one's included): the fit job of a sharded workflow with the feature
majority rule, which fits the rule's prior from all shards' tables
(:mod:`pepmix.model.majority_shards`; its part is reported as ``shard_sample``); without it the
shard fits the prior on its own proteins (what the job cost when the prepare job wrote the
prior: reading that JSON took no measurable time).

Usage::

    PYTHONPATH=src python benchmarks/fit_stage_cpu.py /tmp/bwc6a/p10000_f60000_r200/ \\
        results/model/shards/1-of-2/features.parquet /tmp/bwc6a/p10000_f60000_r200/config.yaml
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
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
    parser.add_argument(
        "--shards",
        nargs="+",
        default=None,
        help="every shard's features.parquet, relative to root (the majority prior's sample)",
    )
    parser.add_argument(
        "--usage-weights",
        choices=("config", "usage_fit", "default_fit"),
        default="config",
        help="peptide_usage_weights: the config's (default) or this scheme",
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
    sampled = [0.0]
    shards = [os.path.join(args.root, p) for p in args.shards] if args.shards else None
    if shards:
        from pepmix.model import majority_shards

        sample_inner = majority_shards.shard_sample

        def sample_timed(*a: Any, **k: Any) -> Any:
            start = time.process_time()
            try:
                return sample_inner(*a, **k)
            finally:
                sampled[0] += time.process_time() - start

        majority_shards.shard_sample = sample_timed  # type: ignore[assignment]
    kwargs: dict[str, Any] = {"majority_shards": shards} if shards else {}
    if args.usage_weights != "config":
        kwargs["usage_weights"] = args.usage_weights
    elif cfg.get("peptide_usage_weights"):
        kwargs["usage_weights"] = cfg["peptide_usage_weights"]
    with threadpool_limits(limits=1):
        start = time.process_time()
        res = fit.run(features=os.path.join(args.root, args.shard), samples=samples,
                      model=cfg.get("model", {}), usage=True, **kwargs)  # fmt: skip
        cpu = time.process_time() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    log.info("cpu %.3f usage %.3f shard_sample %.3f rest %.3f peak_rss_mb %.0f", cpu, spent[0],
             sampled[0], cpu - spent[0] - sampled[0], peak)  # fmt: skip
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
