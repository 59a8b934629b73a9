"""The degenerate-design checks of :func:`pepmix.model.suffstats.build_problem`.

Each protein below is built so that a given rule applies to one of its random terms (one level,
one observation per level, same grouping as an earlier factor, at most one level per
condition); the test asserts the term is dropped (``active`` False) with that rule's reason in
``detail``, and that a complete protein keeps every term. (The usage term's rules are tested in
``test_usage_engine.py``.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pepmix.model.fit import encode
from pepmix.model.suffstats import build_problem

from .engine_data import make_design


def _rows(protein: str, features: int, runs: list[str]) -> list[tuple[str, str, str, float]]:
    """Observations of ``protein``: every feature in every run of ``runs`` (distinct values)."""
    rng = np.random.default_rng(len(protein) + features + len(runs))
    return [(protein, f"F{f}", run, 20.0 + rng.normal()) for f in range(features) for run in runs]


def _checked(
    random: tuple[str, ...], proteins: dict[str, tuple[int, list[str]]], **kw: int
) -> tuple[dict[str, str], dict[str, dict[str, bool]]]:
    """``detail`` and the active terms of every protein (``features, runs`` per protein)."""
    _, design = make_design(random=random, **kw)  # type: ignore[arg-type]
    table = pd.DataFrame(
        [row for name, (m, runs) in proteins.items() for row in _rows(name, m, runs)],
        columns=["protein", "feature", "run", "y"],
    )
    enc = encode(table, design)
    problem = build_problem(enc.prot, enc.feat, enc.run, enc.y, design, len(enc.proteins))
    detail = dict(zip(enc.proteins, problem.detail, strict=True))
    active = {
        p: dict(zip(random, problem.active[i].tolist(), strict=True))
        for i, p in enumerate(enc.proteins)
    }
    return detail, active


def test_each_drop_rule_names_its_term_and_reason() -> None:
    # 3 conditions x 3 samples x 2 runs: runs R<c><s><r>
    all_runs = [f"R{c}{s}{r}" for c in range(3) for s in range(3) for r in range(2)]
    first_runs = [r for r in all_runs if r.endswith("0")]
    one_sample_each = [f"R{c}0{r}" for c in range(3) for r in range(2)]
    proteins = {
        "complete": (3, all_runs),
        "one_feature": (1, all_runs),  # feature: one level
        "one_obs": (1, first_runs),  # run: one observation per level (one feature, one run each)
        "first_runs": (3, first_runs),  # run: same grouping as sample
        "one_sample": (3, one_sample_each),  # sample: at most one level per condition
    }
    detail, active = _checked(
        ("feature", "sample", "run"), proteins, n_cond=3, samples_per_cond=3, runs_per_sample=2
    )
    assert detail["complete"] == ""
    assert all(active["complete"].values())
    expected = {
        "one_feature": ("feature", "feature: one level"),
        "one_obs": ("run", "run: one observation per level"),
        "first_runs": ("run", "run: same grouping as sample"),
        "one_sample": (
            "sample",
            "sample: at most one level per condition (confounded with condition)",
        ),
    }
    for protein, (term, reason) in expected.items():
        assert reason in detail[protein].split("; "), (protein, detail[protein])
        assert not active[protein][term], protein
