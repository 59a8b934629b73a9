"""pepmix's optimum of each reference data set, as an extra lme4 start (``starts.csv``).

lme4's two optimisers can stop at a higher local optimum of the Cholesky parametrisation (a
singular face); ``make_reference.R`` therefore also refits each data set from pepmix's
:math:`\\hat\\theta` and keeps the best of all fits, so that the reference values describe the
best optimum either program found (evaluated by lme4 / lmerTest alone).

Run: ``PYTHONPATH=src python tests/reference/slopes/starts.py`` (after ``generate.py``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pepmix.model.slopes import fit_one, frame_problem

HERE = Path(__file__).resolve().parent


def main() -> None:
    data = pd.read_csv(HERE / "datasets.csv")
    rows = []
    for ds, part in data.groupby("dataset", sort=False):
        prob, _ = frame_problem(part, ["feature", "sample"])
        theta = fit_one(prob).theta
        rows += [{"dataset": ds, "index": j, "theta": float(v)} for j, v in enumerate(theta)]
    pd.DataFrame(rows).to_csv(HERE / "starts.csv", index=False, float_format="%.10g")


if __name__ == "__main__":
    main()
