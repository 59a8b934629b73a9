"""End-to-end: several MS batches, each ingested by its own job and merged.

The demo (UPS1 in a Chlamydomonas background, 3 conditions x 4 runs; a slice of its proteins) is
split by replicate into ``generic_wide`` files, one per batch: ``b1`` holds replicates 1 and 2 of
every condition, ``b2`` replicate 3, ``b3`` replicate 4. The intensities of ``b2`` are multiplied
by 4, a batch effect of +2 log2 units. The sample sheet has no ``batch`` column.

The workflow runs on ``b1`` + ``b2`` with ``normalization: {within_batch: true}``; then ``b3`` is
added to the config (and its runs to the sheet) and a dry run must schedule the ingest job of
``b3`` and everything downstream of the ingest, but not the ingest jobs of ``b1`` and ``b2``.
"""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
TARGET = "results/tables/differential_abundance.tsv"
CONDITIONS = ("fmol25", "fmol50", "fmol100")
REPLICATES = {"b1": ("1", "2"), "b2": ("3",), "b3": ("4",)}
SCALE = {"b2": 4.0}  # batch effect: +2 log2


def _runs(batch: str) -> list[str]:
    return [f"{c}_{r}" for c in CONDITIONS for r in REPLICATES[batch]]


def _write_batch_files(repo: Path, work: Path) -> None:
    with gzip.open(repo / "data/demo/berg2019_ups_progenesis_peptides.csv.gz", "rt") as handle:
        demo = pd.read_csv(handle)
    protein = demo["identifier"].str.rsplit("--", n=1).str[0]
    ups = sorted(set(protein[protein.str.contains("UPS")]))[::4]
    background = sorted(set(protein[~protein.str.contains("UPS")]))[:150]
    demo = demo.loc[protein.isin(ups + background)]
    for batch in REPLICATES:
        part = demo[["identifier", *_runs(batch)]].copy()
        part[_runs(batch)] *= SCALE.get(batch, 1.0)
        part.to_csv(work / f"{batch}.csv", index=False)


def _write_project(work: Path, batches: list[str]) -> None:
    runs = [run for b in batches for run in _runs(b)]
    rows = ["run\tcondition"] + [f"{r}\t{r.split('_')[0]}" for r in runs]
    (work / "samples.tsv").write_text("\n".join(rows) + "\n")
    inputs = "".join(
        f"""  - name: {b}
    format: generic_wide
    path: {b}.csv
    id_column: identifier
    id_separator: "--"
"""
        for b in batches
    )
    (work / "config.yaml").write_text(
        f"""samples: samples.tsv
inputs:
{inputs}feature_level: peptide
normalization:
  within_batch: true
contrasts: all_pairwise
"""
    )


def _run(repo: Path, work: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        SNAKEMAKE,
        "-s",
        str(repo / "Snakefile"),
        "--directory",
        str(work),
        TARGET,  # before --configfile, which takes several values
        "--configfile",
        str(work / "config.yaml"),
        "--cores",
        "2",
        *extra,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)


def _scheduled(result: subprocess.CompletedProcess[str]) -> set[tuple[str, str]]:
    """(rule, first output) of every job a dry run lists."""
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = set()
    rule = None
    for line in result.stdout.splitlines():
        header = re.match(r"^(?:local)?rule (\w+):$", line.strip())
        if header:
            rule = header.group(1)
        elif rule is not None and line.strip().startswith("output:"):
            jobs.add((rule, line.split(":", 1)[1].split(",")[0].strip()))
            rule = None
    return jobs


@pytest.fixture(scope="module")
def two_batches(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("batches")
    _write_batch_files(repo, work)
    _write_project(work, ["b1", "b2"])
    result = _run(repo, work)
    assert result.returncode == 0, result.stderr[-3000:]
    return work


def test_batch_taken_from_the_input_name(two_batches: Path) -> None:
    sheet = pd.read_csv(two_batches / "results/ingest/samples.tsv", sep="\t")
    expected = {run: b for b in ("b1", "b2") for run in _runs(b)}
    assert dict(zip(sheet["run"], sheet["batch"], strict=True)) == expected
    for batch in ("b1", "b2"):
        assert (two_batches / f"results/ingest/batches/{batch}.parquet").exists()
        assert (two_batches / f"logs/ingest/{batch}.log").exists()


def test_within_batch_normalization(two_batches: Path) -> None:
    runs = pd.read_csv(two_batches / "results/normalize/runs.tsv", sep="\t").set_index("run")
    assert dict(runs["batch"]) == {run: b for b in ("b1", "b2") for run in _runs(b)}
    # runs are aligned within each batch only: the shifts are centred per batch, so the +2 log2
    # batch effect of b2 is not normalised away (a global normalisation would shift b2 by about
    # +1.3 and b1 by about -0.7) ...
    for batch in ("b1", "b2"):
        shift = runs.loc[runs["batch"] == batch, "shift"]
        assert abs(shift.mean()) < 1e-4, batch
        assert shift.abs().max() < 0.2, batch
    after = runs.groupby("batch")["median_after"].median()
    assert abs(after["b2"] - after["b1"] - 2.0) < 0.2
    assert "within batch" in (two_batches / "logs/normalize.log").read_text()
    # ... and the model still sees the spike-in: UPS1 log2(100/25) = 2
    table = pd.read_csv(two_batches / TARGET, sep="\t")
    part = table[(table["contrast"] == "fmol100 - fmol25") & table["protein"].str.contains("UPS")]
    assert abs(part["log2fc"].median() - 2.0) < 0.4


def test_adding_a_batch_reruns_only_that_batch(
    repo: Path, two_batches: Path, tmp_path: Path
) -> None:
    work = tmp_path / "project"
    shutil.copytree(two_batches, work)  # keeps modification times and .snakemake metadata
    unchanged = _run(repo, work, "--dry-run")
    assert unchanged.returncode == 0, unchanged.stderr[-3000:]
    assert "Nothing to be done" in unchanged.stdout + unchanged.stderr
    _write_project(work, ["b1", "b2", "b3"])
    scheduled = _scheduled(_run(repo, work, "--dry-run"))
    everything = _scheduled(_run(repo, work, "--dry-run", "--forceall"))
    ingests = {job for job in everything if job[0] == "ingest"}
    assert ingests == {("ingest", f"results/ingest/batches/{b}.parquet") for b in REPLICATES}
    expected = everything - {
        ("ingest", "results/ingest/batches/b1.parquet"),
        ("ingest", "results/ingest/batches/b2.parquet"),
    }
    assert scheduled == expected
    assert {"merge", "normalize", "test"} <= {rule for rule, _ in scheduled}
