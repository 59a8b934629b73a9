"""Load the committed lme4/lmerTest reference values together with their data.

Needs only pandas (no R).  Import it by path, e.g. in a test::

    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "reference" / "lmm" / "load.py"
    spec = importlib.util.spec_from_file_location("lmm_reference", path)
    lmm_reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lmm_reference)
    cases = lmm_reference.load_reference()

See ``README.md`` in this folder for the meaning of every key.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

REFERENCE_DIR = Path(__file__).resolve().parent
FACTORS = ("feature", "run", "sample", "condition", "batch")


def load_meta(directory: Path | str | None = None) -> dict[str, Any]:
    """Return the top-level ``meta`` block of ``lme4_reference.json``.

    Parameters
    ----------
    directory : path-like, optional
        Folder holding the reference files; defaults to this file's folder.

    Returns
    -------
    dict
        R, lme4, lmerTest, Matrix and jsonlite versions and fitting settings.
    """
    folder = Path(directory) if directory is not None else REFERENCE_DIR
    with open(folder / "lme4_reference.json", encoding="utf-8") as fh:
        meta: dict[str, Any] = json.load(fh)["meta"]
    return meta


def load_reference(
    directory: Path | str | None = None, datasets: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """Return one dict per data set: its model, its data and lme4's results.

    Parameters
    ----------
    directory : path-like, optional
        Folder holding ``datasets.csv.gz``, ``models.csv`` and
        ``lme4_reference.json``; defaults to this file's folder.
    datasets : iterable of str, optional
        Restrict to these data-set ids (``"D001"``, ...); default all.

    Returns
    -------
    list of dict
        In ``models.csv`` order.  Each dict holds every column of ``models.csv``
        (``dataset``, ``random``, ``fixed``, ``description``, ``category``,
        ``n_obs``, the ``true_*`` simulation parameters, ...), every key of the
        data set's entry in ``lme4_reference.json`` (``REMLcrit``, ``theta``,
        ``beta``, ``vcov_beta``, ``contrasts``, ``ranef``, ... -- only a few keys
        when ``status == "error"``), and ``data``: a :class:`pandas.DataFrame`
        with columns ``feature, run, sample, condition, batch`` (str) and ``y``
        (float), in file order.  R used factors with sorted levels, so the
        first sorted level of ``condition`` / ``batch`` is the reference.

    Raises
    ------
    ValueError
        If the three files disagree (missing data set, different row count).
    """
    folder = Path(directory) if directory is not None else REFERENCE_DIR
    models = pd.read_csv(folder / "models.csv", dtype={"dataset": str})
    # pandas >= 3 parses floats exactly (round trip) by default, as R's reader does.
    data = pd.read_csv(folder / "datasets.csv.gz", dtype={c: str for c in ("dataset", *FACTORS)})
    with open(folder / "lme4_reference.json", encoding="utf-8") as fh:
        fits: dict[str, dict[str, Any]] = json.load(fh)["datasets"]

    wanted = None if datasets is None else set(datasets)
    groups = {k: g for k, g in data.groupby("dataset", sort=False)}
    out: list[dict[str, Any]] = []
    for row in models.to_dict(orient="records"):
        ds = str(row["dataset"])
        if wanted is not None and ds not in wanted:
            continue
        if ds not in fits or ds not in groups:
            raise ValueError(f"data set {ds} missing from lme4_reference.json or datasets.csv.gz")
        frame = groups[ds].drop(columns="dataset").reset_index(drop=True)
        fit = fits[ds]
        if fit["n_obs"] != len(frame) or row["n_obs"] != len(frame):
            raise ValueError(f"data set {ds}: row counts disagree")
        out.append({**row, **fit, "data": frame})
    if wanted is not None and len(out) != len(wanted):
        missing = sorted(wanted - {case["dataset"] for case in out})
        raise ValueError(f"unknown data sets: {missing}")
    return out
