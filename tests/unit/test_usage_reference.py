"""Peptide usage, ``(1|feature:condition)``, against lme4 1.1-31 / lmerTest 3.1-3.

Reference chain: ``tests/reference/usage/generate.py`` (40 seeded proteins, 2-4 conditions, 2-6
features, 3-4 samples per condition, about 12 % missing cells, true usage SD 0, 0.4 or 1) ->
``fit_lme4.R`` -> ``usage_reference.csv`` (committed). No R needed here.

Model: ``lmer(y ~ condition + (1|feature) + (1|feature:condition) + (1|sample), REML = TRUE)``.

Tolerances:

- Dense reference (:func:`pepmix.model.dense.fit_dense`, L-BFGS-B from a grid of starts): criterion
  never worse than the best of two lme4 optimisers by more than 1e-6 (L-BFGS-B's convergence in the
  criterion), better allowed; at lme4's theta the dense criterion agrees to 1e-8 relative (same
  formula, no optimiser).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pepmix.model.dense import fit_dense, indicator, interaction_codes, reml_criterion

REF = Path(__file__).resolve().parents[1] / "reference" / "usage"


@pytest.fixture(scope="module")
def reference() -> tuple[pd.DataFrame, pd.DataFrame]:
    data = pd.read_csv(REF / "datasets.csv.gz")
    ref = pd.read_csv(REF / "usage_reference.csv").set_index("dataset")
    return data, ref


def _dense_parts(d: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """y, treatment-coded X and the Z of (usage, feature, sample), lme4's theta order."""
    cond = pd.Categorical(d["condition"]).codes.astype(np.intp)
    feat = pd.Categorical(d["feature"]).codes.astype(np.intp)
    samp = pd.Categorical(d["sample"]).codes.astype(np.intp)
    n_cond = int(cond.max()) + 1
    x = np.zeros((len(d), n_cond))
    x[:, 0] = 1.0
    for c in range(1, n_cond):
        x[:, c] = cond == c
    zs = [indicator(interaction_codes(feat, cond)), indicator(feat), indicator(samp)]
    return d["y"].to_numpy(dtype=np.float64), x, zs


def test_dense_criterion_at_lme4_theta(reference: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    data, ref = reference
    for k, d in data.groupby("dataset"):
        y, x, zs = _dense_parts(d)
        row = ref.loc[k]
        theta = [row.theta_usage, row.theta_feature, row.theta_sample]
        assert reml_criterion(y, x, zs, theta) == pytest.approx(row.crit, rel=1e-8)


@pytest.mark.parametrize("k", [0, 1, 2, 13])
def test_dense_fit_matches_lme4(reference: tuple[pd.DataFrame, pd.DataFrame], k: int) -> None:
    data, ref = reference
    y, x, zs = _dense_parts(data[data["dataset"] == k])
    theta, crit = fit_dense(y, x, zs, starts=[(0.3, 1.0, 0.3), (1.0, 3.0, 1.0)])
    row = ref.loc[k]
    assert crit <= row.crit + 1e-6
    assert crit == pytest.approx(row.crit, abs=1e-3)
    del theta
