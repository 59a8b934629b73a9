"""Calibration check on permuted labels (pepmix.inference.calibration): plan and outcome."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pepmix.alerts import ALERT_ATTR
from pepmix.inference.calibration import (
    ENUMERATE_MAX,
    excess,
    n_assignments,
    partition_key,
    permuted_sheet,
    plan_permutations,
    replication_units,
    residual_effect,
    run_calibration,
)
from tests.unit.simulate_da import simulate


def _sheet(conditions: list[str], batches: list[str] | None = None, tech: int = 1) -> pd.DataFrame:
    rows = []
    for i, cond in enumerate(conditions):
        for t in range(tech):
            batch = batches[i] if batches else None
            rows.append((f"r{i}_{t}", cond, f"s{i}", batch))
    return pd.DataFrame(rows, columns=["run", "condition", "bioreplicate", "batch"])


def _codes(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [str(getattr(r, ALERT_ATTR)) for r in caplog.records if hasattr(r, ALERT_ATTR)]


def test_partition_key_counts_label_swaps_once() -> None:
    assert partition_key(["A", "A", "B", "B"]) == partition_key(["B", "B", "A", "A"])
    assert partition_key(["A", "B", "A", "B"]) != partition_key(["A", "A", "B", "B"])


def test_residual_effect_of_mixtures() -> None:
    original = ["A", "A", "A", "B", "B", "B"]
    assert residual_effect(original, original) == 1.0
    # 3 vs 3 can only be mixed as 2+1 vs 1+2: a third of a true difference survives
    assert residual_effect(original, ["A", "A", "B", "A", "B", "B"]) == pytest.approx(1 / 3)
    assert residual_effect(["A", "A", "B", "B"], ["A", "B", "A", "B"]) == 0.0


def test_units_are_biological_samples_or_runs() -> None:
    sheet = _sheet(["A", "A", "B", "B"], tech=2)
    bio = replication_units(sheet, "biological")
    assert list(bio["unit"]) == ["s0", "s1", "s2", "s3"]
    runs = replication_units(sheet, "technical")
    assert len(runs) == 8
    plan = plan_permutations(bio, 2, seed=1)
    relabelled = permuted_sheet(sheet, plan, plan.permutations[0])
    # the runs of a biological sample move together
    assert (relabelled.groupby("bioreplicate")["condition"].nunique() == 1).all()
    assert relabelled["condition"].value_counts().to_dict() == {"A": 4, "B": 4}


def test_two_vs_two_has_two_permutations_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    units = replication_units(_sheet(["A", "A", "B", "B"]), "biological")
    assert n_assignments(units) == 6  # AABB, ABAB, ABBA, BAAB, BABA, BBAA
    with caplog.at_level(logging.WARNING, logger="pepmix"):
        plan = plan_permutations(units, 5, seed=1)
    # 3 groupings up to label swaps, the original excluded
    assert plan.n_distinct == 2
    assert len(plan.permutations) == 2
    assert all(p.residual == 0.0 for p in plan.permutations)
    assert _codes(caplog) == ["calibration_permutations"]


def test_three_vs_three_cannot_be_fully_mixed(caplog: pytest.LogCaptureFixture) -> None:
    units = replication_units(_sheet(["A"] * 3 + ["B"] * 3), "biological")
    with caplog.at_level(logging.WARNING, logger="pepmix"):
        plan = plan_permutations(units, 5, seed=1)
    assert plan.n_distinct == 20 // 2 - 1
    assert len(plan.permutations) == 5
    assert all(p.residual == pytest.approx(1 / 3) for p in plan.permutations)
    assert _codes(caplog) == ["calibration_residual_effect"]


def test_permutations_stay_within_batch_and_prefer_full_mixing() -> None:
    conditions = ["A", "A", "B", "B"] * 2
    batches = ["b1"] * 4 + ["b2"] * 4
    units = replication_units(_sheet(conditions, batches), "biological")
    assert n_assignments(units) == 36
    plan = plan_permutations(units, 5, seed=3)
    assert plan.n_distinct == 36 // 2 - 1
    keys = {partition_key(p.labels) for p in plan.permutations}
    assert len(keys) == 5 and partition_key(conditions) not in keys
    for perm in plan.permutations:
        labels = pd.Series(perm.labels)
        for block in ("b1", "b2"):
            in_block = labels[(units["block"] == block).to_numpy()]
            assert in_block.value_counts().to_dict() == {"A": 2, "B": 2}
        assert perm.residual == 0.0
    # seeded: the same plan again
    again = plan_permutations(units, 5, seed=3)
    assert [p.labels for p in again.permutations] == [p.labels for p in plan.permutations]


def test_large_designs_are_sampled() -> None:
    units = replication_units(_sheet(["A"] * 12 + ["B"] * 12), "biological")
    assert n_assignments(units) > ENUMERATE_MAX
    plan = plan_permutations(units, 5, seed=1)
    assert plan.n_distinct is None
    keys = {partition_key(p.labels) for p in plan.permutations}
    assert len(keys) == 5 and partition_key(["A"] * 12 + ["B"] * 12) not in keys
    # the best mixed of 250 draws: 6+6 vs 6+6 is common, so it is found
    assert all(p.residual == 0.0 for p in plan.permutations)


def test_no_permutation_when_batches_hold_one_condition(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sheet = _sheet(["A", "A", "B", "B"], ["b1", "b1", "b2", "b2"])
    table = pd.DataFrame(
        {"protein": "P", "feature": "f", "run": sheet["run"], "y": [1.0, 2.0, 3.0, 4.0]}
    )
    with caplog.at_level(logging.WARNING, logger="pepmix"):
        result = run_calibration(table, sheet, {"contrasts": ["B - A"]})
    assert result.summary.empty and not result.plan.permutations
    assert _codes(caplog) == ["calibration_permutations"]


def test_excess_rule() -> None:
    rows = [
        {"contrast": "B - A", "tested": 1000, "calls": c, "fraction_p05": f}
        for c, f in ((0, 0.05), (3, 0.06), (0, 0.05), (1, 0.04), (0, 0.05))
    ]
    # 2 of 5 permutations with calls at q = 0.05: P(Bin(5, 0.05) >= 2) = 0.023, not flagged
    assert excess(pd.DataFrame(rows), 0.05) == {}
    rows[2]["calls"] = 1
    assert "3 of 5 permutations made calls" in excess(pd.DataFrame(rows), 0.05)["B - A"]
    many_small = [dict(r, calls=0, fraction_p05=0.09) for r in rows]
    assert "below 0.05" in excess(pd.DataFrame(many_small), 0.05)["B - A"]


def _config(**model: Any) -> dict[str, Any]:
    return {
        "contrasts": ["B - A"],
        "fdr": 0.05,
        "model": model,
        "calibration": {"permutations": 4, "seed": 1},
    }


@pytest.mark.slow
def test_null_data_gives_no_calls_and_no_alert(caplog: pytest.LogCaptureFixture) -> None:
    table, sheet, _ = simulate(n_prot=400, n_per=4, seed=5, sample_sd=0.3)
    with caplog.at_level(logging.WARNING, logger="pepmix"):
        result = run_calibration(table, sheet, _config())
    summary = result.summary
    assert len(summary) == 4 and (summary["tested"] > 350).all()
    assert (summary["residual_effect"] == 0.0).all()
    # BH under the complete null: P(any call) <= 0.05 per permutation; P(>= 2 of 4) = 0.014
    assert (summary["calls"] > 0).sum() <= 1
    pooled = np.average(summary["fraction_p05"], weights=summary["tested"])
    assert pooled < 0.075  # P05_MARGIN x 0.05: the alert's effect-size bound
    assert "calibration_excess" not in _codes(caplog)


@pytest.mark.slow
def test_pseudoreplication_is_caught(caplog: pytest.LogCaptureFixture) -> None:
    """A model without the sample effect treats peptide observations as replicates: with
    sample effects of SD 0.3 and residual SD 0.2 the permuted groups differ by their samples'
    effects, which such a model calls. The check must say so."""
    table, sheet, _ = simulate(n_prot=400, n_per=4, seed=5, sample_sd=0.3)
    config = _config(random=["feature"], robust="none")
    config["testing"] = {"df_cap": False}
    with caplog.at_level(logging.WARNING, logger="pepmix"):
        result = run_calibration(table, sheet, config)
    summary = result.summary
    assert (summary["calls"] > 0).all()
    assert (summary["fraction_p05"] > 0.1).all()  # measured 0.20-0.27 (nominal 0.05)
    assert "calibration_excess" in _codes(caplog)
    assert set(result.pvalues["permutation"]) == {1, 2, 3, 4}


@pytest.mark.parametrize("shrinkage", [False, True])
def test_chunks_give_the_same_tests(shrinkage: bool) -> None:
    """Proteins are fitted independently and the variance prior (``model.shrinkage``) is
    estimated on the whole table: chunking the table changes no number."""
    from pepmix.inference.calibration import chunk_tables, refit_contrasts

    table, sheet, _ = simulate(n_prot=40, n_per=3, seed=2)
    chunks = chunk_tables(table, len(table) // 4)
    assert len(chunks) >= 4 and sum(len(c) for c in chunks) == len(table)
    assert sum(c["protein"].nunique() for c in chunks) == table["protein"].nunique()
    config = _config(robust="none", shrinkage=shrinkage)
    whole = refit_contrasts([table], sheet, config).set_index("protein")
    parts = refit_contrasts(chunks, sheet, config, whole=table)
    parts = parts.set_index("protein").loc[whole.index]
    for col in ("estimate", "se", "df"):
        np.testing.assert_allclose(parts[col], whole[col], rtol=1e-12)  # shard invariance


def test_alert_inputs_follow_the_target(tmp_path: Any) -> None:
    from types import SimpleNamespace

    from pepmix.inference.calibration import alert_inputs

    path = str(tmp_path / "calibration.tsv")
    off: dict[str, Any] = {"calibration": {"in_all": False}}
    plain = SimpleNamespace(dag_settings=SimpleNamespace(targets=set()))
    asked = SimpleNamespace(dag_settings=SimpleNamespace(targets={"calibration"}))
    assert alert_inputs(off, plain, path) == []
    assert alert_inputs(off, asked, path) == [path]
    assert alert_inputs({"calibration": {"in_all": True}}, plain, path) == [path]
    (tmp_path / "calibration.tsv").write_text("stage\tcode\tmessage\n")
    assert alert_inputs(off, plain, path) == [path]  # ran before: kept up to date
