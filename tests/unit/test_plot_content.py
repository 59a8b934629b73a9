"""What the figures show, read back from their matplotlib artists: the volcano, MA plot, p-value
histogram and status summary draw exactly the differential table's proteins and calls, their
legends quote the table's numbers, threshold lines appear only with a threshold, profile files
hold the selected proteins, and profile pages keep their text blocks apart."""

from __future__ import annotations

import dataclasses
import io
import itertools
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox
from PIL import Image

from pepmix.plots import results, status
from pepmix.plots.imagepdf import encode_png_indexed
from pepmix.plots.inputs import condition_means
from pepmix.plots.profile_data import build_profiles
from pepmix.plots.profiles import GRID_SCALE, PAGE_SIZE, draw_profile
from pepmix.plots.results import DOWN, UP, contrast_rows, top_proteins
from pepmix.plots.style import DPI, Runs, new_figure
from pepmix.stages import plot_model

from .test_plots import CONTRAST, make_data

FDR = 0.05


@pytest.fixture(scope="module")
def data() -> dict[str, pd.DataFrame]:
    """The synthetic data with one protein down, and one protein filtered before the model."""
    data = make_data()
    table = data["table"].copy()
    down = table.index[table["protein"] == table["protein"].iloc[1]]
    table.loc[down, "log2fc"] *= -1.0
    filtered = table.iloc[[-1]].assign(protein="sp|P88888|FILT_HUMAN", status="filtered")
    data["table"] = pd.concat([table, filtered], ignore_index=True)
    return data


def layers(fig: Figure) -> dict[str, np.ndarray]:
    """Offsets of the point layers of the first axes, by ``gid``."""
    return {
        str(c.get_gid()): np.asarray(c.get_offsets())
        for c in fig.axes[0].collections
        if c.get_gid() in ("not significant", "up", "down")
    }


def expected_calls(
    table: pd.DataFrame, lfc_threshold: float = 0.0
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Tested rows of the contrast, and the rows called up and down (from the table alone)."""
    part = table.loc[table["contrast"] == CONTRAST.name]
    tested = part.loc[np.isfinite(part["pvalue"]) & np.isfinite(part["log2fc"])]
    called = (tested["adj_pvalue"] < FDR) & (tested["log2fc"].abs() > lfc_threshold)
    return (
        tested,
        tested.loc[called & (tested["log2fc"] > 0)],
        tested.loc[called & (tested["log2fc"] < 0)],
    )


def sorted_points(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    points = np.column_stack([x, y])
    return points[np.lexsort((points[:, 1], points[:, 0]))] if len(points) else points.reshape(0, 2)


@pytest.mark.parametrize("lfc_threshold", [0.0, 1.0])
def test_volcano_draws_the_tables_proteins_and_calls(data: dict, lfc_threshold: float) -> None:
    table = data["table"]
    fig = results.volcano_figure(
        table, CONTRAST.name, "treat", "ctrl", fdr=FDR, lfc_threshold=lfc_threshold
    )
    tested, up, down = expected_calls(table, lfc_threshold)
    assert len(up) >= 2 and len(down) == 1  # the data exercise both directions
    drawn = layers(fig)
    assert sum(len(v) for v in drawn.values()) == len(tested)
    for name, rows in (("up", up), ("down", down)):
        want = sorted_points(rows["log2fc"].to_numpy(), -np.log10(rows["pvalue"].to_numpy()))
        got = drawn[name]
        np.testing.assert_allclose(sorted_points(got[:, 0], got[:, 1]), want, rtol=1e-12)
    # colour-blind-safe direction colours
    ax = fig.axes[0]
    colour = {str(c.get_gid()): c.get_facecolor()[0][:3] for c in ax.collections if c.get_gid()}
    np.testing.assert_allclose(colour["up"], to_rgb(UP))
    np.testing.assert_allclose(colour["down"], to_rgb(DOWN))
    # the legend quotes the table
    legend = fig.legends[0]
    rule = f"adj. p < {FDR:g}" + (f" and |log2 FC| > {lfc_threshold:g}" if lfc_threshold else "")
    n_rest = len(tested) - len(up) - len(down)
    assert legend.get_title().get_text() == (
        f"{len(tested):,} proteins tested; 1 filtered, 1 not estimable. Significant: {rule}"
    )
    assert [t.get_text() for t in legend.get_texts()] == [
        f"{n_rest:,} not significant",
        f"{len(up):,} up (higher in treat)",
        f"{len(down):,} down (higher in ctrl)",
    ]
    # fold-change lines only with a threshold, then at ±threshold
    guides = [line for line in ax.lines if line.get_gid() == "lfc_threshold"]
    positions = sorted(float(line.get_xdata()[0]) for line in guides)
    assert positions == ([-lfc_threshold, lfc_threshold] if lfc_threshold else [])


@pytest.mark.parametrize("lfc_threshold", [0.0, 1.0])
def test_ma_plot_draws_the_tables_proteins_and_calls(data: dict, lfc_threshold: float) -> None:
    table = data["table"]
    means = condition_means(data["fixed"], ["treat", "ctrl"])
    fig = results.ma_figure(
        table, means, CONTRAST.name, "treat", "ctrl", fdr=FDR, lfc_threshold=lfc_threshold
    )
    tested, up, down = expected_calls(table, lfc_threshold)
    drawn = layers(fig)
    assert sum(len(v) for v in drawn.values()) == len(tested)  # every tested one has a mean
    for name, rows in (("up", up), ("down", down)):
        a = rows["protein"].map(means).to_numpy(dtype=float)
        want = sorted_points(a, rows["log2fc"].to_numpy())
        got = drawn[name]
        np.testing.assert_allclose(sorted_points(got[:, 0], got[:, 1]), want, rtol=1e-12)
    guides = [line for line in fig.axes[0].lines if line.get_gid() == "lfc_threshold"]
    positions = sorted(float(line.get_ydata()[0]) for line in guides)
    assert positions == ([-lfc_threshold, lfc_threshold] if lfc_threshold else [])
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert f"{len(up):,} up (higher in treat)" in texts
    assert f"{len(down):,} down (higher in ctrl)" in texts


def test_pvalue_histogram_counts_every_tested_protein(data: dict) -> None:
    table = data["table"]
    fig = results.pvalue_figure(table, CONTRAST.name, fdr=FDR)
    tested, up, down = expected_calls(table)
    heights = [patch.get_height() for patch in fig.axes[0].patches]
    assert sum(heights) == len(tested)
    title = fig.axes[0].get_title(loc="left")
    assert f"({len(tested):,} tested, {len(up) + len(down):,} at adj. p < {FDR:g})" in title


def _boxes(fig: Figure, artists: list) -> list[Bbox]:
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    return [a.get_window_extent(renderer) for a in artists if a.get_visible() and a.get_text()]


def test_status_summary_counts_and_one_status_stays_legible(data: dict) -> None:
    table = data["table"]
    contrasts = [(CONTRAST.name, "treat", "ctrl")]
    fig = status.status_figure(table, contrasts, fdr=FDR)
    left, right = fig.axes
    counts = table["status"].value_counts()
    shown = {t.get_text() for t in left.texts}
    assert shown == {f"{n:,}" for n in counts}
    _, up, down = expected_calls(table)
    bars = {str(p.get_gid()): abs(p.get_width()) for p in right.patches}
    assert bars == {"up": len(up), "down": len(down)}
    # a single status: the panel keeps a legible width and the titles do not collide
    one = status.status_figure(table.loc[table["status"] == "ok"], contrasts, fdr=FDR)
    one.canvas.draw()  # type: ignore[attr-defined]
    left, right = one.axes
    assert [t.get_text() for t in left.texts] == [f"{int((table['status'] == 'ok').sum()):,}"]
    assert left.get_position().width * one.get_figwidth() >= 1.5  # inches
    # titles are drawn with loc="left" (matplotlib's _left_title artist)
    left_title, right_title = _boxes(one, [left._left_title, right._left_title])
    assert not left_title.overlaps(right_title)
    assert left_title.x1 <= right.get_window_extent().x0
    assert [t.get_rotation() for t in left.get_xticklabels()] == [0.0]


def test_profile_files_hold_the_selected_proteins(
    data: dict, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("profiles_in")
    paths = {}
    for name in ("features", "abundance", "proteins", "blups", "fixed", "table"):
        paths[name] = root / f"{name}.parquet"
        data[name].to_parquet(paths[name], index=False)
    paths["samples"] = root / "samples.tsv"
    data["sheet"].to_csv(paths["samples"], sep="\t", index=False)
    out = tmp_path_factory.mktemp("profiles_out")
    top_n, grid_n = 5, 2
    plot_model.run(
        **{k: paths[k] for k in ("proteins", "table", "features", "samples", "abundance")},
        fixed=paths["fixed"],
        blups=paths["blups"],
        contrasts=[CONTRAST],
        out_dir=out,
        formats=["pdf"],
        top_n=top_n,
        grid_n=grid_n,
    )
    selected = top_proteins(contrast_rows(data["table"], CONTRAST.name), top_n)
    pdf = (out / "contrasts" / CONTRAST.slug / "profiles.pdf").read_bytes()
    assert re.search(rb"/Count (\d+)", pdf).group(1) == str(len(selected)).encode()
    assert len(re.findall(rb"/Type /Page\b", pdf)) == len(selected) == top_n
    with Image.open(out / "contrasts" / CONTRAST.slug / "profiles.png") as grid:
        tile = (round(PAGE_SIZE[0] * DPI * GRID_SCALE), round(PAGE_SIZE[1] * DPI * GRID_SCALE))
        assert grid.size == (grid_n * tile[0], tile[1])
        assert grid.mode == "P"  # indexed colours (small in the report)
    # without pdf in formats (the default): no profile PDF, only the grid's proteins are drawn,
    # and the grid is the same image, byte for byte
    png_only = tmp_path_factory.mktemp("profiles_png_only")
    written = plot_model.run(
        **{k: paths[k] for k in ("proteins", "table", "features", "samples", "abundance")},
        fixed=paths["fixed"],
        blups=paths["blups"],
        contrasts=[CONTRAST],
        out_dir=png_only,
        top_n=top_n,
        grid_n=grid_n,
    )
    grid_path = Path("contrasts") / CONTRAST.slug / "profiles.png"
    assert not (png_only / "contrasts" / CONTRAST.slug / "profiles.pdf").exists()
    assert {p.suffix for p in map(Path, written)} == {".png"}
    assert (png_only / grid_path).read_bytes() == (out / grid_path).read_bytes()


def _long_named(data: dict) -> tuple[dict, Runs]:
    """The data with long run names, a long protein name and 32 features on one protein."""
    rename = {r: f"2024-01-15_QExactiveHF_{r}_DIA_60min_replicate" for r in data["sheet"]["run"]}
    long = {k: v.copy() for k, v in data.items()}
    for name in ("sheet", "features", "abundance"):
        long[name]["run"] = long[name]["run"].map(rename)
    blups = long["blups"]
    blups.loc[blups["factor"] == "sample", "level"] = blups["level"].map(rename)
    protein = long["table"]["protein"].iloc[0]
    feats = long["features"].loc[long["features"]["protein"] == protein]
    extra = [
        feats.assign(feature=feats["feature"] + f"_{k}", y=feats["y"] + 0.1 * k)
        for k in range(1, 16)
    ]
    long["features"] = pd.concat([long["features"], *extra], ignore_index=True)
    feat_blups = blups.loc[(blups["protein"] == protein) & (blups["factor"] == "feature")]
    more = [feat_blups.assign(level=feat_blups["level"] + f"_{k}") for k in range(1, 16)]
    long["blups"] = pd.concat([blups, *more], ignore_index=True)
    return long, Runs.from_sheet(long["sheet"])


def test_profile_page_text_blocks_do_not_overlap(data: dict) -> None:
    long, runs = _long_named(data)
    protein = long["table"]["protein"].iloc[0]
    profile = build_profiles(
        [protein],
        long["features"],
        long["abundance"],
        long["fixed"],
        long["blups"],
        long["proteins"],
        long["table"],
    )[protein]
    contrast_line = "a very long condition name - another long condition name: log2 FC 1.50 "
    profile = dataclasses.replace(
        profile,
        protein="sp|P00001|" + "A_VERY_LONG_PROTEIN_GROUP_NAME_" * 2 + "HUMAN",
        title="\n".join([contrast_line + "[1.30, 1.70], p 1e-06, adj. p 2e-05"] * 4)
        + "\n(+3 more contrasts)",
    )
    fig = new_figure(*PAGE_SIZE, layout=None)
    fig.set_dpi(DPI)
    canvas = draw_profile(fig, profile, runs)
    fig.canvas.draw()  # type: ignore[attr-defined]
    ax, effect = canvas.ax, canvas.effect
    names = _boxes(fig, effect.get_yticklabels())
    assert 10 <= len(names) <= 24  # 32 features: the most deviating ones that fit are listed
    assert canvas.note.get_text().startswith(f"{len(names)} of 32 features")
    for upper, lower in itertools.pairwise(names):
        assert not upper.overlaps(lower), (upper, lower)
    top_blocks = _boxes(fig, [canvas.headline, canvas.info, canvas.title])
    over_panels = _boxes(fig, [*ax.texts, canvas.note])  # condition names, effect note
    key = _boxes(fig, [t for t in fig.texts if t.get_text().startswith("Lines:")])
    run_names = _boxes(fig, ax.get_xticklabels())
    panels = [ax.get_window_extent(), effect.get_window_extent()]
    assert len(top_blocks) == 3 and len(over_panels) >= 3 and len(key) == 1
    for i, a in enumerate(top_blocks):
        for b in top_blocks[i + 1 :] + over_panels + panels:
            assert not a.overlaps(b), (a, b)
    for name in run_names:
        assert not name.overlaps(key[0])
        assert name.y0 >= 0
    assert all("…" in t.get_text() for t in ax.get_xticklabels())  # cut to fit, not overlapping
    for block in [*top_blocks, *over_panels, *key]:
        assert block.x1 <= fig.bbox.x1 and block.y1 <= fig.bbox.y1


def _many_proteins(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lfc = rng.normal(0.0, 0.3, n)
    lfc[: n // 50] += 2.0
    pvalue = np.clip(np.exp(-np.abs(lfc) * rng.uniform(1.0, 8.0, n)), 1e-12, 1.0)
    order = np.argsort(pvalue)
    adj = np.empty(n)
    adj[order] = np.minimum.accumulate((pvalue[order] * n / np.arange(1, n + 1))[::-1])[::-1]
    return pd.DataFrame(
        {
            "protein": [f"P{i:05d}" for i in range(n)],
            "contrast": "b - a",
            "log2fc": lfc,
            "pvalue": pvalue,
            "adj_pvalue": np.minimum(adj, 1.0),
            "status": "ok",
        }
    )


def test_dense_volcano_file_size_does_not_grow_with_the_points(tmp_path: Path) -> None:
    sizes = {}
    for n in (3_000, 24_000):
        paths = [tmp_path / f"v{n}.png", tmp_path / f"v{n}.pdf"]
        fig = results.volcano(_many_proteins(n), "b - a", "b", "a", paths)
        grey = next(c for c in fig.axes[0].collections if c.get_gid() == "not significant")
        assert grey.get_rasterized()  # a raster layer in the PDF, not one path per point
        sizes[n] = {p.suffix: p.stat().st_size for p in paths}
    # eight times the points: a vector layer would be about eight times the bytes
    assert sizes[24_000][".pdf"] < 2 * sizes[3_000][".pdf"]
    assert sizes[24_000][".png"] < 2 * sizes[3_000][".png"]
    assert sizes[24_000][".png"] < 100_000  # indexed colours at PNG_DPI (about 30 kB)


def test_indexed_png_keeps_flat_colours_exactly() -> None:
    # a field of 120,000 colours (red along x, green along y; anti-aliasing makes such shades)
    # with a small blue marker and a grey bar: the marker keeps its hue although the median
    # cut, splitting by pixel counts, would merge it into the field's colours
    height, width = 300, 400
    red = np.repeat(np.linspace(0, 255, width)[None, :], height, axis=0)
    green = np.repeat(np.linspace(0, 255, height)[:, None], width, axis=1)
    rgb = np.stack([red, green, np.full((height, width), 60.0)], axis=2).round().astype(np.uint8)
    rgb[:, :40] = 255  # white margin
    rgb[100:107, 200:207] = (25, 128, 185)  # 49 pixels, 0.04 % of the image
    rgb[200:210, 50:350] = (160, 160, 160)
    png = encode_png_indexed(rgb, dpi=120)
    with Image.open(io.BytesIO(png)) as image:
        assert image.mode == "P" and round(image.info["dpi"][0]) == 120
        back = np.asarray(image.convert("RGB")).astype(int)
    np.testing.assert_array_equal(back[100:107, 200:207], rgb[100:107, 200:207])
    np.testing.assert_array_equal(back[200:210, 50:350], rgb[200:210, 50:350])
    np.testing.assert_array_equal(back[:, :40], 255)
    # the field's shades move to a near palette colour: some 60 median-cut boxes over a
    # 256 x 256 plane are about 32 levels a side
    assert np.abs(back - rgb.astype(int)).max() <= 48
    assert png == encode_png_indexed(rgb, dpi=120)  # deterministic
