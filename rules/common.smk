# Shared set-up: validate the config (one-line errors), resolve the sample sheet and contrasts.

import os
import re
import sys

from snakemake.exceptions import WorkflowError

from pepmix.config import load_yaml, validate_config
from pepmix.errors import PepmixError
from pepmix.shards import auto_shards
from pepmix.stages import contrasts_for, load_sheet


def _fail(message):
    sys.stderr.write(f"pepmix: error: {message}\n")
    raise WorkflowError(f"pepmix: {message}")


try:
    config = validate_config(
        config, load_yaml(workflow.source_path("../workflow/schemas/config.schema.yaml"))
    )
    SHEET = load_sheet(config["samples"], config.get("sample_sheet"))
    CONTRASTS = contrasts_for(config["contrasts"], SHEET)
except PepmixError as exc:
    _fail(str(exc))

BATCHES = [entry["name"] for entry in config["inputs"]]


def _input_bytes():
    return sum(
        os.path.getsize(entry["path"]) for entry in config["inputs"] if os.path.exists(entry["path"])
    )


N_SHARDS = auto_shards(_input_bytes()) if config["shards"] == "auto" else int(config["shards"])
INPUT_BY_NAME = {entry["name"]: entry for entry in config["inputs"]}


def slug(text):
    """File-name-safe version of a contrast name: 'B - A' -> 'B_vs_A'."""
    text = text.replace(" - ", "_vs_")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


CONTRAST_SLUGS = {slug(c.name): c.name for c in CONTRASTS}
if len(CONTRAST_SLUGS) != len(CONTRASTS):
    _fail("contrast names collide after making them file-name safe")


wildcard_constraints:
    batch="|".join(re.escape(b) for b in BATCHES),
    contrast="|".join(re.escape(c) for c in CONTRAST_SLUGS),


def all_plots():
    return expand("results/plots/volcano_{contrast}.png", contrast=CONTRAST_SLUGS) + [
        "results/plots/intensity_distributions.png"
    ]
