"""Run pepmix's workflow stages in-process from a config dict, exactly as the Snakemake rules do.

The config is validated (and defaults filled in) with the workflow's schema
(:func:`pepmix.config.validate_config`). Then, for the rules ``ingest``, ``merge``, ``normalize``,
``fit`` and ``test``, the rule's own ``params:`` block is read from ``rules/*.smk`` and evaluated
with that config (as Snakemake does), and the rule's own ``script:`` (``scripts/<rule>.py``) is run
with a stand-in ``snakemake`` object (inputs, outputs, params, log, threads = 1). So whatever
config sections a build's rules pass to its stage functions, and however its scripts call them,
the harness follows. Schema, rules and scripts are those of the imported pepmix build (the
repository around ``src/pepmix``; this repository when pepmix is installed elsewhere).

Differences from a workflow run: the model stage runs as one shard (the workflow's shards only
split proteins; ``shard`` and ``gather_model`` are skipped), without the protein-abundance
output (:data:`SKIPPED_OUTPUTS`; the test does not read it), with the peptide-usage test only
when the contrasts use it (``peptide_usage_contrasts`` not ``never``), and the plot rules are
not run.
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

import pepmix
from pepmix.config import contrasts_for, load_yaml, validate_config
from pepmix.errors import ConfigError, PepmixError
from pepmix.samples import load_design, read_resolved_sheet, sheet_options

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
SCHEMA = Path("workflow/schemas/config.schema.yaml")
#: the workflow's output the runner makes (and everything it depends on)
TARGET = "results/tables/differential_abundance.parquet"
#: rules not run: their outputs are their inputs (one shard; gathering one shard is a copy)
ALIASED = ("shard", "gather_model", "gather_detection")
#: outputs not made (optional in the stage functions, not needed for the target)
SKIPPED_OUTPUTS = {"fit": ("abundance",), "detection_curve": ("png", "extra")}
SCATTER_ITEM = "1-of-1"


def build_root() -> Path:
    """Repository of the imported pepmix build (schema, rules, scripts), else this one."""
    build = Path(pepmix.__file__).resolve().parents[2]
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
    """Snakemake's ``Namedlist`` stand-in: positional items, attributes and ``get``."""

    def __init__(self, named: Mapping[str, Any]) -> None:
        super().__init__(named.values())
        self.__dict__.update(named)

    def get(self, name: str, default: Any = None) -> Any:
        return self.__dict__.get(name, default)


def _wildcards(value: Any, wildcards: Mapping[str, str]) -> Any:
    """Fill ``{name}`` wildcards in a path or a list of paths."""
    if isinstance(value, str):
        for name, text in wildcards.items():
            value = value.replace("{" + name + "}", text)
        return value
    if isinstance(value, list | tuple):
        return [_wildcards(v, wildcards) for v in value]
    return value


class _Job:
    """One rule instance: evaluated input, output and params (workflow paths)."""

    def __init__(self, rule: str, wildcards: Mapping[str, str]) -> None:
        self.rule = rule
        self.wildcards = dict(wildcards)
        self.input: dict[str, Any] = {}
        self.output: dict[str, Any] = {}
        self.params: dict[str, Any] = {}


class StageRunner:
    """Runs the rules a differential table needs, for validated configs, under ``workdir``.

    The rules' ``input:``, ``output:`` and ``params:`` blocks are evaluated with the config
    (Snakemake's ``expand``, ``report``, ``scatter``/``gather`` with one shard), the rules
    producing :data:`TARGET` are found from their outputs (as Snakemake does), and each rule's
    script runs in-process; outputs are cached per rule, inputs and params.

    Parameters
    ----------
    workdir : path
        Cache directory (one sub-directory per rule, inputs and params).
    """

    def __init__(self, workdir: str | Path) -> None:
        self.workdir = Path(workdir)
        self.root = build_root()
        self.schema = schema()
        self.texts = {p.stem: p.read_text() for p in sorted((self.root / "rules").glob("*.smk"))}
        self.rule_file = {
            name: stem
            for stem, text in self.texts.items()
            for name in re.findall(r"^rule (\w+):", text, re.M)
        }
        self.ran: list[str] = []
        self.used: list[Path] = []
        #: workflow path -> file of the last :meth:`run`
        self.made: dict[str, str] = {}

    def _namespace(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        """What the rules' blocks refer to (``rules/common.smk``), for one shard."""
        from snakemake.io import expand

        sheet = _sheet_runs(cfg)
        split = SimpleNamespace(split=lambda pattern: [_wildcards(pattern, _ITEM)])
        return {
            "config": cfg,
            "INPUT_BY_NAME": {entry["name"]: entry for entry in cfg["inputs"]},
            "BATCHES": [entry["name"] for entry in cfg["inputs"]],
            "CONTRASTS": contrasts_for(cfg["contrasts"], sheet),
            "N_SHARDS": 1,
            # the layout of a sharded run (shard and gather_model are aliased, see ALIASED), so
            # the fit rule's outputs are its shard's files; optional outputs off
            "SINGLE_SHARD": False,
            "SHARD": "{scatteritem}",
            "model_out": lambda name, final: f"results/model/shards/{{scatteritem}}/{name}",
            # the usage test runs in the fit job when its rows can change the differential table
            # (peptide_usage_contrasts not never): rules/common.smk's rule otherwise skipped,
            # its table is not part of the target
            "PEPTIDE_USAGE": _usage_in_fit(cfg),
            "USAGE_FIT_OUTPUT": {"usage": "results/model/shards/{scatteritem}/usage.parquet"},
            # the usage refit as a job of its own only with one shard (rules/common.smk): the
            # sharded layout keeps it in the fit job, and only when the test needs its rows
            "USAGE_JOB": False,
            # the variance table in the fit job only with one shard (rules/fit.smk); the
            # runner's target does not need it
            "VARIANCE_IN_FIT": False,
            # several shards: rule gather_model also gathers the abundances and writes the
            # variance and usage tables (rules/fit.smk); the runner's target needs none of them
            "ABUNDANCE_IN_GATHER": False,
            "VARIANCE_IN_GATHER": False,
            "USAGE_IN_GATHER": False,
            # several shards' tables for the feature majority rule's prior (rules/common.smk):
            # the runner's one fit job holds every protein and fits the prior itself, as one shard
            "MAJORITY_SHARDS": False,
            # missing: detection (rules/common.smk); builds without the key ignore these
            "DETECTION": cfg.get("missing", "mar") == "detection",
            "extra_formats": lambda formats: [f for f in formats if f != "png"],
            "expand": expand,
            "report": lambda path, *args, **kwargs: path,
            "scatter": split,
            "gather": split,
            "_items": _items,
        }

    def _job(self, rule: str, namespace: Mapping[str, Any], wildcards: Mapping[str, str]) -> _Job:
        """Evaluate a rule's input, output and params blocks (callables get the wildcards)."""
        job = _Job(rule, wildcards)
        wc = SimpleNamespace(**wildcards)
        text = self.texts[self.rule_file[rule]]
        for section in ("input", "output", "params"):
            block = rule_block(text, rule, section)
            values: dict[str, Any] = (
                {} if block is None else eval(f"_items({block}\n)", dict(namespace))
            )
            values = {k: v(wc) if callable(v) else v for k, v in values.items()}
            setattr(job, section, {k: _wildcards(v, wildcards) for k, v in values.items()})
        return job

    def _producer(self, path: str, namespace: Mapping[str, Any]) -> _Job:
        """The job whose output is the workflow path ``path`` (batch wildcards tried)."""
        batches = [{"batch": name} for name in namespace["BATCHES"]]
        for rule, stem in self.rule_file.items():
            if "{batch}" in (rule_block(self.texts[stem], rule, "output") or ""):
                options = [{**_ITEM, **b} for b in batches]
            else:
                options = [_ITEM]
            for wildcards in options:
                try:
                    job = self._job(rule, namespace, wildcards)
                except Exception:  # noqa: BLE001 - blocks of rules the target does not need
                    break
                if path in _flat(job.output.values()):
                    return job
        raise PepmixError(f"stage runner: no rule makes {path}")

    def _make(self, path: str, namespace: Mapping[str, Any], made: dict[str, str]) -> str:
        """Actual file for workflow path ``path``: external files as they are, others made."""
        if path in made:
            return made[path]
        if Path(path).is_absolute() or not path.startswith("results/"):
            return path
        job = self._producer(path, namespace)
        inputs = {
            name: [self._make(p, namespace, made) for p in value]
            if isinstance(value, list)
            else self._make(value, namespace, made)
            for name, value in job.input.items()
        }
        if job.rule in ALIASED:  # one shard: each output is the same-named (or i-th) input
            sources = _flat(inputs.values())
            for i, (name, value) in enumerate(job.output.items()):
                if name not in inputs and i >= len(sources):
                    # an output with no input counterpart (shard's largest.json, read only by
                    # the fit rule's mem_mb): not made, its path is never opened
                    for out in _flat([value]):
                        made[out] = str(self.workdir / "not-made" / Path(out).name)
                    continue
                source = _flat([inputs[name]])[0] if name in inputs else sources[i]
                for out in _flat([value]):
                    made[out] = source
        else:
            out_dir = self._run(job, inputs)
            self.used.append(out_dir)
            for name, value in job.output.items():
                for out in _flat([value]):
                    made[out] = str(out_dir / name)
        return made[path]

    def _run(self, job: _Job, inputs: Mapping[str, Any]) -> Path:
        """Run the job's script unless cached; return its output directory."""
        key = _digest(job.rule, inputs, job.params)
        out = self.workdir / f"{job.rule}-{key}"
        if (out / "done").exists():
            return out
        out.mkdir(parents=True, exist_ok=True)
        script = rule_block(self.texts[self.rule_file[job.rule]], job.rule, "script")
        if script is None:
            raise PepmixError(f"stage runner: rule {job.rule} has no script")
        path = (self.root / "rules" / script.strip("\"'")).resolve()
        skip = SKIPPED_OUTPUTS.get(job.rule, ())
        smk = SimpleNamespace(
            input=_Named(inputs),
            output=_Named({k: None if k in skip else str(out / k) for k in job.output}),
            params=_Named(job.params),
            log=[str(out / "log")],
            threads=1,
            rule=job.rule,
            wildcards=SimpleNamespace(**job.wildcards),
        )
        try:
            runpy.run_path(str(path), init_globals={"snakemake": smk})
        except SystemExit:
            lines = (out / "log").read_text().strip().splitlines() if (out / "log").exists() else []
            raise PepmixError(f"rule {job.rule} failed: {lines[-1] if lines else '?'}") from None
        (out / "done").touch()
        self.ran.append(job.rule)
        return out

    def run(self, config: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Validate ``config``, make :data:`TARGET`; return it and the resolved sample sheet."""
        cfg = validate_config(config, self.schema)
        made: dict[str, str] = {}
        self.used, self.made = [], made
        table = pd.read_parquet(self._make(TARGET, self._namespace(cfg), made))
        return table, read_resolved_sheet(made["results/ingest/samples.tsv"])

    def alerts(self) -> list[str]:
        """Codes of the alerts the rules of the last :meth:`run` raised (rules with an
        ``alerts`` output; empty in builds without alerts)."""
        codes: list[str] = []
        for out in self.used:
            path = out / "alerts"
            if path.is_file():
                codes += list(pd.read_csv(path, sep="\t", dtype=str)["code"])
        return codes


_ITEM = {"scatteritem": SCATTER_ITEM}


def _usage_in_fit(cfg: Mapping[str, Any]) -> bool:
    """Whether the fit job tests peptide usage (``PEPTIDE_USAGE`` of ``rules/common.smk``) and
    the test uses it (``peptide_usage_contrasts`` other than ``never``)."""
    model = cfg.get("model", {}) or {}
    usage = bool(cfg.get("peptide_usage", True)) and "condition|batch" not in (
        model.get("random") or []
    )
    return usage and cfg.get("peptide_usage_contrasts", "never") != "never"


def _sheet_runs(cfg: Mapping[str, Any]) -> pd.DataFrame:
    """The config's sample sheet, one row per run, read as the workflow reads it."""
    return load_design(cfg["samples"], **sheet_options(cfg.get("sample_sheet"))).runs


def _items(*positional: Any, **named: Any) -> dict[str, Any]:
    """A rule block's items: positional ones as ``item0``, ``item1``, ... then the named ones."""
    return {**{f"item{i}": v for i, v in enumerate(positional)}, **named}


def _flat(values: Any) -> list[Any]:
    out: list[Any] = []
    for value in values:
        out += _flat(value) if isinstance(value, list | tuple) else [value]
    return out


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
