"""Contrasts from the usage model after a preliminary test (:mod:`pepmix.model.pretest`, config
``peptide_usage_contrasts``).

Data: two conditions x 4 samples, 4 features per protein, residual SD 0.2; proteins ``U*`` have
feature F0 shifted by 3 log2 in condition B only (a usage LRT in the hundreds), proteins ``C*``
have no usage. No model is fitted by the pretest itself: the switched proteins' contrasts are
those of the usage refit, the others those of the default fit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pepmix.io import write_parquet, write_tsv
from pepmix.model.fit import fit_proteins
from pepmix.model.pretest import (
    pad_varpar,
    shared_features,
    switch_mask,
    usage_contrasts,
    usage_varpar_names,
)
from pepmix.model.stored import StoredFit, gather_fits
from pepmix.model.usage import usage_shard
from pepmix.model.variance_tests import mixture_pvalue
from pepmix.stages import fit as fit_stage

from .engine_data import make_design

CONTRAST = [("B - A", "B", "A")]
NOTE = "contrast from the usage model"
ROBUST = "huber"  # the default model.robust


def _table(runs: list[str], cond: np.ndarray) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    rows = []
    for prot, shift in (("U1", 3.0), ("U2", -3.0), ("C1", 0.0), ("C2", 0.0), ("C3", 0.0)):
        feat_eff = rng.normal(0, 1, 4)
        for r, run in enumerate(runs):
            sample = rng.normal(0, 0.2)
            for f in range(4):
                y = 20 + feat_eff[f] + 0.5 * cond[r] + sample + rng.normal(0, 0.2)
                y += shift if (f == 0 and cond[r] == 1) else 0.0
                rows.append((prot, f"F{f}", run, y))
    return pd.DataFrame(rows, columns=["protein", "feature", "run", "y"])


def _data() -> tuple[pd.DataFrame, pd.DataFrame, object]:
    sheet, design = make_design(n_cond=2, samples_per_cond=4)
    return _table(list(design.runs), np.asarray(design.condition_code)), sheet, design


def _fit(table: pd.DataFrame, sheet: pd.DataFrame, design: object, mode: str) -> StoredFit:
    fit = fit_proteins(table, design, robust=ROBUST)  # type: ignore[arg-type]
    shard = usage_shard(fit, fit.variance_components(), table, sheet, ROBUST)
    stored, _ = usage_contrasts(StoredFit.from_model_fit(fit), shard, mode, 0.25)
    return stored


def _stats(stored: StoredFit) -> pd.DataFrame:
    return stored.contrast_table(CONTRAST).set_index("protein")


def test_shifted_protein_gets_the_usage_models_contrast() -> None:
    table, sheet, design = _data()
    fit = fit_proteins(table, design, robust=ROBUST)  # type: ignore[arg-type]
    shard = usage_shard(fit, fit.variance_components(), table, sheet, ROBUST)
    assert shard.fit is not None
    default = StoredFit.from_model_fit(fit)
    stored, n_switched = usage_contrasts(default, shard, "pretest", 0.25)
    got, before = _stats(stored), _stats(default)
    usage = _stats(pad_varpar(StoredFit.from_model_fit(shard.fit), usage_varpar_names(default)))
    pvalue = pd.Series(mixture_pvalue(shard.lrt), index=[fit.proteins[i] for i in shard.idx])
    switched = got["detail"].str.contains(NOTE)
    assert set(got.index[switched]) == set(pvalue.index[pvalue < 0.25])
    assert n_switched == switched.sum()
    assert {"U1", "U2"} <= set(got.index[switched])
    assert (~switched).sum() >= 2  # at least two clean proteins keep the default fit
    cols = ["estimate", "se", "df", "sigma", "df_residual"]
    # switched: the usage fit's numbers (the same stored arithmetic; padding adds exact zeros)
    np.testing.assert_allclose(
        got.loc[switched, cols], usage.loc[got.index[switched], cols], rtol=1e-12
    )
    assert got.loc[switched, "status"].eq(usage.loc[got.index[switched], "status"]).all()
    # the shifted feature inflates the default SE only through the residual; the usage model
    # charges it to the contrast: a wider SE for the shifted proteins
    assert (got.loc[["U1", "U2"], "se"] > 1.5 * before.loc[["U1", "U2"], "se"]).all()
    # not switched: the default fit's contrast (zero-padded derivatives leave g'Ag unchanged)
    np.testing.assert_allclose(got.loc[~switched, cols], before.loc[~switched, cols], rtol=1e-12)
    assert got.loc[~switched, "detail"].eq(before.loc[~switched, "detail"]).all()


def test_always_switches_every_refitted_protein_and_never_none() -> None:
    table, sheet, design = _data()
    always = _stats(_fit(table, sheet, design, "always"))
    assert always["detail"].str.contains(NOTE).all()
    never = _fit(table, sheet, design, "never")
    assert never.varpar_names == ["theta_feature", "theta_sample", "sigma"]
    assert not _stats(never)["detail"].str.contains(NOTE).any()


def test_pretest_shards_gather_to_the_one_shard_fit(tmp_path: Path) -> None:
    """The decision is per protein: a shard without a switched protein is padded like one with
    them, so shards gather into the single job's stored fit."""
    table, sheet, design = _data()
    parts = []
    for i, chunk in enumerate((["U1", "U2"], ["C1", "C2", "C3"])):
        part = table[table["protein"].isin(chunk)].reset_index(drop=True)
        parts.append(tmp_path / f"s{i}.parquet")
        _fit(part, sheet, design, "pretest").write(parts[-1])
    gather_fits(parts, tmp_path / "fit.parquet")
    whole = _fit(table, sheet, design, "pretest")
    got = StoredFit.read(tmp_path / "fit.parquet", design)  # type: ignore[arg-type]
    assert got.varpar_names == whole.varpar_names
    pd.testing.assert_frame_equal(_stats(got), _stats(whole), rtol=1e-10)


@pytest.mark.parametrize("usage", [True, False])
def test_never_and_usage_off_store_todays_fit(tmp_path: Path, usage: bool) -> None:
    """``never`` (and any mode without the usage test, ``peptide_usage: false``) writes the
    stored fit of a fit job without the option, byte for byte in values."""
    table, sheet, _ = _data()
    write_parquet(table, tmp_path / "features.parquet")
    write_tsv(sheet, tmp_path / "samples.tsv")
    paths = {"features": tmp_path / "features.parquet", "samples": tmp_path / "samples.tsv"}
    model = {"robust": ROBUST}
    today = fit_stage.run(**paths, model=model, abundance=False, usage=False)
    mode = "never" if usage else "pretest"
    other = fit_stage.run(**paths, model=model, abundance=False, usage=usage, usage_contrasts=mode)
    assert (other.usage is not None) == usage
    assert other.fit.stored.to_arrow().equals(today.fit.stored.to_arrow())


def _majority_table(runs: list[str], cond: np.ndarray) -> pd.DataFrame:
    """T*: 2 features, F0 shifted by 3 log2 in B (no majority: the shift is not identifiable);
    U1: 5 features, F0 shifted (a majority); M1: 4 features, but F2 seen in A only and F3 in B
    only (2 shared: no majority); C1: 2 clean features."""
    rng = np.random.default_rng(11)
    rows = []
    for prot, n_feat, shift in (("T1", 2, 3.0), ("T2", 2, -3.0), ("U1", 5, 3.0), ("M1", 4, 0.0)):
        feat_eff = rng.normal(0, 1, n_feat)
        for r, run in enumerate(runs):
            sample = rng.normal(0, 0.2)
            for f in range(n_feat):
                if prot == "M1" and (f, cond[r]) in ((2, 1), (3, 0)):
                    continue
                y = 20 + feat_eff[f] + 0.5 * cond[r] + sample + rng.normal(0, 0.2)
                y += shift if (f == 0 and cond[r] == 1) else 0.0
                rows.append((prot, f"F{f}", run, y))
    for run in runs:
        for f in range(2):
            rows.append(("C1", f"F{f}", run, 20 + f + rng.normal(0, 0.3)))
    return pd.DataFrame(rows, columns=["protein", "feature", "run", "y"])


def test_no_majority_switches_proteins_with_fewer_than_three_shared_features() -> None:
    sheet, design = make_design(n_cond=2, samples_per_cond=4)
    table = _majority_table(list(design.runs), np.asarray(design.condition_code))
    fit = fit_proteins(table, design, robust=ROBUST)
    assert fit.encoded is not None
    shared = dict(zip(fit.proteins, shared_features(fit.encoded, design), strict=True))
    assert shared == {"C1": 2, "M1": 2, "T1": 2, "T2": 2, "U1": 5}
    shard = usage_shard(fit, fit.variance_components(), table, sheet, ROBUST)
    default = StoredFit.from_model_fit(fit)
    before = _stats(default)
    plain, n_plain = usage_contrasts(default, shard, "no_majority")
    got = _stats(plain)
    switched = got["detail"].str.contains(NOTE)
    assert set(got.index[switched]) == {"C1", "M1", "T1", "T2"}
    assert n_plain == 4
    assert got.loc[switched, "detail"].str.contains("fewer than 3 features").all()
    # the default fit takes about half the 3-log2 shift into the contrast (two features: no
    # estimator can tell which one moved); the usage model charges it to the SE
    assert (before.loc[["T1", "T2"], "estimate"].abs() > 1.0).all()
    assert (got.loc[["T1", "T2"], "se"] > 2.0 * before.loc[["T1", "T2"], "se"]).all()
    # U1 has a majority: its contrast stays the default (Huber) fit's
    cols = ["estimate", "se", "df"]
    np.testing.assert_allclose(got.loc["U1", cols], before.loc["U1", cols], rtol=1e-12)
    # with the preliminary test: only the no-majority proteins whose usage LRT p < alpha
    tested, _ = usage_contrasts(default, shard, "no_majority_pretest", 0.25)
    pvalue = pd.Series(mixture_pvalue(shard.lrt), index=[fit.proteins[i] for i in shard.idx])
    expect = {p for p in ("C1", "M1", "T1", "T2") if pvalue[p] < 0.25}
    after = _stats(tested)
    assert set(after.index[after["detail"].str.contains(NOTE)]) == expect
    assert {"T1", "T2"} <= expect
    # the majority threshold is a parameter: 6 takes U1 too
    wide, _ = usage_contrasts(default, shard, "no_majority", majority=6)
    assert _stats(wide)["detail"].str.contains(NOTE).all()


def test_no_majority_mask_needs_the_shared_counts() -> None:
    lrt = np.array([10.0, 0.0])
    with pytest.raises(ValueError, match="shared feature counts"):
        switch_mask(lrt, ["ok", "ok"], "no_majority")
    got = switch_mask(lrt, ["ok", "ok"], "no_majority_pretest", 0.05, np.array([2, 2]))
    assert got.tolist() == [True, False]
    got = switch_mask(lrt, ["ok", "failed"], "no_majority", 0.05, np.array([3, 1]))
    assert got.tolist() == [False, False]


def test_fit_stage_applies_no_majority(tmp_path: Path) -> None:
    """The fit job (config ``peptide_usage_contrasts: no_majority``) stores the library's
    decision."""
    sheet, design = make_design(n_cond=2, samples_per_cond=4)
    table = _majority_table(list(design.runs), np.asarray(design.condition_code))
    write_parquet(table, tmp_path / "features.parquet")
    write_tsv(sheet, tmp_path / "samples.tsv")
    result = fit_stage.run(
        features=tmp_path / "features.parquet",
        samples=tmp_path / "samples.tsv",
        model={"robust": ROBUST},
        abundance=False,
        usage=True,
        usage_contrasts="no_majority",
    )
    got = _stats(result.fit.stored)
    assert set(got.index[got["detail"].str.contains(NOTE)]) == {"C1", "M1", "T1", "T2"}
