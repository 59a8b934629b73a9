"""Plot stage entry points: read stage outputs, draw, write (called by the ``plot_*`` rules).

Each function draws one family of figures and writes ``<out_dir>/<name>.<format>`` for PNG (always,
for the report) and every extra format asked for (``pdf``, ``svg``). This module deliberately does
not import :mod:`pepmix.stages` (which pulls in the model and SciPy): plot jobs start fast.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

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


def qc_plots(
    features: PathLike,
    samples: PathLike,
    abundance: PathLike,
    out_dir: PathLike,
    formats: Sequence[str] = (),
) -> list[Path]:
    """QC family: intensity distributions, features per run, missingness, PCA, correlation, CV.

    Parameters
    ----------
    features : str or pathlib.Path
        ``results/normalize/features.parquet``.
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
    from pepmix.plots import qc

    table = pd.read_parquet(features, columns=["protein", "feature", "run", "log2_raw", "y"])
    runs = read_runs(samples, table["run"].astype(str).unique().tolist())
    prot = pd.read_parquet(abundance, columns=["protein", "run", "abundance"])
    out = Path(out_dir)
    written: list[Path] = []

    def paths(name: str) -> list[Path]:
        items = figure_paths(out / name, formats)
        written.extend(items)
        return items

    qc.intensity_distributions(table, runs, paths("intensity_distributions"))
    qc.features_per_run(table, runs, paths("features_per_run"))
    qc.missingness(table, runs, paths("missingness"))
    ab.pca(prot, runs, paths("pca"))
    ab.correlation(prot, runs, paths("correlation"))
    ab.cv(prot, runs, paths("cv"))
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
        ``results/ingest/samples.tsv`` (condition colours).
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
    runs = read_runs(samples)
    written: list[Path] = []
    for c in contrasts:
        out = Path(out_dir) / c.slug
        paths = {name: figure_paths(out / name, formats) for name in CONTRAST_FIGURES}
        results.volcano(
            da,
            c.name,
            c.numerator,
            c.denominator,
            runs.colors,
            paths["volcano"],
            fdr,
            lfc_threshold,
        )
        means = condition_means(fx, [c.numerator, c.denominator])
        results.ma_plot(
            da,
            means,
            c.name,
            c.numerator,
            c.denominator,
            runs.colors,
            paths["ma"],
            fdr,
            lfc_threshold,
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
    grid_n: int = 4,
) -> list[Path]:
    """Model family: variance components, and profile plots of the top proteins per contrast.

    Writes ``<out_dir>/model/variance_components.<format>``, and per contrast
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
        Proteins per contrast in the PDF (most significant first).
    grid_n : int, default 4
        Proteins per contrast in the PNG.

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
    feats = pd.read_parquet(features, columns=["protein", "feature", "run", "y"])
    runs = read_runs(samples, feats["run"].astype(str).unique().tolist())
    ab_cols = ["protein", "run", "abundance", "se"]
    ab = pd.read_parquet(abundance)
    ab = ab.loc[:, [c for c in ab_cols if c in ab.columns]]
    fx = pd.read_parquet(fixed)
    fx = fx.loc[fx["term"].astype(str).str.startswith("condition[")]
    bl = pd.read_parquet(blups)
    pages = {
        c.slug: [str(p) for p in top_proteins(contrast_rows(da, c.name), top_n)["protein"]]
        for c in contrasts
    }
    unique = list(dict.fromkeys(p for proteins in pages.values() for p in proteins))
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
        ``results/ingest/samples.tsv`` (condition colours).
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
    runs = read_runs(samples)
    paths = figure_paths(Path(out_dir) / "status", formats)
    status_summary(
        da,
        [(c.name, c.numerator, c.denominator) for c in contrasts],
        runs.colors,
        paths,
        fdr,
        lfc_threshold,
    )
    return paths
