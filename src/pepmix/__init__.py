"""pepmix: peptide-level linear mixed models for differential protein abundance.

The package is importable without Snakemake. Modules follow the data:

- :mod:`pepmix.readers`, :mod:`pepmix.ingest`: search-engine outputs to the canonical long table
- :mod:`pepmix.samples`: sample sheets (TSV or SDRF)
- :mod:`pepmix.normalize`: log2 transform and run normalization
- :mod:`pepmix.model`: the batched REML engine (one linear mixed model per protein)
- :mod:`pepmix.inference`: contrasts, Satterthwaite tests, empirical Bayes, FDR
- :mod:`pepmix.plots`: figures
- :mod:`pepmix.report`: the report's summary, methods text and per-contrast tables
"""

__version__ = "0.1.0"
