"""Calibration of the default tests on simulated data (fixed seeds).

- Null data (no protein changes; missing at random or intensity-dependent; with and without
  technical replicates): p-values uniform (Kolmogorov-Smirnov p > 0.01 over 2,000 proteins) and
  at most 5 % of adjusted p-values below 0.05.
- Data with known changes (10 % of proteins): false discovery proportion at adjusted p < 0.05
  at most 5 % on average over six seeds (BH's expected FDP here is 0.9 x 5 % = 4.5 %; one seed's
  FDP has a standard deviation of about 1.5 %, so single seeds may exceed 5 %).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pepmix.inference.differential import InferenceOptions, differential_table
from pepmix.model.design import ModelSpec, build_run_design
from pepmix.model.fit import fit_proteins

from .simulate_da import simulate


def _test(
    seed: int, frac_de: float, mnar: bool, tech: int, options: InferenceOptions | None = None
):
    table, sheet, truth = simulate(n_prot=2000, seed=seed, frac_de=frac_de, mnar=mnar, tech=tech)
    random = ("feature", "sample", "run") if tech > 1 else ("feature", "sample")
    design = build_run_design(sheet, ModelSpec(random=random))
    fit = fit_proteins(table, design, [("B - A", "B", "A")])
    stats_table = fit.contrast_table(["B"], ["A"])
    result = differential_table(stats_table, ["B - A"], options)
    between = stats_table.set_index("protein")["df_between"]
    return result.assign(df_between=result["protein"].map(between).to_numpy()), truth


@pytest.mark.parametrize(("mnar", "tech"), [(False, 1), (True, 1), (True, 2)])
def test_null_pvalues_are_uniform(mnar: bool, tech: int) -> None:
    result, _ = _test(seed=11, frac_de=0.0, mnar=mnar, tech=tech)
    p = result["pvalue"].dropna().to_numpy()
    assert p.size >= 1900
    assert stats.kstest(p, "uniform").pvalue > 0.01
    assert np.mean(result["adj_pvalue"] < 0.05) <= 0.05
    assert 0.03 <= np.mean(p < 0.05) <= 0.07


def test_false_discovery_proportion_with_known_changes() -> None:
    fdp = []
    power = []
    for seed in range(21, 27):
        result, truth = _test(seed=seed, frac_de=0.1, mnar=True, tech=1)
        called = result.loc[result["adj_pvalue"] < 0.05, "protein"]
        false = int((~truth[called]).sum())
        fdp.append(false / max(len(called), 1))
        power.append(truth[called].sum() / truth.sum())
    assert np.mean(fdp) <= 0.05
    assert np.mean(power) >= 0.5


def test_moderation_uses_limma_prior_on_contrast_variances() -> None:
    result, _ = _test(seed=31, frac_de=0.0, mnar=False, tech=1)
    tested = result["pvalue"].notna()
    assert result.loc[tested, "moderated"].all()
    assert np.isfinite(result.loc[tested, "df_prior"]).all()
    # moderated df = own (capped) df + prior df, never above the pooled df
    own = np.minimum(result["df_satterthwaite"], result["df_between"])[tested]
    total = own + result.loc[tested, "df_prior"]
    expected = np.minimum(total, own.sum())
    np.testing.assert_allclose(result.loc[tested, "df"], expected, rtol=1e-9)
    assert (result.loc[tested, "df"] > own).all()
