"""Helpers shared by the reader tests: counts of a canonical table and one value."""

from __future__ import annotations

import pandas as pd


def counts(table: pd.DataFrame) -> tuple[int, int, int, int]:
    """Proteins, features, runs and observations of a canonical table."""
    return (
        table["protein"].nunique(),
        table["feature"].nunique(),
        table["run"].nunique(),
        len(table),
    )


def value(table: pd.DataFrame, feature: str, run: str) -> float:
    """Intensity of one feature in one run (exactly one row must match)."""
    rows = table[(table["feature"] == feature) & (table["run"] == run)]
    assert len(rows) == 1
    return float(rows["intensity"].iloc[0])


def three_proteins() -> pd.DataFrame:
    """Canonical table of three proteins for the protein filters: P1 has 2 features in 2 runs,
    P2 1 feature in 3 runs, P3 2 features observed once each."""
    from pepmix import canonical

    return canonical.conform(
        pd.DataFrame(
            {
                "protein": ["P1"] * 4 + ["P2"] * 3 + ["P3"] * 2,
                "feature": ["a", "a", "b", "b", "c", "c", "c", "d", "e"],
                "run": ["r1", "r2", "r1", "r2", "r1", "r2", "r3", "r1", "r2"],
                "intensity": [1.0] * 9,
            }
        ),
        "test",
    )
