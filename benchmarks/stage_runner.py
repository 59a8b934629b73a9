"""Run pepmix's workflow stages in-process from a config dict, exactly as the Snakemake rules do.

The config is validated (and defaults filled in) with the workflow's schema
(:func:`pepmix.config.validate_config`). Then, for the rules ``ingest``, ``merge``, ``normalize``,
``fit`` and ``test``, the rule's own ``params:`` block is read from ``rules/*.smk`` and evaluated
with that config (as Snakemake does), and the rule's own ``script:`` (``scripts/<rule>.py``) is run
with a stand-in ``snakemake`` object (inputs, outputs, params, log, threads = 1). So whatever
config sections a build's rules pass to its stage functions, and however its scripts call them,
the harness follows. Schema, rules and scripts are those of the imported pepmix build (the
repository around ``pepmix/stages.py``; this repository when pepmix is installed elsewhere).

Differences from a workflow run: the model stage runs as one shard (the workflow's shards only
split proteins; ``shard`` and ``gather_model`` are skipped), without the protein-abundance
output (:data:`SKIPPED_OUTPUTS`; the test does not read it), and the plot rules are not run.
Outputs are cached like Snakemake would: each rule writes into a directory named after a hash of
its inputs and evaluated params, and is skipped when that directory is complete. Variants that
differ only in the test stage therefore share one fit.

Variants are config *overrides* (nested dicts). :func:`availability` says whether a build's schema
knows an override (key path present and value accepted); an unknown key means "not available in
this build".
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
import runpy
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd

from pepmix import stages
from pepmix.config import load_yaml, validate_config
from pepmix.errors import ConfigError, PepmixError

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
SCHEMA = Path("workflow/schemas/config.schema.yaml")
#: the rules run, in order, with the file (``rules/<file>.smk``) holding each
RULES = {
    "ingest": "ingest",
    "merge": "ingest",
    "normalize": "normalize",
    "fit": "fit",
    "test": "test",
}
#: outputs not made (optional in the stage function, not read by the test stage)
SKIPPED_OUTPUTS = {"fit": ("abundance",)}
#: named inputs each rule's script gets (checked against ``scripts/*.py`` by the tests)
INPUT_NAMES = {
    "ingest": (),
    "merge": ("batches", "samples"),
    "normalize": ("features", "samples"),
    "fit": ("features", "samples"),
    "test": ("contrasts", "samples"),
}


def build_root() -> Path:
    """Repository of the imported pepmix build (schema, rules, scripts), else this one."""
    build = Path(stages.__file__).resolve().parents[2]
    return build if (build / SCHEMA).exists() and (build / "rules").is_dir() else REPO


def schema() -> dict[str, Any]:
    """The workflow's config schema of the build."""
    loaded: dict[str, Any] = load_yaml(build_root() / SCHEMA)
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


def _leaf(overrides: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = overrides
    for key in path:
        value = value[key]
    return value


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
        value = _leaf(overrides, path)
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
            out = merge_overrides(out, nested(path, _leaf(overrides, path)))
    return out


def _digest(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def rule_block(text: str, rule: str, section: str) -> str | None:
    """Text of ``section:`` (e.g. ``params``) of ``rule <rule>:`` in a ``.smk`` file, or None."""
    start = re.search(rf"^rule {re.escape(rule)}:\n", text, re.M)
    if start is None:
        raise PepmixError(f"stage runner: no rule {rule!r} in the rules")
    end = re.search(r"^\S", text[start.end() :], re.M)
    body = text[start.end() : start.end() + end.start() if end else len(text)]
    head = re.search(rf"^(\s+){section}:[ \t]*(.*)\n", body, re.M)
    if head is None:
        return None
    indent = len(head.group(1))
    lines = [head.group(2)] if head.group(2).strip() else []
    for line in body[head.end() :].splitlines():
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        lines.append(line)
    return "\n".join(lines).strip()


class _Named(list[Any]):
    """Snakemake's ``Namedlist`` stand-in: positional items plus attributes."""

    def __init__(self, named: Mapping[str, Any]) -> None:
        super().__init__(named.values())
        self.__dict__.update(named)


class _Outputs:
    """Output paths on demand: ``output.<name>`` (or ``output[i]``) is ``<dir>/<name>``; the
    names in ``skip`` are None (outputs the stage functions make optional)."""

    def __init__(self, directory: Path, skip: tuple[str, ...] = ()) -> None:
        self._dir = directory
        self._skip = skip

    def __getattr__(self, name: str) -> str | None:
        if name.startswith("_"):
            raise AttributeError(name)
        return None if name in self._skip else str(self._dir / name)

    def __getitem__(self, index: int) -> str:
        return str(self._dir / f"output{index}")


class StageRunner:
    """Runs the rules of validated configs under ``workdir``, caching every rule's outputs.

    Parameters
    ----------
    workdir : path
        Cache directory (one sub-directory per rule and input hash).
    """

    def __init__(self, workdir: str | Path) -> None:
        self.workdir = Path(workdir)
        self.root = build_root()
        self.schema = schema()
        self.rules = {name: (self.root / f"rules/{RULES[name]}.smk").read_text() for name in RULES}

    def params(self, rule: str, cfg: Mapping[str, Any], **wildcards: str) -> dict[str, Any]:
        """The rule's ``params:`` evaluated with ``cfg`` (callables called with wildcards)."""
        block = rule_block(self.rules[rule], rule, "params")
        if block is None:
            return {}
        sheet = stages.load_sheet(cfg["samples"], cfg.get("sample_sheet"))
        namespace = {
            "config": cfg,
            "INPUT_BY_NAME": {entry["name"]: entry for entry in cfg["inputs"]},
            "CONTRASTS": stages.contrasts_for(cfg["contrasts"], sheet),
        }
        values: dict[str, Any] = eval(f"dict({block}\n)", namespace)  # the rule's own code
        wc = SimpleNamespace(**wildcards)
        return {k: v(wc) if callable(v) else v for k, v in values.items()}

    def _rule(self, rule: str, key: str, inputs: Mapping[str, Any], params: Any) -> Path:
        """Run ``scripts/<rule>.py`` unless cached; return its output directory."""
        out = self.workdir / f"{rule}-{key}"
        if (out / "done").exists():
            return out
        out.mkdir(parents=True, exist_ok=True)
        script = rule_block(self.rules[rule], rule, "script")
        if script is None:
            raise PepmixError(f"stage runner: rule {rule} has no script")
        path = (self.root / "rules" / script.strip("\"'")).resolve()
        smk = SimpleNamespace(
            input=_Named(inputs),
            output=_Outputs(out, SKIPPED_OUTPUTS.get(rule, ())),
            params=_Named(params),
            log=[str(out / "log")],
            threads=1,
            rule=rule,
            wildcards=SimpleNamespace(),
        )
        try:
            runpy.run_path(str(path), init_globals={"snakemake": smk})
        except SystemExit:
            lines = (out / "log").read_text().strip().splitlines() if (out / "log").exists() else []
            raise PepmixError(f"rule {rule} failed: {lines[-1] if lines else '?'}") from None
        (out / "done").touch()
        return out

    def run(self, config: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Validate ``config``, run (or reuse) every rule; return the differential table and the
        resolved sample sheet."""
        cfg = validate_config(config, self.schema)
        batches = []
        for entry in cfg["inputs"]:
            params = self.params("ingest", cfg, batch=entry["name"])
            out = self._rule("ingest", _digest(entry["path"], params), {}, params)
            batches.append(str(out / "output0"))
        key = _digest(batches, cfg["samples"])
        upstream: list[Any] = [batches, cfg["samples"]]
        samples = ""
        for rule in ("merge", "normalize", "fit", "test"):
            params = self.params(rule, cfg)
            key = _digest(key, params)
            inputs = dict(zip(INPUT_NAMES[rule], upstream, strict=True))
            done = self._rule(rule, key, inputs, params)
            samples = str(done / "samples") if rule == "merge" else samples
            upstream = [str(done / ("contrasts" if rule == "fit" else "features")), samples]
        table = pd.read_parquet(done / "parquet")
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
