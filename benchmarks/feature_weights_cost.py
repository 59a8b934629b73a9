"""CPU time of the fit with ``feature_weights: empirical_bayes`` against ``none`` (Huber both).

Data: ``tests/unit/simulate_da.py`` (two conditions of ``n_per`` samples, 15 % changing), seed 21,
as ``robust_cost.py``. CPU time of the process (``time.process_time``: less sensitive to a
shared machine than wall time), best of ``reps``, alternating; and the prior alone
(:func:`pepmix.model.feature_weights.fit_feature_prior`, what rule ``variance_prior`` adds).

Usage: ``PYTHONPATH=src:. python benchmarks/feature_weights_cost.py [n_prot] [n_per] [reps]``
"""

from __future__ import annotations

import sys
import time

from pepmix.model.design import ModelSpec, build_run_design
from pepmix.model.feature_weights import fit_feature_prior
from pepmix.model.fit import encode, fit_proteins
from tests.unit.simulate_da import simulate


def main() -> None:
    """Print the best CPU times."""
    n_prot = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    n_per = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    contrasts = [("B - A", "B", "A")]
    table, sheet, _ = simulate(n_prot=50, n_per=n_per, seed=1)  # warm-up (numba compile)
    design = build_run_design(sheet, ModelSpec(random=("feature", "sample")))
    for method in ("none", "empirical_bayes"):
        fit_proteins(table, design, contrasts, robust="huber", feature_weights=method)
    table, sheet, _ = simulate(n_prot=n_prot, n_per=n_per, seed=21, frac_de=0.15)
    design = build_run_design(sheet, ModelSpec(random=("feature", "sample")))
    best = {"none": float("inf"), "empirical_bayes": float("inf"), "prior": float("inf")}
    for _ in range(reps):
        for method in ("none", "empirical_bayes"):
            t0 = time.process_time()
            fit_proteins(table, design, contrasts, robust="huber", feature_weights=method)
            best[method] = min(best[method], time.process_time() - t0)
        t0 = time.process_time()
        fit_feature_prior(encode(table, design))
        best["prior"] = min(best["prior"], time.process_time() - t0)
    line = ", ".join(f"{m} {t:.2f} s" for m, t in best.items())
    ratio = best["empirical_bayes"] / best["none"]
    print(f"{n_prot} proteins x {2 * n_per} runs, CPU, best of {reps}: {line}; ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
