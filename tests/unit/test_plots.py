"""Plotting functions and plot stages on a small synthetic data set: files are written, output
is deterministic, labels do not overlap, and the numbers behind the figures are right."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pepmix.plots import abundance as ab
from pepmix.plots import model, qc, results, status
from pepmix.plots.aggregate import FeatureCells, box_stats, grouped_box_stats
from pepmix.plots.imagepdf import encode_png, png_image_data, write_image_pdf
from pepmix.plots.inputs import ContrastInfo, condition_means
from pepmix.plots.labels import repel_boxes
from pepmix.plots.profile_data import build_profiles, comparison_intervals, prepare
from pepmix.plots.profiles import middle_cut, write_profile_files
from pepmix.plots.style import (
    MAX_RUN_AXIS_WIDTH,
    Runs,
    condition_colors,
    figure_paths,
    label_stride,
    run_axis_width,
    short_name,
)
from pepmix.stages import plot_differential, plot_model, plot_qc, plot_qc_abundance

CONDITIONS = ("ctrl", "treat")
CONTRAST = ContrastInfo("treat - ctrl", "treat_vs_ctrl", "treat", "ctrl")


def make_data(seed: int = 1) -> dict[str, pd.DataFrame]:
    """Eight proteins, 2-5 features each, 2 conditions x 3 runs in 2 batches, some missing."""
    rng = np.random.default_rng(seed)
    runs = [f"{c}_{i}" for c in CONDITIONS for i in (1, 2, 3)]
    sheet = pd.DataFrame(
        {
            "run": runs,
            "condition": [r.split("_")[0] for r in runs],
            "bioreplicate": runs,
            "batch": ["b1", "b2", "b1", "b2", "b1", "b2"],
        }
    )
    rows, proteins, blups, fixed, da = [], [], [], [], []
    for p in range(8):
        protein = f"sp|P{p:05d}|PROT{p}_HUMAN" if p % 2 else f"Cre0{p}.g{p:06d}.t1|PACid:{p}|"
        effect = 1.5 if p < 3 else 0.0
        n_feat = 2 + p % 4
        feat_effects = rng.normal(0, 1.2, n_feat)
        base = 8 + p
        for f in range(n_feat):
            feature = f"PEPTIDE{p}X{f}ABCDEFGHIKLMNPQR"
            blups.append((protein, "feature", feature, 0.9 * feat_effects[f]))
            for r in runs:
                if rng.random() < 0.12:
                    continue
                y = base + feat_effects[f] + (effect if r.startswith("treat") else 0.0)
                y += rng.normal(0, 0.2)
                rows.append((protein, feature, feature, r, y + 0.1, y))
        for r in runs:
            blups.append((protein, "sample", r, rng.normal(0, 0.05)))
        var = (1.4, 0.0 if p % 3 == 0 else 0.01, 0.04)
        fit_status = "boundary" if p % 3 == 0 else "ok"
        proteins.append((protein, *var, n_feat, 6 * n_feat, fit_status, ""))
        means = {"ctrl": base, "treat": base + effect}
        for c in CONDITIONS:
            other = "treat" if c == "ctrl" else "ctrl"
            fixed.append(
                {
                    "protein": protein,
                    "term": f"condition[{c}]",
                    "estimate": means[c],
                    "se": 0.3,
                    f"cov[condition[{c}]]": 0.09,
                    f"cov[condition[{other}]]": 0.085,
                }
            )
        pvalue = 1e-6 * (p + 1) if effect else rng.uniform(0.05, 1.0)
        da.append((protein, CONTRAST.name, effect + rng.normal(0, 0.05), 0.1, 10.0, pvalue, "ok"))
    features = pd.DataFrame(rows, columns=["protein", "feature", "peptide", "run", "log2_raw", "y"])
    table = pd.DataFrame(
        da, columns=["protein", "contrast", "log2fc", "se", "df", "pvalue", "status"]
    )
    table["adj_pvalue"] = np.minimum(1.0, table["pvalue"] * len(table))
    table["ci_low"] = table["log2fc"] - 0.2
    table["ci_high"] = table["log2fc"] + 0.2
    untested = pd.DataFrame(
        [("sp|P99999|GONE_HUMAN", CONTRAST.name, np.nan, np.nan, np.nan, np.nan, "not_estimable")],
        columns=["protein", "contrast", "log2fc", "se", "df", "pvalue", "status"],
    )
    table = pd.concat([table, untested], ignore_index=True)
    abundance = (
        features.groupby(["protein", "run"])["y"]
        .agg(["mean", "count"])
        .reset_index()
        .rename(columns={"mean": "abundance", "count": "n_features"})
    )
    abundance["se"] = 0.25
    abundance["status"] = "ok"
    return {
        "sheet": sheet,
        "features": features,
        "abundance": abundance,
        "proteins": pd.DataFrame(
            proteins,
            columns=[
                "protein",
                "var_feature",
                "var_sample",
                "var_residual",
                "n_features",
                "n_observations",
                "status",
                "detail",
            ],
        ),
        "blups": pd.DataFrame(blups, columns=["protein", "factor", "level", "blup"]),
        "fixed": pd.DataFrame(fixed),
        "table": table,
    }


@pytest.fixture(scope="module")
def data() -> dict[str, pd.DataFrame]:
    return make_data()


@pytest.fixture(scope="module")
def runs(data: dict[str, pd.DataFrame]) -> Runs:
    return Runs.from_sheet(data["sheet"])


@pytest.fixture(scope="module")
def stage_inputs(tmp_path_factory: pytest.TempPathFactory, data: dict) -> dict[str, Path]:
    """The data as the workflow's stage files."""
    root = tmp_path_factory.mktemp("inputs")
    paths = {}
    for name in ("features", "abundance", "proteins", "blups", "fixed", "table"):
        paths[name] = root / f"{name}.parquet"
        data[name].to_parquet(paths[name], index=False)
    paths["samples"] = root / "samples.tsv"
    data["sheet"].to_csv(paths["samples"], sep="\t", index=False)
    return paths


def assert_written(path: Path) -> None:
    assert path.exists(), path
    head = path.read_bytes()[:8]
    assert path.stat().st_size > 1000, path
    signature = {".png": b"\x89PNG", ".pdf": b"%PDF", ".svg": b"<?xml"}[path.suffix]
    assert head.startswith(signature), path


def test_runs_group_by_condition_and_keep_sheet_colours(data: dict) -> None:
    sheet = data["sheet"].iloc[[3, 0, 4, 1, 5, 2]]  # interleaved conditions
    runs = Runs.from_sheet(sheet)
    assert [runs.condition[r] for r in runs.order] == ["treat"] * 3 + ["ctrl"] * 3
    assert runs.colors == condition_colors(["treat", "ctrl"])
    assert set(runs.markers) == {"b1", "b2"}


@pytest.mark.parametrize(
    "draw",
    [
        qc.intensity_distributions,
        qc.features_per_run,
        qc.missingness,
    ],
)
def test_feature_qc_figures(draw, data: dict, runs: Runs, tmp_path: Path) -> None:
    paths = figure_paths(tmp_path / draw.__name__, ["pdf", "svg"])
    draw(data["features"], runs, paths)
    for path in paths:
        assert_written(path)


@pytest.mark.parametrize("draw", [ab.pca, ab.correlation, ab.cv])
def test_abundance_qc_figures(draw, data: dict, runs: Runs, tmp_path: Path) -> None:
    paths = figure_paths(tmp_path / draw.__name__, ["pdf"])
    draw(data["abundance"], runs, paths)
    for path in paths:
        assert_written(path)


def test_result_figures(data: dict, runs: Runs, tmp_path: Path) -> None:
    table = data["table"]
    means = condition_means(data["fixed"], ["treat", "ctrl"])
    results.volcano(table, CONTRAST.name, "treat", "ctrl", tmp_path / "v.png")
    results.ma_plot(table, means, CONTRAST.name, "treat", "ctrl", tmp_path / "m.svg")
    results.pvalue_histogram(table, CONTRAST.name, tmp_path / "p.pdf")
    status.status_summary(table, [(CONTRAST.name, "treat", "ctrl")], tmp_path / "s.png")
    model.variance_components(data["proteins"], tmp_path / "vc.png")
    for name in ("v.png", "m.svg", "p.pdf", "s.png", "vc.png"):
        assert_written(tmp_path / name)


def test_figures_handle_no_significant_proteins(data: dict, runs: Runs, tmp_path: Path) -> None:
    table = data["table"].assign(adj_pvalue=0.9)
    results.volcano(table, CONTRAST.name, "treat", "ctrl", tmp_path / "v.png")
    status.status_summary(table, [(CONTRAST.name, "treat", "ctrl")], tmp_path / "s.png")
    assert_written(tmp_path / "v.png")


def test_profiles_pdf_and_png(data: dict, runs: Runs, tmp_path: Path) -> None:
    proteins = list(dict.fromkeys(data["table"]["protein"]))[:5]
    profiles = build_profiles(
        proteins,
        data["features"],
        data["abundance"],
        data["fixed"],
        data["blups"],
        data["proteins"],
        data["table"],
    )
    outputs = [
        (proteins[:3], tmp_path / "a.pdf", tmp_path / "a.png"),
        (proteins[2:], tmp_path / "b.pdf", tmp_path / "b.png"),
        ([], tmp_path / "empty.pdf", tmp_path / "empty.png"),
    ]
    write_profile_files(profiles, outputs, runs, png_count=2)
    for _, pdf, png in outputs:
        assert_written(pdf)
        assert_written(png)
    assert b"/Count 3" in (tmp_path / "a.pdf").read_bytes()
    assert b"/Count 1" in (tmp_path / "empty.pdf").read_bytes()
    # no PDF path: the PNG grids alone, the same images
    write_profile_files(
        profiles,
        [(proteins[:3], None, tmp_path / "a_only.png"), ([], None, tmp_path / "e_only.png")],
        runs,
        png_count=2,
    )
    assert (tmp_path / "a_only.png").read_bytes() == (tmp_path / "a.png").read_bytes()
    assert (tmp_path / "e_only.png").read_bytes() == (tmp_path / "empty.png").read_bytes()
    assert sorted(p.name for p in tmp_path.glob("*.pdf")) == ["a.pdf", "b.pdf", "empty.pdf"]


def test_stages_write_every_declared_file(stage_inputs: dict[str, Path], tmp_path: Path) -> None:
    s = stage_inputs
    qc = {"out_dir": tmp_path / "qc", "formats": ["pdf"]}
    written = plot_qc.run(features=s["features"], samples=s["samples"], **qc)
    written += plot_qc_abundance.run(samples=s["samples"], abundance=s["abundance"], **qc)
    tables = {k: s[k] for k in ("table", "fixed", "samples")}
    written += plot_differential.contrast_figures(
        **tables, contrasts=[CONTRAST], out_dir=tmp_path / "contrasts", formats=["svg"]
    )
    written += plot_differential.status_figure(
        table=s["table"],
        samples=s["samples"],
        contrasts=[CONTRAST],
        out_dir=tmp_path,
        formats=["pdf"],
    )
    written += plot_model.run(
        **{k: s[k] for k in ("proteins", "table", "features", "samples", "abundance")},
        fixed=s["fixed"],
        blups=s["blups"],
        contrasts=[CONTRAST],
        out_dir=tmp_path,
        formats=["pdf"],
        top_n=4,
    )
    assert len(written) == 12 + 6 + 2 + 2 + 2
    for path in written:
        assert_written(Path(path))
    assert (tmp_path / "contrasts/treat_vs_ctrl/volcano.svg").exists()
    assert (tmp_path / "contrasts/treat_vs_ctrl/profiles.pdf").exists()


def test_plot_qc_with_abundance_draws_both_families(
    stage_inputs: dict[str, Path], tmp_path: Path
) -> None:
    """One shard: rule plot_qc draws the abundance QC figures too (``abundance=``); the files
    are those of the two stages run one after the other, byte for byte."""
    s = stage_inputs
    apart = plot_qc.run(features=s["features"], samples=s["samples"], out_dir=tmp_path / "a")
    apart += plot_qc_abundance.run(
        samples=s["samples"], abundance=s["abundance"], out_dir=tmp_path / "a"
    )
    both = plot_qc.run(
        features=s["features"],
        samples=s["samples"],
        out_dir=tmp_path / "b",
        abundance=s["abundance"],
    )
    assert [p.name for p in both] == [p.name for p in apart]
    assert len(both) == 6
    for one, other in zip(apart, both, strict=True):
        assert one.read_bytes() == other.read_bytes(), one.name


def test_same_input_gives_identical_bytes(data: dict, runs: Runs, tmp_path: Path) -> None:
    table = data["table"]
    for k in (1, 2):
        paths = figure_paths(tmp_path / f"volcano{k}", ["pdf", "svg"])
        results.volcano(table, CONTRAST.name, "treat", "ctrl", paths)
    for ext in ("png", "pdf", "svg"):
        first = (tmp_path / f"volcano1.{ext}").read_bytes()
        assert first == (tmp_path / f"volcano2.{ext}").read_bytes(), ext
    assert b"CreationDate" not in (tmp_path / "volcano1.pdf").read_bytes()


def test_profile_pdf_is_deterministic(data: dict, runs: Runs, tmp_path: Path) -> None:
    proteins = list(dict.fromkeys(data["table"]["protein"]))[:2]
    args = (data["features"], data["abundance"], data["fixed"], data["blups"], data["proteins"])
    for k in (1, 2):
        profiles = build_profiles(proteins, *args, data["table"])
        outputs = [(proteins, tmp_path / f"p{k}.pdf", tmp_path / f"p{k}.png")]
        write_profile_files(profiles, outputs, runs)
    assert (tmp_path / "p1.pdf").read_bytes() == (tmp_path / "p2.pdf").read_bytes()
    assert (tmp_path / "p1.png").read_bytes() == (tmp_path / "p2.png").read_bytes()


def test_repelled_labels_do_not_overlap() -> None:
    rng = np.random.default_rng(3)
    anchors = rng.normal(200, 15, size=(15, 2))  # a dense cluster
    sizes = np.column_stack([rng.uniform(40, 90, 15), np.full(15, 10.0)])
    obstacles = rng.normal(200, 40, size=(300, 2))
    centres = repel_boxes(anchors, sizes, (0.0, 0.0, 500.0, 400.0), obstacles)
    half = sizes / 2
    for i in range(15):
        for j in range(i + 1, 15):
            apart_x = abs(centres[i, 0] - centres[j, 0]) >= half[i, 0] + half[j, 0] - 1e-6
            apart_y = abs(centres[i, 1] - centres[j, 1]) >= half[i, 1] + half[j, 1] - 1e-6
            assert apart_x or apart_y, (i, j)
    assert np.all(centres - half >= -1e-6)
    assert np.all(centres[:, 0] + half[:, 0] <= 500 + 1e-6)


def test_comparison_intervals_add_up_to_the_difference_variance() -> None:
    fixed = pd.DataFrame(
        {
            "term": ["condition[a]", "condition[b]"],
            "estimate": [1.0, 2.0],
            "se": [np.sqrt(0.5), np.sqrt(0.6)],
            "cov[condition[a]]": [0.5, 0.45],
            "cov[condition[b]]": [0.45, 0.6],
        }
    )
    out = comparison_intervals(fixed, ["a", "b"])
    var_diff = 0.5 + 0.6 - 2 * 0.45
    assert out["se_cmp"].pow(2).sum() == pytest.approx(var_diff)
    assert list(out["estimate"]) == [1.0, 2.0]


def test_raw_feature_effects_are_shrunk_by_their_blups(data: dict, runs: Runs) -> None:
    protein = str(data["table"]["protein"].iloc[0])
    profile = build_profiles(
        [protein],
        data["features"],
        data["abundance"],
        data["fixed"],
        data["blups"],
        data["proteins"],
        data["table"],
    )[protein]
    prepared = prepare(profile, runs)
    assert prepared.values.shape == (len(prepared.names), 6)
    assert np.all(np.isfinite(prepared.raw))
    assert list(prepared.blup) == sorted(prepared.blup, reverse=True)
    missing = ~np.isfinite(prepared.values)
    assert np.all(np.isfinite(prepared.expected[missing]))


def test_storey_pi0() -> None:
    p = np.concatenate([np.linspace(0, 1, 801)[1:], np.full(200, 1e-6)])
    assert results.storey_pi0(p) == pytest.approx(0.8, abs=0.01)
    assert results.storey_pi0(np.array([])) == 1.0


def test_label_shortening() -> None:
    assert short_name("sp|P02787|TRFE_HUMAN") == "TRFE_HUMAN"
    assert short_name("P02788ups|TRFL_HUMAN_UPS") == "TRFL_HUMAN_UPS"
    assert short_name("Cre01.g000350.t1.1|PACid:30788481|") == "Cre01.g000350.t1.1"
    assert short_name("A;B") == "A;…"
    assert len(short_name("X" * 40, 20)) == 20
    assert middle_cut("AYRPSETLCGGELVDTLQFVCGDR", 11) == "AYRPS…VCGDR"
    assert middle_cut("SHORT") == "SHORT"


def test_image_pdf_structure(tmp_path: Path) -> None:
    rgb = np.full((30, 40, 3), 255, dtype=np.uint8)
    rgb[10:20, 5:35] = (30, 120, 200)
    png = encode_png(rgb)
    assert png_image_data(png)[:2] == (40, 30)
    write_image_pdf(tmp_path / "x.pdf", [png, png], 4.0, 3.0)
    content = (tmp_path / "x.pdf").read_bytes()
    assert content.startswith(b"%PDF-1.4") and content.rstrip().endswith(b"%%EOF")
    start = int(re.search(rb"startxref\n(\d+)", content).group(1))
    assert content[start:].startswith(b"xref")
    offsets = [int(m) for m in re.findall(rb"(\d{10}) 00000 n", content)]
    for number, offset in enumerate(offsets, start=1):
        assert content[offset:].startswith(b"%d 0 obj" % number)
    assert b"/Count 2" in content


# --- many runs: the figures adapt (no per-cell numbers, thinned names, few PCA labels) ---------


def make_many_runs(
    n_runs: int = 120, n_proteins: int = 6, seed: int = 5
) -> dict[str, pd.DataFrame]:
    """A DIA-like layout in miniature: many runs, few proteins, ~20% missing cells."""
    rng = np.random.default_rng(seed)
    runs = [f"R{i:03d}" for i in range(n_runs)]
    sheet = pd.DataFrame({"run": runs, "condition": ["A" if i % 2 else "B" for i in range(n_runs)]})
    rows = []
    for p in range(n_proteins):
        for f in range(2 + p % 3):
            level = 18 + p + rng.normal(0, 1)
            for r in runs:
                if rng.random() < 0.2:
                    continue
                y = level + rng.normal(0, 0.3)
                rows.append((f"P{p}", f"P{p}_F{f}", r, y + 0.05, y))
    features = pd.DataFrame(rows, columns=["protein", "feature", "run", "log2_raw", "y"])
    abundance = features.groupby(["protein", "run"])["y"].mean().rename("abundance").reset_index()
    return {"sheet": sheet, "features": features, "abundance": abundance}


class Captured:
    """Stands in for ``style.save``: keeps the figure instead of writing it."""

    def __init__(self) -> None:
        self.figures: list = []

    def __call__(self, fig, path) -> None:
        self.figures.append(fig)


def test_qc_family_with_many_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_many_runs()
    n_runs = data["sheet"].shape[0]
    runs = Runs.from_sheet(data["sheet"])
    # the whole family writes its files
    root = tmp_path / "inputs"
    root.mkdir()
    data["features"].to_parquet(root / "features.parquet", index=False)
    data["abundance"].to_parquet(root / "abundance.parquet", index=False)
    data["sheet"].to_csv(root / "samples.tsv", sep="\t", index=False)
    samples = root / "samples.tsv"
    written = plot_qc.run(features=root / "features.parquet", samples=samples, out_dir=tmp_path)
    written += plot_qc_abundance.run(
        samples=samples, abundance=root / "abundance.parquet", out_dir=tmp_path
    )
    assert len(written) == 6
    for path in written:
        assert_written(path)
    # and the figures stay legible: inspect them instead of writing them
    captured = Captured()
    monkeypatch.setattr(ab, "save", captured)
    monkeypatch.setattr(qc, "save", captured)
    ab.correlation(data["abundance"], runs, tmp_path / "c.png")
    heatmap = captured.figures[-1].axes[0]
    assert len(heatmap.get_images()) == 1
    assert len(heatmap.texts) == 0  # no per-cell numbers (120 x 120 text objects)
    shown = [t.get_text() for t in heatmap.get_xticklabels() if t.get_text()]
    assert 0 < len(shown) < n_runs / 2  # every k-th run named
    assert max(captured.figures[-1].get_size_inches()) <= ab.MAX_HEATMAP_SIZE + 1.0
    ab.pca(data["abundance"], runs, tmp_path / "p.png")
    texts = [t.get_text() for t in captured.figures[-1].axes[0].texts]
    named = [t for t in texts if t in runs.condition]  # the others: the note below the axes
    assert len(texts) - len(named) == 1
    assert 0 < len(named) <= ab.OUTLYING_LABELS
    qc.intensity_distributions(data["features"], runs, tmp_path / "i.png")
    fig = captured.figures[-1]
    assert fig.get_size_inches()[0] <= MAX_RUN_AXIS_WIDTH
    bottom = fig.axes[1]
    assert 0 < len([t for t in bottom.get_xticklabels() if t.get_text()]) <= n_runs / 2
    assert len(bottom.collections) + len(bottom.lines) < 10  # boxes as a few artists


def test_few_runs_keep_cell_numbers_and_all_names(
    data: dict, runs: Runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    captured = Captured()
    monkeypatch.setattr(ab, "save", captured)
    ab.correlation(data["abundance"], runs, tmp_path / "c.png")
    heatmap = captured.figures[-1].axes[0]
    assert len(heatmap.texts) == 6 * 5  # off-diagonal cells
    assert [t.get_text() for t in heatmap.get_xticklabels()] == runs.order


def test_run_correlation_is_pairwise_complete_pearson() -> None:
    rng = np.random.default_rng(2)
    matrix = rng.normal(size=(60, 7)) + rng.normal(size=(60, 1))
    matrix[rng.random(matrix.shape) < 0.3] = np.nan
    matrix[:57, 6] = np.nan  # 3 values left in the last column
    matrix[:, 5] = 1.0  # constant: undefined correlation
    expected = pd.DataFrame(matrix).corr(min_periods=3).to_numpy()
    got = ab.run_correlation(matrix, min_periods=3)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12, equal_nan=True)


def test_box_statistics_match_numpy_percentiles() -> None:
    rng = np.random.default_rng(4)
    values = rng.standard_t(3, size=5000)
    values[::50] = np.nan
    groups = rng.integers(0, 7, size=5000)
    groups[groups == 3] = 4  # an empty group
    stats = grouped_box_stats(values, groups, 7)
    for g, got in enumerate(stats):
        v = values[(groups == g) & np.isfinite(values)]
        if len(v) == 0:
            assert np.all(np.isnan(got))
            continue
        q1, med, q3 = np.percentile(v, [25, 50, 75])
        low = v[v >= q1 - 1.5 * (q3 - q1)].min()
        high = v[v <= q3 + 1.5 * (q3 - q1)].max()
        np.testing.assert_allclose(got, (low, q1, med, q3, high), rtol=0, atol=1e-12)
    assert box_stats(np.array([2.0])) == (2.0, 2.0, 2.0, 2.0, 2.0)


def _box_stats_by_sorting(values: np.ndarray, whis: float = 1.5) -> tuple[float, ...]:
    """The sort-based box statistics that box_stats' partition replaced (its reference)."""
    v = np.sort(values[np.isfinite(values)])
    if len(v) == 0:
        return (np.nan,) * 5

    def quantile(q: float) -> float:
        pos = q * (len(v) - 1)
        lo = int(np.floor(pos))
        hi = min(lo + 1, len(v) - 1)
        return float(v[lo] + (v[hi] - v[lo]) * (pos - lo))

    q1, med, q3 = quantile(0.25), quantile(0.5), quantile(0.75)
    low = float(v[np.searchsorted(v, q1 - whis * (q3 - q1), side="left")])
    high = float(v[np.searchsorted(v, q3 + whis * (q3 - q1), side="right") - 1])
    return low, q1, med, q3, high


def test_box_statistics_equal_the_sorted_values_bit_for_bit() -> None:
    """The partition gives the order statistics a sort puts at the quartile positions, and the
    whiskers the values a binary search of the sorted values finds: the same bits, with ties,
    outliers and NaN, at every size from 1 to 60 and at a run's ~40,000 values."""
    rng = np.random.default_rng(11)
    for n in [*range(1, 61), 40_001]:
        for draw in range(3):
            values = rng.standard_t(2, size=n)
            if draw == 1:
                values = np.round(values, 1)  # ties
            if draw == 2:
                values[rng.random(n) < 0.2] = np.nan
            got = box_stats(values)
            want = _box_stats_by_sorting(values)
            assert np.array_equal(np.array(got), np.array(want), equal_nan=True), (n, draw)


def test_feature_cells_from_strings_and_categoricals(data: dict, runs: Runs) -> None:
    table = data["features"]
    plain = FeatureCells.from_table(table, runs.order)
    categorical = FeatureCells.from_table(
        table.astype({"protein": "category", "feature": "category", "run": "category"}),
        runs.order,
    )
    observed = plain.observed
    assert plain.order == runs.order
    assert observed.shape == (table.groupby(["protein", "feature"]).ngroups, len(runs.order))
    counts = table.groupby("run")["feature"].nunique().reindex(runs.order).to_numpy()
    np.testing.assert_array_equal(observed.sum(axis=0), counts)
    np.testing.assert_array_equal(categorical.observed.sum(axis=0), counts)
    proteins = table.groupby("run")["protein"].nunique().reindex(runs.order).to_numpy()
    np.testing.assert_array_equal(plain.proteins_per_run(), proteins)
    assert plain.n_proteins == table["protein"].nunique()
    # a feature name shared by two proteins is two features
    shared = table.assign(feature="same")
    cells = FeatureCells.from_table(shared, runs.order)
    assert cells.n_features == table["protein"].nunique()
    # rows of runs that are not plotted are left out
    fewer = FeatureCells.from_table(table, runs.order[:4])
    assert fewer.order == runs.order[:4] and len(fewer.run) < len(plain.run)


def test_cv_table_matches_grouped_statistics(data: dict, runs: Runs) -> None:
    table = ab.cv_table(data["abundance"], runs)
    frame = data["abundance"].assign(
        condition=data["abundance"]["run"].map(runs.condition),
        linear=np.exp2(data["abundance"]["abundance"]),
    )
    grouped = frame.groupby(["protein", "condition"])["linear"]
    expected = (100 * grouped.std() / grouped.mean()).rename("cv").reset_index()
    merged = table.merge(expected, on=["protein", "condition"], suffixes=("", "_ref"))
    assert len(merged) == len(expected) == len(table)
    np.testing.assert_allclose(merged["cv"], merged["cv_ref"], rtol=1e-10)


def test_run_labels_thin_out_with_many_runs() -> None:
    assert label_stride(12, 4.0, 7.5) == (1, 7.5)
    stride, size = label_stride(200, 11.5, 7.5)
    assert stride in (2, 5, 10) and size == 5.5
    assert label_stride(2000, 11.5, 7.5)[0] >= 50
    assert run_axis_width(12) == 6.5 and run_axis_width(500) == MAX_RUN_AXIS_WIDTH


def test_png_encoder_round_trips(tmp_path: Path) -> None:
    from PIL import Image

    rgba = np.random.default_rng(0).integers(0, 256, size=(17, 23, 4), dtype=np.uint8)
    png = encode_png(rgba, dpi=150)
    (tmp_path / "x.png").write_bytes(png)
    with Image.open(tmp_path / "x.png") as image:
        np.testing.assert_array_equal(np.asarray(image.convert("RGB")), rgba[..., :3])
        assert round(image.info["dpi"][0]) == 150
    assert png == encode_png(rgba, dpi=150)


def test_qc_family_is_deterministic(stage_inputs: dict[str, Path], tmp_path: Path) -> None:
    s = stage_inputs
    for k in (1, 2):
        out = {"out_dir": tmp_path / f"r{k}", "formats": ["pdf"]}
        plot_qc.run(features=s["features"], samples=s["samples"], **out)
        plot_qc_abundance.run(samples=s["samples"], abundance=s["abundance"], **out)
    for path in sorted((tmp_path / "r1").iterdir()):
        assert path.read_bytes() == (tmp_path / "r2" / path.name).read_bytes(), path.name
