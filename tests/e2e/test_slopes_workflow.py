"""End-to-end: the random slope ``condition|batch`` through the workflow (issue 13, item 3b).

The demo slice of ``test_batches.py`` in three batches (replicates 1-2, 3 and 4 of every
condition; b2 shifted by +2 log2) with ``model.random: [feature, sample, "condition|batch"]``:
the fit job uses :mod:`pepmix.model.slopes_fit`, the test stage computes the contrasts from its
stored fit, and ``variance_components.tsv`` has the slope columns.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.e2e import test_batches as tb

pytestmark = pytest.mark.slow


def test_slope_model_through_the_workflow(repo: Path, tmp_path: Path) -> None:
    tb._write_batch_files(repo, tmp_path)
    tb._write_project(tmp_path, ["b1", "b2", "b3"])
    config = tmp_path / "config.yaml"
    config.write_text(
        config.read_text() + 'model:\n  random: [feature, sample, "condition|batch"]\n'
    )
    cmd = [tb.SNAKEMAKE, "-s", str(repo / "Snakefile"), "--directory", str(tmp_path)]
    cmd += [tb.TARGET, "results/tables/variance_components.tsv"]  # before --configfile
    cmd += ["--configfile", str(config), "--cores", "2"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    tables = tmp_path / "results" / "tables"
    diff = pd.read_csv(tables / "differential_abundance.tsv", sep="\t")
    tested = diff.loc[diff["status"] != "filtered"]
    assert tested["df"].notna().all() and (tested["df"] > 0).all()
    calls = tested.loc[tested["adj_pvalue"] < 0.05, "protein"]
    # measured 33 calls over the three contrasts (12, 11, 10), all UPS1
    assert len(calls) >= 25 and calls.str.contains("UPS").all()
    var = pd.read_csv(tables / "variance_components.tsv", sep="\t")
    for col in ("var_batch", "sd_batch[fmol50-fmol25]", "sd_effect_batch", "heterogeneity_lrt"):
        assert col in var.columns
    fitted = var.loc[var["status"] != "filtered"]
    assert set(fitted["status"]) <= {"ok", "boundary", "reduced_model"}
    log = (tmp_path / "logs" / "fit" / "1-of-1.log").read_text()
    assert "with condition|batch" in log  # the random-slope fit ran (pepmix.model.slopes_fit)
