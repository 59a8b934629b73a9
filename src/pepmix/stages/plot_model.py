"""Rule ``plot_model``: variance components, variance partition and per-protein profile plots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pepmix.plots.inputs import (
    ContrastInfo,
    PathLike,
    distinct_values,
    read_proteins,
    read_runs,
)
from pepmix.plots.style import figure_paths


def run(
    *,
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
    contrast ``<out_dir>/contrasts/<slug>/profiles.png`` (the first ``grid_n`` profiles on one
    figure) and, when ``pdf`` is one of ``formats``, ``profiles.pdf`` (``top_n`` pages).

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
        Extra formats of the variance component figures; with ``pdf`` also the profile PDFs
        (their ``top_n`` pages are most of the job's time, so they are drawn only when asked).
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
    # without the PDFs only the grid's proteins are drawn (and read)
    with_pdf = "pdf" in [str(f).lower() for f in formats]
    pages = {
        c.slug: [
            str(p)
            for p in top_proteins(
                contrast_rows(da, c.name), top_n if with_pdf else min(top_n, grid_n)
            )["protein"]
        ]
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
    outputs: list[tuple[list[str], Path | None, Path]] = []
    for c in contrasts:
        target = out / "contrasts" / c.slug
        pdf = target / "profiles.pdf" if with_pdf else None
        outputs.append((pages[c.slug], pdf, target / "profiles.png"))
        written += [*([pdf] if pdf else []), target / "profiles.png"]
    write_profile_files(profiles, outputs, runs, png_count=grid_n)
    return written
