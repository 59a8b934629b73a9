"""Script jobs end right after ``rule_context`` (``pepmix.rule.fast_exit``): exit status 0,
logs and alerts written, ``atexit`` handlers run, and nothing after the ``with`` block runs;
stand-ins of the ``snakemake`` object (tests, ``benchmarks/stage_runner.py``) never exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

from pepmix.rule import is_snakemake_job, rule_context


def _job_code(tmp: Path, fail: bool = False) -> str:
    body = (
        "raise PepmixError('bad input')"
        if fail
        else "open(f'{tmp}/body', 'w').write('done')\n            log.info('body ran')"
    )
    return textwrap.dedent(
        f"""
        import atexit
        from snakemake.iocontainers import (
            InputFiles, Log, OutputFiles, Params, ResourceList, Snakemake, Wildcards,
        )
        from pepmix.errors import PepmixError
        from pepmix.rule import rule_context

        tmp = {str(tmp)!r}
        atexit.register(lambda: open(f"{{tmp}}/atexit", "w").write("ran"))
        smk = Snakemake(
            InputFiles(), OutputFiles(), Params(), Wildcards(), 1, ResourceList(),
            Log([f"{{tmp}}/job.log"]), {{}}, "demo_rule", 0,
        )
        with rule_context(smk) as log:
            {body}
        open(f"{{tmp}}/after", "w").write("ran")
        """
    )


def test_a_snakemake_job_exits_after_the_context(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _job_code(tmp_path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "body").read_text() == "done"
    assert (tmp_path / "atexit").read_text() == "ran"
    assert not (tmp_path / "after").exists()
    log = (tmp_path / "job.log").read_text()
    assert "body ran" in log and "rule demo_rule finished" in log


def test_a_user_error_still_exits_with_status_1(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _job_code(tmp_path, fail=True)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().endswith("pepmix: error: bad input")
    assert not (tmp_path / "after").exists()


def test_stand_ins_do_not_exit(tmp_path: Path) -> None:
    smk = SimpleNamespace(log=[str(tmp_path / "x.log")], threads=1, rule="r", output={})
    assert not is_snakemake_job(smk)
    with rule_context(smk):
        pass
    assert "rule r finished" in (tmp_path / "x.log").read_text()
