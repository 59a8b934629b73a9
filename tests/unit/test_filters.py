"""Row filters applied one after another (:func:`pepmix.filters.filter_rows`)."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from pepmix import canonical
from pepmix.filters import filter_rows


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
