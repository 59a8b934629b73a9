"""What replicates a contrast: biological samples, runs (technical) or a pooled sample variance.

Rules (:func:`pepmix.model.design.replication_unit`, :func:`contrast_replication`): both
conditions with >= 2 biological samples -> ``biological``; no condition with two biological
samples -> the runs replicate (``technical``, the run takes the sample's place in the model and
the df cap); some conditions replicated, others not -> ``biological_pooled`` for contrasts with an
unreplicated condition. Each situation raises one alert; a contrast without any tested protein
raises one too.

Null calibration of technical designs: 1 sample per condition x 4 runs, the two samples identical
(the null of a technical-replicate test), run effects N(0, 0.15^2) -- the between-unit SD the
biological calibration tests give their samples -- so the runs play the samples' role.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pepmix.alerts import ALERT_ATTR
from pepmix.errors import ConfigError
from pepmix.inference.differential import differential_table
from pepmix.io import write_parquet, write_tsv
from pepmix.model.design import (
    build_run_design,
    contrast_replication,
    model_spec_from_config,
    replication_unit,
)
from pepmix.model.fit import fit_proteins
from pepmix.stages import fit as fit_stage
from pepmix.stages import test as differential

from .simulate_da import simulate

Contrasts = list[tuple[str, str, str]]


def _sheet(samples: dict[str, int], runs_per_sample: int) -> pd.DataFrame:
    rows = [
        (f"{c}{s}_{t}", c, f"{c}{s}")
        for c, n in samples.items()
        for s in range(n)
        for t in range(runs_per_sample)
    ]
    sheet = pd.DataFrame(rows, columns=["run", "condition", "bioreplicate"])
    sheet["batch"] = pd.NA
    return sheet


def _alerts(caplog: pytest.LogCaptureFixture, code: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if getattr(r, ALERT_ATTR, None) == code]


def _run(
    table: pd.DataFrame,
    sheet: pd.DataFrame,
    contrasts: Contrasts,
    replication: str = "auto",
) -> pd.DataFrame:
    spec = model_spec_from_config({}, sheet, replication)
    design = build_run_design(sheet, spec)
    fit = fit_proteins(table, design, contrasts)
    stats_table = fit.contrast_table([c[1] for c in contrasts], [c[2] for c in contrasts])
    return differential_table(stats_table, [c[0] for c in contrasts])


def test_replication_unit_rules() -> None:
    bio = _sheet({"A": 3, "B": 3}, 2)
    tech = _sheet({"A": 1, "B": 1}, 4)
    mixed = _sheet({"A": 3, "B": 1}, 1)
    assert replication_unit(bio) == "biological"
    assert replication_unit(tech) == "technical"
    assert replication_unit(mixed) == "biological"
    assert replication_unit(tech, "biological") == "biological"
    assert replication_unit(bio, "technical") == "technical"
    with pytest.raises(ConfigError, match=r"testing\.replication"):
        replication_unit(bio, "runs")
    # the default model of a biological design is unchanged; technical: run in place of sample
    assert model_spec_from_config({}, bio).random == ("feature", "sample", "run")
    spec = model_spec_from_config({}, tech)
    assert (spec.random, spec.replication) == (("feature", "run"), "technical")
    forced = model_spec_from_config({"random": ["feature", "sample", "run"]}, bio, "technical")
    assert forced.random == ("feature", "run")
    design = build_run_design(tech, spec)
    np.testing.assert_array_equal(design.sample_code, np.arange(8))
    np.testing.assert_array_equal(build_run_design(bio, forced).sample_code, np.arange(12))
    assert contrast_replication(design, "B", "A") == "technical"
    three = build_run_design(_sheet({"A": 3, "B": 2, "C": 1}, 1), model_spec_from_config({}, mixed))
    assert contrast_replication(three, "B", "A") == "biological"
    assert contrast_replication(three, "C", "A") == "biological_pooled"
    none = build_run_design(tech, model_spec_from_config({}, tech, "biological"))
    assert contrast_replication(none, "B", "A") == "none"


def test_technical_replicates_are_tested_and_calibrated(caplog: pytest.LogCaptureFixture) -> None:
    table, sheet, _ = simulate(n_prot=2000, n_per=1, tech=4, seed=1, sample_sd=0.0, run_sd=0.15)
    with caplog.at_level(logging.INFO, logger="pepmix"):
        result = _run(table, sheet, [("B - A", "B", "A")])
    p = result["pvalue"].dropna().to_numpy()
    assert p.size >= 0.98 * 2000
    assert (result["replication"] == "technical").all()
    columns = list(result.columns)
    assert columns.index("replication") == columns.index("status") + 1
    assert stats.kstest(p, "uniform").pvalue > 0.01
    # 2,000 tests: the binomial SD of the fraction is 0.005; 0.03-0.07 is 4 SD
    assert 0.03 <= np.mean(p < 0.05) <= 0.07
    assert np.mean(result["adj_pvalue"] < 0.05) <= 0.05
    messages = _alerts(caplog, "technical_replication")
    assert len(messages) == 1
    assert "B - A" in messages[0] and "the runs (4 vs 4), not biological samples" in messages[0]
    assert not _alerts(caplog, "no_tests")


def test_technical_replicates_detect_changes() -> None:
    table, sheet, truth = simulate(
        n_prot=400, n_per=1, tech=4, seed=2, frac_de=0.2, sample_sd=0.0, run_sd=0.15
    )
    result = _run(table, sheet, [("B - A", "B", "A")]).set_index("protein")
    called = result.index[result["adj_pvalue"] < 0.05]
    # BH at 5 % with 20 % changing: expected FDP <= 4 %; with ~80 calls one seed's FDP has an SD
    # of about 2 %, so precision >= 90 % is 3 SD
    assert truth[called].mean() >= 0.9
    assert truth[called].sum() >= 0.5 * truth.sum()


def test_mixed_design_pools_the_sample_variance(caplog: pytest.LogCaptureFixture) -> None:
    table, sheet, _ = simulate(n_prot=1500, n_per=4, seed=3)
    sheet.loc[sheet["run"] == "B3_0", "condition"] = "C"  # A: 4 samples, B: 3, C: 1
    contrasts = [("B - A", "B", "A"), ("C - A", "C", "A"), ("C - B", "C", "B")]
    with caplog.at_level(logging.INFO, logger="pepmix"):
        result = _run(table, sheet, contrasts)
    labels = result.groupby("contrast")["replication"].agg(set).to_dict()
    assert labels == {
        "B - A": {"biological"},
        "C - A": {"biological_pooled"},
        "C - B": {"biological_pooled"},
    }
    for name in ("C - A", "C - B"):
        p = result.loc[result["contrast"] == name, "pvalue"].dropna().to_numpy()
        assert p.size >= 0.95 * 1500
        # 1,500 tests: binomial SD of the fraction 0.0056; 0.03-0.07 is 3.5 SD
        assert 0.03 <= np.mean(p < 0.05) <= 0.07
    pooled = _alerts(caplog, "pooled_replication")
    assert len(pooled) == 1
    assert "C - A, C - B" in pooled[0]
    assert not _alerts(caplog, "technical_replication")


def test_untested_contrast_raises_one_alert(caplog: pytest.LogCaptureFixture) -> None:
    # one run per condition: nothing replicates the contrast, nothing can be tested
    table, sheet, _ = simulate(n_prot=30, n_per=1, tech=1, seed=4)
    with caplog.at_level(logging.INFO, logger="pepmix"):
        result = _run(table, sheet, [("B - A", "B", "A")])
    assert result["pvalue"].isna().all()
    messages = _alerts(caplog, "no_tests")
    assert len(messages) == 1
    assert "contrast B - A" in messages[0] and "too_few_observations" in messages[0]
    assert not _alerts(caplog, "technical_replication")  # no p-values to qualify


def test_forced_biological_without_replicates_says_what_to_do(
    caplog: pytest.LogCaptureFixture,
) -> None:
    table, sheet, _ = simulate(n_prot=30, n_per=1, tech=3, seed=5, sample_sd=0.0)
    contrasts = [("B - A", "B", "A"), ("A - B", "A", "B")]
    with caplog.at_level(logging.INFO, logger="pepmix"):
        result = _run(table, sheet, contrasts, replication="biological")
    assert result["pvalue"].isna().all()
    assert (result["replication"] == "none").all()
    messages = _alerts(caplog, "no_tests")
    assert len(messages) == 1  # one for the whole table, not one per contrast
    assert "any of the 2 contrasts" in messages[0]
    assert "testing.replication" in messages[0]
    assert not _alerts(caplog, "technical_replication")


def test_biological_design_labelled_and_not_alerted(caplog: pytest.LogCaptureFixture) -> None:
    table, sheet, _ = simulate(n_prot=200, n_per=3, tech=2, seed=6)
    with caplog.at_level(logging.INFO, logger="pepmix"):
        auto = _run(table, sheet, [("B - A", "B", "A")])
        forced = _run(table, sheet, [("B - A", "B", "A")], replication="biological")
    assert (auto["replication"] == "biological").all()
    pd.testing.assert_frame_equal(auto, forced)
    assert auto["pvalue"].notna().mean() > 0.95
    assert not [r for r in caplog.records if getattr(r, ALERT_ATTR, None)]


@pytest.mark.parametrize(("mode", "label"), [("auto", "technical"), ("biological", "none")])
def test_stages_pass_the_replication_mode(tmp_path: Path, mode: str, label: str) -> None:
    table, sheet, _ = simulate(n_prot=40, n_per=1, tech=3, seed=7, sample_sd=0.0, run_sd=0.15)
    features = tmp_path / "features.parquet"
    write_parquet(table, features)
    samples = tmp_path / "samples.tsv"
    write_tsv(sheet, samples)
    out = {k: tmp_path / f"{k}.parquet" for k in ["proteins", "fit", "fixed", "blups"]}
    fitted = fit_stage.run(features=features, samples=samples, replication=mode, abundance=False)
    fitted.write(proteins=out["proteins"], fit=out["fit"], fixed=out["fixed"], blups=out["blups"])
    config = {
        "contrasts": ["B - A"], "moderation": True, "lfc_threshold": 0.0,
        "testing": {"replication": mode},
    }  # fmt: skip
    differential.run(fit=out["fit"], samples=samples, config=config).write(
        tsv=tmp_path / "da.tsv", parquet=tmp_path / "da.parquet", missing=tmp_path / "missing.tsv"
    )
    da = pd.read_csv(tmp_path / "da.tsv", sep="\t")
    assert set(da["replication"]) == {label}
    assert (da["pvalue"].notna().mean() > 0.9) == (label == "technical")
    components = pd.read_parquet(out["proteins"])
    assert ("var_run" in components) and (("var_sample" in components) == (label == "none"))
