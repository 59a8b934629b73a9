"""Config validation, defaults and contrast resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from pepmix.config import load_yaml, resolve_contrasts, validate_config
from pepmix.errors import ConfigError

LEVELS = ["ctrl", "drugA", "drugB"]


@pytest.fixture(scope="module")
def schema(repo: Path) -> dict:
    return load_yaml(repo / "workflow/schemas/config.schema.yaml")


def minimal() -> dict:
    return {
        "samples": "s.tsv",
        "inputs": [{"name": "b1", "format": "generic_long", "path": "x.tsv"}],
        "contrasts": ["drugA - ctrl"],
    }


def test_defaults_filled(schema: dict) -> None:
    cfg = validate_config(minimal(), schema)
    assert cfg["fdr"] == 0.05
    assert cfg["normalization"]["method"] == "protein_median"
    assert cfg["filter"]["q_value"] == 0.01
    assert cfg["feature_level"] == "precursor"
    assert cfg["moderation"] is True


def test_shipped_config_is_valid(schema: dict, repo: Path) -> None:
    cfg = validate_config(load_yaml(repo / "config/config.yaml"), schema)
    assert cfg["inputs"][0]["format"] == "generic_wide"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"fdr": 2}, "fdr"),
        ({"normalization": {"method": "mean"}}, "normalization.method"),
        ({"contrasts": ["drugA vs ctrl"]}, "contrasts"),
        ({"inputs": []}, "inputs"),
        ({"bogus": 1}, "bogus"),
        ({"filter": {"q_value": "x"}}, "filter.q_value"),
    ],
)
def test_schema_errors_name_the_key(schema: dict, change: dict, expected: str) -> None:
    cfg = minimal() | change
    with pytest.raises(ConfigError) as info:
        validate_config(cfg, schema)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_missing_required_key(schema: dict) -> None:
    cfg = minimal()
    del cfg["samples"]
    with pytest.raises(ConfigError, match="samples"):
        validate_config(cfg, schema)


def test_duplicate_input_names(schema: dict) -> None:
    cfg = minimal()
    cfg["inputs"] = cfg["inputs"] * 2
    with pytest.raises(ConfigError, match="duplicate input name"):
        validate_config(cfg, schema)


def test_reference_normalization_needs_proteins(schema: dict) -> None:
    with pytest.raises(ConfigError, match="reference_proteins"):
        validate_config(minimal() | {"normalization": {"method": "reference"}}, schema)


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("samples: a\ninputs: [\n")
    with pytest.raises(ConfigError, match=r"line \d+"):
        load_yaml(path)


def test_all_pairwise_order() -> None:
    names = [c.name for c in resolve_contrasts("all_pairwise", LEVELS)]
    assert names == ["drugA - ctrl", "drugB - ctrl", "drugB - drugA"]


def test_versus() -> None:
    names = [c.name for c in resolve_contrasts({"versus": "drugA"}, LEVELS)]
    assert names == ["ctrl - drugA", "drugB - drugA"]


def test_mixed_list_deduplicates() -> None:
    got = resolve_contrasts(["drugA - ctrl", "all_pairwise"], LEVELS)
    assert [c.name for c in got] == ["drugA - ctrl", "drugB - ctrl", "drugB - drugA"]
    assert (got[0].numerator, got[0].denominator) == ("drugA", "ctrl")


@pytest.mark.parametrize("bad", ["drugC - ctrl", "ctrl - ctrl", "ctrl-drugA"])
def test_bad_contrasts(bad: str) -> None:
    with pytest.raises(ConfigError):
        resolve_contrasts([bad], LEVELS)


def test_outputs_get_normal_permissions(tmp_path: Path) -> None:
    import os

    from pepmix.io import write_tsv

    old = os.umask(0o022)
    try:
        write_tsv(__import__("pandas").DataFrame({"a": [1]}), tmp_path / "x.tsv")
    finally:
        os.umask(old)
    assert (tmp_path / "x.tsv").stat().st_mode & 0o777 == 0o644
