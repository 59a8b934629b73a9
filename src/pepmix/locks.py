"""Say what to do when the working directory is locked by another Snakemake run.

Snakemake locks a working directory (``.snakemake/locks/``) while a workflow runs in it. A second
``snakemake`` started on the same directory builds its job graph before it checks the lock; it
then sees the first run's unfinished outputs and stops with "The files below seem to be
incomplete ... rerun your command with the --rerun-incomplete flag", which would make both runs
write the same files. The Snakefile prints :func:`lock_notice` first (main process only), so the
user learns that another run holds the directory and what is safe to do.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

LOCK_DIR = Path(".snakemake") / "locks"


def lock_notice(lock_dir: str | Path = LOCK_DIR) -> str | None:
    """The notice to print when ``lock_dir`` holds Snakemake lock files, else None.

    Parameters
    ----------
    lock_dir : str or pathlib.Path, default ".snakemake/locks"
        Snakemake's lock directory, relative to the working directory.

    Returns
    -------
    str or None
        A multi-line notice naming when the lock was taken, or None when there is no lock.
    """
    directory = Path(lock_dir)
    if not directory.is_dir():
        return None
    locks = sorted(p for p in directory.iterdir() if p.name.endswith(".lock"))
    if not locks:
        return None
    taken = min(p.stat().st_mtime for p in locks)
    when = _dt.datetime.fromtimestamp(taken).strftime("%Y-%m-%d %H:%M:%S")
    working_dir = directory.resolve().parent.parent
    return (
        f"pepmix: another Snakemake run has locked {working_dir} (since {when}). If it is still "
        "running, wait for it to finish: do not use --rerun-incomplete or --unlock now, they "
        "would let two runs write the same files. If that run was killed, remove its lock with "
        "--unlock, then start again with --rerun-incomplete.\n"
    )
