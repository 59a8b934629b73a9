"""Variance partition figure (pepmix.plots.partition): the bars are the table's shares.

The figure is read back from its artists: one bar per selected protein in every component's
bar container, the bar widths equal to the ``icc_<t>`` columns of ``variance_components.tsv``
as written and read back by the workflow, opaque exactly where the term's adjusted LRT p-value
is below the FDR.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer
from PIL import Image

from pepmix.io import write_tsv
from pepmix.model.variance_tests import variance_test_table
from pepmix.plots.inputs import ContrastInfo
from pepmix.plots.partition import (
    PALE_ALPHA,
    PARTITION_COLORS,
    partition_proteins,
    partition_shares,
    significant_components,
    variance_partition,
    variance_partition_figure,
)
from pepmix.stages import plot_model
from tests.unit.test_plots import CONTRAST, make_data

N_PROTEINS = 30


def _tables(seed: int = 4) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A variance table with tests (as rule variance_components writes it) and a differential
    table of two contrasts; a filtered and an unfitted protein, one protein never tested."""
    rng = np.random.default_rng(seed)
    proteins = [f"sp|Q{i:05d}|PR{i}_HUMAN" for i in range(N_PROTEINS)]
    var_sample = rng.gamma(0.5, 0.05, N_PROTEINS) * (rng.random(N_PROTEINS) > 0.3)
    frame = pd.DataFrame(
        {
            "protein": proteins,
            "var_feature": rng.gamma(1.0, 0.3, N_PROTEINS),
            "var_sample": var_sample,
            "var_residual": rng.gamma(2.0, 0.02, N_PROTEINS),
            "status": np.where(var_sample > 0, "ok", "boundary").astype(object),
            "lrt_feature": rng.gamma(1.0, 20.0, N_PROTEINS),
            "lrt_sample": np.where(var_sample > 0, rng.gamma(0.7, 6.0, N_PROTEINS), 0.0),
        }
    )
    frame.loc[3, "status"] = "too_few_observations"
    frame.loc[3, ["var_feature", "var_sample", "var_residual", "lrt_feature", "lrt_sample"]] = (
        np.nan
    )
    frame = variance_test_table(frame)
    filtered = pd.DataFrame({"protein": ["GONE"], "status": ["filtered"]})
    variance = pd.concat([frame, filtered], ignore_index=True)
    pvalue = rng.random(2 * N_PROTEINS) ** 3
    differential = pd.DataFrame(
        {
            "protein": proteins * 2,
            "contrast": ["B - A"] * N_PROTEINS + ["C - A"] * N_PROTEINS,
            "pvalue": pvalue,
            "adj_pvalue": np.minimum(1.0, pvalue * 4),
        }
    )
    differential.loc[5, "pvalue"] = np.nan  # protein 5: tested in the second contrast only
    differential.loc[5 + N_PROTEINS, ["pvalue", "adj_pvalue"]] = [1e-9, 1e-8]
    differential.loc[[7, 7 + N_PROTEINS], ["pvalue", "adj_pvalue"]] = np.nan  # never tested
    differential.loc[[3, 3 + N_PROTEINS], ["pvalue", "adj_pvalue"]] = [1e-12, 1e-11]
    return variance, differential


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The variance table after a round trip through ``write_tsv`` (6 significant digits)."""
    variance, differential = _tables()
    path = tmp_path_factory.mktemp("vc") / "variance_components.tsv"
    write_tsv(variance, path)
    read = pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["NA"])
    return read, differential


def test_selection_is_the_top_proteins_by_any_contrast(tables: tuple) -> None:
    variance, differential = tables
    shares = partition_shares(variance)
    # fitted proteins only: the unfitted (3) and the filtered protein have no shares
    assert len(shares) == N_PROTEINS - 1 and "sp|Q00003|PR3_HUMAN" not in shares.index
    chosen = partition_proteins(differential, list(shares.index), 10)
    best = (
        differential.dropna(subset=["pvalue"])
        .groupby("protein")["adj_pvalue"]
        .min()
        .drop("sp|Q00003|PR3_HUMAN")
        .sort_values(kind="mergesort")
    )
    assert chosen == list(best.index[:10])
    assert chosen[0] == "sp|Q00005|PR5_HUMAN"  # its second contrast counts
    everything = partition_proteins(differential, list(shares.index), 100)
    assert len(everything) == N_PROTEINS - 2 and "sp|Q00007|PR7_HUMAN" not in everything
    assert partition_proteins(differential, list(shares.index), 0) == []


@pytest.mark.parametrize("fdr", [0.05, 0.2])
def test_bars_are_the_tables_shares_and_significance(tables: tuple, fdr: float) -> None:
    variance, differential = tables
    shares = partition_shares(variance)
    chosen = partition_proteins(differential, list(shares.index), 12)
    significant = significant_components(variance, chosen, fdr)
    fig = variance_partition_figure(shares.loc[chosen], significant, fdr)
    ax = fig.axes[0]
    containers = {c.get_label(): c for c in ax.containers if isinstance(c, BarContainer)}
    assert list(containers) == ["feature", "sample", "residual"]
    rows = variance.set_index("protein").loc[chosen]
    total = rows[["var_feature", "var_sample", "var_residual"]].sum(axis=1).to_numpy()
    expected = {
        "feature": rows["icc_feature"].to_numpy(),
        "sample": rows["icc_sample"].to_numpy(),
        # written with 6 significant digits: the residual share from the written variances
        "residual": rows["var_residual"].to_numpy() / total,
    }
    left = np.zeros(len(chosen))
    for name, container in containers.items():
        patches = container.patches
        assert len(patches) == len(chosen)  # one bar per selected protein
        widths = np.array([p.get_width() for p in patches])
        # matplotlib stores a stacked bar's width as (left + width) - left: exact up to the
        # rounding of sums <= 1 (a few 1e-16)
        np.testing.assert_allclose(widths, expected[name], rtol=0, atol=1e-15)
        # stacked: each segment starts where the previous component ended (float sums)
        np.testing.assert_allclose([p.get_x() for p in patches], left, rtol=0, atol=1e-12)
        left = left + widths
        assert {p.get_facecolor()[:3] for p in patches} == {
            tuple(int(PARTITION_COLORS[name][i : i + 2], 16) / 255 for i in (1, 3, 5))
        }
        alphas = np.array([p.get_alpha() if p.get_alpha() is not None else 1.0 for p in patches])
        if name == "residual":
            assert (alphas == 1.0).all()
        else:
            sig = rows[f"adj_p_{name}"].to_numpy() < fdr
            np.testing.assert_array_equal(alphas, np.where(sig, 1.0, PALE_ALPHA))
    # the shares of a protein add up to one (the table's icc columns are exact to 6 digits)
    np.testing.assert_allclose(left, 1.0, rtol=0, atol=1e-5)
    # first protein on top
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "PR" + chosen[0].split("|PR")[1] and ax.get_ylim()[0] > ax.get_ylim()[1]
    both = significant.to_numpy()
    assert both.any() and not both.all()  # the test sees both cases


def test_without_variance_tests_the_shares_come_from_the_variances(tmp_path: Path) -> None:
    data = make_data()
    variance = data["proteins"]  # no lrt_/icc_ columns: variance tests off
    fig_proteins = variance_partition(variance, data["table"], tmp_path / "p.png", n=5)
    assert len(fig_proteins) == 5
    shares = partition_shares(variance)
    var = variance.set_index("protein")[["var_feature", "var_sample", "var_residual"]]
    expected = var.div(var.sum(axis=1), axis=0).loc[fig_proteins]
    np.testing.assert_allclose(shares.loc[fig_proteins].to_numpy(), expected.to_numpy())
    assert significant_components(variance, fig_proteins, 0.05).shape == (5, 0)
    with Image.open(tmp_path / "p.png") as image:
        assert image.mode == "P"  # indexed colours: small in the report


def test_model_plots_writes_the_partition(tmp_path: Path) -> None:
    data = make_data()
    paths = {}
    for name in ("features", "abundance", "proteins", "blups", "fixed", "table"):
        paths[name] = tmp_path / f"{name}.parquet"
        data[name].to_parquet(paths[name], index=False)
    paths["samples"] = tmp_path / "samples.tsv"
    data["sheet"].to_csv(paths["samples"], sep="\t", index=False)
    proteins = data["proteins"].assign(lrt_feature=30.0, lrt_sample=0.5)
    write_tsv(variance_test_table(proteins), tmp_path / "vc.tsv")
    contrast = ContrastInfo(CONTRAST.name, CONTRAST.slug, "treat", "ctrl")
    written = plot_model.run(
        **{k: paths[k] for k in ("proteins", "table", "features", "samples", "abundance")},
        fixed=paths["fixed"],
        blups=paths["blups"],
        contrasts=[contrast],
        out_dir=tmp_path / "out",
        formats=["pdf"],
        top_n=3,
        variance=tmp_path / "vc.tsv",
    )
    out = tmp_path / "out/model"
    assert {out / "variance_partition.png", out / "variance_partition.pdf"} <= set(written)
    assert (out / "variance_partition.png").stat().st_size > 5_000
