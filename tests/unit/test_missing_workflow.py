"""Config ``missing: detection``: validation, and the fit and test stages on a small simulated set.

The stages must give what the library gives (:func:`pepmix.model.mnar.detection_contrasts` with
the same curve and prior), finite answers for proteins never observed in one condition, and the
same table for one shard as for two (the curve and prior are fitted once, not per shard).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pepmix.config import load_yaml, validate_config
from pepmix.errors import ConfigError
from pepmix.inference.differential import add_filtered, differential_table
from pepmix.io import write_parquet, write_tsv
from pepmix.model.design import ModelSpec, build_run_design
from pepmix.model.fit import fit_proteins
from pepmix.model.missing import curve_table, gather_detection, read_curve
from pepmix.model.mnar import apply_fold_change_prior, detection_contrasts
from pepmix.stages import detection_curve, fit, test

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(REPO / "workflow/schemas/config.schema.yaml")
    return loaded


def _minimal(**extra: Any) -> dict[str, Any]:
    return {
        "samples": "s.tsv",
        "inputs": [{"name": "b1", "format": "generic_long", "path": "x.tsv"}],
        "contrasts": ["B - A"],
        **extra,
    }


def test_missing_defaults_to_mar(schema: dict[str, Any]) -> None:
    cfg = validate_config(_minimal(), schema)
    assert cfg["missing"] == "mar"
    assert cfg["model"]["robust"] == "huber"


def test_detection_sets_robust_none(schema: dict[str, Any]) -> None:
    cfg = validate_config(_minimal(missing="detection"), schema)
    assert cfg["model"]["robust"] == "none"
    ok = validate_config(_minimal(missing="detection", model={"robust": "none"}), schema)
    assert ok["model"]["robust"] == "none"


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"model": {"robust": "huber"}}, "model.robust"),
        ({"model": {"random": ["feature", "run"]}}, "model.random run"),
        ({"model": {"shrinkage": True}}, "model.shrinkage"),
        ({"variance_tests": {"bootstrap": 10}}, "bootstrap"),
        ({"variance_tests": {"bootstrap_contrasts": True}}, "bootstrap"),
        ({"calibration": {"in_all": True}}, "calibration.in_all"),
        ({"peptide_usage_contrasts": "pretest"}, "peptide_usage_contrasts"),
        ({"model": {"feature_weights": "empirical_bayes"}}, "model.feature_weights"),
    ],
)
def test_detection_rejects_options_it_does_not_combine_with(
    schema: dict[str, Any], extra: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(_minimal(missing="detection", **extra), schema)
    assert "missing: detection" in str(info.value)
    assert named in str(info.value)
    validate_config(_minimal(**extra), schema)  # fine with MAR


def test_unknown_missing_model_rejected(schema: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="missing"):
        validate_config(_minimal(missing="impute"), schema)


def _sim() -> Any:
    path = str(REPO / "benchmarks")
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module("detection_sim")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """60 proteins x 8 runs (slope 1, 35 % missing; seed 4), written as the workflow stores it;
    the curve written by the detection_curve stage."""
    table, sheet, truth = _sim().simulate(60, 8, 1.0, 0.35, 4)
    root = tmp_path_factory.mktemp("missing")
    for col in ("protein", "feature", "run"):
        table[col] = table[col].astype("category")
    write_parquet(table, root / "features.parquet")
    write_tsv(sheet, root / "samples.tsv")
    proteins = sorted(table["protein"].astype(str).unique())
    halves = [proteins[: len(proteins) // 2], proteins[len(proteins) // 2 :]]
    for i, part in enumerate(halves):
        sub = table.loc[table["protein"].astype(str).isin(part)].copy()
        for col in ("protein", "feature", "run"):
            sub[col] = sub[col].astype(str).astype("category")
        write_parquet(sub, root / f"shard{i}.parquet")
    curve = detection_curve.run(features=root / "features.parquet", samples=root / "samples.tsv")
    curve.write(table=root / "curve.tsv", figures=[root / "curve.png"])
    return {"root": root, "table": table, "sheet": sheet, "truth": truth, "curve": curve}


def _fit(features: Path, root: Path) -> pd.DataFrame:
    result = fit.run(
        features=features,
        samples=root / "samples.tsv",
        model={"robust": "none"},
        abundance=False,
        missing="detection",
        curve=root / "curve.tsv",
        contrasts=[("B - A", "B", "A")],
    )
    assert result.detection is not None
    return result.detection


def test_curve_stage_writes_table_and_figure(data: dict[str, Any]) -> None:
    root = data["root"]
    assert (root / "curve.png").stat().st_size > 1000
    curve, prior_sd = read_curve(root / "curve.tsv", list(data["sheet"]["run"]))
    assert np.all(curve.b1 > 0.3)  # true slope 1 (the fit is within ~10 %, test_detection.py)
    assert np.all(curve.b1 < 2.0)
    assert prior_sd >= 0.25
    again = curve_table(curve, prior_sd)
    assert list(again["run"]) == list(data["sheet"]["run"])


def test_fit_stage_equals_library_call(data: dict[str, Any]) -> None:
    root = data["root"]
    stage = _fit(root / "features.parquet", root)
    curve, prior_sd = read_curve(root / "curve.tsv", list(data["sheet"]["run"]))
    design = build_run_design(data["sheet"], ModelSpec(random=("feature", "sample")))
    mar = fit_proteins(data["table"], design, contrasts=[("B - A", "B", "A")])
    library = detection_contrasts(mar, curve, ["B"], ["A"], prior_sd=prior_sd)
    library = gather_detection([library], ["B - A"])
    # the fit stage leaves the fold-change prior to the test stage (all shards at once)
    stage = apply_fold_change_prior(stage.copy())
    assert list(stage["protein"]) == list(library["protein"])
    assert list(stage["status"]) == list(library["status"])
    # same optimisation from the same start; the MAR Satterthwaite df of the stored fit equal
    # the engine's up to rounding (pepmix.model.stored)
    for col in ("estimate", "se", "df"):
        np.testing.assert_allclose(stage[col], library[col], rtol=1e-6, atol=1e-9)


def test_absent_proteins_get_finite_answers(data: dict[str, Any]) -> None:
    root = data["root"]
    stats = _fit(root / "features.parquet", root)
    absent = stats["detail"].str.contains("never observed", na=False).to_numpy()
    assert absent.sum() >= 1
    part = stats.loc[absent]
    assert (part["status"] == "ok").all()
    assert np.isfinite(part[["estimate", "se", "df"]].to_numpy()).all()
    assert (part["se"] > 0).all()
    # the detail names the condition without any observation of the protein
    cond = data["sheet"].set_index("run")["condition"]
    obs = data["table"].assign(condition=cond.reindex(data["table"]["run"].astype(str)).to_numpy())
    seen = obs.groupby(obs["protein"].astype(str))["condition"].agg(lambda c: set(c))
    for protein, detail in zip(part["protein"], part["detail"], strict=True):
        (gone,) = {"A", "B"} - seen[protein]
        assert f"absent from condition {gone}" in detail
    assert not stats.loc[~absent, "detail"].str.contains("absent from", na=False).any()
    table = differential_table(stats, ["B - A"])
    rows = table.set_index("protein").loc[part["protein"]]
    assert np.isfinite(rows["pvalue"]).all()
    assert (rows["pvalue"] > 0).all()
    assert np.isfinite(rows[["ci_low", "ci_high"]].to_numpy()).all()
    assert (table["status"] != "one_condition_missing").all()


def test_shard_invariance_and_test_stage(data: dict[str, Any], tmp_path: Path) -> None:
    root = data["root"]
    one = _fit(root / "features.parquet", root)
    two = gather_detection([_fit(root / f"shard{i}.parquet", root) for i in (1, 0)], ["B - A"])
    pd.testing.assert_frame_equal(one, two)
    stored = fit.run(
        features=root / "features.parquet",
        samples=root / "samples.tsv",
        model={"robust": "none"},
        abundance=False,
    )
    stored.fit.stored.write(tmp_path / "fit.parquet")
    write_parquet(one, tmp_path / "detection.parquet")
    config = {"contrasts": ["B - A"], "model": {"robust": "none"}, "missing": "detection"}
    result = test.run(
        fit=tmp_path / "fit.parquet",
        samples=root / "samples.tsv",
        config=config,
        detection=tmp_path / "detection.parquet",
    )
    # the test stage summarises absent rows under the fold-change prior of all proteins
    prior_applied = apply_fold_change_prior(one.copy())
    expected = add_filtered(differential_table(prior_applied, ["B - A"]), pd.DataFrame(), ["B - A"])
    pd.testing.assert_frame_equal(result.table, expected)
    assert result.table["protein"].nunique() == len(result.table)
    assert result.missing.empty


def test_methods_text_states_the_missing_value_model() -> None:
    from pepmix.report.methods import REFERENCES, methods_rst
    from tests.unit.test_report_pages import _config, _summary

    mar = _config()
    text = methods_rst(mar, _summary(mar), "y ~ condition")
    assert "on the observed values only (no imputation)" in text
    assert REFERENCES["li2025"] not in text
    det = _config(missing="detection")
    text = methods_rst(det, _summary(det), "y ~ condition")
    assert "observed values only" not in text
    assert "detection probability curve" in text and "Huber" not in text
    assert "between-sample df" in text
    for key in ("li2025", "brooks2017", "bates2015", "stephens2017"):
        assert REFERENCES[key] in text, key
    assert text.index(REFERENCES["bates2015"]) < text.index(REFERENCES["li2025"])


def test_detection_design_check_names_the_run_term() -> None:
    from pepmix.config import check_detection_design

    bio = pd.DataFrame(
        {"run": ["a1", "a2", "b1", "b2"], "condition": ["A", "A", "B", "B"],
         "bioreplicate": ["a1", "a2", "b1", "b2"], "batch": pd.NA}
    )  # fmt: skip
    check_detection_design({"missing": "detection"}, bio)
    tech = bio.assign(bioreplicate=["a", "a", "b", "b"])
    with pytest.raises(ConfigError, match=r"missing: detection .* has run"):
        check_detection_design({"missing": "detection"}, tech)


def test_alert_when_absent_proteins_are_tested(caplog: pytest.LogCaptureFixture) -> None:
    from pepmix.model.missing import alert_absent

    stats = pd.DataFrame(
        {
            "status": ["ok", "ok", "one_condition_missing"],
            "detail": ["", "x; absent from condition B", ""],
        }
    )
    with caplog.at_level("WARNING"):
        assert alert_absent(stats) == 1
        assert alert_absent(stats.iloc[[0, 2]]) == 0
    records = [r for r in caplog.records if getattr(r, "pepmix_alert", None)]
    assert [r.pepmix_alert for r in records] == ["detection_absent_tested"]
    assert "1 protein-contrast pairs" in records[0].getMessage()
