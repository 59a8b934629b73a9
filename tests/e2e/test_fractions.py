"""End-to-end: fractions of one sample combined by the workflow, with an SDRF sample sheet.

The OpenMS ProteomicsLFQ MSstats CSV (BSA dilution series, 3 samples x 2 fraction files) is read
with ``format: auto`` and an SDRF that lists the fraction files of each source name. The workflow
runs up to the merge outputs: the BSA samples have one sample per dilution, so there is nothing
to test statistically (the library-level checks, including agreement with ProteomicsLFQ's own
fraction sums in its mzTab, are in ``tests/unit/test_fractions.py``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
CSV = (
    Path(__file__).resolve().parents[1]
    / "data/formats/openms_quantms/ProteomicsLFQ_1_out.msstats.csv"
)
SAMPLES = ("BSA1", "BSA2", "BSA3")


def test_sdrf_fractions_through_the_merge(repo: Path, tmp_path: Path) -> None:
    rows = [
        {
            "source name": s,
            "characteristics[biological replicate]": "1",
            "comment[label]": "label free sample",
            "comment[data file]": f"{s}_F{f}.mzML",
            "comment[fraction identifier]": f,
            "comment[technical replicate]": "1",
            "factor value[dilution]": s,
        }
        for s in SAMPLES
        for f in ("1", "2")
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "bsa.sdrf.tsv", sep="\t", index=False)
    (tmp_path / "config.yaml").write_text(
        f"""samples: bsa.sdrf.tsv
inputs:
  - name: lfq
    format: auto
    path: {CSV}
filter: {{min_features: 1}}
contrasts: all_pairwise
"""
    )
    cmd = [
        SNAKEMAKE,
        "-s",
        str(repo / "Snakefile"),
        "--directory",
        str(tmp_path),
        "results/ingest/features.parquet",  # before --configfile, which takes several values
        "--configfile",
        str(tmp_path / "config.yaml"),
        "--cores",
        "2",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    sheet = pd.read_csv(tmp_path / "results/ingest/samples.tsv", sep="\t")
    assert list(sheet["run"]) == list(SAMPLES)
    assert list(sheet["condition"]) == list(SAMPLES)
    assert list(sheet["batch"]) == ["lfq"] * 3
    features = pd.read_parquet(tmp_path / "results/ingest/features.parquet")
    assert set(features["run"]) == set(SAMPLES)
    assert not features.duplicated(["protein", "feature", "run"]).any()
    # independently: the raw intensities summed per sample (the fraction files of a source name),
    # over the proteins that pass min_observations 2
    raw = pd.read_csv(CSV)
    raw = raw[raw["ProteinName"].isin(set(features["protein"]))]
    expected = raw.groupby(raw["Reference"].str.split("_").str[0])["Intensity"].sum()
    got = features.groupby("run")["intensity"].sum()
    np.testing.assert_allclose(got[list(SAMPLES)], expected[list(SAMPLES)], rtol=1e-9)
    log = (tmp_path / "logs/ingest/lfq.log").read_text()
    assert "format auto: detected openms" in log
    assert "mapped 6 data file(s) to 3 run(s)" in (tmp_path / "logs/merge.log").read_text()
