"""Plot stage entry points: read stage outputs, draw, write (called by the ``plot_*`` rules).

Each function draws one family of figures and writes ``<out_dir>/<name>.<format>`` for PNG (always,
for the report) and every extra format asked for (``pdf``, ``svg``). This module deliberately does
not import :mod:`pepmix.stages` (which pulls in the model and SciPy): plot jobs start fast.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pepmix.errors import SampleSheetError
from pepmix.plots.names import CONTRAST_FIGURES
from pepmix.plots.style import Runs, figure_paths

log = logging.getLogger(__name__)

PathLike = str | Path


@dataclass(frozen=True)
class ContrastInfo:
    """A contrast as the plots need it.

    Attributes
    ----------
    name : str
        Name in the tables, e.g. ``"fmol50 - fmol25"``.
    slug : str
        File-name-safe name (directory of its figures).
    numerator, denominator : str
        Condition levels.
    """

    name: str
    slug: str
    numerator: str
    denominator: str

    @classmethod
    def from_mapping(cls, item: Mapping[str, str]) -> ContrastInfo:
        """From a mapping with keys ``name``, ``slug``, ``numerator``, ``denominator``."""
        return cls(
            str(item["name"]), str(item["slug"]), str(item["numerator"]), str(item["denominator"])
        )


def read_runs(samples: PathLike, present: Sequence[str] | None = None) -> Runs:
    """Read the resolved sample sheet (``results/ingest/samples.tsv``) into a :class:`Runs`."""
    sheet = pd.read_csv(samples, sep="\t", dtype=str, keep_default_na=False, na_values=["NA"])
    if sheet.empty:
        raise SampleSheetError(f"{samples}: empty sample sheet")
    return Runs.from_sheet(sheet, present)


def read_identifiers(
    path: PathLike, columns: Sequence[str], identifiers: Sequence[str]
) -> pd.DataFrame:
    """Read ``columns`` of a Parquet table with the ``identifiers`` columns as categoricals.

    Columns stored as Parquet dictionaries arrive as categoricals already; plain string
    columns are converted once here, so that every figure works on their integer codes.
    """
    frame = pd.read_parquet(path, columns=list(columns))
    for name in identifiers:
        if not isinstance(frame[name].dtype, pd.CategoricalDtype):
            frame[name] = frame[name].astype("category")
    return frame


def distinct_values(path: PathLike, column: str) -> list[str]:
    """The distinct values of one column of a Parquet table (read alone, deduplicated by Arrow)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    values = pc.unique(pq.read_table(path, columns=[column])[column])
    return [str(v) for v in values.to_pylist() if v is not None]


def read_proteins(
    path: PathLike, proteins: Sequence[str], columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """The rows of ``proteins`` of a Parquet table with a ``protein`` column (filtered on read).

    ``columns`` that the table does not have are left out. Identifier columns keep only the
    categories that occur.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    wanted = None if columns is None else [c for c in columns if c in schema.names]
    if proteins:
        table = pq.read_table(path, columns=wanted, filters=[("protein", "in", list(proteins))])
    else:  # an empty filter set has no type to compare with
        fields = schema if wanted is None else [schema.field(c) for c in wanted]
        table = pa.Table.from_pylist([], schema=pa.schema(fields))
    frame: pd.DataFrame = table.to_pandas()
    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.CategoricalDtype):
            frame[name] = frame[name].cat.remove_unused_categories()
    return frame


def qc_feature_plots(
    features: PathLike, samples: PathLike, out_dir: PathLike, formats: Sequence[str] = ()
) -> list[Path]:
    """QC figures of the feature intensities: distributions, features per run, missingness.

    The feature table (8 M rows for a 200-run DIA cohort) is read once and turned into integer
    codes (:class:`~pepmix.plots.aggregate.FeatureCells`) that all three figures share. Needs
    only the normalised features, so the workflow can draw these while the models are fitted.

    Parameters
    ----------
    features : str or pathlib.Path
        ``results/normalize/features.parquet``.
    samples : str or pathlib.Path
        ``results/ingest/samples.tsv``.
    out_dir : str or pathlib.Path
        Directory of the figures.
    formats : sequence of str, default ()
        Extra formats besides PNG.

    Returns
    -------
    list of pathlib.Path
        Files written.
    """
    from pepmix.plots import qc
    from pepmix.plots.aggregate import FeatureCells, present_labels

    columns = ["protein", "feature", "run", "log2_raw", "y"]
    table = read_identifiers(features, columns, ["run"])
    runs = read_runs(samples, present_labels(table["run"]))
    cells = FeatureCells.from_table(table, runs.order)
    del table
    written: list[Path] = []
    for name, draw in (
        ("intensity_distributions", qc.intensity_distributions),
        ("features_per_run", qc.features_per_run),
        ("missingness", qc.missingness),
    ):
        paths = figure_paths(Path(out_dir) / name, formats)
        draw(cells, runs, paths)
        written += paths
    return written


def qc_abundance_plots(
    samples: PathLike, abundance: PathLike, out_dir: PathLike, formats: Sequence[str] = ()
) -> list[Path]:
    """QC figures of the protein abundances: PCA, run-to-run correlation, CV per condition.

    Parameters
    ----------
    samples : str or pathlib.Path
        ``results/ingest/samples.tsv``.
    abundance : str or pathlib.Path
        ``results/tables/protein_abundance.parquet`` (long: ``protein``, ``run``, ``abundance``).
    out_dir : str or pathlib.Path
        Directory of the figures.
    formats : sequence of str, default ()
        Extra formats besides PNG.

    Returns
    -------
    list of pathlib.Path
        Files written.
    """
    from pepmix.plots import abundance as ab
    from pepmix.plots.aggregate import present_labels

    prot = read_identifiers(abundance, ["protein", "run", "abundance"], ["protein", "run"])
    runs = read_runs(samples, present_labels(prot["run"]))
    written: list[Path] = []
    for name, draw in (("pca", ab.pca), ("correlation", ab.correlation), ("cv", ab.cv)):
        paths = figure_paths(Path(out_dir) / name, formats)
        draw(prot, runs, paths)
        written += paths
    return written


def condition_means(fixed: pd.DataFrame, conditions: Sequence[str]) -> pd.Series:
    """Mean of the fitted condition means (``condition[<c>]`` terms) of each protein."""
    terms = [f"condition[{c}]" for c in conditions]
    rows = fixed.loc[fixed["term"].astype(str).isin(terms)]
    means = rows.astype({"protein": str}).groupby("protein")["estimate"].mean()
    complete = rows.groupby(rows["protein"].astype(str))["estimate"].count() == len(terms)
    return means.loc[complete.reindex(means.index, fill_value=False)]


def differential_plots(
    table: PathLike,
    fixed: PathLike,
    samples: PathLike,
    contrasts: Sequence[ContrastInfo],
    out_dir: PathLike,
    formats: Sequence[str] = (),
    fdr: float = 0.05,
    lfc_threshold: float = 0.0,
) -> list[Path]:
    """Results family: volcano, MA plot and p-value histogram of every contrast.

    Writes ``<out_dir>/<contrast slug>/{volcano,ma,pvalue_hist}.<format>``.

    Parameters
    ----------
    table : str or pathlib.Path
        ``results/tables/differential_abundance.parquet``.
    fixed : str or pathlib.Path
        ``results/model/fixed_effects.parquet`` (condition means for the MA plot).
    samples : str or pathlib.Path
        ``results/ingest/samples.tsv`` (checked; the figures colour by direction).
    contrasts : sequence of ContrastInfo
        Contrasts to draw.
    out_dir : str or pathlib.Path
        Root directory of the per-contrast figures.
    formats : sequence of str, default ()
        Extra formats besides PNG.
    fdr : float, default 0.05
        Adjusted p-value threshold.
    lfc_threshold : float, default 0.0
        Fold-change threshold of the tests (log2).

    Returns
    -------
    list of pathlib.Path
        Files written.
    """
    from pepmix.plots import results

    da = pd.read_parquet(table)
    fx = pd.read_parquet(fixed, columns=["protein", "term", "estimate"])
    read_runs(samples)  # the sheet is checked here as in every plot job
    written: list[Path] = []
    for c in contrasts:
        out = Path(out_dir) / c.slug
        paths = {name: figure_paths(out / name, formats) for name in CONTRAST_FIGURES}
        results.volcano(
            da, c.name, c.numerator, c.denominator, paths["volcano"], fdr, lfc_threshold
        )
        means = condition_means(fx, [c.numerator, c.denominator])
        results.ma_plot(
            da, means, c.name, c.numerator, c.denominator, paths["ma"], fdr, lfc_threshold
        )
        results.pvalue_histogram(da, c.name, paths["pvalue_hist"], fdr)
        for items in paths.values():
            written.extend(items)
    return written


def model_plots(
    proteins: PathLike,
    table: PathLike,
    features: PathLike,
    samples: PathLike,
    abundance: PathLike,
    fixed: PathLike,
    blups: PathLike,
    contrasts: Sequence[ContrastInfo],
    out_dir: PathLike,
    formats: Sequence[str] = (),
    top_n: int = 20,
    grid_n: int = 2,
    variance: PathLike | None = None,
    fdr: float = 0.05,
) -> list[Path]:
    """Model family: variance components, and profile plots of the top proteins per contrast.

    Writes ``<out_dir>/model/variance_components.<format>``, with ``variance``
    ``<out_dir>/model/variance_partition.<format>`` (:mod:`pepmix.plots.partition`), and per
    contrast
    ``<out_dir>/contrasts/<slug>/profiles.pdf`` (``top_n`` pages) and ``profiles.png`` (the
    first ``grid_n`` on one figure).

    Parameters
    ----------
    proteins : str or pathlib.Path
        ``results/model/proteins.parquet``.
    table : str or pathlib.Path
        ``results/tables/differential_abundance.parquet``.
    features : str or pathlib.Path
        ``results/normalize/features.parquet``.
    samples : str or pathlib.Path
        ``results/ingest/samples.tsv``.
    abundance : str or pathlib.Path
        ``results/tables/protein_abundance.parquet``.
    fixed, blups : str or pathlib.Path
        ``results/model/fixed_effects.parquet``, ``results/model/blups.parquet``.
    contrasts : sequence of ContrastInfo
        Contrasts.
    out_dir : str or pathlib.Path
        ``results/plots``.
    formats : sequence of str, default ()
        Extra formats of the variance component figure.
    top_n : int, default 20
        Proteins per contrast in the PDF (most significant first), and proteins of the variance
        partition figure.
    grid_n : int, default 2
        Proteins per contrast in the PNG (the report's figure; two keep the demo report under
        4 MB, the PDF has all ``top_n``).
    variance : str or pathlib.Path, optional
        ``results/tables/variance_components.tsv``; default None: no variance partition figure.
    fdr : float, default 0.05
        Threshold of the variance tests' adjusted p-values in the partition figure.

    Returns
    -------
    list of pathlib.Path
        Files written.
    """
    from pepmix.plots.model import variance_components
    from pepmix.plots.profile_data import build_profiles
    from pepmix.plots.profiles import write_profile_files
    from pepmix.plots.results import contrast_rows, top_proteins

    out = Path(out_dir)
    model = pd.read_parquet(proteins)
    written = figure_paths(out / "model" / "variance_components", formats)
    variance_components(model, written)
    da = pd.read_parquet(table)
    if variance is not None:
        from pepmix.plots.partition import variance_partition

        vc = pd.read_csv(variance, sep="\t", keep_default_na=False, na_values=["NA"])
        paths = figure_paths(out / "model" / "variance_partition", formats)
        variance_partition(vc, da, paths, n=top_n, fdr=fdr)
        written += paths
    pages = {
        c.slug: [str(p) for p in top_proteins(contrast_rows(da, c.name), top_n)["protein"]]
        for c in contrasts
    }
    unique = list(dict.fromkeys(p for proteins in pages.values() for p in proteins))
    # only the rows of the profiled proteins (tens of 10,000), filtered while reading
    feats = read_proteins(features, unique, ["protein", "feature", "run", "y"])
    runs = read_runs(samples, distinct_values(features, "run"))
    ab = read_proteins(abundance, unique, ["protein", "run", "abundance", "se"])
    fx = pd.read_parquet(fixed)
    fx = fx.loc[fx["term"].astype(str).str.startswith("condition[")]
    bl = read_proteins(blups, unique)
    profiles = build_profiles(unique, feats, ab, fx, bl, model, da)
    outputs = []
    for c in contrasts:
        target = out / "contrasts" / c.slug
        outputs.append((pages[c.slug], target / "profiles.pdf", target / "profiles.png"))
        written += [target / "profiles.pdf", target / "profiles.png"]
    write_profile_files(profiles, outputs, runs, png_count=grid_n)
    return written


def status_plot(
    table: PathLike,
    samples: PathLike,
    contrasts: Sequence[ContrastInfo],
    out_dir: PathLike,
    formats: Sequence[str] = (),
    fdr: float = 0.05,
    lfc_threshold: float = 0.0,
) -> list[Path]:
    """Status family: proteins per status and significant proteins, per contrast.

    Writes ``<out_dir>/status.<format>``.

    Parameters
    ----------
    table : str or pathlib.Path
        ``results/tables/differential_abundance.parquet``.
    samples : str or pathlib.Path
        ``results/ingest/samples.tsv`` (checked; the bars are coloured by direction).
    contrasts : sequence of ContrastInfo
        Contrasts, in display order.
    out_dir : str or pathlib.Path
        ``results/plots``.
    formats : sequence of str, default ()
        Extra formats besides PNG.
    fdr : float, default 0.05
    lfc_threshold : float, default 0.0

    Returns
    -------
    list of pathlib.Path
        Files written.
    """
    from pepmix.plots.status import status_summary

    da = pd.read_parquet(table)
    read_runs(samples)  # the sheet is checked here as in every plot job
    paths = figure_paths(Path(out_dir) / "status", formats)
    status_summary(
        da,
        [(c.name, c.numerator, c.denominator) for c in contrasts],
        paths,
        fdr,
        lfc_threshold,
    )
    return paths


def _usage_headline(rec: Mapping[Hashable, object]) -> str:
    """Headline line of a usage profile: adjusted p, usage SD and the deviating cells, their
    features cut as in the profile's effect panel (``feature:condition (+blup)``)."""
    from pepmix.plots.style import middle_cut

    cells = []
    raw = rec.get("top_cells")
    for item in str(raw).split("; ") if isinstance(raw, str) and raw else []:
        cell, _, blup = item.rpartition(" (")
        feature, _, condition = cell.rpartition(":")
        cells.append(f"{middle_cut(feature)}:{condition} ({blup}")
    var = float(str(rec["var_usage"]))
    return (
        f"Peptide usage: adj. p {float(str(rec['adj_pvalue'])):.2g}, SD {np.sqrt(var):.2f}; "
        f"most deviating: {'; '.join(cells) or '-'}"
    )


def usage_plots(
    usage: PathLike,
    proteins: PathLike,
    table: PathLike,
    features: PathLike,
    samples: PathLike,
    abundance: PathLike,
    fixed: PathLike,
    blups: PathLike,
    out_pdf: PathLike,
    out_png: PathLike,
    top_n: int = 20,
    fdr: float = 0.05,
) -> list[Path]:
    """Profile plots of the proteins flagged by the peptide-usage test (config ``peptide_usage``).

    The flagged proteins (``adj_pvalue < fdr`` in ``results/tables/peptide_usage.tsv``, at most
    ``top_n``, smallest p first) get one profile page each in ``out_pdf`` (the model's profile
    plot, :mod:`pepmix.plots.profiles`), whose headline gives the usage test and names the most
    deviating feature x condition cells (the ``top_cells`` column, largest usage BLUP first);
    ``out_png`` is the first page, for the report (one page: the figure is in every default
    report, whose size is bounded).
    """
    from dataclasses import replace

    from pepmix.plots.profile_data import build_profiles
    from pepmix.plots.profiles import write_profile_files

    tab = pd.read_csv(usage, sep="\t", keep_default_na=False, na_values=["NA", ""])
    tab["protein"] = tab["protein"].astype(str)
    hits = tab.loc[tab["adj_pvalue"] < fdr].sort_values("pvalue", kind="stable")
    log.info("peptide usage: %d proteins at adj. p < %g, %d drawn", len(hits), fdr, top_n)
    hits = hits.head(top_n)
    flagged = list(hits["protein"])
    feats = read_proteins(features, flagged, ["protein", "feature", "run", "y"])
    runs = read_runs(samples, distinct_values(features, "run"))
    ab = read_proteins(abundance, flagged, ["protein", "run", "abundance", "se"])
    fx = pd.read_parquet(fixed)
    fx = fx.loc[fx["term"].astype(str).str.startswith("condition[")]
    bl = read_proteins(blups, flagged)
    model = pd.read_parquet(proteins)
    profiles = build_profiles(flagged, feats, ab, fx, bl, model, pd.read_parquet(table))
    for rec in hits.to_dict("records"):
        prof = profiles[str(rec["protein"])]
        head = _usage_headline(rec)
        raw = rec.get("top_cells")
        cells = str(raw).split("; ") if isinstance(raw, str) and raw else []
        marked = tuple(dict.fromkeys(c.rpartition(" (")[0].rpartition(":")[0] for c in cells))
        title = f"{head}\n{prof.title}".rstrip()
        profiles[str(rec["protein"])] = replace(prof, title=title, marked=marked)
    none = f"No protein flagged by the peptide-usage test (adj. p < {fdr:g})."
    write_profile_files(
        profiles, [(flagged, out_pdf, out_png)], runs, png_count=1, png_columns=1, empty_text=none
    )
    return [Path(out_pdf), Path(out_png)]
