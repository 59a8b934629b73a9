"""Snakemake evaluates a rule's ``mem_mb`` again once its inputs exist (rules fit, variance_prior).

The fit rule sizes its memory from ``largest.json``, written by the shard job in the same run
(:mod:`pepmix.resources`). While building the DAG the file does not exist yet; Snakemake 9 resets
and re-evaluates resources of jobs that are ready to run (``JobScheduler``: "Now, they can be
recalculated as all input is present"). This pins that behaviour on the installed Snakemake.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pepmix.resources import fit_mem_mb

pytestmark = pytest.mark.slow

SNAKEFILE = '''
from pepmix.resources import declared_mem_mb

rule all:
    input: "job.txt"

rule shard:
    output: "largest.json"
    shell: """echo '{{"n_features": 3000, "n_observations": 36000}}' > {output}"""

rule fit:
    input: largest="largest.json"
    output: "job.txt"
    resources:
        mem_mb=lambda wc, input, attempt: attempt * declared_mem_mb(input.largest)
    shell: "echo {resources.mem_mb} > {output}"
'''


def test_mem_mb_is_read_from_a_file_written_in_the_same_run(tmp_path: Path) -> None:
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    result = subprocess.run(
        [
            snakemake,
            "--cores",
            "1",
            "--directory",
            str(tmp_path),
            "-s",
            str(tmp_path / "Snakefile"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert int((tmp_path / "job.txt").read_text()) == fit_mem_mb(3000, 36000)
