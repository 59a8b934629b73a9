"""End-to-end: ``missing: detection`` through the workflow (issue 14, item 4).

The demo slice of ``test_batches.py`` (every UPS1 protein of four, 150 background proteins; 3
conditions x 4 runs) as one input, in two shards: rule ``detection_curve`` fits the curve once,
the fit jobs fit the detection model, ``gather_detection`` gathers their rows and the test stage
tests them. The differential table has one row per protein and contrast, with finite statistics
for every tested row.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.e2e import test_batches as tb

pytestmark = pytest.mark.slow


def _write_single_input(repo: Path, work: Path) -> None:
    tb._write_batch_files(repo, work)
    parts = [pd.read_csv(work / f"{b}.csv") for b in tb.REPLICATES]
    parts[1][tb._runs("b2")] /= tb.SCALE["b2"]  # one input: no batch effect
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part, on="identifier", how="outer")
    merged.to_csv(work / "demo.csv", index=False)
    runs = [f"{c}_{r}" for c in tb.CONDITIONS for r in ("1", "2", "3", "4")]
    rows = ["run\tcondition"] + [f"{r}\t{r.split('_')[0]}" for r in runs]
    (work / "samples.tsv").write_text("\n".join(rows) + "\n")
    (work / "config.yaml").write_text(
        """samples: samples.tsv
inputs:
  - name: demo
    format: generic_wide
    path: demo.csv
    id_column: identifier
    id_separator: "--"
feature_level: peptide
contrasts: all_pairwise
missing: detection
peptide_usage: false
shards: 2
"""
    )


def test_detection_model_through_the_workflow(repo: Path, tmp_path: Path) -> None:
    _write_single_input(repo, tmp_path)
    outputs = [
        tb.TARGET,
        "results/model/detection_curve.tsv",
        "results/plots/qc/detection_curve.png",
    ]
    cmd = [tb.SNAKEMAKE, "-s", str(repo / "Snakefile"), "--directory", str(tmp_path), *outputs]
    cmd += ["--configfile", str(tmp_path / "config.yaml"), "--cores", "2"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    for path in outputs[1:]:
        assert (tmp_path / path).stat().st_size > 0
    curve = pd.read_csv(tmp_path / "results/model/detection_curve.tsv", sep="\t")
    assert len(curve) == 12 and (curve["b1"] > 0).all()
    diff = pd.read_csv(tmp_path / tb.TARGET, sep="\t")
    assert not diff.duplicated(["protein", "contrast"]).any()
    per_contrast = diff.groupby("contrast")["protein"].nunique()
    assert per_contrast.nunique() == 1 and len(per_contrast) == 3
    tested = diff.loc[diff["status"] == "ok"]
    cols = ["log2fc", "se", "df", "pvalue", "ci_low", "ci_high"]
    assert np.isfinite(tested[cols].to_numpy()).all()
    assert (tested["pvalue"] > 0).all()
    assert (diff["status"] != "one_condition_missing").all()
    log = (tmp_path / "logs" / "fit" / "1-of-2.log").read_text()
    assert "detection model:" in log
