"""Run pepmix's workflow stages in-process from a config dict, as the Snakemake rules do.

The config is validated (and defaults filled in) with the workflow's schema
(``workflow/schemas/config.schema.yaml`` of the imported pepmix build,
:func:`pepmix.config.validate_config`); each stage
function of :mod:`pepmix.stages` then gets exactly the config sections its rule passes
(:data:`RULE_SECTIONS`, mirrored from ``rules/*.smk``; ``tests/unit/test_calibration_scenarios.py``
checks the mirror against the rule files). The model stage runs as one shard (the workflow's
shards only split proteins) and without the protein-abundance output, which the test does not
read.

Outputs are cached like Snakemake would: each stage writes into a directory named after a hash of
its inputs and config sections, and is skipped when that directory exists. Variants that differ
only in the test stage therefore share one fit.

Variants are config *overrides* (nested dicts). :func:`availability` says whether a build's schema
knows an override (key path present and value accepted); an unknown key means "not available in
this build".
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from pepmix import stages
from pepmix.config import load_yaml, validate_config
from pepmix.errors import ConfigError

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
SCHEMA = Path("workflow/schemas/config.schema.yaml")

#: config sections each rule passes to its stage function (rules/*.smk ``params:``)
RULE_SECTIONS: dict[str, tuple[str, ...]] = {
    "ingest": ("filter", "feature_level"),
    "merge": ("sample_sheet", "filter"),
    "normalize": ("normalization",),
    "fit": ("model", "contrasts"),
    "test": ("contrasts", "moderation", "lfc_threshold", "testing"),
}


def schema_path() -> Path:
    """The config schema of the imported pepmix build (its repository), else of this one."""
    build = Path(stages.__file__).resolve().parents[3]
    return build / SCHEMA if (build / SCHEMA).exists() else REPO / SCHEMA


def schema() -> dict[str, Any]:
    """The workflow's config schema (:func:`schema_path`)."""
    loaded: dict[str, Any] = load_yaml(schema_path())
    return loaded


def merge_overrides(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overrides`` into a copy of ``base`` (nested dicts merged key by key)."""
    out = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_overrides(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def leaf_paths(overrides: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Key paths of the leaves of a nested override dict."""
    paths: list[tuple[str, ...]] = []
    for key, value in overrides.items():
        if isinstance(value, Mapping) and value:
            paths += leaf_paths(value, (*prefix, key))
        else:
            paths.append((*prefix, key))
    return paths


def key_known(path: tuple[str, ...], config_schema: Mapping[str, Any]) -> bool:
    """Whether the schema declares the key path (e.g. ``("model", "shrinkage")``)."""
    node: Mapping[str, Any] = config_schema
    for key in path:
        props = node.get("properties", {})
        if key not in props:
            return False
        node = props[key]
    return True


def nested(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """``("a", "b"), 1`` -> ``{"a": {"b": 1}}``."""
    out: Any = value
    for key in reversed(path):
        out = {key: out}
    return dict(out)


def availability(
    overrides: Mapping[str, Any], base: Mapping[str, Any], config_schema: Mapping[str, Any]
) -> list[str]:
    """Override leaves this build does not support: ``key.path=value`` (empty: all supported).

    A leaf is unsupported when the schema lacks its key or rejects its value.
    """
    missing = []
    for path in leaf_paths(overrides):
        value: Any = overrides
        for key in path:
            value = value[key]
        label = f"{'.'.join(path)}={value}"
        if not key_known(path, config_schema):
            missing.append(label)
            continue
        try:
            validate_config(merge_overrides(base, nested(path, value)), config_schema)
        except ConfigError:
            missing.append(label)
    return missing


def known_only(overrides: Mapping[str, Any], config_schema: Mapping[str, Any]) -> dict[str, Any]:
    """The leaves of ``overrides`` whose key path the schema declares (others dropped)."""
    out: dict[str, Any] = {}
    for path in leaf_paths(overrides):
        if key_known(path, config_schema):
            value: Any = overrides
            for key in path:
                value = value[key]
            out = merge_overrides(out, nested(path, value))
    return out


def _digest(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _sections(config: Mapping[str, Any], stage: str) -> dict[str, Any]:
    return {key: config.get(key) for key in RULE_SECTIONS[stage]}


class StageRunner:
    """Runs the stages of validated configs under ``workdir``, caching every stage's outputs.

    Parameters
    ----------
    workdir : path
        Cache directory (one sub-directory per stage and input hash).
    """

    def __init__(self, workdir: str | Path) -> None:
        self.workdir = Path(workdir)
        self.schema = schema()

    def _dir(self, stage: str, key: str) -> tuple[Path, bool]:
        path = self.workdir / f"{stage}-{key}"
        done = (path / "done").exists()
        path.mkdir(parents=True, exist_ok=True)
        return path, done

    def run(self, config: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Validate ``config``, run (or reuse) every stage; return the differential table and
        the resolved sample sheet."""
        cfg = validate_config(config, self.schema)
        batches = []
        for entry in cfg["inputs"]:
            key = _digest(entry, _sections(cfg, "ingest"))
            out, done = self._dir("ingest", key)
            if not done:
                stages.ingest(entry, cfg["filter"], cfg["feature_level"], out / "batch.parquet")
                (out / "done").touch()
            batches.append(out / "batch.parquet")
        key = _digest(key, cfg["samples"], [str(b) for b in batches], _sections(cfg, "merge"))
        merged, done = self._dir("merge", key)
        if not done:
            stages.merge(
                batches,
                cfg["samples"],
                cfg.get("sample_sheet", {}),
                cfg["filter"],
                merged / "features.parquet",
                merged / "samples.tsv",
            )
            (merged / "done").touch()
        samples = merged / "samples.tsv"
        key = _digest(key, _sections(cfg, "normalize"))
        norm, done = self._dir("normalize", key)
        if not done:
            stages.normalize_stage(
                merged / "features.parquet",
                samples,
                cfg["normalization"],
                norm / "features.parquet",
                norm / "runs.tsv",
            )
            (norm / "done").touch()
        key = _digest(key, _sections(cfg, "fit"))
        fit, done = self._dir("fit", key)
        if not done:
            stages.fit_stage(
                norm / "features.parquet",
                samples,
                cfg.get("model", {}),
                cfg["contrasts"],
                fit / "proteins.parquet",
                fit / "contrasts.parquet",
                fit / "fixed_effects.parquet",
                fit / "blups.parquet",
            )
            (fit / "done").touch()
        key = _digest(key, _sections(cfg, "test"))
        test, done = self._dir("test", key)
        if not done:
            stages.differential_stage(
                fit / "contrasts.parquet",
                samples,
                _sections(cfg, "test"),
                test / "differential_abundance.tsv",
                test / "differential_abundance.parquet",
                test / "one_condition_missing.tsv",
            )
            (test / "done").touch()
        table = pd.read_parquet(test / "differential_abundance.parquet")
        return table, stages.read_resolved_sheet(samples)


def scenario_config(data: Path, samples: Path) -> dict[str, Any]:
    """Minimal workflow config for a simulated generic_long table (contrast ``B - A``)."""
    return {
        "samples": str(samples),
        "inputs": [{"name": "sim", "format": "generic_long", "path": str(data)}],
        "contrasts": ["B - A"],
    }


def demo_config() -> dict[str, Any]:
    """``config/config.yaml`` (the demo) with its paths made absolute.

    Its ``normalization:`` section is dropped, so that the build's default (or a variant's
    override) applies, as for the simulated scenarios.
    """
    cfg: dict[str, Any] = load_yaml(REPO / "config/config.yaml")
    cfg.pop("normalization", None)
    cfg["samples"] = str(REPO / cfg["samples"])
    for entry in cfg["inputs"]:
        entry["path"] = str(REPO / entry["path"])
    return cfg
