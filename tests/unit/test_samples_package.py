"""The layout of :mod:`pepmix.samples`: layers without upward imports, one loader for the config.

The package's modules form layers (``design`` <- ``tsv``, ``sdrf`` <- ``load`` <- ``__init__``);
the test reads their import statements, so a new import that closes a circle fails here rather
than as an ImportError at some later import order.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from pepmix.errors import ConfigError
from pepmix.samples import load_design, sheet_options
from pepmix.samples.load import SDRF_OPTIONS

SRC = Path(__file__).resolve().parents[2] / "src" / "pepmix"
#: the modules of pepmix.samples each module may import
ALLOWED = {
    "design": set(),
    "tsv": {"design"},
    "sdrf": {"design"},
    "load": {"design", "tsv", "sdrf"},
    "__init__": {"design", "load"},
}


def _samples_imports(path: Path) -> set[str]:
    """Modules of ``pepmix.samples`` imported by a file (any nesting level)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            if name.startswith("pepmix.samples."):
                found.add(name.split(".")[2])
            elif name == "pepmix.samples":
                found.add("__init__")
    return found


def test_samples_modules_import_only_lower_layers() -> None:
    package = SRC / "samples"
    modules = {p.stem for p in package.glob("*.py")}
    assert modules == set(ALLOWED)
    for name, allowed in ALLOWED.items():
        assert _samples_imports(package / f"{name}.py") <= allowed, name


def test_nothing_below_imports_the_samples_package() -> None:
    # readers and errors are what pepmix.samples builds on; they must not import it back
    for path in [*(SRC / "readers").glob("*.py"), SRC / "errors.py"]:
        assert not _samples_imports(path), path


def test_sheet_options_cover_the_config_section(repo: Path) -> None:
    schema = yaml.safe_load((repo / "workflow/schemas/config.schema.yaml").read_text())
    section = schema["properties"]["sample_sheet"]["properties"]
    assert set(section) == {"format", *SDRF_OPTIONS}
    assert (
        sheet_options(None)
        == sheet_options({})
        == {
            "fmt": section["format"]["default"],
            "condition_column": None,
            "bioreplicate_column": None,
            "batch_column": None,
        }
    )
    given = {"format": "sdrf", "condition_column": "disease", "batch_column": "label"}
    assert sheet_options(given) == {
        "fmt": "sdrf",
        "condition_column": "disease",
        "bioreplicate_column": None,
        "batch_column": "label",
    }


def test_unknown_layout_is_a_config_error(tmp_path: Path) -> None:
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("run\tcondition\nr1\tA\n")
    with pytest.raises(ConfigError, match="auto, tsv or sdrf, got 'csv'"):
        load_design(sheet, **sheet_options({"format": "csv"}))
