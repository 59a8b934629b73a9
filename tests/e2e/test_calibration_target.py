"""End-to-end: README "Checking calibration on your own data" runs as written.

A small project (30 proteins, 3 features each, 2 batches of 2 control + 2 treated samples,
5 proteins up 1 log2 in treated) is written into ``myproject/``; the section's commands (the
``calibration`` target, then the report) run from the directory that holds it, with only the
README's placeholder replaced, as ``tests/slurm/readme_command.py`` reads them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.e2e.figures import assert_drawn

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
HELPER = REPO / "tests" / "slurm" / "readme_command.py"
SECTION = "## Checking calibration on your own data"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def _commands() -> list[str]:
    done = subprocess.run(
        [sys.executable, str(HELPER), SECTION], capture_output=True, text=True, check=True
    )
    venv_snakemake = str(REPO / ".venv" / "bin" / "snakemake")
    return [c.replace(venv_snakemake, SNAKEMAKE) for c in done.stdout.splitlines()]


def _write_project(project: Path) -> None:
    rng = np.random.default_rng(3)
    runs = [f"{c}_{i}" for c in ("control", "treated") for i in range(1, 5)]
    rows = []
    for p in range(30):
        base = rng.normal(20, 1.5)
        sample = {r: rng.normal(0, 0.2) for r in runs}
        for k in range(3):
            peptide = f"PEPTIDE{p}K{'A' * k}"
            offset = rng.normal(0, 1)
            for run in runs:
                change = 1.0 if p < 5 and run.startswith("treated") else 0.0
                log2 = base + offset + sample[run] + change + rng.normal(0, 0.2)
                rows.append((run, f"P{p:03d}", f"{peptide}2", peptide, 2, 0.001, 0.001, 2**log2))
    columns = [
        "Run",
        "Protein.Group",
        "Precursor.Id",
        "Modified.Sequence",
        "Precursor.Charge",
        "Q.Value",
        "PG.Q.Value",
        "Precursor.Normalised",
    ]
    pd.DataFrame(rows, columns=columns).to_parquet(project / "report.parquet", index=False)
    sheet = ["run\tcondition\tbioreplicate\tbatch"]
    sheet += [f"{r}\t{r.split('_')[0]}\tmouse_{r}\tb{1 + int(r[-1]) % 2}" for r in runs]
    (project / "samples.tsv").write_text("\n".join(sheet) + "\n")
    (project / "config.yaml").write_text(
        "samples: samples.tsv\n"
        "inputs:\n  - name: batch1\n    format: diann\n    path: report.parquet\n"
        "contrasts:\n  - treated - control\n"
        "calibration:\n  permutations: 3\n"
    )


def test_readme_calibration_commands_run_as_written(tmp_path: Path) -> None:
    commands = _commands()
    assert len(commands) == 2
    assert commands[0].endswith(" calibration")
    project = tmp_path / "myproject"
    project.mkdir()
    _write_project(project)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    for command in commands:
        done = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
    results = project / "results"
    table = pd.read_csv(results / "calibration" / "calibration.tsv", sep="\t")
    assert list(table["permutation"]) == [1, 2, 3]
    assert set(table["contrast"]) == {"treated - control"}
    assert (table["tested"] == 30).all()
    # 2 control + 2 treated per batch: fully mixed permutations exist
    assert (table["residual_effect"] == 0).all()
    for groups in table["groups"]:
        control = groups.split(";")[0]
        assert control.count("control_") == 2 and control.count("treated_") == 2
    assert_drawn(results / "calibration" / "pvalue_hist.png")
    assert "calibration.tsv" in (results / "report.html").read_text(errors="replace")
    alerts = pd.read_csv(results / "alerts.tsv", sep="\t")
    assert "calibration_excess" not in set(alerts["code"])
    # the default target keeps the check and has nothing left to do
    dry = subprocess.run(
        commands[0].removesuffix(" calibration").replace("--cores 4", "-n --cores 1"),
        shell=True,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "Nothing to be done" in dry.stdout + dry.stderr
