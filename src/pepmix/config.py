"""Workflow configuration: schema validation with one-line messages, defaults, contrasts.

The schema lives in ``workflow/schemas/config.schema.yaml``; every key is documented in
``config/README.md``. Validation errors name the offending key path, e.g.
``config: normalization.method: 'mean' is not one of ['median', 'quantile', 'reference', 'none']``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from pepmix.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

# Per-format options of ``inputs:`` entries that every reader understands.
COMMON_INPUT_KEYS = frozenset({"name", "format", "path", "columns"})


def load_yaml(path: str | Path) -> Any:
    """Load a YAML file; syntax errors become :class:`ConfigError` with the line number."""
    p = Path(path)
    try:
        with open(p, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{p}: file not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{p}:{where}: invalid YAML ({problem})") from None


def _path_text(path: Sequence[object]) -> str:
    parts: list[str] = []
    for item in path:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def _apply_defaults(instance: Any, schema: Mapping[str, Any]) -> None:
    if not isinstance(instance, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            _apply_defaults(instance[key], sub)


def validate_config(config: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a configuration against the schema and fill in defaults.

    Parameters
    ----------
    config : mapping
        The configuration as loaded from YAML.
    schema : mapping
        The JSON schema (``workflow/schemas/config.schema.yaml``).

    Returns
    -------
    dict
        A deep copy of ``config`` with schema defaults filled in.

    Raises
    ------
    ConfigError
        On the first (most specific) schema violation, naming the key path.
    """
    if not isinstance(config, Mapping):
        raise ConfigError("config: the configuration must be a mapping of keys to values")
    # imported here, not at module level: rule jobs import this module but never validate
    # (jsonschema: ~0.05-0.1 s per job)
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(dict(config)), key=lambda e: e.path)
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        message = best.message
        if best.validator == "additionalProperties":
            allowed = sorted(best.schema.get("properties", {}))
            message += f" (allowed: {', '.join(allowed)})"
        raise ConfigError(f"config: {_path_text(list(best.absolute_path))}: {message}")
    result = copy.deepcopy(dict(config))
    _apply_defaults(result, schema)
    names = [entry["name"] for entry in result["inputs"]]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ConfigError(f"config: inputs: duplicate input name(s) {', '.join(duplicated)}")
    norm = result.get("normalization", {})
    if norm.get("method") == "reference" and not norm.get("reference_proteins"):
        raise ConfigError(
            "config: normalization.reference_proteins: required when method is 'reference'"
        )
    if result.get("missing") == "detection":
        _check_detection(config, result)
    return result


#: random terms the detection model (``missing: detection``, :mod:`pepmix.model.mnar`) supports
DETECTION_RANDOM = ("feature", "sample")


def check_detection_design(config: Mapping[str, Any], sheet: pd.DataFrame) -> None:
    """Raise when ``missing: detection`` meets a model whose random terms (for this sample sheet:
    the default adds ``run`` with technical replicates, technical replication puts ``run`` in
    the place of ``sample``) are not ``feature`` and ``sample`` only.

    Raises
    ------
    ConfigError
        Naming the terms.
    """
    from pepmix.model.design import model_spec_from_config

    replication = (config.get("testing", {}) or {}).get("replication", "auto")
    spec = model_spec_from_config(config.get("model", {}) or {}, sheet, replication)
    extra = [t for t in spec.random if t not in DETECTION_RANDOM]
    if extra:
        raise ConfigError(
            f"config: missing: detection supports the random terms feature and sample only, but "
            f"the model for this sample sheet has {', '.join(extra)} (several runs per sample, "
            "or testing.replication: technical)"
        )


def _check_detection(config: Mapping[str, Any], result: dict[str, Any]) -> None:
    """Options that ``missing: detection`` does not combine with raise; ``model.robust``
    defaults to ``none`` (the detection likelihood has no robust weights)."""
    model = result.get("model", {})
    given = config.get("model", {}) or {}
    extra = [t for t in model.get("random") or [] if t not in DETECTION_RANDOM]
    problems = []
    if extra:
        problems.append(f"model.random {', '.join(extra)} (only feature and sample)")
    if given.get("robust", "none") != "none":
        problems.append(f"model.robust: {given['robust']} (use none)")
    if model.get("shrinkage"):
        problems.append("model.shrinkage: true")
    tests = result.get("variance_tests", {})
    if tests.get("bootstrap", 0) > 0 or tests.get("bootstrap_contrasts"):
        problems.append("variance_tests.bootstrap / bootstrap_contrasts")
    if result.get("calibration", {}).get("in_all"):
        problems.append("calibration.in_all: true (the calibration check refits the MAR model)")
    if result.get("peptide_usage_contrasts", "never") != "never":
        problems.append(f"peptide_usage_contrasts: {result['peptide_usage_contrasts']} (use never)")
    if model.get("feature_weights", "none") != "none":
        problems.append(f"model.feature_weights: {model['feature_weights']} (use none)")
    if problems:
        raise ConfigError(f"config: missing: detection does not combine with {'; '.join(problems)}")
    result.setdefault("model", {})["robust"] = "none"


@dataclass(frozen=True)
class Contrast:
    """A difference of two condition means, ``numerator - denominator``.

    Attributes
    ----------
    name : str
        Label used in output tables, e.g. ``"fmol50 - fmol25"``.
    numerator, denominator : str
        Condition levels.
    """

    name: str
    numerator: str
    denominator: str


def resolve_contrasts(spec: Any, levels: Sequence[str]) -> list[Contrast]:
    """Expand the ``contrasts:`` config value into explicit contrasts.

    Parameters
    ----------
    spec : str, list or mapping
        ``"all_pairwise"``, ``{"versus": control}``, or a list of ``"A - B"`` strings, the word
        ``all_pairwise`` and ``{"versus": control}`` items.
    levels : sequence of str
        Condition levels in sample-sheet order.

    Returns
    -------
    list of Contrast
        Without duplicates, in the order given. ``all_pairwise`` gives ``"<later> - <earlier>"``
        for every pair in sheet order; ``versus: C`` gives ``"<other> - C"`` for every other level.

    Raises
    ------
    ConfigError
        If a contrast names an unknown condition or compares a condition with itself.
    """
    items = spec if isinstance(spec, list) else [spec]
    known = list(levels)
    out: list[Contrast] = []

    def check(level: str, text: str) -> None:
        if level not in known:
            raise ConfigError(
                f"config: contrasts: {text!r} names unknown condition {level!r}; "
                f"conditions in the sample sheet: {', '.join(known)}"
            )

    for item in items:
        if item == "all_pairwise":
            for j, later in enumerate(known):
                for earlier in known[:j]:
                    out.append(Contrast(f"{later} - {earlier}", later, earlier))
        elif isinstance(item, Mapping):
            control = str(item["versus"])
            check(control, f"versus: {control}")
            for level in known:
                if level != control:
                    out.append(Contrast(f"{level} - {control}", level, control))
        else:
            text = str(item)
            num, sep, den = text.partition(" - ")
            num, den = num.strip(), den.strip()
            if not sep or not num or not den:
                raise ConfigError(
                    f"config: contrasts: {text!r} is not of the form '<condition> - <condition>'"
                )
            check(num, text)
            check(den, text)
            if num == den:
                raise ConfigError(f"config: contrasts: {text!r} compares a condition with itself")
            out.append(Contrast(f"{num} - {den}", num, den))
    unique: dict[str, Contrast] = {}
    for c in out:
        unique.setdefault(c.name, c)
    if not unique:
        raise ConfigError("config: contrasts: no contrast to test (a single condition?)")
    return list(unique.values())


def contrasts_for(config_contrasts: Any, sheet: pd.DataFrame) -> list[Contrast]:
    """Resolve the ``contrasts:`` config value against the conditions of a sample sheet
    (:func:`resolve_contrasts` on :func:`pepmix.samples.condition_levels`)."""
    from pepmix.samples import condition_levels

    return resolve_contrasts(config_contrasts, condition_levels(sheet))
