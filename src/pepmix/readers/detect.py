"""Detect the format of an input file from its header (``format: auto``).

Every reader module declares ``SIGNATURE``: for each of its formats, the column names a file of
that format always has. A file matches a format when its header contains all the signature's
columns; names are compared as :func:`pepmix.readers.msstats.canonical_name` does (case, spaces,
dots and underscores ignored), so R-mangled headers (``Protein.Name``) match too. When several
formats match, the most specific one wins: the one whose signature has the most columns (an OpenMS
MSstats CSV has the MSstats columns plus ``Reference``, so it is ``openms``). Equally specific
matches are an error naming them.

Special cases:

- mzTab is recognised by its first non-empty line starting with ``MTD`` (or the ``.mzTab`` file
  name) and read by the ``openms`` reader;
- Progenesis QI exports have a three-row header: the signature is looked for in the first rows
  (the column names are in the third), as the reader does;
- ``generic_wide`` has no fixed column names and is never detected: name it explicitly.

An explicit ``format:`` always wins; detection runs only for ``format: auto``.
"""

from __future__ import annotations

import csv
import importlib
import logging
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Final

from pepmix.errors import InputFormatError
from pepmix.readers import spectronaut
from pepmix.readers._common import _open_text, alias
from pepmix.readers._support import is_parquet, table_header
from pepmix.readers.msstats import canonical_name
from pepmix.readers.openms import is_mztab

log = logging.getLogger(__name__)

AUTO: Final = "auto"
MODULES: Final = (
    "generic",
    "msstats",
    "maxquant",
    "diann",
    "fragpipe",
    "spectronaut",
    "skyline",
    "openms",
    "proteome_discoverer",
    "progenesis",
    "sage",
    "alphadia",
)
"""Reader modules whose ``SIGNATURE`` takes part in detection."""

EXTRA_SIGNATURES: Final[dict[str, tuple[tuple[str, ...], ...]]] = {
    # the PSM export, which the reader recognises by these columns (SIGNATURE describes the
    # PeptideGroups export)
    "proteome_discoverer": (("Sequence", "Modifications", "Precursor Area", "Spectrum File"),),
    # compact Spectronaut templates without R.FileName and EG.PrecursorId
    "spectronaut": spectronaut.COMPACT_SIGNATURES,
    # MSstatsConvert output for Skyline, Proteome Discoverer and Progenesis
    "msstats": (
        (
            "ProteinName",
            "PeptideModifiedSequence",
            "PrecursorCharge",
            "FragmentIon",
            "ProductCharge",
            "IsotopeLabelType",
            "Run",
            "Intensity",
        ),
    ),
}
"""Further layouts of a format that its module's ``SIGNATURE`` does not describe."""

MULTI_ROW_HEADER: Final = frozenset({"progenesis"})
"""Formats whose column names may sit in a later header row (Progenesis: the third)."""

_HEADER_ROWS: Final = 6


@cache
def signatures() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """All signatures as ``(format, columns)`` pairs: the modules' and :data:`EXTRA_SIGNATURES`."""
    found: list[tuple[str, tuple[str, ...]]] = []
    for name in MODULES:
        module = importlib.import_module(f"pepmix.readers.{name}")
        signature: Mapping[str, tuple[str, ...]] = getattr(module, "SIGNATURE", {})
        found += signature.items()
    found += [(fmt, cols) for fmt, layouts in EXTRA_SIGNATURES.items() for cols in layouts]
    return tuple(found)


def matching_formats(header_rows: list[list[str]]) -> list[str]:
    """Formats whose signature is contained in the header, most specific first.

    Parameters
    ----------
    header_rows : list of list of str
        The file's first rows, split into cells; the first row is the header of every format
        except those in :data:`MULTI_ROW_HEADER`, which may use any of them.

    Returns
    -------
    list of str
        Matching format names, by decreasing number of signature columns.
    """
    return [fmt for fmt, _ in _matches(header_rows)]


def _matches(header_rows: list[list[str]]) -> list[tuple[str, int]]:
    """``(format, number of signature columns)`` of the matching formats, most specific first."""
    if not header_rows:
        return []
    first = _keys(header_rows[0])
    any_row = set().union(*(_keys(row) for row in header_rows))
    best: dict[str, int] = {}
    for fmt, columns in signatures():
        keys = any_row if fmt in MULTI_ROW_HEADER else first
        if all(canonical_name(c) in keys for c in columns):
            best[fmt] = max(best.get(fmt, 0), len(columns))
    return sorted(best.items(), key=lambda item: -item[1])


def detect_format(path: str | Path) -> str:
    """Return the format of an input file (see module docstring).

    Parameters
    ----------
    path : str or pathlib.Path
        Text (optionally gzipped), Parquet or mzTab file.

    Raises
    ------
    InputFormatError
        If the file cannot be read, no format matches, or two equally specific formats match.
    """
    p = Path(path)
    if not p.exists():
        raise InputFormatError(f"{p}: file not found")
    if not is_parquet(p) and is_mztab(p):
        log.info("%s: detected format openms (mzTab)", p)
        return "openms"
    rows = _header_rows(p)
    matches = _matches(rows)
    if not matches:
        shown = ", ".join(rows[0][:15]) + (" ..." if len(rows[0]) > 15 else "")
        raise InputFormatError(
            f"{p}: cannot detect the format from the header (columns: {shown}); set the "
            "input's format explicitly"
        )
    best = sorted(fmt for fmt, size in matches if size == matches[0][1])
    if len(best) > 1:
        raise InputFormatError(
            f"{p}: the header fits several formats ({', '.join(best)}); set the input's "
            "format explicitly"
        )
    log.info("%s: detected format %s", p, best[0])
    return best[0]


def _keys(row: Iterable[str]) -> set[str]:
    return {canonical_name(cell) for cell in row if str(cell).strip()}


def _header_rows(path: Path) -> list[list[str]]:
    """The first rows of a table, split into cells (Parquet: its column names only)."""
    columns, separator = table_header(path)
    if separator is None:
        return [columns]
    lines: list[str] = []
    try:
        with _open_text(path) as handle:
            for line in handle:
                lines.append(str(line).rstrip("\r\n"))
                if len(lines) >= _HEADER_ROWS:
                    break
    except (UnicodeDecodeError, OSError, EOFError) as exc:
        raise InputFormatError(f"{path}: cannot read the header ({exc})") from None
    return [[alias(cell.strip()) for cell in row] for row in csv.reader(lines, delimiter=separator)]
