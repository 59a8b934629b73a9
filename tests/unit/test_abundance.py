"""Protein abundances: run means of the per-protein model, one row per protein and run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pepmix.model import dense
from pepmix.model import fit as fit_module
from pepmix.model.abundance import protein_abundance, wide
from pepmix.model.design import build_run_design, model_spec_from_config
from pepmix.model.fit import fit_proteins

from .simulate_da import simulate


def test_one_row_per_protein_and_observed_run() -> None:
    table, sheet, _ = simulate(n_prot=150, n_per=3, seed=3)
    # add saturated / single-feature proteins: every status path must give one row per run
    extra = pd.DataFrame(
        {
            "protein": ["Z1"] * 3 + ["Z2"] * 4,
            "feature": ["a", "a", "a", "a", "b", "a", "b"],
            "run": ["A0_0", "A1_0", "B0_0", "A0_0", "A0_0", "B0_0", "B1_0"],
            "y": [20.0, 20.5, 21.0, 19.0, 19.5, 20.0, 20.2],
        }
    )
    table = pd.concat([table, extra], ignore_index=True)
    runs = list(sheet["run"])
    result = protein_abundance(table, runs)
    assert not result.duplicated(["protein", "run"]).any()
    observed = table.groupby(["protein", "run"]).size()
    assert len(result) == len(observed)
    single = result.loc[result["protein"] == "Z1"].set_index("run")["abundance"]
    assert single.to_dict() == {"A0_0": 20.0, "A1_0": 20.5, "B0_0": 21.0}
    matrix = wide(result, runs)
    assert list(matrix.columns) == ["protein", *runs]
    assert matrix["protein"].is_unique


def test_no_protein_modelled() -> None:
    """A data set where no protein has two features (a slice of a DIA-NN report): all averaged."""
    table = pd.DataFrame(
        {
            "protein": ["P1"] * 4 + ["P2"] * 3,
            "feature": ["a"] * 4 + ["b"] * 3,
            "run": ["r1", "r2", "r3", "r4", "r1", "r2", "r4"],
            "y": [10.0, 11.0, 12.0, 13.0, 5.0, 6.0, 7.0],
        }
    )
    result = protein_abundance(table, ["r1", "r2", "r3", "r4"])
    assert len(result) == 7
    assert result["se"].isna().all()
    assert set(result["status"]) == {"too_few_observations"}
    p2 = result.loc[result["protein"] == "P2"].set_index("run")["abundance"]
    assert p2.to_dict() == {"r1": 5.0, "r2": 6.0, "r4": 7.0}


def test_run_means_match_dense_gls() -> None:
    table, sheet, _ = simulate(n_prot=20, n_per=3, seed=4)
    runs = list(sheet["run"])
    result = protein_abundance(table, runs)
    for protein, sub in table.groupby("protein"):
        got = result.loc[result["protein"] == protein].set_index("run")
        if got["se"].isna().all():
            continue
        codes = pd.Index(runs).get_indexer(sub["run"])
        seen = np.unique(codes)
        x = (codes[:, None] == seen[None, :]).astype(float)
        z = dense.indicator(pd.factorize(sub["feature"])[0])
        # dense REML over theta for the feature effect, then GLS at the optimum
        grid = np.linspace(0.01, 10, 400)
        crit = [dense.reml_criterion(sub["y"].to_numpy(), x, [z], [t]) for t in grid]
        theta = grid[int(np.argmin(crit))]
        beta, _, _ = dense.gls(sub["y"].to_numpy(), x, [z], [theta])
        expected = pd.Series(beta, index=[runs[c] for c in seen])
        np.testing.assert_allclose(got.loc[expected.index, "abundance"], expected, atol=0.02)


def test_reusing_the_model_encoding_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    table, sheet, _ = simulate(n_prot=60, n_per=3, seed=5)
    runs = list(sheet["run"])
    spec = model_spec_from_config({}, sheet)
    fit = fit_proteins(table, build_run_design(sheet, spec))
    assert fit.encoded is not None and fit.encoded.runs == runs
    fresh = protein_abundance(table, runs)
    # with the model's encoding, the table is not encoded again
    calls: list[int] = []
    original = fit_module.encode

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(fit_module, "encode", counting)
    reused = protein_abundance(table, runs, encoded=fit.encoded)
    assert calls == []
    pd.testing.assert_frame_equal(reused, fresh)
