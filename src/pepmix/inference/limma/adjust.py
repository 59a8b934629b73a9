r"""Benjamini-Hochberg adjusted p-values, as R's ``p.adjust(p, method = "BH")``.

For :math:`m` p-values with order statistics :math:`p_{(1)} \le \dots \le p_{(m)}` the adjusted
value of :math:`p_{(i)}` is :math:`\min\bigl(1, \min_{j \ge i} m\,p_{(j)}/j\bigr)`; rejecting the
hypotheses with adjusted p-value :math:`\le q` controls the false discovery rate at :math:`q` for
independent (or positively dependent) tests. The function is
:func:`pepmix.inference.fdr.bh_adjust` (NumPy only, the bits of
``scipy.stats.false_discovery_control``; R's handling of missing values and any array shape),
outside this package so that jobs that only adjust p-values do not import the limma port's SciPy
modules.

References
----------
Benjamini Y, Hochberg Y (1995). Controlling the false discovery rate: a practical and powerful
approach to multiple testing. J R Stat Soc B 57, 289-300.
"""

from __future__ import annotations

from pepmix.inference.fdr import bh_adjust

__all__ = ["bh_adjust"]
