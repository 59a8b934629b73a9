"""Readers of search-engine outputs.

Each format is a function ``read(path, options) -> pandas.DataFrame`` in a module of this package.
It returns the canonical columns it can fill (see :mod:`pepmix.canonical`); :func:`pepmix.ingest`
conforms the result, so readers do not drop missing intensities or coerce types themselves.
Readers raise :class:`pepmix.errors.InputFormatError` with the file, what was expected and what
was found.

``FORMATS`` maps each ``format:`` value of the config to ``"module:function"``; modules are
imported only when their format is used. ``format: auto`` detects the format from the file's
header (:mod:`pepmix.readers.detect`); an explicit format always wins.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from pepmix.errors import ConfigError

Reader = Callable[[Path, Mapping[str, Any]], pd.DataFrame]

FORMATS: dict[str, str] = {
    "generic_long": "generic:read_long",
    "generic_wide": "generic:read_wide",
    "msstats": "msstats:read_msstats",
    "maxquant_evidence": "maxquant:read_evidence",
    "maxquant_peptides": "maxquant:read_peptides",
    "diann": "diann:read_diann",
    "fragpipe": "fragpipe:read_fragpipe",
    "spectronaut": "spectronaut:read_spectronaut",
    "skyline": "skyline:read_skyline",
    "openms": "openms:read_openms",
    "proteome_discoverer": "proteome_discoverer:read_peptide_groups",
    "progenesis": "progenesis:read_progenesis",
    "sage": "sage:read_sage",
    "alphadia": "alphadia:read_alphadia",
}


AUTO = "auto"
"""The ``format:`` value that detects the format from the file."""


def resolve_format(fmt: str, path: str | Path | None = None) -> str:
    """Return the format name to use: ``fmt`` itself, or the detected format for ``"auto"``.

    Parameters
    ----------
    fmt : str
        A key of :data:`FORMATS`, or ``"auto"``.
    path : str or pathlib.Path, optional
        The input file; required for ``"auto"``.

    Raises
    ------
    ConfigError
        If the format is unknown, or ``"auto"`` is given without a path.
    InputFormatError
        If detection fails (see :func:`pepmix.readers.detect.detect_format`).
    """
    if fmt == AUTO:
        if path is None:
            raise ConfigError("format 'auto' needs the input file to detect the format from")
        from pepmix.readers.detect import detect_format

        return detect_format(path)
    if fmt not in FORMATS:
        known = ", ".join([*sorted(FORMATS), AUTO])
        raise ConfigError(f"unknown input format {fmt!r}; known formats: {known}")
    return fmt


def get_reader(fmt: str, path: str | Path | None = None) -> Reader:
    """Return the reader function for a ``format:`` value.

    Parameters
    ----------
    fmt : str
        Format name, a key of :data:`FORMATS`, or ``"auto"``.
    path : str or pathlib.Path, optional
        The input file; required for ``"auto"``, which detects the format from its header.

    Raises
    ------
    ConfigError
        If the format is unknown.
    InputFormatError
        If ``"auto"`` cannot detect the format.
    """
    target = FORMATS[resolve_format(fmt, path)]
    module_name, func_name = target.split(":")
    module = importlib.import_module(f"pepmix.readers.{module_name}")
    reader: Reader = getattr(module, func_name)
    return reader
