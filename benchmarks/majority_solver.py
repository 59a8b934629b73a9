"""The feature majority rule alone on one fit shard: CPU seconds and the exclusions (CSV).

Reads a shard's ``features.parquet`` and the resolved sample sheet, encodes the table as the
fit job does and runs :func:`pepmix.model.majority.majority_exclusions` (prior fitted on the
shard's own :func:`~pepmix.model.majority.prior_sample`) ``--repeat`` times with BLAS limited
to one thread, logging ``time.process_time`` of each call (CPU seconds: the machine may be
shared; the first call includes loading the numba cache). The last call's exclusions (protein,
feature, p-value) go to ``--out``; ``--compare`` lists the exclusions that differ from another
such CSV (made by another checkout: run with ``PYTHONPATH=<checkout>/src``).

Usage::

    PYTHONPATH=src python benchmarks/majority_solver.py \\
        /tmp/bwc6a/p10000_f60000_r200/results/model/shards/1-of-2/features.parquet \\
        /tmp/bwc6a/p10000_f60000_r200/results/ingest/samples.tsv --out /tmp/after.csv \\
        [--compare /tmp/before.csv]

Results: ``benchmarks/README.md``, "A feature majority rule: a converging saturated fit".
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from pepmix.model.fit import encode
from pepmix.model.majority import condition_design, majority_exclusions
from pepmix.samples.load import read_resolved_sheet
from pepmix.stages.files import read_model_input

log = logging.getLogger("majority_solver")


def main() -> None:
    """Parse the arguments, run the rule and write / compare its exclusions."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("features", help="the shard's features.parquet")
    parser.add_argument("samples", help="the resolved sample sheet (results/ingest/samples.tsv)")
    parser.add_argument("--out", required=True, help="CSV of the exclusions")
    parser.add_argument("--compare", default=None, help="another checkout's CSV")
    parser.add_argument("--repeat", type=int, default=3, help="calls (default 3)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    design = condition_design(read_resolved_sheet(args.samples))
    enc = encode(read_model_input(args.features), design)
    with threadpool_limits(limits=1):
        for _ in range(args.repeat):
            start = time.process_time()
            excl = majority_exclusions(enc, design)
            log.info("majority_exclusions: %.3f CPU s", time.process_time() - start)
    fprot = pd.Series(enc.prot, index=enc.feat).groupby(level=0).first()
    table = pd.DataFrame(
        {
            "protein": np.asarray(enc.proteins)[fprot.loc[excl.features].to_numpy()],
            "feature": np.asarray(enc.features)[excl.features],
            "pvalue": excl.pvalues,
        }
    )
    table.to_csv(args.out, index=False)
    log.info("%d exclusions in %d proteins", len(table), table["protein"].nunique())
    if args.compare:
        other = pd.read_csv(args.compare)
        both = table.merge(other, on=["protein", "feature"], how="outer", indicator=True,
                           suffixes=("", "_other"))  # fmt: skip
        log.info(
            "against %s: %d only here, %d only there, %d in both (max |log10 p ratio| %.2g)",
            args.compare,
            int((both["_merge"] == "left_only").sum()),
            int((both["_merge"] == "right_only").sum()),
            int((both["_merge"] == "both").sum()),
            float((both["pvalue"].map(_log10) - both["pvalue_other"].map(_log10)).abs().max()),
        )
        print(both[both["_merge"] != "both"].to_string(index=False))


def _log10(p: float) -> float:
    """log10 of a p-value (NaN stays NaN)."""
    import math

    return math.log10(p) if p > 0 else float("-inf")


if __name__ == "__main__":
    main()
