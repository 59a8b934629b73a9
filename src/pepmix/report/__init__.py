"""The report's own pages: the first-page summary, the methods text and the per-contrast tables.

- :mod:`pepmix.report.summary`: numbers of a finished run (:class:`~pepmix.report.summary.Summary`)
  and their reStructuredText for the report's first page;
- :mod:`pepmix.report.methods`: a citable methods paragraph generated from the configuration and
  the fitted priors;
- :mod:`pepmix.report.tables`: a self-contained, sortable and searchable HTML table of the top
  proteins of one contrast (no external resources: the report opens offline);
the rule ``report_pages`` (:mod:`pepmix.stages.report_pages`) reads the result tables and
writes the three.
"""
