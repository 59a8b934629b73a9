"""pepmix: peptide-level linear mixed models for differential protein abundance.

The package is importable without Snakemake. Modules follow the data:

- :mod:`pepmix.readers`, :mod:`pepmix.ingest`: search-engine outputs to the canonical long table
- :mod:`pepmix.samples`: sample sheets (TSV or SDRF)
- :mod:`pepmix.normalization`: log2 transform and run normalization
- :mod:`pepmix.model`: the batched REML engine (one linear mixed model per protein)
- :mod:`pepmix.inference`: contrasts, Satterthwaite tests, empirical Bayes, FDR
- :mod:`pepmix.plots`: figures
- :mod:`pepmix.report`: the report's summary, methods text and per-contrast tables

The public Python API (:mod:`pepmix.api`) is the four steps of the pipeline,
:func:`pepmix.read`, :func:`pepmix.normalize`, :func:`pepmix.fit` and :func:`pepmix.test`, with
the objects they pass on, :class:`pepmix.Dataset` and :class:`pepmix.Fit`. They are loaded on
first use, so that ``import pepmix`` stays cheap for the workflow's jobs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pepmix.api import Dataset, Fit, fit, normalize, read, test

__version__ = "0.1.0"

__all__ = ["Dataset", "Fit", "__version__", "fit", "normalize", "read", "test"]

_API = frozenset(__all__) - {"__version__"}


def __getattr__(name: str) -> Any:
    """Load the API (:mod:`pepmix.api`) when one of its names is first used."""
    if name in _API:
        from pepmix import api

        return getattr(api, name)
    raise AttributeError(f"module 'pepmix' has no attribute {name!r}")
