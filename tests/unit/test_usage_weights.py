"""The peptide-usage test at the default fit's weights (``peptide_usage_weights: default_fit``).

Data: the simulator of ``tests/unit/test_usage_refit.py`` (two conditions x 6 samples, 1-6
features per protein, usage SD ``sd_usage``; 0 is the null).

What is checked: the scheme makes no robust iteration and no null refit where the default fit
is the null optimum (the functions that would do either are replaced by ones that fail); the
usage fit holds exactly the default fit's weights; its LRT is the weighted REML LRT at those
weights computed independently (both models fitted by the optimiser from its grid: the same
optima to the optimiser's criterion tolerance, ~1e-9 of a criterion of ~10-100; 1e-6 allowed);
the observations the feature majority rule left out enter with weight
:data:`pepmix.model.usage.EXCLUDED_KNOWN_WEIGHT`, tested with a null fit; calibration under
the null (share of p < 0.05 at most 5 % plus 3 binomial standard errors) and power with a
usage SD of 0.5.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pepmix.model import robust, usage, variance_tests
from pepmix.model.design import USAGE_FACTOR
from pepmix.model.fit import EXCLUDED_WEIGHT, ModelFit, fit_proteins
from pepmix.model.suffstats import build_problem
from pepmix.model.usage import (
    UsageStart,
    fixed_weight_lrt,
    gather_usage_table,
    known_weights,
    usage_estimable,
    usage_shard,
    usage_shard_from_start,
    usage_shard_table,
)
from tests.unit.test_usage_refit import _design, _sheet, _simulate


def _huber_fit(table: pd.DataFrame, majority: bool = False) -> ModelFit:
    return fit_proteins(table, _design(), robust="huber", feature_majority=majority)


def _independent_lrt(fit: ModelFit, weights: np.ndarray) -> pd.Series:
    """Weighted REML LRT of the usage term at ``weights`` for every protein that keeps the
    term, both models fitted from the optimiser's grid (no warm start, no screen)."""
    assert fit.encoded is not None
    enc = fit.encoded
    design = _design(usage=True)
    problem = build_problem(
        enc.prot, enc.feat, enc.run, enc.y, design, len(enc.proteins), weights=weights
    )
    tests = variance_tests.term_lrts(problem, None, terms=(USAGE_FACTOR,))
    lrt = tests.lrt[:, problem.factors.index(USAGE_FACTOR)]
    keep = usage_estimable(enc, design)
    return pd.Series(lrt[keep], index=np.asarray(enc.proteins)[keep])


def test_no_robust_iteration_and_no_null_refit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without excluded features the default fit is the null fit of every tested protein:
    neither the robust iteration nor any null (or LRT) refit runs, and the usage fit holds the
    default fit's final weights, unchanged."""
    table = _simulate(120, 0.3, seed=31)
    fit = _huber_fit(table)
    assert fit.weights is not None and fit.encoded is not None

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("refit")

    monkeypatch.setattr(robust, "irls", fail)
    monkeypatch.setattr(variance_tests, "term_lrts", fail)
    monkeypatch.setattr(variance_tests, "bucket_lrts", fail)
    shard = usage_shard(
        fit, fit.variance_components(), table, _sheet(), "huber", screen=True,
        weights="default_fit",
    )  # fmt: skip
    assert shard.fit is not None and shard.fit.weights is not None
    rows = np.isin(fit.encoded.prot, shard.idx)
    np.testing.assert_array_equal(shard.fit.weights, fit.weights[rows])
    tested = shard.table["lrt"].notna()
    assert tested.sum() > 80 and (shard.table["lrt"] > 0).sum() > 20


def test_lrt_is_the_weighted_reml_lrt_at_the_default_weights() -> None:
    """The scheme's LRT (screened, null criterion from the default fit's optimum, warm fits)
    equals the LRT of both models fitted from the grid at the same known weights."""
    table = _simulate(150, 0.3, seed=32)
    fit = _huber_fit(table)
    assert fit.weights is not None
    rows = usage_shard_table(
        fit, fit.variance_components(), table, _sheet(), "huber", weights="default_fit"
    ).set_index("protein")
    want = _independent_lrt(fit, fit.weights)
    got = rows.loc[want.index, "lrt"]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert (want > 0).sum() > 20


def test_excluded_features_enter_with_their_known_weight(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the feature majority rule the left-out observations are weighted by
    EXCLUDED_KNOWN_WEIGHT in the usage fit; those proteins' nulls are fitted (the default fit
    is not their null optimum), and every LRT is still the weighted REML LRT."""
    inner = variance_tests.term_lrts
    tested: list[int] = []

    def counted(problem: Any, *args: Any, **kwargs: Any) -> Any:
        tested.append(problem.n_proteins)
        return inner(problem, *args, **kwargs)

    table = _simulate(150, 0.6, seed=33)
    fit = _huber_fit(table, majority=True)
    assert fit.weights is not None
    excluded = fit.weights == EXCLUDED_WEIGHT
    assert excluded.any()
    weights = known_weights(fit.weights)
    np.testing.assert_array_equal(weights[excluded], usage.EXCLUDED_KNOWN_WEIGHT)
    np.testing.assert_array_equal(weights[~excluded], fit.weights[~excluded])
    monkeypatch.setattr(variance_tests, "term_lrts", counted)
    rows = usage_shard_table(
        fit, fit.variance_components(), table, _sheet(), "huber", weights="default_fit"
    ).set_index("protein")
    monkeypatch.setattr(variance_tests, "term_lrts", inner)
    # the null refits: the proteins with left-out observations (at most), not all tested ones
    assert len(tested) == 1 and 0 < tested[0] < rows["lrt"].notna().sum() / 2
    want = _independent_lrt(fit, weights)
    np.testing.assert_allclose(rows.loc[want.index, "lrt"], want, rtol=1e-6, atol=1e-6)


def test_fixed_weight_lrt_from_the_null_criterion() -> None:
    """LRT = null criterion - full criterion where the null is known, 0 at a zero usage
    variance and where the null lies below the full fit (not its global optimum)."""
    table = _simulate(60, 0.5, seed=34)
    design = _design(usage=True)
    full = fit_proteins(table, design)
    u = full.factors.index(USAGE_FACTOR)
    whole = np.isin(np.asarray(full.status, dtype=object), ("ok", "boundary"))
    positive = whole & (full.theta[:, u] > 0)
    assert positive.sum() > 10
    null = full.reml_crit + 2.0
    null[np.flatnonzero(positive)[0]] = full.reml_crit[np.flatnonzero(positive)[0]] - 1.0
    lrt = fixed_weight_lrt(full, null)
    first = np.flatnonzero(positive)[0]
    assert lrt[first] == 0.0
    np.testing.assert_allclose(lrt[positive][1:], 2.0, rtol=1e-12)
    assert np.all(lrt[whole & (full.theta[:, u] == 0)] == 0.0)


def test_unknown_scheme_is_an_error() -> None:
    table = _simulate(20, 0.3, seed=35)
    fit = _huber_fit(table)
    with pytest.raises(ValueError, match="peptide_usage_weights"):
        usage_shard_table(fit, fit.variance_components(), table, _sheet(), "huber", weights="x")


@pytest.mark.parametrize(("sd_usage", "low"), [(0.0, None), (0.5, 0.5)])
def test_calibration_and_power(sd_usage: float, low: float | None) -> None:
    """Under the null the share of p < 0.05 is at most 5 % plus 3 binomial standard errors;
    with a usage SD of 0.5 (twice the residual SD) more than half of the testable proteins are
    called at p < 0.05 (measured 0.6-0.7 for both schemes)."""
    table = _simulate(400, sd_usage, seed=41 if sd_usage == 0 else 42)
    fit = _huber_fit(table)
    rows = gather_usage_table(
        [usage_shard_table(fit, fit.variance_components(), table, _sheet(), "huber",
                           weights="default_fit")]
    )  # fmt: skip
    p = rows["pvalue"].dropna().to_numpy()
    assert p.size > 250
    share = float(np.mean(p < 0.05))
    if low is None:
        assert share <= 0.05 + 3.0 * np.sqrt(0.05 * 0.95 / p.size)
    else:
        assert share > low


def test_usage_job_from_the_stored_start_gives_the_fit_jobs_rows(tmp_path: Path) -> None:
    """Rule usage_refit with ``default_fit``: the rows from the stored start (Parquet, a fresh
    encoding of the table) equal the fit job's in-memory rows to the last bit."""
    table = _simulate(80, 0.3, seed=36).astype(
        {c: "category" for c in ("protein", "feature", "run")}
    )
    fit = _huber_fit(table)
    want = usage_shard_table(
        fit, fit.variance_components(), table, _sheet(), "huber", weights="default_fit"
    )
    path = tmp_path / "usage_start.parquet"
    UsageStart.from_fit(fit).write(path)
    got = usage_shard_from_start(
        UsageStart.read(path), table.sample(frac=1.0, random_state=4), _sheet(), _design().spec,
        "huber", weights="default_fit",
    ).table  # fmt: skip
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert got["lrt"].notna().sum() > 40
