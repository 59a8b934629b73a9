"""The peptide-usage table of the workflow (``peptide_usage: true``): shard rows and gather.

Data: two conditions x 4 samples, 5 features; protein ``P_usage`` has feature F0 shifted by
3 log2 in condition B only (residual SD 0.2, so its LRT is in the hundreds), ``P_clean`` has no
usage. Both wirings are checked: the default model with the term added by the usage fit, and a
model that already has the term (the fit job's own test reused).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pepmix.model.design import USAGE_FACTOR
from pepmix.model.fit import fit_proteins
from pepmix.model.usage import USAGE_COLUMNS, gather_usage_table, usage_shard_table
from pepmix.model.variance_tests import VarianceTestOptions, fit_tests

from .engine_data import make_design


def _table(runs: list[str], cond: np.ndarray) -> pd.DataFrame:
    rng = np.random.default_rng(12)
    rows = []
    for prot, shift in (("P_usage", 3.0), ("P_clean", 0.0)):
        feat_eff = rng.normal(0, 1, 5)
        for r, run in enumerate(runs):
            sample = rng.normal(0, 0.2)
            for f in range(5):
                y = 20 + feat_eff[f] + 0.5 * cond[r] + sample + rng.normal(0, 0.2)
                y += shift if (f == 0 and cond[r] == 1) else 0.0
                rows.append((prot, f"F{f}", run, y))
    return pd.DataFrame(rows, columns=["protein", "feature", "run", "y"])


def _shard(random: tuple[str, ...], lrt: bool = True) -> pd.DataFrame:
    sheet, design = make_design(random=random, n_cond=2, samples_per_cond=4)
    table = _table(list(design.runs), np.asarray(design.condition_code))
    fit = fit_proteins(table, design, robust="none")
    comp = fit.variance_components()
    tests = fit_tests(fit, VarianceTestOptions(lrt=lrt))
    for col in tests.columns[1:]:
        comp[col] = tests[col].to_numpy()
    return usage_shard_table(fit, comp, table, sheet, robust="none")


def test_usage_table_flags_shifted_peptide_and_lists_filtered_proteins() -> None:
    removed = pd.DataFrame({"protein": ["P_gone"]})
    out = gather_usage_table([_shard(("feature", "sample"))], removed)
    assert list(out.columns) == list(USAGE_COLUMNS)
    assert sorted(out["protein"]) == ["P_clean", "P_gone", "P_usage"]  # one row per protein
    row = out.set_index("protein")
    assert row.loc["P_usage", "adj_pvalue"] < 1e-5
    assert row.loc["P_usage", "var_usage"] > 0.25  # one of 10 cells off by 3: ~0.7
    assert row.loc["P_usage", "top_cells"].startswith("F0:B (+")
    assert row.loc["P_clean", "pvalue"] > 0.05
    assert row.loc["P_gone", "status"] == "filtered"
    assert np.isnan(row.loc["P_gone", "pvalue"])
    assert out["protein"].iloc[0] == "P_usage"  # sorted by p-value


@pytest.mark.parametrize("lrt", [True, False])
def test_usage_fit_added_equals_fitted_term(lrt: bool) -> None:
    """Adding the term to the default model and fitting it in the model give the same test
    (same data, plain REML): the LRTs agree to the optimiser's criterion tolerance (relative
    1e-6 of a criterion converged to ~1e-11). Without the fit job's variance tests
    (``variance_tests.lrt: false``) the usage term is tested on its own."""
    added = gather_usage_table([_shard(("feature", "sample"))]).set_index("protein")
    fitted = gather_usage_table([_shard(("feature", USAGE_FACTOR, "sample"), lrt)])
    fitted = fitted.set_index("protein")
    assert fitted.loc["P_usage", "top_cells"].startswith("F0:B (+")
    for p in ("P_usage", "P_clean"):
        assert added.loc[p, "lrt"] == pytest.approx(fitted.loc[p, "lrt"], rel=1e-6, abs=1e-6)
        assert added.loc[p, "var_usage"] == pytest.approx(fitted.loc[p, "var_usage"], rel=1e-4)
