"""The Python API (:mod:`pepmix.api`): the README's example as written, defaults = config schema.

The API's results equal the workflow's tables byte for byte: that is checked end to end on the
demo slice by ``tests/e2e/test_workflow.py::test_python_api_equals_workflow``.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

import pepmix
from pepmix.api import FILTER_DEFAULTS
from pepmix.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SECTION = "## Python API"


def _readme_example() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(SECTION)
    section = text[start : text.index("\n## ", start + len(SECTION))]
    blocks = re.findall(r"^```python\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1
    return str(blocks[0])


def _schema_defaults(section: str) -> dict[str, Any]:
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    props = schema["properties"][section]["properties"]
    return {key: value["default"] for key, value in props.items() if "default" in value}


def _defaults(func: Any) -> dict[str, Any]:
    params = inspect.signature(func).parameters.values()
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


def test_readme_example_runs_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    namespace: dict[str, Any] = {}
    exec(compile(_readme_example(), "README.md (Python API)", "exec"), namespace)
    table: pd.DataFrame = namespace["table"]
    data = namespace["data"]
    contrasts = ["fmol50 - fmol25", "fmol100 - fmol25", "fmol100 - fmol50"]
    assert sorted(table["contrast"].unique()) == sorted(contrasts)
    # one row per input protein and contrast: the modelled ones and the filtered ones
    n_input = data.features["protein"].nunique() + len(data.removed)
    assert table.groupby("contrast").size().to_dict() == dict.fromkeys(contrasts, n_input)
    assert (table.loc[table["status"] == "filtered", "pvalue"].isna()).all()
    # the demo's truth: the UPS1 spike-ins change, the background does not
    called = table[table["adj_pvalue"] < 0.05]
    ups = called["protein"].str.contains("UPS")
    assert called.groupby("contrast").size().min() >= 30
    assert ups.mean() >= 0.95
    assert data.normalization is not None and len(data.normalization) == len(data.runs)


def test_defaults_are_the_config_schemas() -> None:
    assert dict(FILTER_DEFAULTS) == _schema_defaults("filter")
    norm = _schema_defaults("normalization")
    assert {k: v for k, v in _defaults(pepmix.normalize).items() if k in norm} == norm
    model = _schema_defaults("model")
    api_model = _defaults(pepmix.fit)
    assert {k: api_model[k] for k in model if k != "covariates"} == {
        k: v for k, v in model.items() if k != "covariates"
    }
    assert list(model["covariates"]) == list(api_model["covariates"])
    testing = _schema_defaults("testing")
    assert api_model["replication"] == testing["replication"]
    api_test = _defaults(pepmix.test)
    assert api_test["robust"] == testing["robust"]
    assert api_test["df_cap"] == testing["df_cap"]
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    top = schema["properties"]
    assert api_test["moderation"] == top["moderation"]["default"]
    assert api_test["lfc_threshold"] == top["lfc_threshold"]["default"]
    assert _defaults(pepmix.read)["feature_level"] == top["feature_level"]["default"]


def test_public_surface_is_documented() -> None:
    for name in pepmix.__all__:
        obj = getattr(pepmix, name)
        if name == "__version__":
            continue
        doc = inspect.getdoc(obj) or ""
        assert doc, name
        if inspect.isfunction(obj):
            assert "Parameters" in doc and "Returns" in doc, name
    with pytest.raises(AttributeError):
        _ = pepmix.no_such_name  # type: ignore[attr-defined]


def test_fit_needs_normalized_data() -> None:
    data = pepmix.Dataset(
        features=pd.DataFrame({"protein": ["P"], "feature": ["f"], "run": ["r"]}),
        runs=pd.DataFrame({"run": ["r"], "condition": ["A"]}),
        removed=pd.DataFrame(),
    )
    with pytest.raises(ConfigError, match=r"pepmix\.normalize"):
        pepmix.fit(data)


def test_read_without_inputs_is_an_error() -> None:
    with pytest.raises(ConfigError, match="no input"):
        pepmix.read([], samples=REPO / "config/samples.tsv")


def test_fit_runs_blas_on_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """pepmix.fit limits BLAS to one thread during the fit (the engine's batched small products
    only slow down with more) and restores the caller's limit afterwards."""
    from threadpoolctl import threadpool_info, threadpool_limits

    import pepmix.model.protein_fit as protein_fit

    def blas_threads() -> set[int]:
        return {int(i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"}

    seen: list[set[int]] = []

    def record(*args: Any, **kwargs: Any) -> None:
        seen.append(blas_threads())
        raise RuntimeError("recorded")

    monkeypatch.setattr(protein_fit, "fit_protein_models", record)
    data = pepmix.Dataset(
        features=pd.DataFrame({"protein": ["P"], "feature": ["f"], "run": ["r"], "y": [1.0]}),
        runs=pd.DataFrame({"run": ["r"], "condition": ["A"]}),
        removed=pd.DataFrame(),
    )
    with threadpool_limits(limits=2, user_api="blas"):
        if blas_threads() != {2}:
            pytest.skip("this numpy's BLAS does not take a thread limit")
        with pytest.raises(RuntimeError, match="recorded"):
            pepmix.fit(data)
        assert blas_threads() == {2}
    assert seen == [{1}]
