"""The cyclic garbage collector in script jobs (``pepmix.rule``): every script pauses it before
its imports, ``rule_context`` resumes it; in a Snakemake job it first freezes the imported
objects, in a stand-in's process (tests, ``benchmarks/stage_runner.py``) it does not."""

from __future__ import annotations

import ast
import gc
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

from pepmix.rule import rule_context

SCRIPTS = sorted((Path(__file__).resolve().parents[2] / "scripts").glob("*.py"))


def _is_gc_disable(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and ast.unparse(node.value.func) == "gc.disable"
    )


def test_every_script_pauses_the_collector_before_its_imports() -> None:
    assert len(SCRIPTS) > 10
    for path in SCRIPTS:
        body = ast.parse(path.read_text(encoding="utf-8")).body
        body = (
            body[1:]
            if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
            else body
        )
        assert ast.unparse(body[0]) == "import gc", path.name
        assert _is_gc_disable(body[1]), path.name
        imports = [n for n in body[2:] if isinstance(n, ast.Import | ast.ImportFrom)]
        assert imports, path.name
        assert "rule_context(snakemake" in path.read_text(encoding="utf-8"), path.name


def test_a_snakemake_job_resumes_and_freezes(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import gc

        gc.disable()
        from snakemake.iocontainers import (
            InputFiles, Log, OutputFiles, Params, ResourceList, Snakemake, Wildcards,
        )
        from pepmix.rule import rule_context

        before = gc.get_freeze_count()
        smk = Snakemake(
            InputFiles(), OutputFiles(), Params(), Wildcards(), 1, ResourceList(),
            Log([{str(tmp_path / "job.log")!r}]), {{}}, "demo_rule", 0,
        )
        with rule_context(smk):
            text = f"{{gc.isenabled()}} {{before}} {{gc.get_freeze_count()}}"
            open({str(tmp_path / "state")!r}, "w").write(text)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    enabled, before, after = (tmp_path / "state").read_text().split()
    assert enabled == "True"
    assert int(before) == 0
    # the imported modules (snakemake, pepmix, logging: tens of thousands of objects)
    assert int(after) > 10_000


def test_a_stand_in_resumes_without_freezing(tmp_path: Path) -> None:
    smk = SimpleNamespace(
        log=[str(tmp_path / "job.log")], output=SimpleNamespace(), threads=1, rule="stand_in"
    )
    frozen = gc.get_freeze_count()
    gc.disable()
    try:
        with rule_context(smk):
            assert gc.isenabled()
            assert gc.get_freeze_count() == frozen
    finally:
        gc.enable()
