"""The stored fit (pepmix.model.stored): contrasts computed in the test stage equal the fit's own.

The stored path computes :math:`v = LVL'` and :math:`g_i = L(\\partial V/\\partial\\psi_i)L'` in
the fixed-effect space instead of through :math:`\\ell = S_0^{-1}\\tilde L`: mathematically the
same, so estimates (same arithmetic on the centred fixed effects) agree exactly and SEs and df to
rounding (measured here: 0, 4e-15 and 2e-12 relative). The df can be more sensitive: where a
component of :math:`g` is zero in exact arithmetic, both paths compute rounding noise for it
(about 1e-11 of its scale) and the cross terms of :math:`g'Ag` carry that noise; on the demo slice
one robust boundary protein's df differ by 1.9e-9 relative (p-values by < 1e-12).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pepmix.errors import PepmixError
from pepmix.model import stored
from pepmix.model.fit import fit_proteins
from pepmix.model.shrinkage import FactorPrior, VariancePrior
from pepmix.model.stored import StoredFit, gather_fits

from .engine_data import make_design, make_table

PRIOR = VariancePrior({"sample": FactorPrior(df=3.0, ratio=0.4), "run": FactorPrior(2.0, 0.2)})
CONTRASTS = [("B - A", "B", "A"), ("C - A", "C", "A"), ("C - B", "C", "B")]
RANDOM = ("feature", "sample", "run")


def _data(fixed_batch: bool) -> tuple[pd.DataFrame, object]:
    """3 conditions x 3 samples x 2 technical replicates, 2 batches; a protein never observed
    in condition C and one with too few observations."""
    sheet, design = make_design(3, 3, 2, n_batch=2, random=RANDOM, fixed_batch=fixed_batch)
    table = make_table(design, sheet, n_proteins=50, seed=11)
    c_runs = set(sheet.loc[sheet["condition"] == "C", "run"])
    table = table[~((table["protein"] == "P001") & table["run"].isin(c_runs))]
    few = table["protein"] == "P002"
    table = pd.concat([table[~few], table[few].head(1)], ignore_index=True)
    return table, design


@pytest.mark.parametrize(
    ("fixed_batch", "robust", "prior"),
    [(False, "none", None), (True, "huber", None), (False, "none", PRIOR), (True, "huber", PRIOR)],
)
def test_stored_contrasts_equal_the_fits(
    tmp_path: Path, fixed_batch: bool, robust: str, prior: VariancePrior | None
) -> None:
    table, design = _data(fixed_batch)
    ref = fit_proteins(table, design, CONTRASTS, prior=prior, robust=robust)
    expected = ref.contrast_table([c[1] for c in CONTRASTS], [c[2] for c in CONTRASTS])
    # the model stage fits without contrasts and stores; the test stage reads and computes
    fit = fit_proteins(table, design, prior=prior, robust=robust)
    StoredFit.from_model_fit(fit).write(tmp_path / "fit.parquet")
    got = StoredFit.read(tmp_path / "fit.parquet", design).contrast_table(CONTRASTS)
    statuses = set(expected["status"])
    assert {"ok", "one_condition_missing", "too_few_observations"} <= statuses
    if prior is None:
        assert "boundary" in statuses
    if robust == "huber":
        assert expected["detail"].str.contains("down-weighted").any()
    numeric = {"estimate": 1e-12, "se": 1e-12, "df": 1e-10}
    pd.testing.assert_frame_equal(
        got.drop(columns=list(numeric)), expected.drop(columns=list(numeric))
    )
    for col, rtol in numeric.items():
        a, b = got[col].to_numpy(), expected[col].to_numpy()
        assert np.array_equal(np.isnan(a), np.isnan(b))
        assert np.isfinite(b).sum() > 100
        np.testing.assert_allclose(a, b, rtol=rtol, atol=0.0, equal_nan=True)


def test_gathered_shards_equal_one_fit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Shards gathered in protein order give the single fit's table (computed in blocks)."""
    table, design = _data(False)
    names = sorted(table["protein"].unique())
    parts = []
    for i, chunk in enumerate((names[1::2], names[::2])):
        fit = fit_proteins(table[table["protein"].isin(chunk)], design)
        parts.append(tmp_path / f"s{i}.parquet")
        StoredFit.from_model_fit(fit).write(parts[-1])
    gather_fits(parts, tmp_path / "fit.parquet")
    whole = StoredFit.from_model_fit(fit_proteins(table, design)).contrast_table(CONTRASTS)
    monkeypatch.setattr(stored, "BLOCK", 7)
    got = StoredFit.read(tmp_path / "fit.parquet", design).contrast_table(CONTRASTS)
    pd.testing.assert_frame_equal(got, whole, rtol=1e-12)


def test_stored_fit_of_another_design_is_refused(tmp_path: Path) -> None:
    table, design = _data(True)
    StoredFit.from_model_fit(fit_proteins(table, design)).write(tmp_path / "fit.parquet")
    _, other = make_design(3, 3, 2, n_batch=2, random=RANDOM, fixed_batch=False)
    with pytest.raises(PepmixError, match="run the model stage again"):
        StoredFit.read(tmp_path / "fit.parquet", other)
