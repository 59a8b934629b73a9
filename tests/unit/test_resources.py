"""Memory the model rules declare, from the largest protein (:mod:`pepmix.resources`)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa

from pepmix.io import write_arrow
from pepmix.resources import (
    BASE_MB,
    declared_mem_mb,
    fit_mem_mb,
    largest_protein,
    write_largest,
)
from pepmix.shards import split


def test_formula() -> None:
    assert fit_mem_mb(0, 0) == BASE_MB
    assert fit_mem_mb(0, 0, input_mb=10.0) == BASE_MB + 200
    # 3,000 features x 36,000 observations: 24 bytes per cell, 2,472 MB above the base
    assert fit_mem_mb(3000, 36000) == BASE_MB + 2472
    # the measured peak of that protein (benchmarks/bench_memory.py) was 1,510 MB
    assert fit_mem_mb(3000, 36000) > 1.5 * 1510


def test_largest_protein_is_the_largest_product() -> None:
    # 10 x 100 = 1,000 cells beats 30 x 30 = 900 and 2 x 400 = 800
    assert largest_protein([30, 10, 2], [30, 100, 400]) == {"n_features": 10, "n_observations": 100}
    assert largest_protein([], []) == {"n_features": 0, "n_observations": 0}


def test_declared_reads_the_files_and_tolerates_missing_ones(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    write_largest(a, [100], [1200])
    write_largest(b, [3000], [36000])
    assert declared_mem_mb(str(a)) == fit_mem_mb(100, 1200)
    assert declared_mem_mb([str(a), str(b)], 5.0) == fit_mem_mb(3000, 36000, 5.0)
    # before the shard job ran (Snakemake's first evaluation while building the DAG)
    assert declared_mem_mb(str(tmp_path / "absent.json"), 5.0) == fit_mem_mb(0, 0, 5.0)


def test_split_writes_each_shards_largest_protein(tmp_path: Path) -> None:
    # P1: 3 features x 4 runs; P2: 1 feature x 4 runs (+ repeated feature names across proteins)
    rows = [("P1", f, r) for f in ("a", "b", "c") for r in ("r1", "r2", "r3", "r4")]
    rows += [("P2", "a", r) for r in ("r1", "r2", "r3", "r4")]
    frame = pd.DataFrame(rows, columns=["protein", "feature", "run"]).assign(y=1.0)
    features = tmp_path / "features.parquet"
    write_arrow(pa.Table.from_pandas(frame, preserve_index=False), features)
    outs = [tmp_path / "s0.parquet", tmp_path / "s1.parquet"]
    largest = [tmp_path / "s0.json", tmp_path / "s1.json"]
    split(features, outs, largest)
    found = sorted(json.loads(p.read_text())["n_features"] for p in largest)
    assert found == [1, 3]
    for out, js in zip(outs, largest, strict=True):
        shard = pd.read_parquet(out)
        info = json.loads(js.read_text())
        assert info["n_observations"] == len(shard)
        assert info["n_features"] == shard["feature"].nunique()
