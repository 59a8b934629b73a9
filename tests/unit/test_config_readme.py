"""The error example of config/README.md is the message the validator gives for that value."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from pepmix.config import load_yaml, validate_config
from pepmix.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_documented_error_example_is_the_real_message() -> None:
    text = (REPO / "config" / "README.md").read_text()
    found = re.search(r"`pepmix: error: (config: ([\w.]+): '([^']*)' is not one of [^`]*)`", text)
    assert found is not None, "config/README.md lost its error example"
    documented, key, value = found.groups()
    config: dict[str, Any] = {
        "samples": "samples.tsv",
        "inputs": [{"name": "b1", "format": "auto", "path": "report.tsv"}],
        "contrasts": "all_pairwise",
    }
    *parents, last = key.split(".")
    target = config
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = value
    schema = load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")
    with pytest.raises(ConfigError) as err:
        validate_config(config, schema)
    assert str(err.value) == documented
