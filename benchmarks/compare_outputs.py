"""Compare two directories of ``fit_stage_cpu.py --out`` outputs bit for bit.

Parquet tables column by column (float64 as bit patterns, so NaN equals NaN and -0.0 differs
from 0.0; other columns by value, missing values equal), other files byte for byte. Logs one
line per file and exits with status 1 when any differs.

Usage::

    python benchmarks/compare_outputs.py /tmp/out_before /tmp/out_after
"""

from __future__ import annotations

import argparse
import filecmp
import logging
import os
import sys

import numpy as np
import pandas as pd

log = logging.getLogger("compare_outputs")


def same_column(a: pd.Series, b: pd.Series) -> bool:
    """Whether two columns hold the same values (float64: the same bits)."""
    u, v = a.to_numpy(), b.to_numpy()
    if u.dtype != v.dtype:
        return False
    if u.dtype == np.float64:
        return bool(np.array_equal(u.view(np.int64), v.view(np.int64)))
    if u.dtype.kind in "biuf":
        return bool(np.array_equal(u, v, equal_nan=u.dtype.kind == "f"))
    return bool((a.astype(str).fillna("<NA>") == b.astype(str).fillna("<NA>")).all())


def compare(first: str, second: str) -> int:
    """Compare the files of ``first`` with those of the same name in ``second``; the number
    of files that differ."""
    bad = 0
    for name in sorted(os.listdir(first)):
        a, b = os.path.join(first, name), os.path.join(second, name)
        if name.endswith(".parquet"):
            x, y = pd.read_parquet(a), pd.read_parquet(b)
            if list(x.columns) != list(y.columns) or len(x) != len(y):
                log.info("%s: columns or rows differ", name)
                bad += 1
                continue
            diff = [c for c in x.columns if not same_column(x[c], y[c])]
            log.info("%s: %d rows, %d columns, %s", name, len(x), len(x.columns),
                     f"differ in {diff}" if diff else "identical")  # fmt: skip
            bad += bool(diff)
        else:
            same = filecmp.cmp(a, b, shallow=False)
            log.info("%s: %s", name, "identical bytes" if same else "differs")
            bad += not same
    log.info("%s", "all identical" if bad == 0 else f"{bad} files differ")
    return bad


def main() -> None:
    """Parse the two directories and compare them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first")
    parser.add_argument("second")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.exit(1 if compare(args.first, args.second) else 0)


if __name__ == "__main__":
    main()
