"""Every shell command shown in README.md and config/README.md is run by a test, as written.

The commands are read from the README text (``tests/slurm/readme_command.py``), so a README edit
changes what runs. Where each command runs:

- "Quick start": ``make demo`` runs here, twice, in a copy of the repository (the second run must
  do nothing, as the README says); ``make test`` runs here as ``make -n test`` only (running it
  would run this test suite, this test included, recursively) and is run as written by CI
  (``.ci/run``).
- "Running your own analysis": ``tests/e2e/test_readme_commands.py``.
- "Checking calibration on your own data": ``tests/e2e/test_calibration_target.py``.
- "Running on a cluster": ``tests/slurm/test_demo_on_slurm.sh`` runs it on a real SLURM cluster
  in CI, read from the README with the same helper; ``make slurm`` is run as written there too
  (here as ``make -n slurm``: it installs packages).

config/README.md shows no shell command (its code block is a config example; its error example
is checked by ``tests/unit/test_config_readme.py``). A new shell block or ``make`` target in
either README fails :func:`test_every_shown_command_has_a_test` until a test runs it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HELPER = REPO / "tests" / "slurm" / "readme_command.py"
SHELL_BLOCK = re.compile(r"^[ \t]*```(bash|sh|shell|console|zsh)[ \t]*$", flags=re.MULTILINE)
#: README sections with shell blocks, and the test that runs their commands
EXERCISED = {
    "## Quick start": "tests/e2e/test_readme_inventory.py",
    "## Running your own analysis": "tests/e2e/test_readme_commands.py",
    "## Checking calibration on your own data": "tests/e2e/test_calibration_target.py",
    "## Running on a cluster": "tests/slurm/test_demo_on_slurm.sh",
}
#: ``make`` targets named in the READMEs, and where each runs as written
MAKE_TARGETS = {
    "demo": "tests/e2e/test_readme_inventory.py",
    "pdfs": "tests/e2e/test_readme_inventory.py",
    "test": ".ci/run",
    "slurm": "tests/slurm/test_demo_on_slurm.sh",
}
#: what to copy for a fresh checkout in which ``make demo`` can run (no tests, no .venv)
CHECKOUT = [
    "Makefile",
    "Snakefile",
    "pyproject.toml",
    "requirements.lock",
    "requirements-slurm.lock",
    "config",
    "data",
    "envs",
    "rules",
    "scripts",
    "src",
    "workflow",
]


def _commands(heading: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(HELPER), heading], capture_output=True, text=True, check=True
    )
    return done.stdout.splitlines()


def _headings_of_shell_blocks(text: str) -> set[str]:
    headings = set()
    for match in SHELL_BLOCK.finditer(text):
        before = re.findall(r"^## .*$", text[: match.start()], flags=re.MULTILINE)
        headings.add(before[-1].strip() if before else "")
    return headings


def test_every_shown_command_has_a_test() -> None:
    readme = (REPO / "README.md").read_text()
    config_readme = (REPO / "config" / "README.md").read_text()
    assert _headings_of_shell_blocks(readme) == set(EXERCISED)
    assert _headings_of_shell_blocks(config_readme) == set()
    for where in [*EXERCISED.values(), *MAKE_TARGETS.values()]:
        assert (REPO / where).is_file(), where
    shown = set(re.findall(r"`make ([\w-]+)`", readme + config_readme))
    shown |= {c.split()[1] for c in _commands("## Quick start") if c.startswith("make ")}
    assert shown == set(MAKE_TARGETS)
    assert "\nmake test\n" in (REPO / ".ci" / "run").read_text()
    slurm_test = (REPO / "tests" / "slurm" / "test_demo_on_slurm.sh").read_text()
    assert "make slurm" in slurm_test
    assert 'readme_command.py" "## Running on a cluster"' in slurm_test


def test_cluster_command_names_existing_paths() -> None:
    """The cluster command, placeholder replaced, names this repo's Snakefile and profile."""
    (command,) = _commands("## Running on a cluster")
    words = command.split()
    assert words[0] == str(REPO / ".venv" / "bin" / "snakemake")
    assert (REPO / words[words.index("-s") + 1]).is_file()
    profile = REPO / words[words.index("--profile") + 1]
    assert (profile / "config.yaml").is_file()
    assert words[words.index("--directory") + 1] == "myproject"
    assert words[words.index("--configfile") + 1] == "myproject/config.yaml"


def _checkout(tmp_path: Path) -> Path:
    """A copy of the repository with a ``.venv`` whose ``bin`` is the running Python's.

    The venv stamp is newer than the lock files, so ``make`` installs nothing.
    """
    repo = tmp_path / "pepmix"
    repo.mkdir()
    for name in CHECKOUT:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, repo / name)
    venv = repo / ".venv"
    venv.mkdir()
    (venv / "bin").symlink_to(Path(sys.executable).parent, target_is_directory=True)
    (venv / ".installed").touch()
    return repo


def _make(repo: Path, command: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(repo / "src")}
    return subprocess.run(
        ["bash", "-c", command], cwd=repo, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_quick_start_commands(tmp_path: Path) -> None:
    repo = _checkout(tmp_path)
    commands = _commands("## Quick start")
    assert commands == ["make demo", "make test"]

    first = _make(repo, "make demo")
    assert first.returncode == 0, first.stderr[-3000:]
    report = repo / "results" / "report.html"
    assert report.stat().st_size > 100_000  # self-contained
    for table in ("differential_abundance.tsv", "variance_components.tsv"):
        assert (repo / "results" / "tables" / table).stat().st_size > 0
    built = report.stat().st_mtime_ns
    # "Running it a second time does nothing: every output is up to date."
    second = _make(repo, "make demo")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Nothing to be done" in second.stdout + second.stderr
    assert "results/report.html is up to date" in second.stdout
    assert report.stat().st_mtime_ns == built

    # make pdfs: the same figures as vector PDFs (only the plot jobs run again)
    pdfs = _make(repo, "make pdfs")
    assert pdfs.returncode == 0, pdfs.stderr[-3000:]
    volcanoes = list((repo / "results" / "plots").rglob("volcano.pdf"))
    assert volcanoes, "make pdfs wrote no volcano PDF"
    assert all(v.read_bytes().startswith(b"%PDF") for v in volcanoes)
    assert "rule fit:" not in pdfs.stdout + pdfs.stderr  # the model is not refitted

    # make test: dry run only (it runs pytest, hence this test); CI runs it as written
    dry = _make(repo, "make -n test")
    assert dry.returncode == 0, dry.stderr
    for step in ("ruff check", "ruff format --check", "mypy", "snakemake --lint", "-m pytest"):
        assert step in dry.stdout, step


def test_make_slurm_installs_the_plugin_lock(tmp_path: Path) -> None:
    """``make slurm`` (dry run: it installs packages) installs the pinned SLURM plugin."""
    repo = _checkout(tmp_path)
    dry = _make(repo, "make -n slurm")
    assert dry.returncode == 0, dry.stderr
    assert "pip install --quiet -r requirements-slurm.lock" in dry.stdout
    lock = (REPO / "requirements-slurm.lock").read_text()
    assert re.search(r"^snakemake-executor-plugin-slurm==", lock, flags=re.MULTILINE)
