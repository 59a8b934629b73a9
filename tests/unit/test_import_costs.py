"""Start-up costs the workflow relies on (issue 12, speed levers).

Every ``snakemake`` call imports the modules of the Snakefile, and every job its stage's
modules; ``scipy.stats`` alone costs ~0.7 CPU s to import. These tests keep it out of the
Snakefile's imports and out of the variance tests (fit and variance_components jobs), and check
that the cheaper special function gives the same bits.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from scipy import stats

from pepmix.model.variance_tests import mixture_pvalue

#: the pepmix modules the Snakefile imports (rules/*.smk) and the variance tests
SNAKEFILE_AND_FIT_MODULES = (
    "pepmix.config",
    "pepmix.alerts",
    "pepmix.errors",
    "pepmix.locks",
    "pepmix.resources",
    "pepmix.shards",
    "pepmix.stages.files",
    "pepmix.plots.names",
    "pepmix.inference.calibration",
    "pepmix.model.variance_tests",
)


def test_workflow_imports_leave_out_scipy_stats() -> None:
    code = "; ".join(f"import {m}" for m in SNAKEFILE_AND_FIT_MODULES)
    code += "; import sys; print(sorted(m for m in sys.modules if m.startswith('scipy.stats')))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]", out


def test_mixture_pvalue_equals_the_chi2_mixture_bit_for_bit() -> None:
    """``chdtrc(1, x)`` is what ``scipy.stats.chi2.sf(x, 1)`` evaluates: equal to the last bit."""
    rng = np.random.default_rng(12)
    lrt = np.concatenate(
        [
            rng.exponential(2.0, 20_000),
            rng.exponential(1e-3, 2_000),
            rng.uniform(0.0, 1500.0, 2_000),
            [0.0, -0.0, -1e-12, 1e-300, 1e-12, 40.0, 700.0, 1500.0, np.inf, np.nan],
        ]
    )
    want = np.where(lrt > 0, 0.5 * stats.chi2.sf(np.maximum(lrt, 0.0), 1), 1.0)
    want = np.where(np.isnan(lrt), np.nan, want)
    assert np.array_equal(mixture_pvalue(lrt), want, equal_nan=True)


#: rule test's modules (robust limma moderation, the default): neither scipy.stats (~0.6 CPU s;
#: trimboth and rankdata are copied in pepmix.inference.limma._numeric) nor scipy.optimize (the
#: vash prior's, imported when that prior is chosen)
TEST_RULE_MODULES = (
    "pepmix.stages.test",
    "pepmix.inference.differential",
    "pepmix.inference.moderation",
    "pepmix.inference.limma",
    "pepmix.inference.limma.robust",
)


def test_rule_test_imports_leave_out_scipy_stats_and_optimize() -> None:
    code = "; ".join(f"import {m}" for m in TEST_RULE_MODULES)
    code += "; import sys; print(sorted(m for m in sys.modules"
    code += " if m.startswith(('scipy.stats', 'scipy.optimize'))))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]", out
