"""End-to-end: the commands of README.md "Running your own analysis" run as written.

The section's ``config.yaml`` (step 2) is written verbatim into ``myproject/``, next to a small
synthetic DIA-NN ``report.parquet`` and a sample sheet with the columns of step 1; then every
command of the section's ``bash`` blocks is run, as written, from the directory that holds
``myproject/``. The only substitution is the placeholder the README documents: ``/path/to/pepmix``
becomes this repository (and its ``.venv/bin/snakemake`` the snakemake of the running Python, the
repository's venv under ``make test``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PLACEHOLDER = "/path/to/pepmix"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
SECTION = "## Running your own analysis"


def _section(text: str) -> str:
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end >= 0 else len(text)]


def _blocks(section: str, language: str) -> list[str]:
    pattern = rf"^[ \t]*```{language}\n(.*?)^[ \t]*```"
    blocks = re.findall(pattern, section, flags=re.MULTILINE | re.DOTALL)
    # the blocks sit inside a numbered list: remove the list's indentation
    return [re.sub(r"^   ", "", block, flags=re.MULTILINE) for block in blocks]


def readme_commands() -> list[str]:
    """Shell commands of the section, continuation lines joined, placeholder substituted."""
    section = _section((REPO / "README.md").read_text())
    commands = []
    for block in _blocks(section, "bash"):
        for command in block.replace("\\\n", " ").splitlines():
            command = command.strip()
            if command and not command.startswith("#"):
                command = command.replace(f"{PLACEHOLDER}/.venv/bin/snakemake", SNAKEMAKE)
                commands.append(command.replace(PLACEHOLDER, str(REPO)))
    return commands


def _write_project(project: Path, config_text: str) -> None:
    """The README's config plus the data it names: report.parquet and samples.tsv."""
    rng = np.random.default_rng(11)
    runs = [f"{c}_{i:02d}" for c in ("control", "treated") for i in (1, 2, 3)]
    rows = []
    for p in range(30):
        base = rng.normal(20, 1.5)
        for k in range(3):
            peptide = f"PEPTIDE{p}K{'A' * k}"
            offset = rng.normal(0, 1)
            for run in runs:
                change = 1.0 if p < 5 and run.startswith("treated") else 0.0
                log2 = base + offset + change + rng.normal(0, 0.2)
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
    sheet += [f"{r}\t{r.split('_')[0]}\tmouse_{r}\tb1" for r in runs]
    (project / "samples.tsv").write_text("\n".join(sheet) + "\n")
    (project / "config.yaml").write_text(config_text)


def test_readme_section_has_the_documented_commands() -> None:
    commands = readme_commands()
    assert len(commands) == 2
    assert all(c.startswith(SNAKEMAKE + " -s " + str(REPO / "Snakefile")) for c in commands)
    assert "--report results/report.html" in commands[1]


def test_readme_commands_run_as_written(tmp_path: Path) -> None:
    section = _section((REPO / "README.md").read_text())
    (config_text,) = _blocks(section, "yaml")
    project = tmp_path / "myproject"
    project.mkdir()
    _write_project(project, config_text)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    for command in readme_commands():
        done = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
    assert (project / "results" / "report.html").stat().st_size > 0
    table = pd.read_csv(project / "results" / "tables" / "differential_abundance.tsv", sep="\t")
    assert set(table["contrast"]) == {"treated - control"}
    assert table["protein"].nunique() == 30
