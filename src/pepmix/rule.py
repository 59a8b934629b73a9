"""Helpers for the thin rule scripts: logging to the rule's log file, one-line user errors.

Usage in a script run by Snakemake's ``script:`` directive::

    from pepmix.rule import rule_context

    with rule_context(snakemake):
        ...

Inside the context, log records go to ``snakemake.log[0]`` (and warnings also to stderr); alerts
(:mod:`pepmix.alerts`) are written to the output named ``alerts`` if the rule has one. A
:class:`pepmix.errors.PepmixError` is reported as one line, ``pepmix: error: <message>``, once
on stderr and in the log file, and the process exits with status 1 (Snakemake then removes the
rule's outputs). Other exceptions are programming errors and keep their traceback.

In a Snakemake job (the ``snakemake`` object is Snakemake's own), a body that finished
without an exception ends the process at the end of the context (:func:`fast_exit`: the
``atexit`` handlers run, logs and streams are flushed, then ``os._exit(0)``): the interpreter's
teardown of pandas, Arrow, matplotlib and numba modules costs 0.15-0.25 CPU s and 0.3-0.8 s of
wall per job (measured, benchmarks/README.md "Plot jobs and PDFs, third pass"), on the critical
path of every small run. The scripts end with their ``with rule_context(...)`` block.

Every script starts with ``gc.disable()``, before its imports, and :func:`rule_context` resumes
the cyclic garbage collector (:func:`resume_gc`): importing pandas, Arrow, matplotlib and pepmix
creates ~130,000-200,000 objects that live as long as the process, and the collector's repeated
passes over them (each a full traversal once the oldest generation has grown by a quarter) cost
~0.1 CPU s of the ~0.6 s of a job's imports. In a Snakemake job the imported objects are then
frozen (:func:`gc.freeze`, CPython >= 3.7: moved to a permanent generation that later
collections skip), so that the collections during the job's work no longer traverse the module
graph either. The imports leave ~1,000-2,000 unreachable objects behind (a few hundred kB),
which the freeze keeps. Outputs are unchanged (benchmarks/README.md, "The jobs after the fits,
second pass").

The plot scripts also call :func:`skip_artist_docstrings` before their other imports: matplotlib
then skips the ``set()`` signatures and property lists it builds for every Artist class while
it is imported (~0.15 CPU s of each plot job; the figures are the same bytes).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

from pepmix.alerts import AlertCollector, write_alerts
from pepmix.errors import PepmixError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(log_path: str | None, level: int = logging.INFO) -> None:
    """Send ``pepmix`` log records to ``log_path`` (INFO) and warnings to stderr."""
    root = logging.getLogger("pepmix")
    root.setLevel(level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    if log_path:
        os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
        file_handler = logging.FileHandler(log_path, mode="w", encoding="utf-8")
        file_handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(file_handler)
    stream = logging.StreamHandler(sys.stderr)
    stream.setLevel(logging.WARNING)
    stream.addFilter(_not_user_error)
    stream.setFormatter(logging.Formatter("pepmix: %(levelname)s: %(message)s"))
    root.addHandler(stream)
    root.propagate = False


#: attribute of a log record holding a user error that :func:`rule_context` prints itself
USER_ERROR = "pepmix_user_error"


def _not_user_error(record: logging.LogRecord) -> bool:
    """Stream-handler filter: user errors are printed once, as ``pepmix: error: ...``."""
    return not getattr(record, USER_ERROR, False)


def limit_threads(threads: int) -> None:
    """Cap BLAS/OpenMP threads of numpy at the rule's ``threads`` (before heavy work)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=max(1, int(threads)))


def is_snakemake_job(smk: Any) -> bool:
    """Whether ``smk`` is the ``snakemake`` object Snakemake gives a script job (not a stand-in
    of the tests or of ``benchmarks/stage_runner.py``, which run scripts in their own process)."""
    kind = type(smk)
    return kind.__name__ == "Snakemake" and kind.__module__.startswith("snakemake.")


def fast_exit() -> None:
    """End the process now, with status 0, as a finished script job.

    Runs the ``atexit`` handlers (logging's shutdown flushes and closes the log files), flushes
    stdout and stderr, then calls ``os._exit(0)``: everything Python would do at exit except
    tearing down the modules one by one, which only frees memory the process is giving back
    anyway.
    """
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def resume_gc(freeze: bool) -> None:
    """Enable the cyclic garbage collector that the script paused during its imports.

    Parameters
    ----------
    freeze : bool
        Also move every object tracked now to the permanent generation (:func:`gc.freeze`), so
        that later collections skip the imported modules: only in a job's own process, which
        ends when the rule does (never in a long-lived process running a stand-in).
    """
    if freeze:
        gc.freeze()
    gc.enable()


def _no_kwdoc(artist: Any) -> str:
    """Stand-in of :func:`matplotlib.artist.kwdoc` in a plot job: no property list."""
    return ""


def _flag_only(cls: Any) -> None:
    """Stand-in of ``Artist._update_set_signature_and_docstring``: only the flag matplotlib
    checks on subclasses (whether ``cls.set`` is an auto-generated one)."""
    cls.set._autogenerated_signature = True


def skip_artist_docstrings() -> bool:
    """Let matplotlib skip the documentation it generates for its Artist classes at import.

    Matplotlib (3.x) gives every :class:`matplotlib.artist.Artist` subclass a ``set()`` method
    whose signature and docstring list all its properties (``ArtistInspector`` over the class,
    :func:`matplotlib.artist.kwdoc`, ``inspect.cleandoc`` of every setter's docstring: ~110
    classes while ``matplotlib.figure`` and ``matplotlib.axes`` are imported), and fills the
    ``%(<class>:kwdoc)s`` placeholders of the plotting methods' docstrings the same way. A
    script job never reads them: ~0.15 CPU s of each plot job's ~0.3 s of matplotlib import
    (benchmarks/README.md, "The jobs after the fits, third pass"). Called by the plot scripts
    before their imports (after ``gc.disable()``); ``set()`` itself is unchanged (it takes
    keywords and never reads its signature), so the figures are the same bytes.

    Returns
    -------
    bool
        Whether the stand-ins were installed: not when the Artist subclasses exist already
        (``matplotlib.figure`` imported) or this matplotlib lacks the two functions.
    """
    if "matplotlib.figure" in sys.modules:
        return False
    import matplotlib.artist as artist

    update = "_update_set_signature_and_docstring"
    if not (hasattr(artist, "kwdoc") and hasattr(artist.Artist, update)):
        return False
    artist.kwdoc = _no_kwdoc
    setattr(artist.Artist, update, classmethod(_flag_only))
    return True


@contextlib.contextmanager
def rule_context(smk: Any, exit_when_done: bool = True) -> Iterator[logging.Logger]:
    """Run a rule body with logging configured and user errors turned into one line.

    Parameters
    ----------
    smk : snakemake.script.Snakemake
        The ``snakemake`` object of the script.
    exit_when_done : bool, default True
        In a Snakemake job (:func:`is_snakemake_job`), end the process when the body finished
        without an exception (:func:`fast_exit`); code after the ``with`` block does not run.

    Yields
    ------
    logging.Logger
        The ``pepmix.rule`` logger.
    """
    resume_gc(freeze=is_snakemake_job(smk))
    log_path = str(smk.log[0]) if len(smk.log) else None
    configure_logging(log_path)
    limit_threads(int(getattr(smk, "threads", 1) or 1))
    rule = str(getattr(smk, "rule", "?"))
    collector = AlertCollector(rule)
    logging.getLogger("pepmix").addHandler(collector)
    logger = logging.getLogger("pepmix.rule")
    logger.info("rule %s started", rule)
    try:
        yield logger
    except PepmixError as exc:
        message = str(exc).replace("\n", " ")
        logger.error("%s", message, extra={USER_ERROR: True})  # log file only
        sys.stderr.write(f"pepmix: error: {message}\n")
        sys.stderr.flush()
        raise SystemExit(1) from None
    finally:
        logging.getLogger("pepmix").removeHandler(collector)
    alerts_path = getattr(smk.output, "alerts", None)
    if alerts_path is not None:
        write_alerts(str(alerts_path), collector.alerts)
    logger.info("rule %s finished", rule)
    if exit_when_done and is_snakemake_job(smk):
        fast_exit()


@contextlib.contextmanager
def stage_alerts(stage: str, path: str | None, log_path: str | None = None) -> Iterator[None]:
    """Collect the alerts (and log) of one stage of a job that runs several stages.

    For rule ``prepare`` (ingest, merge, normalize and shard in one job): each stage's alerts go
    to the file its own rule would write, named after that rule, and its log records also to
    that rule's log file.

    Parameters
    ----------
    stage : str
        Stage (rule) name written with each alert.
    path : str or None
        Alerts TSV of the stage (written when the stage finishes without an exception; None:
        the stage's rule has none).
    log_path : str, optional
        Log file of the stage (default None: none besides the job's own).
    """
    root = logging.getLogger("pepmix")
    collector = AlertCollector(stage)
    handlers: list[logging.Handler] = [collector]
    if log_path:
        os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
        file_handler = logging.FileHandler(log_path, mode="w", encoding="utf-8")
        file_handler.setFormatter(logging.Formatter(FORMAT))
        handlers.append(file_handler)
    for handler in handlers:
        root.addHandler(handler)
    try:
        yield
    finally:
        for handler in handlers:
            root.removeHandler(handler)
            if handler is not collector:
                handler.close()
    if path is not None:
        write_alerts(path, collector.alerts)
