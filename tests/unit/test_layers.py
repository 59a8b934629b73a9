"""The library does not depend on the workflow's stages: only ``pepmix.stages`` (and the rule
scripts) may import ``pepmix.stages``, so the Python API and the statistics work without it."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "pepmix"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_only_the_stages_import_the_stages() -> None:
    library = [p for p in SRC.rglob("*.py") if "stages" not in p.relative_to(SRC).parts]
    assert len(library) > 50
    upward = {
        str(p.relative_to(SRC)): sorted(n for n in _imports(p) if n.startswith("pepmix.stages"))
        for p in library
    }
    assert {k: v for k, v in upward.items() if v} == {}
