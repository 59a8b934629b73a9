"""The conda environment of the rules lists every runtime dependency at its locked version.

``envs/pepmix.yaml`` is what ``snakemake --sw-deployment-method conda`` installs for every rule; the
test suite runs with ``requirements.lock``. A dependency of ``pyproject.toml`` missing from the
environment (numba was) fails the ``fit`` rule only on conda runs; a version that differs from the
lock (pyyaml was 6.0.3 against 6.0.4) runs code the tests never ran.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
#: PyPI name -> conda-forge name, where they differ
CONDA_NAMES = {"matplotlib": "matplotlib-base"}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _runtime_dependencies() -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = [re.match(r"[A-Za-z0-9_.-]+", spec) for spec in project["dependencies"]]
    return [_normal(m.group(0)) for m in names if m]


def _locked() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[_normal(name)] = version.strip()
    return pins


def _conda() -> dict[str, str]:
    env = yaml.safe_load((REPO / "envs" / "pepmix.yaml").read_text())
    pins = {}
    for item in env["dependencies"]:
        if isinstance(item, str):
            name, _, version = item.partition("=")
            pins[_normal(name)] = version.lstrip("=")
    return pins


def test_env_lists_every_runtime_dependency_at_the_locked_version() -> None:
    dependencies = _runtime_dependencies()
    assert "numba" in dependencies and "numpy" in dependencies
    locked, conda = _locked(), _conda()
    problems = []
    for name in dependencies:
        conda_name = CONDA_NAMES.get(name, name)
        if name not in locked:
            problems.append(f"{name}: not in requirements.lock")
        elif conda_name not in conda:
            problems.append(f"{conda_name}: missing from envs/pepmix.yaml")
        elif conda[conda_name] != locked[name]:
            problems.append(f"{conda_name}: {conda[conda_name]} in the env, {locked[name]} locked")
    assert not problems, "; ".join(problems)


def test_env_python_matches_the_project() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    minimum = re.search(r"(\d+\.\d+)", project.get("requires-python", ">=3.11"))
    assert minimum is not None
    assert _conda()["python"] == minimum.group(1)
