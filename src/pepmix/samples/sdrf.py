"""SDRF-Proteomics sample sheets.

An SDRF file (tab-separated) has one row per MS data file x label. :func:`read_sdrf_design` turns a
label-free SDRF into the runs of a sample sheet (:mod:`pepmix.samples`):

- ``run``: ``comment[data file]`` without directories and MS extensions
  (:func:`~pepmix.readers._common.run_name`: ``03COVID.raw`` -> ``03COVID``), matching the run
  names the readers produce.
- ``condition``: a ``factor value[...]`` column. By default the only one; with several, the
  ``condition_column`` argument must name one (the full header ``factor value[disease]`` or just
  ``disease``), otherwise a :class:`~pepmix.errors.SampleSheetError` lists them. Any other column
  can be named in full (e.g. ``characteristics[disease]``). Cells ``not available`` /
  ``not applicable`` / empty are errors.
- ``bioreplicate``: ``<source name>|<characteristics[biological replicate]>``. Both are combined
  because in practice the replicate number restarts in every condition (1, 2, 3 under A and again
  under B) and the source name is not always shared by all files of one biological sample; the
  pair identifies the biological sample in either case. When the replicate column is missing or
  ``not available``, the source name alone is used. ``bioreplicate_column`` names another column
  to use alone.
- ``batch``: the column named by ``batch_column`` (same name resolution), otherwise none.
- Kept as further columns: ``sample`` (source name) and ``technical_replicate`` (``comment[technical
  replicate]``) when present.

Fractions: a fractionated sample has one SDRF row per fraction file. Rows that share ``source
name`` and ``comment[technical replicate]`` but have different ``comment[fraction identifier]``
values are the fractions of one run, named after the source name (``<source name>_<technical
replicate>`` when the source has several technical replicates). :func:`read_sdrf_design` returns
the data files of each such run (:class:`~pepmix.samples.design.SampleDesign`); the merge step maps
the files to their run and sums the fractions. Rows of one source and technical replicate that all
have the same fraction identifier (or none) are separate runs named after their data files, as
are all rows when the SDRF has no fraction column. A fraction identifier repeated within one
source and technical replicate next to other fractions is an error: the technical replicates
must then be numbered.

Labelled (multiplexed) SDRFs, where one data file carries several ``comment[label]`` values, are
rejected: pepmix is label-free.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import pandas as pd

from pepmix.errors import SampleSheetError
from pepmix.readers._common import check_text_file, run_name
from pepmix.samples.design import SampleDesign, validate_design

log = logging.getLogger(__name__)

DATA_FILE: Final = "comment[data file]"
SOURCE_NAME: Final = "source name"
BIOREPLICATE: Final = "characteristics[biological replicate]"
FRACTION: Final = "comment[fraction identifier]"
TECHNICAL_REPLICATE: Final = "comment[technical replicate]"
LABEL: Final = "comment[label]"
MISSING_VALUES: Final = frozenset({"", "not available", "not applicable", "na", "nan"})
_PREFIXES: Final = ("factor value", "characteristics", "comment")


def read_sdrf_design(
    path: str | Path,
    condition_column: str | None = None,
    bioreplicate_column: str | None = None,
    batch_column: str | None = None,
) -> SampleDesign:
    """Read an SDRF file into a sample design (see module docstring).

    Use :func:`pepmix.samples.load_design`, which detects the layout; this is its SDRF step.

    Parameters
    ----------
    path : str or pathlib.Path
        Tab-separated SDRF file.
    condition_column : str, optional
        Column giving the condition: a full header or the name inside ``factor value[...]``.
        Default: the only ``factor value[...]`` column.
    bioreplicate_column : str, optional
        Column giving the biological sample. Default: source name combined with
        ``characteristics[biological replicate]``.
    batch_column : str, optional
        Column giving the MS batch. Default: no batch.

    Returns
    -------
    SampleDesign
        ``runs`` as for a TSV sheet: ``run``, ``condition``, ``bioreplicate``, ``batch``, then
        ``sample`` and, when present, ``technical_replicate``; ``files`` (data file, run,
        fraction) when some run is made of several fraction files, otherwise None.

    Raises
    ------
    SampleSheetError
        On a missing file or column, an ambiguous or empty condition, a multiplexed design, or
        repeated fraction identifiers of one source name and technical replicate.
    """
    p = Path(path)
    source = str(p)
    raw = _read_sdrf_table(p)
    data_file = _find(raw.columns, DATA_FILE)
    if data_file is None:
        raise SampleSheetError(
            f"{p}: missing column {DATA_FILE!r}; columns present: {_shown(raw.columns)}"
        )
    _check_label_free(raw, data_file, source)
    condition = _condition_column(raw.columns, condition_column, source)
    _check_condition_values(raw[condition], condition, source)
    sheet = _run_sheet(raw, data_file, condition, bioreplicate_column, batch_column, source)
    _group_fractions(sheet, raw, source)
    design = validate_design(sheet, source)
    log.info(
        "%s: SDRF with %d data file(s) in %d run(s), condition from %r (%d level(s))",
        p,
        len(sheet),
        len(design.runs),
        condition,
        design.runs["condition"].nunique(),
    )
    return design


def _read_sdrf_table(path: Path) -> pd.DataFrame:
    """Parse an SDRF file: every value a string, headers and values without surrounding blanks."""
    if not path.exists():
        raise SampleSheetError(f"{path}: SDRF file not found")
    check_text_file(path, SampleSheetError)
    try:
        raw = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise SampleSheetError(f"{path}: cannot parse as a tab-separated SDRF ({msg})") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    for col in raw.columns:
        raw[col] = raw[col].astype(str).str.strip()
    return raw


def _check_condition_values(values: pd.Series, condition: str, source: str) -> None:
    """Reject a condition cell that is empty or ``not available`` / ``not applicable``."""
    missing = values.str.lower().isin(MISSING_VALUES)
    if missing.any():
        first = int(missing.to_numpy().nonzero()[0][0])
        raise SampleSheetError(
            f"{source}: line {first + 2}: condition column {condition!r} is "
            f"{values.iloc[first]!r} ({int(missing.sum())} row(s) in all)"
        )


def _run_sheet(
    raw: pd.DataFrame,
    data_file: str,
    condition: str,
    bioreplicate_column: str | None,
    batch_column: str | None,
    source: str,
) -> pd.DataFrame:
    """One sheet row per SDRF row, one run per data file: the columns of a TSV sheet."""
    sheet = pd.DataFrame(
        {
            "run": raw[data_file].map(lambda v: run_name(v) if v else ""),
            "condition": raw[condition],
        }
    )
    sample_col = _find(raw.columns, SOURCE_NAME)
    if bioreplicate_column is not None:
        sheet["bioreplicate"] = raw[_resolve(raw.columns, bioreplicate_column, source)]
    else:
        sheet["bioreplicate"] = _default_bioreplicate(raw, sample_col)
    if batch_column is not None:
        sheet["batch"] = raw[_resolve(raw.columns, batch_column, source)]
    sheet["sample"] = raw[sample_col] if sample_col is not None else ""
    tech = _find(raw.columns, TECHNICAL_REPLICATE)
    if tech is not None:
        sheet["technical_replicate"] = raw[tech]
    return sheet


def _group_fractions(sheet: pd.DataFrame, raw: pd.DataFrame, source: str) -> None:
    """Make the fraction files of one source and technical replicate one run, in place.

    When some run is made of several files, the data files move to ``file`` (with their
    ``fraction``) and ``run`` becomes the run of each file (:func:`_fraction_runs`); otherwise
    every data file stays a run of its own.
    """
    fraction = _find(raw.columns, FRACTION)
    sample_col = _find(raw.columns, SOURCE_NAME)
    if fraction is None or sample_col is None:
        return
    tech = _find(raw.columns, TECHNICAL_REPLICATE)
    runs = _fraction_runs(
        files=sheet["run"],
        sources=raw[sample_col],
        fractions=raw[fraction],
        replicates=raw[tech] if tech is not None else None,
        source=source,
    )
    if runs.duplicated().any():  # some run is made of several fraction files
        sheet["file"] = sheet["run"]
        sheet["fraction"] = raw[fraction]
        sheet["run"] = runs


def is_sdrf_header(columns: Iterable[str]) -> bool:
    """True if a header looks like SDRF: a ``source name`` column or ``comment[data file]``."""
    lowered = [str(c).strip().lower() for c in columns]
    return any(c.startswith(SOURCE_NAME) for c in lowered) or DATA_FILE in lowered


def _shown(columns: Iterable[str]) -> str:
    cols = list(columns)
    return ", ".join(cols[:40]) + (" ..." if len(cols) > 40 else "")


def _find(columns: Iterable[str], name: str) -> str | None:
    wanted = _normal(name)
    for col in columns:
        if _normal(col) == wanted:
            return str(col)
    return None


def _normal(name: str) -> str:
    """Lower case, single blanks, no blanks inside or before the brackets."""
    text = str(name).strip().lower()
    text = text.replace(" [", "[").replace("[ ", "[").replace(" ]", "]")
    return " ".join(text.split())


def _resolve(columns: Iterable[str], name: str, source: str) -> str:
    columns = list(columns)
    found = _find(columns, name)
    if found is not None:
        return found
    for prefix in _PREFIXES:
        found = _find(columns, f"{prefix}[{name}]")
        if found is not None:
            return found
    raise SampleSheetError(
        f"{source}: no column {name!r} (also tried factor value[{name}], "
        f"characteristics[{name}], comment[{name}]); columns present: {_shown(columns)}"
    )


def _condition_column(columns: Iterable[str], name: str | None, source: str) -> str:
    columns = list(columns)
    if name is not None:
        return _resolve(columns, name, source)
    factors = [str(c) for c in columns if _normal(c).startswith("factor value[")]
    if len(factors) == 1:
        return factors[0]
    if not factors:
        raise SampleSheetError(
            f"{source}: no 'factor value[...]' column to take the condition from; name one "
            f"with condition_column (columns present: {_shown(columns)})"
        )
    raise SampleSheetError(
        f"{source}: several factor value columns ({', '.join(factors)}); choose the condition "
        "with condition_column"
    )


def _default_bioreplicate(raw: pd.DataFrame, sample_col: str | None) -> pd.Series:
    rep_col = _find(raw.columns, BIOREPLICATE)
    if sample_col is None and rep_col is None:
        return pd.Series([""] * len(raw), index=raw.index)
    if rep_col is None:
        return raw[sample_col] if sample_col is not None else pd.Series("", index=raw.index)
    rep = raw[rep_col]
    rep_missing = rep.str.lower().isin(MISSING_VALUES)
    if sample_col is None:
        return rep.where(~rep_missing, "")
    sample = raw[sample_col]
    combined = sample + "|" + rep
    return combined.where(~rep_missing, sample)


def _fraction_runs(
    files: pd.Series,
    sources: pd.Series,
    fractions: pd.Series,
    replicates: pd.Series | None,
    source: str,
) -> pd.Series:
    """Run of each SDRF row: its source name for fractions, its data file otherwise."""
    fraction = fractions.where(~fractions.str.lower().isin(MISSING_VALUES), "")
    replicate = (
        replicates.where(~replicates.str.lower().isin(MISSING_VALUES), "")
        if replicates is not None
        else pd.Series("", index=files.index)
    )
    runs = files.copy()
    groups = list(pd.DataFrame({"s": sources, "r": replicate}).groupby(["s", "r"], sort=False))
    fractionated = []
    for (src, rep), rows in groups:
        values = fraction[rows.index]
        if values[values != ""].nunique() <= 1:
            continue  # one fraction (or none given): every file is a run of its own
        repeated = values[values.duplicated() | (values == "")]
        if len(repeated):
            raise SampleSheetError(
                f"{source}: source name {src!r} (technical replicate {rep!r}) has fraction "
                f"identifier {repeated.iloc[0]!r} more than once or empty next to other "
                f"fractions; number the technical replicates in {TECHNICAL_REPLICATE!r}"
            )
        fractionated.append((str(src), str(rep), rows.index))
    n_replicates = pd.Series([src for src, _, _ in fractionated]).value_counts()
    for src, rep, index in fractionated:
        name = src if n_replicates[src] == 1 else f"{src}_{rep}"
        clash = runs.drop(index) == name
        if clash.any():
            raise SampleSheetError(
                f"{source}: the fractions of source name {src!r} make run {name!r}, which is "
                f"also the run of data file {files[clash].iloc[0]!r}; rename one of them"
            )
        runs[index] = name
    return runs


def _check_label_free(raw: pd.DataFrame, data_file: str, source: str) -> None:
    label = _find(raw.columns, LABEL)
    if label is None:
        return
    per_file = raw.groupby(data_file)[label].nunique()
    multiplexed = per_file[per_file > 1]
    if len(multiplexed):
        raise SampleSheetError(
            f"{source}: data file {multiplexed.index[0]!r} has {int(multiplexed.iloc[0])} labels "
            f"in {label!r}; multiplexed (labelled) designs are not supported, pepmix is label-free"
        )
