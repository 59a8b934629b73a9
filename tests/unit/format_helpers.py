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
