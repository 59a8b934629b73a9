"""Sample sheets: which run belongs to which condition, biological sample and batch.

A TSV sample sheet has one row per MS run with columns ``run`` and ``condition`` and optionally
``bioreplicate`` (biological sample; defaults to the run, i.e. no technical replicates) and
``batch``. Further columns are kept as run-level covariates. Condition levels keep their order of
first appearance in the sheet; the first level is the reference of treatment coding. An
SDRF-Proteomics file can be given instead (:mod:`pepmix.samples.sdrf`).

Fractions
---------
A fractionated sample is measured as several data files that together make one run. The sheet
then has a ``file`` column and one row per data file: rows sharing a ``run`` are the fractions of
that run (an optional ``fraction`` column numbers them, for the record). ``file`` values are
matched against the run names the readers produce (the data file name without directories and MS
extensions); every other column must have the same value in all rows of a run. The merge step maps
each file to its run and sums the fractions of a feature (:func:`pepmix.merge.merge_batches`).
Without a ``file`` column, the run names in the data are the runs of the sheet. SDRF sheets
express the same with ``comment[fraction identifier]``.

Layers
------
Each module imports only the ones above it in this list:

- :mod:`pepmix.samples.design`: :class:`SampleDesign` and :func:`validate_design` (the checks every
  sheet passes, whatever its layout), :func:`check_runs`, :func:`condition_levels`.
- :mod:`pepmix.samples.tsv`, :mod:`pepmix.samples.sdrf`: parse one layout into a frame and
  validate it.
- :mod:`pepmix.samples.load`: :func:`load_design`, the one loader (detects the layout), and
  :func:`read_resolved_sheet` for the sheet the merge stage writes.

Read a sheet with :func:`load_design`; its ``runs`` are the sheet, one row per run.
"""

from pepmix.samples.design import SampleDesign, check_runs, condition_levels, validate_design
from pepmix.samples.load import load_design, read_resolved_sheet, sheet_options

__all__ = [
    "SampleDesign",
    "check_runs",
    "condition_levels",
    "load_design",
    "read_resolved_sheet",
    "sheet_options",
    "validate_design",
]
