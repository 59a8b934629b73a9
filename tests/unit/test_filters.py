"""Row filters applied one after another, and the protein filter (:mod:`pepmix.filters`)."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from pepmix import canonical
from pepmix.filters import filter_proteins, filter_rows

from .format_helpers import three_proteins


def test_several_filters_removing_different_rows(caplog: pytest.LogCaptureFixture) -> None:
    # each filter removes other rows: the masks of later filters must still line up
    table = canonical.conform(
        pd.DataFrame(
            {
                "protein": ["P1", "P1", "CON__P2", "P3", "P4", "P4"],
                "feature": ["A_2", "B_2", "C_2", "D_2", "E_2", "F_2"],
                "run": ["r1"] * 6,
                "intensity": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                "q_value": [0.001, 0.5, 0.001, 0.001, 0.001, 0.001],
                "contaminant": [False, False, True, False, False, False],
                "unique": [True, True, True, False, True, True],
                "decoy": [False, False, False, False, False, True],
            }
        ),
        "test",
    )
    with caplog.at_level(logging.INFO, logger="pepmix.filters"):
        kept = filter_rows(table, {"q_value": 0.01})
    assert list(kept["feature"]) == ["A_2", "E_2"]
    for name in ("q_value <= 0.01", "decoys", "contaminants", "shared peptides"):
        assert f"filter {name} removed 1 rows" in caplog.text


def test_protein_filter_counts(caplog: pytest.LogCaptureFixture) -> None:
    # P1: 2 features (kept); P2: 1 feature in 3 runs; P3: 2 features, 1 observation each
    table = three_proteins()
    with caplog.at_level(logging.INFO, logger="pepmix.filters"):
        kept = filter_proteins(table, {"min_features": 2, "min_observations": 3})
    assert set(kept["protein"].astype(str)) == {"P1"}
    assert len(kept) == 4
    assert "removed 5 rows, 3 features, 2 proteins" in caplog.text
