"""The notice printed when the working directory is locked by another Snakemake run."""

from __future__ import annotations

from pathlib import Path

from pepmix.locks import lock_notice


def test_no_lock_no_notice(tmp_path: Path) -> None:
    assert lock_notice(tmp_path / ".snakemake" / "locks") is None
    (tmp_path / ".snakemake" / "locks").mkdir(parents=True)
    assert lock_notice(tmp_path / ".snakemake" / "locks") is None


def test_lock_files_give_a_notice_pointing_at_the_running_workflow(tmp_path: Path) -> None:
    locks = tmp_path / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text("config/samples.tsv\n")
    (locks / "0.output.lock").write_text("results/report.html\n")
    notice = lock_notice(locks)
    assert notice is not None
    assert f"another Snakemake run has locked {tmp_path.resolve()}" in notice
    assert "wait for it to finish: do not use --rerun-incomplete or --unlock now" in notice
